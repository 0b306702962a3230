"""fit() reports through one FitObserver: hooks in order, timing held by the observer when training
is stopped, checkpoints through the observer, and the former keywords giving the same run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anncnn_tune.data.base import Splits
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, fit, seed_everything
from anncnn_tune.training.observer import FitObserver, FitTiming, TimingObserver

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(merge_val: bool = False) -> DeviceData:
    rng = np.random.default_rng(0)
    x, xv = rng.normal(size=(150, 6)).astype(np.float32), rng.normal(size=(50, 6)).astype(np.float32)
    y, yv = (x[:, 0] > 0).astype(np.int64), (xv[:, 0] > 0).astype(np.int64)
    splits = Splits("fake", "binary", "tabular", x, y, xv, yv, None, None, ("0", "1"), "fp", 0)
    return DeviceData.from_splits(splits, CPU, merge_val=merge_val)


def _model(seed: int = 3):
    seed_everything(seed)
    return models.build("ann", {"width": 8}, (6,), 1)


class Recorder(FitObserver):
    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def on_timing(self, timing):
        self.calls.append(("timing", timing.epochs_run))

    def on_epoch(self, row):
        self.calls.append(("epoch", row["epoch"]))

    def on_value(self, epoch, value):
        self.calls.append(("value", epoch))
        if epoch == self.stop_at:
            raise StopIteration("stop")


def test_every_training_step_reports_the_samples_of_its_epoch_done_so_far():
    class Steps(FitObserver):
        def __init__(self):
            self.steps = []

        def on_step(self, epoch, seen, total):
            self.steps.append((epoch, seen, total))

    observer = Steps()
    fit(_model(), _data(), {"batch_size": 32}, epochs=2, metric="val_loss", observer=observer)
    # 150 training rows in batches of 32: the last batch is the 22 left.
    assert observer.steps == [(epoch, seen, 150) for epoch in (1, 2) for seen in (32, 64, 96, 128, 150)]


def test_hooks_run_in_order_after_every_epoch():
    recorder = Recorder()
    result = fit(_model(), _data(), {"batch_size": 32}, epochs=2, metric="val_loss", observer=recorder)
    assert recorder.calls == [("timing", 0), ("timing", 1), ("epoch", 1), ("value", 1),
                              ("timing", 2), ("epoch", 2), ("value", 2)]
    assert result.epochs_run == 2


def test_without_a_metric_no_value_is_reported():
    recorder = Recorder()
    fit(_model(), _data(merge_val=True), {}, epochs=2, metric=None, observer=recorder)
    assert [c for c in recorder.calls if c[0] == "value"] == []


def test_the_observer_holds_the_time_spent_when_on_value_stops_training():
    class Stopping(TimingObserver):
        def on_value(self, epoch, value):
            if epoch == 2:
                raise StopIteration("pruned")

    observer = Stopping()
    with pytest.raises(StopIteration):
        fit(_model(), _data(), {}, epochs=5, metric="val_loss", observer=observer)
    assert observer.timing.epochs_run == 2 and observer.timing.train_seconds > 0
    assert observer.timing.compile_seconds == 0.0


def test_the_final_timing_is_the_results():
    observer = TimingObserver()
    result = fit(_model(), _data(), {}, epochs=3, metric="val_loss", observer=observer)
    assert observer.timing == FitTiming(result.epochs_run, result.train_seconds, result.compile_seconds,
                                        epochs_trained=result.epochs_run)


class MemoryCheckpoints(FitObserver):
    saves_checkpoints = True

    def __init__(self, state=None, stop_after: int | None = None):
        self.state, self.saves, self.stop_after = state, 0, stop_after

    def load_checkpoint(self):
        return self.state

    def save_checkpoint(self, state):
        self.state = {k: (v.copy() if isinstance(v, list) else v) for k, v in state.items()}
        self.state["model"] = {k: t.clone() for k, t in state["model"].items()}
        self.saves += 1
        if self.saves == self.stop_after:
            raise KeyboardInterrupt("SIGKILL")


def test_an_observer_that_keeps_checkpoints_resumes_to_the_same_run():
    params = {"batch_size": 16, "optimizer": "adamw", "schedule": "onecycle"}
    expected = fit(_model(), _data(), params, epochs=4, metric="val_loss", seed=5)
    dying = MemoryCheckpoints(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _data(), params, epochs=4, metric="val_loss", seed=5, observer=dying)
    resumed = fit(_model(), _data(), params, epochs=4, metric="val_loss", seed=5,
                  observer=MemoryCheckpoints(dying.state))
    assert resumed.history == expected.history and resumed.best_epoch == expected.best_epoch


def test_an_observer_that_keeps_no_checkpoints_is_never_asked_for_one():
    class Refusing(FitObserver):
        def load_checkpoint(self):
            raise AssertionError("asked to load")

        def save_checkpoint(self, state):
            raise AssertionError("asked to save")

    fit(_model(), _data(), {}, epochs=2, metric="val_loss", observer=Refusing())
