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
# Within an epoch, a line only after this long without one: a CNN's epoch on a CPU can take minutes.
PROGRESS_WITHIN_EPOCH_EVERY = 30.0


def train_once(run: Run, splits, data: DeviceData, seed: int, options: RunOptions, log=None, label: str = ""):
    """(model, fit result) of one training of `run` on `data` with `seed`."""
    seed_everything(seed)  # the same initialisation the trial had, for the first seed
    model = models.build(run.model, run.params, splits.input_shape, splits.out_dim, splits.numeric_columns)
    observer = ProgressLines(log, label, run.epochs) if log else None
    result = fit(model, data, run.params, epochs=run.epochs, metric=None, seed=seed, options=options,
                 observer=observer)
    return model, result


class ProgressLines(FitObserver):
    """fit()'s observer in a retrain: progress lines. An epoch line when PROGRESS_EVERY seconds have
    passed since the last line, so a short retrain prints only its result line; and inside an epoch
    a line of the samples done so far after PROGRESS_WITHIN_EPOCH_EVERY seconds without one, so a long
    epoch (a CNN on a CPU) shows it is alive."""

    def __init__(self, log, label: str, epochs: int, clock=time.perf_counter):
        self._log, self._label, self._epochs, self._clock = log, label, epochs, clock
        self._started = self._last = clock()

    def _due(self, every: float) -> float | None:
        """The seconds since the start when a line is due (and marks it printed), else None."""
        now = self._clock()
        if now - self._last < every:
            return None
        self._last = now
        return now - self._started

    def on_step(self, epoch: int, seen: int, total: int) -> None:
        if seen < total and (elapsed := self._due(PROGRESS_WITHIN_EPOCH_EVERY)) is not None:
            self._log(f"{self._label}epoch {epoch}/{self._epochs}: {seen:,} of {total:,} samples ({elapsed:.0f}s)")

    def on_epoch(self, row: dict) -> None:
        if (elapsed := self._due(PROGRESS_EVERY)) is not None:
            self._log(f"{self._label}epoch {row['epoch']}/{self._epochs} train_loss={row['train_loss']:.4f} "
                      f"({elapsed:.0f}s)")
