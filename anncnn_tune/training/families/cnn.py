"""The notebook CNN family (`model: cnn`): conv blocks that each end in 2x2 pooling, then a dense head.

The CNN of the course notebooks (Conv32-64-128 + Dense128, VGG-style with batch norm), kept as a
family so those models stay reproducible baselines; the fast family (fastcnn.py) is the one tuned
for speed.
"""

from __future__ import annotations

from torch import nn

from anncnn_tune.training import params as P
from anncnn_tune.training.families.base import Family
from anncnn_tune.training.families.layers import ACTIVATION_CHOICES, ACTIVATIONS, dense_stack

# CNN blocks halve the image; a block is offered only while the map it leaves is at least this wide.
MIN_FEATURE_MAP = 4
MAX_BLOCKS = 5
BF16_MIN_SIDE = 16  # the smallest image side trained in bf16 on a CPU with native bf16
HAS_HEAD = P.when(head_layers=P.at_least(1))

PARAMS = (
    P.Param("blocks", "cnn", "int", 2, "convolution blocks, each ending in 2x2 pooling", low=1),
    P.Param("filters", "cnn", "int", 32, "filters of the first block", low=1),
    P.Param("growth", "cnn", "float", 2.0, "filters of block i = filters * growth**i", **P.POSITIVE,
            when=P.when(blocks=P.at_least(2))),
    P.Param("convs", "cnn", "int", 1, "convolutions per block", low=1),
    P.Param("kernel", "cnn", "int", 3, "kernel size (odd)", low=1, odd=True),
    P.Param("activation", "cnn", "choice", "relu", "activation function", choices=ACTIVATION_CHOICES),
    P.Param("batch_norm", "cnn", "bool", False, "batch normalisation after each convolution"),
    P.Param("dropout", "cnn", "float", 0.0, "spatial dropout after each block", **P.FRACTION),
    P.Param("pooling", "cnn", "choice", "max", "pooling at the end of each block", choices=("max", "avg")),
    P.Param("residual", "cnn", "bool", False, "a (1x1-projected) shortcut around each block"),
    P.Param("head_layers", "cnn", "int", 1, "dense layers after the blocks", low=0),
    P.Param("head_width", "cnn", "int", 64, "units of each dense head layer", low=1, when=HAS_HEAD),
    P.Param("head_dropout", "cnn", "float", 0.0, "dropout in the dense head", when=HAS_HEAD, **P.FRACTION),
)


class ConvBlock(nn.Module):
    """`convs` same-padded convolutions, an optional 1x1-projected shortcut, then pooling."""

    def __init__(self, cin, cout, convs, kernel, activation, batch_norm, residual, pooling, pool, dropout):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers.append(nn.Conv2d(cin if i == 0 else cout, cout, kernel, padding=kernel // 2, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            if i < convs - 1 or not residual:
                layers.append(ACTIVATIONS[activation]())
        self.body = nn.Sequential(*layers)
        self.shortcut = None
        if residual:
            self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
            self.post = ACTIVATIONS[activation]()
        self.pool = (nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)) if pool else nn.Identity()
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        y = self.body(x)
        if self.shortcut is not None:
            y = self.post(y + self.shortcut(x))
        return self.drop(self.pool(y))


def build(p: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    if len(in_shape) != 3:
        raise ValueError(f"cnn needs image input (C, H, W), got shape {in_shape}")
    channels, height, width = in_shape
    blocks: list[nn.Module] = []
    for i in range(int(p["blocks"])):
        cout = max(1, round(int(p["filters"]) * float(p["growth"]) ** i))
        # Small inputs (8x8 digits) run out of pixels before they run out of blocks: stop pooling at 1x1.
        pool = min(height, width) >= 2
        blocks.append(
            ConvBlock(channels, cout, int(p["convs"]), int(p["kernel"]), p["activation"], bool(p["batch_norm"]),
                      bool(p["residual"]), p["pooling"], pool, float(p["dropout"]))
        )
        channels = cout
        if pool:
            height, width = height // 2, width // 2
    head_widths = [int(p["head_width"])] * int(p["head_layers"])
    head, last = dense_stack(channels * height * width, head_widths, p["activation"], float(p["head_dropout"]),
                             False)
    model = nn.Sequential(*blocks, nn.Flatten(), *head, nn.Linear(last, out_dim))
    # bf16 autocast on CPUs with native bf16 (fit._use_amp) for images of 16 pixels a side or more:
    # measured 1.9-3.0x faster at 32x32 at the same accuracy (benchmarks/RESULTS.md, "bf16 on this
    # CPU"); on 8x8 digits the convolutions are too small to gain (1.06x), so they stay in float32.
    model.cpu_bf16 = min(in_shape[1:]) >= BF16_MIN_SIDE
    return model


def max_blocks(height: int, width: int) -> int:
    """Blocks whose pooling leaves a map of at least MIN_FEATURE_MAP pixels (the builder floors, as here)."""
    side, blocks = min(height, width), 0
    while side // 2 >= MIN_FEATURE_MAP and blocks < MAX_BLOCKS:
        side //= 2
        blocks += 1
    return max(1, blocks)


def space(schema, plan, train: dict, base_train: dict) -> tuple[dict, list[dict], list[str]]:
    channels, height, width = schema.input_shape
    side = min(height, width)
    blocks = max_blocks(height, width)
    filters = 48 if side <= 16 else 64 if channels == 1 and side <= 32 else 96
    kernels = [3] if side <= 8 else [3, 5]  # a 5x5 kernel on an 8x8 image sees most of it
    convs = 3 if side >= 32 and plan.n_train >= 10_000 else 2
    head = 512 if plan.n_train >= 10_000 else 256
    reasons = [(f"{height}x{width} images, {channels} channel(s): 1..{blocks} conv blocks (each halves the "
                f"image, none below {MIN_FEATURE_MAP}x{MIN_FEATURE_MAP}), 8..{filters} filters, kernels {kernels}")]
    params = {
        "blocks": P.int_range(1, blocks),
        "filters": P.int_range(8, filters, log=True),
        "growth": P.float_range(1.0, 2.0),
        "convs": P.int_range(1, convs),
        "kernel": P.choice(kernels),
        "activation": P.choice(["relu", "gelu", "silu"]),
        "batch_norm": P.choice([False, True]),
        "dropout": P.float_range(0.0, 0.4),
        "pooling": P.choice(["max", "avg"]),
        "residual": P.choice([False, True]),
        "head_layers": P.int_range(0, 2),
        "head_width": P.int_range(32, head, log=True),
        "head_dropout": P.float_range(0.0, 0.5),
        **train,
    }
    base_blocks = min(2, blocks)
    name = "conv32-conv64-dense128" if base_blocks == 2 else "conv32-dense128"
    base = {"blocks": base_blocks, "filters": 32, "growth": 2.0, "convs": 1, "kernel": 3, "activation": "relu",
            "batch_norm": False, "dropout": 0.0, "pooling": "max", "residual": False, "head_layers": 1,
            "head_width": 128, "head_dropout": 0.0, **base_train}
    base = {k: v for k, v in base.items() if isinstance(params.get(k), dict)}
    note = ("Conv32-Conv64 (3x3, max pooling) + Dense128, Adam lr 0.001" if base_blocks == 2
            else "Conv32 (3x3, max pooling) + Dense128, Adam lr 0.001 (the image allows one block)")
    return params, [{"name": name, "note": note, "params": base}], reasons


FAMILY = Family(name="cnn", title="CNN", side="cnn", inputs=("image",), params=PARAMS, build=build, space=space,
                help="the notebooks' CNN: conv blocks with pooling, then a dense head")
