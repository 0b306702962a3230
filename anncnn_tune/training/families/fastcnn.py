"""The fast CNN family (`model: fastcnn`): the public fast CIFAR-10 trainers' recipe as a search space.

After KellerJordan's airbench94 (and hlb-CIFAR10, "How to train your ResNet"): a stem of 2x2
convolutions whose weights whiten the training images' patches (computed from the data before the
first step, then frozen), then groups of 3x3 convolutions with batch norm (frozen scale, trainable
bias) and GELU, pooling after each group's first convolution, a global max pool and a linear head
whose logits are scaled down. Convolutions start as identities on their first channels (dirac
init). Evaluation may average the logits of test-time views (flip, and flip plus one-pixel shifts),
which costs as many forward passes as views: `eval_views` counts them.

The training side of the recipe (Nesterov SGD, label smoothing, a triangular schedule, weight
averaging, flip + translate augmentation, the learning rate scaled to the batch) are training-loop
parameters (training/params.py) that a fastcnn study searches or fixes.
"""

from __future__ import annotations

import torch
from torch import nn

from anncnn_tune.training import params as P
from anncnn_tune.training.families.base import Family
from anncnn_tune.training.families.layers import ACTIVATIONS

WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4
WHITEN_SAMPLES = 5000  # images whose patches estimate the covariance (airbench uses 5000 too)
LOGIT_SCALE = 1 / 9
TTA_VIEWS = {"none": 1, "flip": 2, "flip_shift": 6}

PARAMS = (
    P.Param("width", "fastcnn", "int", 64, "channels of the first conv group", low=1),
    P.Param("width_mult", "fastcnn", "float", 4.0, "channels of the later groups = width * width_mult", **P.POSITIVE),
    P.Param("groups", "fastcnn", "int", 3, "conv groups, each pooling 2x2 after its first convolution",
            low=1, high=4),
    P.Param("depth", "fastcnn", "int", 2, "3x3 convolutions per group", low=1, high=4),
    P.Param("whiten", "fastcnn", "bool", True,
            "a frozen 2x2 stem that whitens the training patches (else a learned 3x3 stem)"),
    P.Param("dirac", "fastcnn", "bool", True, "convolutions start as identities on their first channels"),
    P.Param("activation", "fastcnn", "choice", "gelu", "activation function", choices=tuple(ACTIVATIONS)),
    P.Param("bn_momentum", "fastcnn", "float", 0.4, "weight of each batch in batch norm's running statistics",
            low=0.0, high=1.0, low_open=True),
    P.Param("bias_lr", "fastcnn", "float", 64.0,
            "learning-rate multiplier of the batch-norm biases (weight decay divided by it), as airbench's",
            low=1.0),
    P.Param("tta", "fastcnn", "choice", "flip", "test-time views averaged at evaluation (cost: 1, 2 or 6 passes)",
            choices=tuple(TTA_VIEWS)),
)


class BatchNorm(nn.BatchNorm2d):
    """Batch norm with a frozen unit scale and a trainable bias (the scale is redundant before GELU
    once the next convolution can rescale; freezing it is one of airbench's measured tricks)."""

    def __init__(self, channels: int, momentum: float):
        super().__init__(channels, eps=1e-12, momentum=momentum)
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    def __init__(self, cin: int, cout: int, dirac: bool):
        super().__init__(cin, cout, 3, padding=1, bias=False)
        if dirac:  # the first cin filters pass their input channel through unchanged
            with torch.no_grad():
                nn.init.dirac_(self.weight[: min(cin, cout)])


