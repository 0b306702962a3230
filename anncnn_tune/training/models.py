"""Models from (family, params, input shape, outputs), through the family table (training/families/)."""

from __future__ import annotations

from torch import nn

from anncnn_tune.training import families


def build(family: str, params: dict, in_shape: tuple[int, ...], out_dim: int,
          numeric: tuple[int, ...] | None = None) -> nn.Module:
    """The family's model for params (missing ones take the family's defaults). `numeric`: the
    positions of a table's numeric columns (Splits.numeric_columns); None: every input is numeric."""
    f = families.get(family)
    if f.columns:
        return f.build(f.full(params), tuple(in_shape), out_dim, numeric=numeric)
    return f.build(f.full(params), tuple(in_shape), out_dim)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module, in_shape: tuple[int, ...]) -> str:
    """A printable summary (layers and parameter count), stored with each trial."""
    return f"{model}\n\ninput shape: {tuple(in_shape)}\nparameters: {count_params(model):,}"


__all__ = ["build", "count_params", "describe"]
