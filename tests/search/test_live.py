"""The snapshot of a search and its two views: a live area on a terminal, plain lines in a log."""

from __future__ import annotations

import io
import logging
import re
from datetime import datetime, timedelta

import optuna
import pytest
from rich.console import Console

from anncnn_tune.search import live
from anncnn_tune.search.live import LogView, RunningTrial, Search, Snapshot, render, take_snapshot
from anncnn_tune.search.progress import Progress
from anncnn_tune.service import records

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
T0 = datetime(2025, 1, 1, 12, 0, 0)


def _study_in_every_state(tmp_path) -> optuna.Study:
    """Trials 0-2 complete (1 and 2 tie for the best), 3 pruned, 4 failed, 5 a running baseline with its own
    budget at epoch 2, 6 running with nothing reported yet, 7 waiting."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    for value in (0.90, 0.95, 0.95):
        study.tell(study.ask(), value)
    pruned = study.ask()
    pruned.report(0.5, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({}, user_attrs=records.baseline_attrs("ref", epochs=4))
    baseline = study.ask()
    baseline.report(0.7, 1)
    baseline.report(0.8, 2)
    study.ask()
    study.enqueue_trial({})
    return study


def _timed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials with their clocks set: finished trials 0-3 took 10, 20, 30 and 40 s, the failed
    one 1000 s (not a duration that counts), trial 5 has run 10 s and trial 6 30 s at T0."""
    trials = study.get_trials()
    for trial, seconds in zip(trials[:5], (10, 20, 30, 40, 1000), strict=True):
        trial.datetime_start = T0 - timedelta(seconds=500)
        trial.datetime_complete = trial.datetime_start + timedelta(seconds=seconds)
    trials[5].datetime_start = T0 - timedelta(seconds=10)
    trials[6].datetime_start = T0 - timedelta(seconds=30)
    return trials


def test_a_snapshot_counts_states_takes_the_earlier_of_tied_best_trials_and_lists_running_epochs(tmp_path):
    s = take_snapshot(_timed(_study_in_every_state(tmp_path)), maximize=True, n_trials=10, spec_epochs=8,
                      workers=2, elapsed=70.0, now=T0, reported={6: (0.333, 0.4)})
    assert (s.complete, s.pruned, s.failed, s.done) == (3, 1, 1, 4)
    assert (s.best_trial, s.best_value) == (1, 0.95)  # trial 2 ties it; the earlier one wins
    assert s.durations == (10.0, 20.0, 30.0, 40.0)  # finished trials only: the failed one is no sample
    assert s.running == (RunningTrial(5, 2, 4, 0.8, 10.0, "ref"), RunningTrial(6, 0.333, 8, 0.4, 30.0))
    stored_only = take_snapshot(_timed(_study_in_every_state(tmp_path)), maximize=True, n_trials=10, spec_epochs=8,
                                now=T0)
    assert stored_only.running[1] == RunningTrial(6, None, 8, None, 30.0)  # nothing reported yet


