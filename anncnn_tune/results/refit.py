"""Training a run file's configuration once: the search's own fit(), with fixed params.

Retraining on train+validation and each cross-validation fold go through here, so both train
exactly as the trial did (same seeding, same model builder, same loop), without pruning.
"""

from __future__ import annotations

import time

from anncnn_tune.results.export import Run
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, fit, seed_everything
from anncnn_tune.training.observer import FitObserver

PROGRESS_EVERY = 10.0  # seconds between epoch lines while a retrain runs


def train_once(run: Run, splits, data: DeviceData, seed: int, options: RunOptions, log=None, label: str = ""):
    """(model, fit result) of one training of `run` on `data` with `seed`."""
    seed_everything(seed)  # the same initialisation the trial had, for the first seed
    model = models.build(run.model, run.params, splits.input_shape, splits.out_dim, splits.numeric_columns)
    observer = _EpochLines(epoch_logger(log, label, run.epochs)) if log else None
    result = fit(model, data, run.params, epochs=run.epochs, metric=None, seed=seed, options=options,
                 observer=observer)
    return model, result


class _EpochLines(FitObserver):
    """fit()'s observer in a retrain: only the epoch rows, for the progress lines."""

    def __init__(self, on_epoch):
        self._on_epoch = on_epoch

    def on_epoch(self, row: dict) -> None:
        self._on_epoch(row)


def epoch_logger(log, label: str, epochs: int):
    """An epoch line when PROGRESS_EVERY seconds have passed since the last one: a long retrain (a
    CNN on a CPU) shows it is alive, a short one prints only its result line."""
    started = last = time.perf_counter()

    def on_epoch(row: dict) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY:
            last = now
            log(f"{label}epoch {row['epoch']}/{epochs} train_loss={row['train_loss']:.4f} ({now - started:.0f}s)")
    return on_epoch
