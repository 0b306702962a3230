"""Model builders: pure functions of (params, input shape, output size) -> nn.Module.

`PARAMS` lists, per family, the parameter names a builder reads and their defaults (both taken
from the parameter table, training/params.py), so a study file may leave any of them out.
"""

from __future__ import annotations

import math

from torch import nn

from anncnn_tune.training import params as P

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}

# Defaults and choices come from the parameter table (training/params.py), the one declaration of each.
ANN_DEFAULTS = P.defaults("ann")
CNN_DEFAULTS = P.defaults("cnn")
CHOICES = {name: p.choices for f in P.FAMILIES for name, p in P.declared(f).items() if p.choices}


def hidden_widths(width: int, shrink: float, layers: int) -> list[int]:
    return [max(1, round(width * shrink**i)) for i in range(layers)]


def _dense_stack(in_features: int, widths: list[int], activation: str, dropout: float, batch_norm: bool):
    modules: list[nn.Module] = []
    for w in widths:
        modules.append(nn.Linear(in_features, w, bias=not batch_norm))
        if batch_norm:
            modules.append(nn.BatchNorm1d(w))
        modules.append(ACTIVATIONS[activation]())
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        in_features = w
    return modules, in_features


def build_ann(params: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    p = {**ANN_DEFAULTS, **{k: v for k, v in params.items() if k in ANN_DEFAULTS}}
    widths = hidden_widths(int(p["width"]), float(p["shrink"]), int(p["layers"]))
    body, last = _dense_stack(math.prod(in_shape), widths, p["activation"], float(p["dropout"]), bool(p["batch_norm"]))
    return nn.Sequential(nn.Flatten(), *body, nn.Linear(last, out_dim))


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


def build_cnn(params: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    if len(in_shape) != 3:
        raise ValueError(f"cnn needs image input (C, H, W), got shape {in_shape}")
    p = {**CNN_DEFAULTS, **{k: v for k, v in params.items() if k in CNN_DEFAULTS}}
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
    head, last = _dense_stack(channels * height * width, head_widths, p["activation"], float(p["head_dropout"]),
                              False)
    return nn.Sequential(*blocks, nn.Flatten(), *head, nn.Linear(last, out_dim))


MODELS = {"ann": build_ann, "cnn": build_cnn}
PARAMS = {"ann": ANN_DEFAULTS, "cnn": CNN_DEFAULTS}


def build(family: str, params: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    return MODELS[family](params, tuple(in_shape), out_dim)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module, in_shape: tuple[int, ...]) -> str:
    """A printable summary (layers and parameter count), stored with each trial."""
    return f"{model}\n\ninput shape: {tuple(in_shape)}\nparameters: {count_params(model):,}"


__all__ = ["CHOICES", "MODELS", "PARAMS", "build", "build_ann", "build_cnn", "count_params", "describe"]