def test_stored_steps_of_a_study_with_rungs_inside_the_first_epoch_read_as_fractions(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", direction="maximize")
    running = study.ask()
    running.report(0.6, 3)  # step 3 of a 9-step epoch (min_resource 1/9)
    pruned = study.ask()
    pruned.report(0.2, 1)
    records.write_timing(pruned, epochs_run=0, train_seconds=0.5, compile_seconds=0.0, n_train=90,
                         epochs_trained=1 / 9)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    s = take_snapshot(study.get_trials(), maximize=True, n_trials=4, spec_epochs=20, now=datetime.now(),
                      steps_per_epoch=9)
    assert s.running[0].epoch == pytest.approx(1 / 3)
    line = live.trial_line(study.get_trials()[1], "val_accuracy", 20, 0.5, None, None, steps_per_epoch=9)
    assert "epoch 0.11/20" in line and "pruned" in line


def test_a_trial_pruned_at_a_rung_on_downsampled_images_says_the_part_and_the_side(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", direction="maximize")
    pruned = study.ask()
    pruned.report(0.31, 1)
    records.write_partial_epochs(pruned, [{"epoch": 0.111111, "images": 5000, "side": 16, "seconds": 40.0,
                                           "val_accuracy": 0.31}])
    records.write_timing(pruned, epochs_run=0, train_seconds=40.0, compile_seconds=0.0, n_train=45000,
                         epochs_trained=10 / 9)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    line = live.trial_line(study.get_trials()[0], "val_accuracy", 10, 41.0, None, None, steps_per_epoch=9)
    assert "rung 0.11 of images at 16x16" in line and "pruned" in line


def test_a_search_reads_only_what_ended_since_its_last_read_and_keeps_the_epochs_reported_here(tmp_path):
    study = _study_in_every_state(tmp_path)
    search = Search(n_trials=10, spec_epochs=8)
    assert [t.number for t in search.read(study)] == [0, 1, 2, 3, 4]
    search.report(6, 1, 0.6)
    assert search.snapshot().running[1].epoch == 1 and search.snapshot().running[1].value == 0.6
    running = study.get_trials()[6]
    study.tell(running.number, 0.99)
    assert [t.number for t in search.read(study)] == [6]
    snapshot = search.snapshot()
    assert snapshot.best_trial == 6 and [r.number for r in snapshot.running] == [5]


# A trial takes 25 s (the mean of 10, 20, 30, 40); trial 5 (10 s in) has 15 s left, trial 6 (30 s in) is
# due now; 6 more trials to finish, 4 of them not started. The two running trials hold two workers even
# where this launch has one (the other runs elsewhere): new trials start at 0, 15, 25, 40 and end 25 s
# later, the last at 65 s. Three workers: one starts at once, so 0, 0, 15, 25 -> 50 s; four: 0, 0, 0, 15 -> 40 s.
@pytest.mark.parametrize("workers, eta", [(1, 65.0), (2, 65.0), (3, 50.0), (4, 40.0)])
def test_the_eta_gives_trials_to_the_first_free_worker_after_the_running_ones(tmp_path, workers, eta):
    s = take_snapshot(_timed(_study_in_every_state(tmp_path)), maximize=True, n_trials=10, spec_epochs=8,
                      workers=workers, now=T0)
    assert s.eta() == pytest.approx(eta)


# The same study with one worker and --timeout: no trial starts once it is reached. With 20 s left, the
# trials starting at 0 and 15 s run (ending at 25 and 40 s), the one due at 25 s never starts: 40 s. With
# none left, only the running trials end (the later at 15 s); with 100 s left, the timeout changes nothing.
@pytest.mark.parametrize("time_left, eta", [(20.0, 40.0), (0.0, 15.0), (-5.0, 15.0), (100.0, 65.0)])
def test_the_eta_under_a_timeout_ends_with_the_last_trial_started_before_it(tmp_path, time_left, eta):
    s = take_snapshot(_timed(_study_in_every_state(tmp_path)), maximize=True, n_trials=10, spec_epochs=8,
                      workers=1, now=T0, time_left=time_left)
    assert s.eta() == pytest.approx(eta)


def test_a_search_counts_its_timeout_down_from_its_start():
    clock = iter([100.0, 130.0])  # the start, then one snapshot 30 s later
    search = Search(n_trials=5, spec_epochs=4, clock=lambda: next(clock), timeout=120.0)
    assert search.snapshot().time_left == pytest.approx(90.0)
    assert Search(n_trials=5, spec_epochs=4).snapshot().time_left is None


def test_the_eta_before_any_trial_finished_comes_from_the_running_trials_pace():
    running = (RunningTrial(0, 2, 4, 0.8, 10.0),)  # 5 s per epoch, a 4-epoch budget: 20 s a trial
    assert Snapshot(n_trials=3, running=running).eta() == pytest.approx(50.0)  # 10 s left, then 2 x 20 s
    assert Snapshot(n_trials=3, running=(RunningTrial(0, None, 4, None, 10.0),)).eta() is None
    assert Snapshot(n_trials=None, durations=(5.0,)).eta() is None
    assert Snapshot(n_trials=2, complete=2, durations=(5.0, 5.0)).eta() == 0.0


def test_epochs_and_durations_read_as_people_write_them():
    assert [live.epoch_text(e) for e in (None, 3, 3.0, 0.333, 1 / 9)] == ["-", "3", "3", "0.33", "0.11"]
    assert [live.duration_text(s) for s in (4.25, 65, 3599.4, 7325)] == ["4.2s", "1m05s", "59m59s", "2h02m"]


SNAPSHOT = Snapshot(n_trials=20, complete=3, pruned=1, failed=1, best_value=0.95, best_trial=1,
                    running=(RunningTrial(5, 2, 4, 0.8, 5.0, "ref"), RunningTrial(6, 0.333, 8, 0.4, 1.0)),
                    durations=(10.0, 20.0, 30.0, 40.0), workers=2)


def test_a_log_gets_a_status_line_every_tenth_of_the_budget_and_every_minute():
    clock = {"elapsed": 0.0, "done": 4}
    log = io.StringIO()
    view = LogView(log, "val_accuracy")

    def source():
        return Snapshot(**{**SNAPSHOT.__dict__, "elapsed": clock["elapsed"], "complete": clock["done"] - 1})

    view.start(source)
    clock["elapsed"] = 59.0
    clock["done"] = 5  # a tenth of 20 is 2 trials: 4 -> 5 crosses no line
    view.update()
    assert log.getvalue() == ""
    clock["elapsed"] = 70.0  # a minute since the start
    view.update()
    clock["elapsed"] = 80.0
    clock["done"] = 6  # 5 -> 6 crosses a tenth
    view.update()
    view.update()  # nothing new: no line
    view.close()  # the last line is current: no final line
    common = "(1 pruned, 1 failed), 2 running, best val_accuracy 0.9500 (trial 1)"
    assert log.getvalue().splitlines() == [
        f"status: 5/20 trials finished {common}, elapsed 1m10s, ETA 3m15s",
        f"status: 6/20 trials finished {common}, elapsed 1m20s, ETA 2m54s",
    ]
    assert "\x1b" not in log.getvalue() and "\r" not in log.getvalue()


def test_a_log_ends_with_a_status_line_when_its_last_one_is_stale():
    log = io.StringIO()
    view = LogView(log, "val_loss")
    state = {"snapshot": Snapshot(n_trials=100, complete=10, elapsed=1.0)}
    view.start(lambda: state["snapshot"])
    state["snapshot"] = Snapshot(n_trials=100, complete=11, best_value=0.25, best_trial=3, durations=(2.0,),
                                 elapsed=2.0)
    view.update()
    view.close()
    assert log.getvalue() == ("status: 11/100 trials finished (0 pruned, 0 failed), 0 running, best val_loss "
                              "0.2500 (trial 3), elapsed 2.0s, ETA 2m58s\n")


def test_the_terminal_view_shows_counts_time_best_trial_and_running_trials():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    console.print(render(Snapshot(**{**SNAPSHOT.__dict__, "elapsed": 70.0}), "digits-ann", "val_accuracy"))
    raw = out.getvalue()
    text = ANSI.sub("", raw)
    assert "\x1b[" in raw  # drawn for a terminal
    assert "digits-ann" in text and "4/20 trials finished (1 pruned, 1 failed), 2 running" in text
    assert "elapsed 1m10s, ETA 3m19s" in text and "best val_accuracy 0.9500 (trial 1)" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith("#")]
    assert rows == [["#5", "2/4", "0.8000", "5.0s", "[ref]"], ["#6", "0.33/8", "0.4000", "1.0s"]]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_worker_on_a_terminal_prints_each_finished_trial_above_its_live_area_and_restores_logging():
    study = optuna.create_study(direction="maximize")
    stream = _Terminal()
    progress = Progress("demo", "val_accuracy", 3, stream=stream, n_trials=2)
    handler = logging.StreamHandler(stream)  # where Optuna's own log handler writes: the same terminal
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(handler)
    try:
        with progress.showing(study):
            trial = study.ask()
            progress.trial_started(trial.number)
            trial.report(0.5, 1)
            progress.epoch(trial.number, 1, 0.5)
            assert progress.search.snapshot().running == (RunningTrial(0, 1, 3, 0.5, pytest.approx(0, abs=5)),)
            assert handler.stream is not stream  # meanwhile Optuna's lines go above the area too
            study.tell(trial, 0.75)
            progress.trial_finished(study, study.trials[0])
        assert handler.stream is stream
    finally:
        optuna_logger.removeHandler(handler)
    text = ANSI.sub("", stream.getvalue())
    assert re.search(r"trial +0 complete +epoch +1/3 val_accuracy=0\.7500 .* best 0\.7500 \(#0\)", text), text
    # The area's last drawing stays on the screen: the final state, below the trial's line.
    assert text.rindex("1/2 trials finished") > text.index("trial   0 complete")


def test_a_finished_baseline_shows_its_own_epoch_budget(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'b.db'}", direction="maximize")
    study.enqueue_trial({}, user_attrs=records.baseline_attrs("ref", epochs=12))
    trial = study.ask()
    records.write_timing(trial, epochs_run=12, train_seconds=3.0, compile_seconds=0.0, n_train=90)
    study.tell(trial, 0.9)
    line = live.trial_line(study.get_trials()[0], "val_accuracy", 20, 3.0, 0.9, 0, steps_per_epoch=1)
    assert "epoch  12/12 " in line and "[ref]" in line  # not 12/20: it ran its whole budget


def test_a_trial_that_outlived_the_mean_is_given_its_own_pace():
    # Pruned trials of 10 s make the mean; trial 7 got through the rungs: 300 s for 30 of 40 epochs.
    through = RunningTrial(7, 30, 40, 0.91, 300.0)
    assert Snapshot(n_trials=6, pruned=5, durations=(10.0,) * 5, running=(through,)).eta() == pytest.approx(100.0)
    finished_its_budget = RunningTrial(7, 40, 40, 0.91, 400.0)  # its last validation is being written
    assert Snapshot(n_trials=6, pruned=5, durations=(10.0,) * 5, running=(finished_its_budget,)).eta() == 0.0
    young = RunningTrial(7, 0.5, 40, 0.6, 4.0)  # within the mean: the mean's rest, 6 s
    assert Snapshot(n_trials=6, pruned=5, durations=(10.0,) * 5, running=(young,)).eta() == pytest.approx(6.0)


def test_an_interrupted_trial_is_counted_apart_from_the_failed_and_shown_as_re_queued(tmp_path):
    """A trial a signal stopped (FAIL with the `interrupted` mark, its retry waiting) is no failure."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    study.tell(study.ask(), 0.9)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # a real failure
    stopped = study.ask()
    stopped.report(0.7, 1)
    records.write_interrupted(stopped, "SIGINT", "interrupted by SIGINT after epoch 1 of 3")
    study.tell(stopped, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({})
    s = take_snapshot(study.get_trials(), maximize=True, n_trials=5, spec_epochs=3)
    assert (s.complete, s.failed, s.interrupted) == (1, 1, 1)
    assert "(0 pruned, 1 failed, 1 interrupted and re-queued)" in live.status_line(s, "val_accuracy")
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=120).print(render(s, "digits-ann", "val_accuracy"))
    assert "(0 pruned, 1 failed, 1 interrupted), 0 running" in ANSI.sub("", out.getvalue())
    line = live.trial_line(study.get_trials()[2], "val_accuracy", 3, 4.0, 0.9, 0)
    assert line.startswith("trial   2 interrupted epoch") and "re-queued" in line, line
    from anncnn_tune.search.study import counts

    assert {k: v for k, v in counts(study).items() if v} == {"complete": 1, "fail": 1, "interrupted": 1, "waiting": 1}
