"""Issue 12: a SQLite file deleted under a running study stops the run with exit 1 and one line
(it used to print "40 complete" and exit 0 with every trial gone)."""

from __future__ import annotations

import os

import optuna
import pytest
import sqlalchemy
from helpers import exit_code, start_cli, stop_all, wait_for

from anncnn_tune.search.study import run_worker
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.storage import StorageLost, open_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _delete_then_return(db):
    os.remove(db)
    return 1.0


def _delete_then_fail_the_commit(db):
    os.remove(db)
    raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))


@pytest.mark.parametrize("objective", [_delete_then_return, _delete_then_fail_the_commit],
                         ids=["deleted-between-trials", "deleted-mid-commit"])
def test_run_worker_stops_when_its_sqlite_file_is_deleted(tmp_path, capsys, objective):
    """Either way it is StorageLost at once: not an outage to retry for minutes."""
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    storage = open_storage(url, heartbeat_interval=30, retry_stale=True)
    study = optuna.create_study(study_name="s", storage=storage)

    class DeletesTheFile:
        on_start = None

        def __call__(self, trial):
            return objective(db)

    with pytest.raises(StorageLost, match="deleted or replaced") as caught:
        run_worker(study, DeletesTheFile(), StudyLock(storage, url, "s"), n_trials=5, poll_seconds=0.1)
    assert caught.value.exit_code == 1 and str(db) in str(caught.value)
    assert "storage unreachable" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_deleting_the_database_mid_run_exits_1_with_one_line(tmp_path):
    db = tmp_path / "anncnn-tune.db"
    log = tmp_path / "run.log"
    process = start_cli("optimize", "--study", "digits-ann", "--epochs", 2, "--subset", 100, "--n-trials", 200,
                        cwd=tmp_path, log=log)
    try:
        wait_for(lambda: "trials finished; training on" in log.read_text(), 90, "the worker's first line")
        db.unlink()
        code = exit_code(process, log, 60, "its database was deleted")
    finally:
        stop_all([process])
    output = log.read_text()
    assert code == 1, output
    assert "Traceback" not in output and output.count("error: the study storage") == 1, output
