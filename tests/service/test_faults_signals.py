"""Issue 12: a signal stops a worker at its next safe point, and the trial it interrupted is failed
with its reason AND re-queued, so the next run resumes it (baselines included)."""

from __future__ import annotations

import random
import signal
import time

import optuna
import pytest
from helpers import exit_code, start_cli, stop_all, wait_for

from anncnn_tune.search.study import run_worker
from anncnn_tune.service import signals
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_the_first_signal_only_asks_and_a_second_one_raises():
    signals.clear()
    try:
        signals.request_stop(signal.SIGTERM, None)  # no exception: the worker decides where to stop
        assert signals.stop_requested() == "SIGTERM"
        with pytest.raises(signals.StopRequested, match="SIGTERM"):
            signals.check_stop()
        with pytest.raises(KeyboardInterrupt):
            signals.request_stop(signal.SIGINT, None)
    finally:
        signals.clear()
    signals.check_stop()  # cleared: nothing to stop


class _StoppingObjective:
    """Stands in for the real objective: a signal arrives during the trial, which stops at a safe point."""

    on_start = None

    def __call__(self, trial):
        trial.suggest_float("x", 0.0, 1.0)
        trial.report(0.5, 1)
        signals.request_stop(signal.SIGTERM, None)
        try:
            signals.check_stop()
        except signals.StopRequested as exc:
            trial.set_user_attr("fail_reason", "interrupted by SIGTERM after epoch 1 of 3")
            exc.trial_number = trial.number
            raise


def test_an_interrupted_trial_is_failed_then_requeued_with_its_params_and_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = open_storage(url, heartbeat_interval=30, retry_stale=True)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"x": 0.25}, user_attrs={"baseline": "quarter"})
    result = run_worker(study, _StoppingObjective(), StudyLock(storage, url, "s"), n_trials=2, poll_seconds=0.1)
    assert result.interrupted and result.ran == 0 and signals.stop_requested() is None
    failed, retry = study.get_trials()
    assert failed.state.name == "FAIL" and failed.user_attrs["fail_reason"].startswith("interrupted by SIGTERM")
    assert retry.state.name == "WAITING" and retry.params == {"x": 0.25} == failed.params
    # The retry is the same baseline, resumes the same checkpoint chain and keeps the curve so far.
    assert retry.user_attrs == {"baseline": "quarter"}
    assert retry.system_attrs["failed_trial"] == 0 and retry.intermediate_values == {1: 0.5}

    def finish(trial):
        return trial.suggest_float("x", 0.0, 1.0)

    class Finish:
        on_start = None
        __call__ = staticmethod(finish)

    again = run_worker(study, Finish(), StudyLock(storage, url, "s"), n_trials=2, poll_seconds=0.1)
    trials = study.get_trials()
    assert not again.interrupted and [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params == {"x": 0.25} and trials[1].user_attrs["baseline"] == "quarter"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigterm_and_sigint_at_random_moments_exit_130_and_leave_a_resumable_study(tmp_path):
    """A handful of runs, each stopped by SIGTERM or SIGINT at a random moment of its trials; every
    one exits 130 without a traceback, and one more run finishes every trial, the baseline too."""
    rng = random.Random(12)
    db = tmp_path / "anncnn-tune.db"
    command = ("optimize", "--study", "digits-ann", "--epochs", 3, "--subset", 200, "--heartbeat-interval", 2)
    for index, signum in enumerate([signal.SIGTERM, signal.SIGINT, signal.SIGTERM]):
        log = tmp_path / f"run-{index}.log"
        process = start_cli(*command, "--n-trials", 200, cwd=tmp_path, log=log)  # never done before the signal
        try:
            wait_for(lambda log=log: "trials finished; training on" in log.read_text(), 90, "the worker's first line")
            time.sleep(rng.uniform(0.0, 1.5))
            process.send_signal(signum)
            code = exit_code(process, log, 60, signum.name)
        finally:
            stop_all([process])
        output = log.read_text()
        assert code == 130, output
        assert "Traceback" not in output, output
        study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{db}")
        states = [t.state.name for t in study.get_trials()]
        assert "RUNNING" not in states, states  # each interrupted trial is FAIL with a WAITING retry
        interrupted = [t for t in study.get_trials() if t.state.name == "FAIL"]
        assert all(t.user_attrs["fail_reason"].startswith("interrupted by SIG") for t in interrupted)
    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{db}")
    waiting = sum(t.state.name == "WAITING" for t in study.get_trials())
    done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials())
    final = start_cli(*command, "--n-trials", done + waiting, cwd=tmp_path, log=tmp_path / "final.log")
    try:
        assert final.wait(timeout=120) == 0, (tmp_path / "final.log").read_text()
    finally:
        stop_all([final])
    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert not [t for t in trials if t.state.name in ("WAITING", "RUNNING")]
    assert [t for t in trials if t.user_attrs.get("baseline") and t.state.name == "COMPLETE"], "baseline lost"
    # Every interrupted trial's chain ended in a finished trial with the same params.
    for failed in (t for t in trials if t.state.name == "FAIL"):
        original = failed.system_attrs.get("failed_trial", failed.number)
        chain = [t for t in trials if t.system_attrs.get("failed_trial") == original]
        assert any(t.state.name in ("COMPLETE", "PRUNED") and t.params == failed.params for t in chain) \
            or not failed.params, (failed.number, [(t.number, t.state.name) for t in chain])
