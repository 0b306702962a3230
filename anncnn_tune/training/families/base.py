"""The contract a model family implements: one module under training/families/ declares one `Family`.

A family says what it is (a name for study files, a title for people, the side of the ANN-vs-CNN
question it stands for), what data it takes, its parameters (with their conditions), how to build
a model from (params, input shape, outputs; a family with `columns` also gets the positions of a
table's numeric columns), the space `init` writes for a dataset, and the number
of forward passes an evaluation costs (test-time augmentation views). A model that needs to see the
data to initialise itself (the fast CNN's whitening stem) defines `init_from_data(inputs)`, which
fit() calls once before the first step; one that gives some parameters their own learning rates
defines `optimizer_groups(lr, weight_decay)`. Its parameter count and FLOPs per sample follow from
the params alone, on PyTorch's meta device (shapes only, nothing allocated), so a search knows a
configuration's cost before it trains it. Nothing outside a family's module names a family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from anncnn_tune.training import params as P

SIDES = ("ann", "cnn")  # the two sides of the question every study answers
INPUTS = ("tabular", "image")


@dataclass(frozen=True)
class Family:
    name: str  # the study file's `model:`
    title: str  # what people call it: "MLP", "CNN"
    side: str  # one of SIDES: which side of the comparison its studies stand on
    inputs: tuple[str, ...]  # the data kinds it takes (INPUTS)
    params: tuple[P.Param, ...]  # its own parameters (the training loop's are params.TABLE)
    build: Callable[..., nn.Module]  # (full params, input shape, outputs[, numeric=...] where `columns`)
    # (schema, plan, training space, training baseline) -> (params, baselines, reasons): what `init` writes
    space: Callable | None = None
    # forward passes per sample when evaluating (test-time augmentation views), from the params
    eval_views: Callable[[dict], int] = lambda params: 1
    help: str = ""
    # True: build also takes numeric=, the positions of a table's numeric columns among the inputs
    # (None where no roles were recorded: every input is numeric), so it can treat them apart from
    # 0/1 flags and one-hot indicators
    columns: bool = False

    def __post_init__(self):
        assert self.side in SIDES and set(self.inputs) <= set(INPUTS), self.name

    def declared(self) -> dict[str, P.Param]:
        """Every parameter a study of this family may set: the training loop's, then the family's own."""
        return {**P.declared("train"), **{p.name: p for p in self.params}}

    def defaults(self) -> dict:
        """The full parameter dict before a study changes anything."""
        return {name: p.default for name, p in self.declared().items()}

    def own_defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def full(self, params: dict) -> dict:
        """params over the defaults: what the builder and fit read."""
        return {**self.defaults(), **params}

    def takes(self, kind: str) -> bool:
        return kind in self.inputs

    def size_params(self) -> tuple[str, ...]:
        """The parameters that may change the model's size: the numeric ones and the categorical
        ones whose choices change the layers (everything but rates and probabilities)."""
        return tuple(p.name for p in self.params if "dropout" not in p.name)

    def meta_model(self, params: dict, in_shape: tuple[int, ...], out_dim: int) -> nn.Module:
        """The model on the meta device; every input column counted as numeric (an upper bound on a
        table whose flag and one-hot columns an embedding would leave alone)."""
        with torch.device("meta"):
            return self.build(self.full(params), tuple(in_shape), out_dim)

    def n_params(self, params: dict, in_shape: tuple[int, ...], out_dim: int) -> int:
        """Trainable parameters, before building (on the meta device)."""
        return sum(p.numel() for p in self.meta_model(params, in_shape, out_dim).parameters() if p.requires_grad)

    def flops(self, params: dict, in_shape: tuple[int, ...], out_dim: int) -> int:
        """Forward FLOPs of one sample in training mode (a multiply-add counts 2), before building."""
        from torch.utils.flop_counter import FlopCounterMode

        model = self.meta_model(params, in_shape, out_dim)
        model.train()
        counter = FlopCounterMode(display=False)
        with torch.device("meta"), counter:
            model(torch.empty((2, *in_shape)))
        return int(counter.get_total_flops()) // 2

    def training_flops(self, params: dict, in_shape: tuple[int, ...], out_dim: int, samples: int) -> int:
        """The FLOPs of training on `samples` samples (forward and backward: 3x the forward)."""
        return 3 * self.flops(params, in_shape, out_dim) * samples

