"""What a worker prints into a log: a line per trial, and epoch lines only for trials that run long."""

import io

import optuna

from anncnn_tune.search import progress as progress_mod
from anncnn_tune.search.progress import Progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _finished_trial(number: int) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")
    for _ in range(number + 1):
        study.tell(study.ask(), 0.5)
    return study, study.trials[number]


def test_a_log_gets_an_epoch_line_only_after_a_silence_and_a_line_per_trial(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    log = io.StringIO()  # not a terminal
    progress = Progress("s", "val_accuracy", epochs=8, stream=log)
    progress.trial_started(3)
    for epoch in (1, 2, 3):  # quick epochs: nothing yet
        clock.now += 5
        progress.epoch(3, epoch, 0.9)
    assert log.getvalue() == ""
    clock.now += progress_mod.LOG_EVERY  # a slow epoch: 45 s since the trial started
    progress.epoch(3, 4, 0.95)
    assert log.getvalue() == "trial   3 epoch   4/8 val_accuracy=0.9500  running 45s\n"
    clock.now += 5
    progress.epoch(3, 5, 0.96)  # the silence is counted from the last line, not the trial's start
    assert log.getvalue().count("\n") == 1
    study, trial = _finished_trial(3)
    progress.trial_finished(study, trial)
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("trial   3 complete") and "val_accuracy=0.5000" in last


def test_quiet_prints_no_epoch_lines_however_long_a_trial_runs(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    log = io.StringIO()
    progress = Progress("s", "val_accuracy", epochs=8, stream=log, quiet=True)
    progress.trial_started(0)
    clock.now += 10 * progress_mod.LOG_EVERY
    progress.epoch(0, 1, 0.9)
    assert log.getvalue() == ""
