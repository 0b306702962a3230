"""Issue 12: a checkpoint is removed only once its trial's final state is committed (a SIGKILL between
the last epoch and the commit used to retrain the whole trial), and a storage error in the objective
no longer deletes the checkpoint of a trial that is retried later."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy.exc
from conftest import run_cli

from anncnn_tune.search import objective as objective_module
from anncnn_tune.service.checkpoints import TrialCheckpoint

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
COMMAND = ("optimize", "--study", "digits-ann", "--epochs", 2, "--subset", 100)


def test_a_checkpoint_goes_only_after_its_trial_is_stored(tmp_path, monkeypatch):
    seen = []
    discard = TrialCheckpoint.discard

    def recording_discard(self):
        with sqlite3.connect(tmp_path / "anncnn-tune.db") as con:
            seen.append(con.execute("SELECT state FROM trials WHERE number = ?", (self.original,)).fetchone()[0])
        discard(self)

    monkeypatch.setattr(TrialCheckpoint, "discard", recording_discard)
    result = run_cli(*COMMAND, "--n-trials", 2, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(seen) == 2 and set(seen) <= {"COMPLETE", "PRUNED"}, seen  # before: RUNNING, still uncommitted
    assert not list((tmp_path / "anncnn-tune-artifacts").rglob("*.pt"))


def test_a_storage_error_in_the_objective_keeps_the_checkpoint(tmp_path, monkeypatch):
    on_value = objective_module.TrialObserver.on_value

    def outage_at_epoch_2(self, epoch, value):  # the report after epoch 2 meets a restarting server
        if epoch >= 2:
            raise sqlalchemy.exc.OperationalError("INSERT INTO trial_intermediate_values", {},
                                                  Exception("server closed the connection unexpectedly"))
        on_value(self, epoch, value)

    monkeypatch.setattr(objective_module.TrialObserver, "on_value", outage_at_epoch_2)
    run_cli("optimize", "--study", "digits-ann", "--epochs", 3, "--subset", 100, "--n-trials", 1, cwd=tmp_path)
    assert [p.name for p in (tmp_path / "anncnn-tune-artifacts").rglob("*.pt")] == ["trial-0.pt"]
