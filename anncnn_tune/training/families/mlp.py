"""The MLP family (`model: ann`): dense layers of shrinking width on the flattened input."""

from __future__ import annotations

import math

from torch import nn

from anncnn_tune.training import params as P
from anncnn_tune.training.families.base import Family
from anncnn_tune.training.families.layers import ACTIVATION_CHOICES, dense_stack

PARAMS = (
    P.Param("layers", "ann", "int", 2, "hidden layers", low=1),
    P.Param("width", "ann", "int", 128, "units of the first hidden layer", low=1),
    P.Param("shrink", "ann", "float", 0.5, "width of hidden layer i = width * shrink**i", **P.POSITIVE,
            when=P.when(layers=P.at_least(2))),
    P.Param("activation", "ann", "choice", "relu", "activation function", choices=ACTIVATION_CHOICES),
    P.Param("dropout", "ann", "float", 0.0, "dropout after each hidden layer", **P.FRACTION),
    P.Param("batch_norm", "ann", "bool", False, "batch normalisation after each hidden layer"),
)


def hidden_widths(width: int, shrink: float, layers: int) -> list[int]:
    return [max(1, round(width * shrink**i)) for i in range(layers)]


def build(p: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    widths = hidden_widths(int(p["width"]), float(p["shrink"]), int(p["layers"]))
    body, last = dense_stack(math.prod(in_shape), widths, p["activation"], float(p["dropout"]), bool(p["batch_norm"]))
    return nn.Sequential(nn.Flatten(), *body, nn.Linear(last, out_dim))


def space(schema, plan, train: dict, base_train: dict) -> tuple[dict, list[dict], list[str]]:
    features = math.prod(schema.input_shape)
    if schema.kind == "image":
        # Pixels are many and redundant: the first layer need not be wider than the input.
        high = min(2048, max(256, 1 << max(0, math.ceil(math.log2(max(features, 1))))))
    else:
        # Few columns: hidden layers wider than the input help; a few thousand rows do not need 1024.
        high = min(1024, max(256, 4 * (1 << max(0, math.ceil(math.log2(max(features, 1)))))))
    low = max(16, high // 32)
    layers = 4 if plan.n_train >= 10_000 else 3
    reasons = [f"{features} input features: MLP width {low}..{high}, 1..{layers} layers"]
    params = {
        "layers": P.int_range(1, layers),
        "width": P.int_range(low, high, log=True),
        "shrink": P.float_range(0.25, 1.0),
        "activation": P.choice(["relu", "gelu", "silu", "tanh"]),
        "dropout": P.float_range(0.0, 0.5),
        "batch_norm": P.choice([False, True]),
        **train,
    }
    baseline = {"name": "mlp-128-64", "note": "the Keras-tutorial MLP: 128-64 ReLU, Adam lr 0.001",
                "params": {"layers": 2, "width": 128, "shrink": 0.5, "activation": "relu", "dropout": 0.0,
                           "batch_norm": False, **base_train}}
    return params, [baseline], reasons


FAMILY = Family(name="ann", title="MLP", side="ann", inputs=("tabular", "image"), params=PARAMS, build=build,
                space=space, help="multi-layer perceptron on the flattened input")
