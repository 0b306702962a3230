"""`optimize --workers N`: N spawned workers on one study, on the default SQLite storage too, and
a clean stop on SIGTERM (running trials failed with their reason, exit 130, nothing half-written)."""

from __future__ import annotations

import collections
import os
import re
import signal
import sqlite3

import optuna
import pytest
from helpers import finished, run_cli, start_cli, stop_all, study_file, wait_for

from anncnn_tune.search.launcher import OptimizeRequest, for_worker


def test_workers_share_the_cores_and_take_devices_round_robin():
    request = OptimizeRequest(study="digits-ann", storage_url="sqlite://", n_trials=3, workers=4,
                              devices=("cuda:0", "cuda:1"))
    assigned = [for_worker(request, i) for i in range(4)]
    assert [r.device for r in assigned] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    # Each worker gets one device and a quarter of the cores (the assignment holds nothing else).
    assert {r.share for r in assigned} == {4} and all(isinstance(r.device, str) for r in assigned)
    assert [r.label for r in assigned] == [f"[worker {i}] " for i in (1, 2, 3, 4)]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [2, 1])  # one worker uses only the first device: the others are checked too
def test_a_missing_device_is_refused_before_any_worker_starts(tmp_path, workers):
    result = run_cli("optimize", "--study", "digits-ann", "--workers", workers, "--devices", "cpu,cuda:7",
                     cwd=tmp_path, timeout=80)
    assert result.returncode == 2 and "--devices cuda:7" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


@pytest.mark.timeout(170)
def test_four_local_workers_on_the_default_sqlite_storage_have_no_lock_errors(tmp_path):
    log = tmp_path / "workers.log"
    process = start_cli("optimize", "--study", "digits-ann", "--n-trials", 8, "--epochs", 2, "--workers", 4,
                        cwd=tmp_path, log=log)
    try:
        code = process.wait(timeout=160)
    finally:
        stop_all([process])
    output = log.read_text()
    assert code == 0, output
    assert "database is locked" not in output and "Traceback" not in output and "error" not in output, output
    # In a log: each worker's trial lines, and the launcher's status lines for the whole study.
    lines = output.splitlines()
    assert "\x1b" not in output and "\r" not in output
    trials = [line for line in lines if re.match(r"\[worker [1-4]\] trial +\d (complete|pruned) ", line)]
    status = [line for line in lines if line.startswith("status: ")]
    assert len(trials) == 8 and status, output
    assert not [line for line in lines if line.startswith("[worker") and "status:" in line]
    assert re.fullmatch(r"status: 8/8 trials finished \(\d pruned, 0 failed\), 0 running, best val_accuracy "
                        r"0\.\d{4} \(trial \d\), elapsed \S+, ETA 0\.0s", status[-1]), status
    assert re.search(r"^this launch: 8 trial\(s\) finished, wall time (\d+\.\ds|\d+m\d\ds)$", output, re.MULTILINE)
    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{tmp_path / 'anncnn-tune.db'}")
    states = collections.Counter(t.state.name for t in study.trials)
    assert len(finished(study)) == 8 and states["FAIL"] == 0 and sum(states.values()) == 8, states
    assert len({t.user_attrs["worker"] for t in study.trials}) >= 2  # they did run side by side
    with sqlite3.connect(tmp_path / "anncnn-tune.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.timeout(150)
def test_sigterm_fails_the_running_trials_with_their_reason_requeues_them_and_exits_130(tmp_path):
    path = study_file(tmp_path, epochs=100)  # long trials: the signal lands mid-trial
    log = tmp_path / "workers.log"
    db = tmp_path / "anncnn-tune.db"
    process = start_cli("optimize", "--study", path, "--n-trials", 4, "--workers", 2, "--heartbeat-interval", 2,
                        cwd=tmp_path, log=log)
    try:
        def both_running():
            if not db.exists():
                return False
            with sqlite3.connect(db, timeout=10) as con:
                try:
                    rows = con.execute("SELECT count(*) FROM trial_intermediate_values").fetchone()[0]
                    running = con.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]
                except sqlite3.OperationalError:  # tables not created yet
                    return False
            return running == 2 and rows >= 1

        wait_for(both_running, 120, "two running trials with a finished epoch")
        os.kill(process.pid, signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        stop_all([process])
    output = log.read_text()
    assert code == 130, output
    assert "Traceback" not in output and "interrupted: the running trial" in output, output
    study = optuna.load_study(study_name="quick-cnn", storage=f"sqlite:///{db}")
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 2 and not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all(t.user_attrs["fail_reason"].startswith("interrupted by SIGTERM after epoch ") for t in failed)
    # Issue 12: each interrupted trial is re-queued with its params and its checkpoint chain, so the
    # next run resumes it; the checkpoints stay for that, and no temporary file was left behind.
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(t.number for t in failed)
    assert all(t.params == study.trials[t.system_attrs["failed_trial"]].params for t in waiting)
    files = [p for p in (tmp_path / "anncnn-tune-artifacts").rglob("*") if p.is_file()]
    assert not [p.name for p in files if p.suffix == ".tmp" or p.name.startswith(".")]
    checkpoints = {p.name for p in files if p.suffix == ".pt"}
    trained = [t for t in failed if not t.user_attrs["fail_reason"].startswith("interrupted by SIGTERM after epoch 0 ")]
    assert {f"trial-{t.number}.pt" for t in trained} <= checkpoints, checkpoints
