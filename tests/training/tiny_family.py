"""A linear model with at most one hidden layer (`model: linear`), on tables and images."""

from __future__ import annotations

import math

from torch import nn

from anncnn_tune.training import params as P
from anncnn_tune.training.families.base import Family

PARAMS = (
    P.Param("hidden", "linear", "int", 32, "units of the hidden layer (0: none, a linear model)", low=0),
)


def build(p: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
    features, hidden = math.prod(in_shape), int(p["hidden"])
    body = [nn.Linear(features, hidden), nn.ReLU()] if hidden else []
    return nn.Sequential(nn.Flatten(), *body, nn.Linear(hidden or features, out_dim))


FAMILY = Family(name="linear", title="linear", side="ann", inputs=("tabular", "image"), params=PARAMS,
                build=build, help="a linear layer, or one hidden layer")