class ConvGroup(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, pool: bool, p: dict):
        super().__init__()
        act = ACTIVATIONS[p["activation"]]
        momentum, dirac = float(p["bn_momentum"]), bool(p["dirac"])
        layers: list[nn.Module] = [Conv(cin, cout, dirac)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [BatchNorm(cout, momentum), act()]
        for _ in range(depth - 1):
            layers += [Conv(cout, cout, dirac), BatchNorm(cout, momentum), act()]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class FastCNN(nn.Module):
    cpu_bf16 = True  # bf16 autocast on CPUs with native bf16 (fit._use_amp; measured in benchmarks/choices.py)

    def __init__(self, p: dict, in_shape: tuple[int, ...], out_dim: int):
        super().__init__()
        channels, height, width = in_shape
        self.whiten = bool(p["whiten"])
        stem_out = 2 * channels * WHITEN_KERNEL**2  # each patch eigenvector, with both signs
        if self.whiten:
            self.stem = nn.Conv2d(channels, stem_out, WHITEN_KERNEL, padding=0, bias=True)
            self.stem.weight.requires_grad = False  # set from the data in init_from_data, then frozen
            side = min(height, width) - WHITEN_KERNEL + 1
        else:  # a learned stem of the same width
            self.stem = nn.Conv2d(channels, stem_out, 3, padding=1, bias=True)
            side = min(height, width)
        groups = []
        cin = stem_out
        for i in range(int(p["groups"])):
            cout = max(1, int(p["width"]) if i == 0 else round(int(p["width"]) * float(p["width_mult"])))
            pool = side >= 2
            groups.append(ConvGroup(cin, cout, int(p["depth"]), pool, p))
            side = side // 2 if pool else side
            cin = cout
        self.stem_act = ACTIVATIONS[p["activation"]]()
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(cin, out_dim, bias=False)
        self.tta = p["tta"]
        self.bias_lr = float(p["bias_lr"])

    def optimizer_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """The batch-norm biases (the only affine parameters left: BN scales are frozen) at bias_lr times
        the rate and 1/bias_lr the weight decay, so their decay per step stays the others'."""
        biases = [m.bias for m in self.modules() if isinstance(m, BatchNorm)]
        ids = {id(b) for b in biases}
        rest = [q for q in self.parameters() if q.requires_grad and id(q) not in ids]
        return [{"params": rest, "lr": lr, "weight_decay": weight_decay},
                {"params": biases, "lr": lr * self.bias_lr, "weight_decay": weight_decay / self.bias_lr}]

    def features(self, x):
        x = self.groups(self.stem_act(self.stem(x)))
        return torch.amax(x, dim=(2, 3))  # global max pool (airbench's MaxPool(3) on its 3x3 map)

    def logits(self, x):
        return self.head(self.features(x)) * LOGIT_SCALE

    def forward(self, x):
        if self.training or self.tta == "none" or x.dim() != 4:
            return self.logits(x)
        flipped = x.flip(3)
        if self.tta == "flip":
            return 0.5 * (self.logits(x) + self.logits(flipped))
        # flip_shift: the image and its mirror, each as is (weight 1/2) and shifted one pixel each way
        # (weight 1/4 each), as airbench94's six views. Each view is its own batch, not one batch of
        # both sliced apart again: a slice at len(x) is a constant in the ONNX graph, which then
        # refused any other batch size.
        return 0.5 * (self._shifted_views(x) + self._shifted_views(flipped))

    def _shifted_views(self, x):
        pad = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        left = self.logits(pad[:, :, 1:-1, :-2])
        right = self.logits(pad[:, :, 1:-1, 2:])
        return 0.5 * self.logits(x) + 0.25 * (left + right)

    @torch.no_grad()
    def init_from_data(self, inputs: torch.Tensor) -> None:
        """Set the whitening stem from the covariance of the training images' 2x2 patches: each filter
        is an eigenvector scaled by 1/sqrt(its eigenvalue), once with each sign (airbench94)."""
        if not self.whiten:
            return
        x = inputs[:WHITEN_SAMPLES].float()
        c = x.shape[1]
        k = WHITEN_KERNEL
        patches = x.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c * k * k).double()
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
        scaled = (eigenvectors / torch.sqrt(eigenvalues.clamp(min=0) + WHITEN_EPS)[:, None]).reshape(-1, c, k, k)
        weight = torch.cat([scaled, -scaled]).to(self.stem.weight.dtype)
        self.stem.weight.copy_(weight.to(self.stem.weight.device))


def build(p: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    if len(in_shape) != 3:
        raise ValueError(f"fastcnn needs image input (C, H, W), got shape {in_shape}")
    if min(in_shape[1:]) < WHITEN_KERNEL + 1:
        raise ValueError(f"fastcnn needs images of at least 3x3 pixels, got {in_shape[1]}x{in_shape[2]}")
    return FastCNN(p, in_shape, out_dim)


def space(schema, plan, train: dict, base_train: dict) -> tuple[dict, list[dict], list[str]]:
    """The fast family's space for an image dataset: around airbench94's choices, narrower for small
    images and small sets (the recipe's widths are for 32x32 colour images and 50,000 of them)."""
    channels, height, width = schema.input_shape
    side = min(height, width)
    groups = 3 if side >= 16 else 2
    high = 64 if side >= 24 and plan.n_train >= 10_000 else 32
    # A mirrored glyph is another glyph: test-time flips only for colour images (natural photos).
    tta = ["none", "flip"] if channels >= 3 else ["none"]
    reasons = [(f"{height}x{width} images: the fast family with {groups} conv groups of 16..{high} channels "
                f"(then x2..x4), whitened 2x2 stem, test-time views {' | '.join(tta)}")]
    params = {
        "width": P.int_range(16, high, log=True),
        "width_mult": P.float_range(2.0, 4.0),
        "groups": groups,
        "depth": P.int_range(1, 2),
        "tta": P.choice(tta),
        **{k: v for k, v in train.items() if k not in ("optimizer",)},
        "optimizer": "sgd",
        "nesterov": True,
        "momentum": P.float_range(0.8, 0.95),
        "lr": P.float_range(0.05, 2.0, log=True),
        "weight_decay": P.float_range(1.0e-4, 5.0e-3, log=True),
        "schedule": "triangle",
    }
    if plan.task == "multiclass":
        params["label_smoothing"] = P.float_range(0.0, 0.3)
    base = {"width": min(high, 32), "width_mult": 4.0, "depth": 2, "tta": tta[-1], "momentum": 0.85, "lr": 1.0,
            "weight_decay": 1.0e-3, **{k: v for k, v in base_train.items() if k not in ("optimizer", "lr",
                                                                                         "weight_decay", "schedule")}}
    if plan.task == "multiclass":
        base["label_smoothing"] = 0.2
    base = {k: v for k, v in base.items() if isinstance(params.get(k), dict)}
    return params, [{"name": "airbench-like", "note": "the airbench94 recipe, narrower", "params": base}], reasons


FAMILY = Family(name="fastcnn", title="fast CNN", side="cnn", inputs=("image",), params=PARAMS, build=build,
                space=space, eval_views=lambda p: TTA_VIEWS[p.get("tta", "flip")],
                help="the fast CIFAR trainers' recipe: whitened stem, conv groups with batch norm, test-time views")
