"""Issue 12: a storage that stops answering is waited for with one line, not crashed on; after the
window the worker stops with one line (exit 2) and the trial it ran stays resumable."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy.exc

from anncnn_tune.search.study import run_worker
from anncnn_tune.service import outage
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.storage import open_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _down():
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))


class _Messages:
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)

    def trial_finished(self, study, trial):
        pass


def _study(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = open_storage(url, heartbeat_interval=30, retry_stale=True)
    return optuna.create_study(study_name="o", storage=storage), StudyLock(storage, url, "o")


def test_a_short_outage_is_waited_for_and_the_interrupted_trial_is_requeued(tmp_path, monkeypatch, caplog):
    study, lock = _study(tmp_path)
    failures = {"left": 1}

    class Objective:
        on_start = None
        current_trial = None

        def __call__(self, trial):
            self.current_trial = trial.number
            x = trial.suggest_float("x", 0, 1)
            if failures["left"]:
                failures["left"] -= 1
                raise _down()  # the report of an epoch meets a restarting server
            return x

    get_trials, calls = study.get_trials, {"n": 0}

    def flaky_get_trials(*args, **kwargs):  # the server stays down for the first two probes
        calls["n"] += 1
        if 2 <= calls["n"] <= 3:
            raise _down()
        return get_trials(*args, **kwargs)

    monkeypatch.setattr(study, "get_trials", flaky_get_trials)
    progress = _Messages()
    result = run_worker(study, Objective(), lock, n_trials=1, poll_seconds=0.1, progress=progress)
    trials = get_trials()
    assert not result.interrupted and [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].system_attrs["failed_trial"] == 0
    waiting = [line for line in progress.lines if line.startswith("storage unreachable")]
    assert len(waiting) == 1 and "retrying for up to" in waiting[0], progress.lines
    assert "Traceback" not in caplog.text and "connection refused" not in caplog.text  # one line, not Optuna's log


def test_a_long_outage_stops_the_worker_with_one_line(tmp_path, monkeypatch):
    study, lock = _study(tmp_path)
    monkeypatch.setattr(outage, "OUTAGE_SECONDS", 2)
    get_trials = study.get_trials
    running = study.ask()  # this worker's trial when the server went away

    class Objective:
        on_start = None
        current_trial = None

    objective = Objective()

    def down(*args, **kwargs):
        objective.current_trial = running.number
        raise _down()

    monkeypatch.setattr(study, "get_trials", down)
    with pytest.raises(outage.StorageUnreachable, match="unreachable for 2 s; the running trials stay resumable"):
        run_worker(study, objective, lock, n_trials=1, poll_seconds=0.1)
    assert [t.state.name for t in get_trials()] == ["RUNNING"]  # left for the stale check to retry
