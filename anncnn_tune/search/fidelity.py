"""Rungs on parts of the training images (a pruner's `resource: images`): before its full run, a trial
trains its whole schedule on a seeded, stratified part of the training split, is validated on the whole
validation split, and the pruner judges that value; a promoted trial trains again on a larger part.

Every trial of a study trains each rung on the same images (seeded by the study's seed), and the smaller
part lies inside the larger one, so a rung compares finished schedules on the same data: like with like,
whatever the family, the optimizer or the schedule's shape. The first rung may train at a lower
resolution (the pruner's first_rung_side: every trial's first rung then sees the same small images).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch

from anncnn_tune.service import signals
from anncnn_tune.training.fit import DeviceData, RunOptions, evaluate, fit, seed_everything
from anncnn_tune.training.observer import TimingObserver


def part_of_training_rows(data: DeviceData, fraction: float, seed: int) -> torch.Tensor:
    """Indices of `fraction` of the training rows: per class (for classification) the first
    ceil(fraction * class size) of one seeded permutation, so a smaller fraction's rows are a subset
    of a larger one's and every class keeps its share."""
    labels = data.y_train.cpu()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    groups = [order] if data.task == "regression" else [order[labels[order] == c] for c in torch.unique(labels)]
    kept = torch.cat([rows[: max(1, math.ceil(fraction * len(rows)))] for rows in groups])
    return kept.sort().values.to(data.y_train.device)


def on_part(data: DeviceData, rows: torch.Tensor) -> DeviceData:
    """The data with its training split cut to `rows` and no validation split (a rung validates once,
    at its end, on the whole validation split)."""
    return dataclasses.replace(data, x_train=data.x_train.index_select(0, rows),
                               y_train=data.y_train.index_select(0, rows), x_val=None, y_val=None)


def at_side(data: DeviceData, side: int) -> DeviceData:
    """The training and validation images averaged down to side x side (a lower-resolution rung: each
    output pixel the mean of its block, so 32 -> 16 averages 2x2 blocks); uint8 images stay uint8."""

    def shrink(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None:
            return None
        parts = [torch.nn.functional.adaptive_avg_pool2d(x[i: i + 4096].float(), side) for i in range(0, len(x), 4096)]
        small = torch.cat(parts)
        return small.round().to(x.dtype) if not x.dtype.is_floating_point else small.to(x.dtype)

    return dataclasses.replace(data, x_train=shrink(data.x_train), x_val=shrink(data.x_val))


class _StageObserver(TimingObserver):
    """A rung's training stops at the end of an epoch on Ctrl-C or SIGTERM, like a trial's."""

    def on_epoch(self, row: dict) -> None:
        signals.check_stop()


@dataclasses.dataclass(frozen=True)
class RungResult:
    fraction: float
    images: int  # training images this rung trained on
    value: float  # the study's metric on the whole validation split
    seconds: float  # training and the one validation
    side: int | None = None  # the side the images were downsampled to, or None: their own size

    def row(self, metric: str) -> dict:
        """The trial's record of the rung (records' partial_epochs rows: "epoch" is the fraction)."""
        side = {} if self.side is None else {"side": self.side}
        return {"epoch": round(self.fraction, 6), "images": self.images, **side, "seconds": round(self.seconds, 3),
                metric: self.value}


def train_rung(build: Callable[[], torch.nn.Module], data: DeviceData, params: dict, *, fraction: float,
               epochs: int, metric: str, seed: int, data_seed: int, options: RunOptions,
               side: int | None = None) -> RungResult:
    """Train a fresh model (built after seeding, so it starts from the full run's weights where its
    shape is the full run's) for the whole schedule on `fraction` of the training images, then validate
    it once. `data` is already at the rung's side where that is not the images' own (at_side, built
    once per worker); `side` only records it."""
    started = time.perf_counter()
    part = on_part(data, part_of_training_rows(data, fraction, data_seed))
    seed_everything(seed)
    model = build()
    fit(model, part, params, epochs=epochs, metric=None, seed=seed, options=options, observer=_StageObserver())
    values = evaluate(model, data, data.x_val, data.y_val, options)
    value = float(values[metric.removeprefix("val_")])
    return RungResult(fraction, len(part.y_train), value, time.perf_counter() - started, side)
