"""Building blocks several families share: activations by name and a dense stack."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
ACTIVATION_CHOICES = tuple(ACTIVATIONS)


def dense_stack(in_features: int, widths: list[int], activation: str, dropout: float, batch_norm: bool):
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
