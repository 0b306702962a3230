"""What a worker prints into a log: a line per trial, epoch lines only for trials that run long, and status lines."""

import io
import re

import optuna

from anncnn_tune.search import progress as progress_mod
from anncnn_tune.search.live import STATUS_EVERY
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


def test_a_log_gets_a_status_line_at_every_tenth_of_the_budget_and_after_a_minute(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_mod.time, "perf_counter", clock)
    study = optuna.create_study(direction="maximize")
    log = io.StringIO()
    progress = Progress("s", "val_accuracy", epochs=8, stream=log, n_trials=20)
    with progress.showing(study):
        for value in (0.5, 0.7):  # a tenth of 20 trials is 2: a status line after the second
            trial = study.ask()
            progress.trial_started(trial.number)
            clock.now += 5
            study.tell(trial, value)
            progress.trial_finished(study, study.trials[-1])
        trial = study.ask()
        progress.trial_started(trial.number)
        clock.now += STATUS_EVERY  # a minute without a status line: the next epoch brings one
        progress.epoch(trial.number, 1, 0.6)
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and "\x1b" not in log.getvalue() and "\r" not in log.getvalue()
    assert re.fullmatch(r"trial +0 complete epoch +0/8 val_accuracy=0\.5000 +5\.0s  best 0\.5000 \(#0\)", lines[0])
    assert re.fullmatch(r"trial +1 complete epoch +0/8 val_accuracy=0\.7000 +5\.0s  best 0\.7000 \(#1\)", lines[1])
    eta = r"ETA \d+\.\ds"  # from the trials' real durations (milliseconds)
    assert re.fullmatch(r"status: 2/20 trials finished \(0 pruned, 0 failed\), 0 running, best val_accuracy "
                        rf"0\.7000 \(trial 1\), elapsed 10\.0s, {eta}", lines[2])
    assert lines[3] == "trial   2 epoch   1/8 val_accuracy=0.6000  running 60s"
    assert re.fullmatch(r"status: 2/20 trials finished \(0 pruned, 0 failed\), 1 running, best val_accuracy "
                        rf"0\.7000 \(trial 1\), elapsed 1m10s, {eta}", lines[4])
