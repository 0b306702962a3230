"""The MLP family (`model: ann`): dense layers of shrinking width on the flattened input.

On a table, the numeric columns may first go through a transform fitted on the training rows and a
learned embedding per feature (families/numeric.py); the defaults (standard, none) build the plain
MLP's layers as before those existed, so saved weights rebuild unchanged. On a table the output layer
starts at zero (`_zero_head`: renamed classes then give the same model). `ensemble: k` makes it a
TabM-mini ensemble of k members (families/ensemble.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from anncnn_tune.training import params as P
from anncnn_tune.training.families.base import Family
from anncnn_tune.training.families.ensemble import EnsembleMLP
from anncnn_tune.training.families.layers import ACTIVATION_CHOICES, dense_stack
from anncnn_tune.training.families.numeric import EMBEDDINGS, TRANSFORMS, NumericInput, TabularMLP

EMBEDDED = P.when(numeric_embedding=("plr", "piecewise_linear"))

PARAMS = (
    P.Param("layers", "ann", "int", 2, "hidden layers", low=1),
    P.Param("width", "ann", "int", 128, "units of the first hidden layer", low=1),
    P.Param("shrink", "ann", "float", 0.5, "width of hidden layer i = width * shrink**i", **P.POSITIVE,
            when=P.when(layers=P.at_least(2))),
    P.Param("activation", "ann", "choice", "relu", "activation function", choices=ACTIVATION_CHOICES),
    P.Param("dropout", "ann", "float", 0.0, "dropout after each hidden layer", **P.FRACTION),
    P.Param("batch_norm", "ann", "bool", False, "batch normalisation after each hidden layer"),
    P.Param("numeric_transform", "ann", "choice", "standard",
            "numeric columns, fitted on the training rows: standard (the table's own scaling), quantile (to a "
            "normal), robust (median/IQR, clipped at +-5); flag and one-hot columns pass through",
            choices=TRANSFORMS),
    P.Param("numeric_embedding", "ann", "choice", "none",
            "a learned embedding of each numeric column before the MLP: plr (periodic, linear, ReLU) or "
            "piecewise_linear (bins between training quantiles, linear, ReLU)", choices=EMBEDDINGS),
    P.Param("embedding_dim", "ann", "int", 24, "numbers per embedded numeric column", low=1, when=EMBEDDED),
    P.Param("plr_sigma", "ann", "float", 0.01, "spread of the periodic embedding's initial frequencies",
            when=P.when(numeric_embedding="plr"), **P.POSITIVE),
    P.Param("n_bins", "ann", "int", 48, "piecewise-linear bins per numeric column (between training quantiles)",
            low=1, when=P.when(numeric_embedding="piecewise_linear")),
    P.Param("ensemble", "ann", "int", 1,
            "members of a TabM-mini ensemble: the hidden layers shared, each member with its own input scaling "
            "and output layer, trained on every member's loss, predicting their mean (k times the compute); "
            "1 is the plain MLP", low=1),
)


def hidden_widths(width: int, shrink: float, layers: int) -> list[int]:
    return [max(1, round(width * shrink**i)) for i in range(layers)]


def build(p: dict, in_shape: tuple[int, ...], out_dim: int, numeric: tuple[int, ...] | None = None) -> nn.Module:
    """`numeric`: the positions of the numeric columns among the inputs (None: all of them)."""
    widths = hidden_widths(int(p["width"]), float(p["shrink"]), int(p["layers"]))
    if int(p["ensemble"]) > 1:
        model = _ensemble(p, widths, in_shape, numeric, out_dim)
        if len(in_shape) == 1:
            model.zero_head()
        return model
    if p["numeric_transform"] != "standard" or p["numeric_embedding"] != "none":
        model = _with_numeric_input(p, widths, math.prod(in_shape), numeric, out_dim)
    else:
        body, last = dense_stack(math.prod(in_shape), widths, p["activation"], float(p["dropout"]),
                                 bool(p["batch_norm"]))
        model = nn.Sequential(nn.Flatten(), *body, nn.Linear(last, out_dim))
    if len(in_shape) == 1:
        _zero_head(model[-1])
    return model


def _zero_head(head: nn.Linear) -> None:
    """A table's output layer starts at zero (drawn first, so the hidden layers' draws are unchanged):
    every class's output then starts alike and learns from its own rows only, so renaming the classes,
    which permutes the outputs, permutes the fitted model's outputs and changes nothing else (and a
    binary model's single logit only changes sign); a random head would give each class the weights
    drawn for whichever class sorted into its place. Hidden layers get gradients from the second step."""
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()


def _ensemble(p: dict, widths: list[int], in_shape: tuple[int, ...], numeric, out_dim: int) -> EnsembleMLP:
    features = math.prod(in_shape)
    plain = p["numeric_transform"] == "standard" and p["numeric_embedding"] == "none"
    first = nn.Flatten() if plain else _numeric_input(p, features, numeric)
    width = features if plain else first.out_features
    body, last = dense_stack(width, widths, p["activation"], float(p["dropout"]), bool(p["batch_norm"]))
    return EnsembleMLP(first, width, body, last, out_dim, int(p["ensemble"]))


def _numeric_input(p: dict, features: int, numeric) -> NumericInput:
    return NumericInput(features, numeric, p["numeric_transform"], p["numeric_embedding"],
                        dim=int(p["embedding_dim"]), sigma=float(p["plr_sigma"]), bins=int(p["n_bins"]))


def _with_numeric_input(p: dict, widths: list[int], features: int, numeric, out_dim: int) -> nn.Module:
    """The MLP behind a NumericInput (its own class: the defaults keep the plain model's state dict)."""
    first = _numeric_input(p, features, numeric)
    body, last = dense_stack(first.out_features, widths, p["activation"], float(p["dropout"]), bool(p["batch_norm"]))
    return TabularMLP(first, *body, nn.Linear(last, out_dim))


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
    }
    base = {"layers": 2, "width": 128, "shrink": 0.5, "activation": "relu", "dropout": 0.0, "batch_norm": False}
    numeric = _numeric_columns(schema)
    if numeric:
        params.update(numeric_space(plan.n_train))
        base.update(numeric_transform="standard", numeric_embedding="none")
        reasons.append(f"{numeric} numeric column(s): transform standard | quantile | robust, embedding none | "
                       "plr | piecewise_linear (fitted on the training rows)")
    baseline = {"name": "mlp-128-64", "note": "the Keras-tutorial MLP: 128-64 ReLU, Adam lr 0.001",
                "params": {**base, **base_train}}
    return {**params, **train}, [baseline], reasons


def _numeric_columns(schema) -> int:
    """Numeric columns of a table (all its features where no roles were recorded); 0 for images."""
    if schema.kind != "tabular":
        return 0
    if schema.columns is None:
        return math.prod(schema.input_shape)
    return len(schema.columns.get("numeric", []))


def numeric_space(n_train: int) -> dict:
    """The numeric-feature choices `init` searches on a table (the ranges of the TabM paper's MLP-PLR
    space; bins no more than a tenth of the training rows, so each bin holds rows)."""
    bins = max(2, min(64, n_train // 10))
    return {
        "numeric_transform": P.choice(list(TRANSFORMS)),
        "numeric_embedding": P.choice(list(EMBEDDINGS)),
        "embedding_dim": P.int_range(8, 32),
        "plr_sigma": P.float_range(0.01, 10.0, log=True),
        "n_bins": P.int_range(min(8, bins), bins),
    }


FAMILY = Family(name="ann", title="MLP", side="ann", inputs=("tabular", "image"), params=PARAMS, build=build,
                space=space, help="multi-layer perceptron on the flattened input", columns=True)
