"""The service on the real PostgreSQL of this machine: several workers share one study's budget
exactly, and a worker killed with SIGKILL mid-trial has its trial failed and retried elsewhere,
resuming from the checkpoint of its last finished epoch.

Each test creates and drops its own database (the pg_url fixture, conftest.py).
"""

from __future__ import annotations

import os
import signal

import optuna
import pytest
from helpers import finished, no_errors, start_cli, stop_all, study_file, wait_for

from anncnn_tune.service import storage as storage_mod


@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_two_workers_share_the_budget_exactly(pg_url, tmp_path):
    path = study_file(tmp_path, epochs=8)  # trials long enough that both workers get one
    log = tmp_path / "workers.log"
    process = start_cli("optimize", "--study", path, "--n-trials", 4, "--workers", 2, "--storage", pg_url,
                        "--artifacts", tmp_path / "artifacts", cwd=tmp_path, log=log)
    try:
        assert process.wait(timeout=130) == 0, log.read_text()
    finally:
        stop_all([process])
    output = log.read_text()
    assert no_errors(output), output
    study = optuna.load_study(study_name="quick-cnn", storage=storage_mod.open_storage(pg_url))
    states = [t.state.name for t in study.trials]
    assert len(finished(study)) == 4 and states.count("FAIL") == 0 and len(states) == 4, states
    # Both workers trained: their trials carry two different host:pid marks.
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    assert "[worker 1]" in output and "[worker 2]" in output and "postgresql+psycopg://postgres@" in output


EPOCHS = 12


@pytest.mark.postgres
@pytest.mark.timeout(170)
def test_a_killed_workers_trial_is_retried_and_resumes_from_its_checkpoint(pg_url, tmp_path):
    path = study_file(tmp_path, epochs=EPOCHS)  # a few seconds per trial: time to kill one in the middle
    artifacts = tmp_path / "artifacts"
    common = ("optimize", "--study", path, "--n-trials", 3, "--storage", pg_url, "--artifacts", artifacts,
              "--heartbeat-interval", 1)
    victim = start_cli(*common, cwd=tmp_path, log=tmp_path / "victim.log")
    survivor = None
    try:
        # Wait until the victim's trial has saved a checkpoint (a finished epoch), then SIGKILL it.
        storage = storage_mod.open_storage(pg_url)  # one engine for the polling, disposed by pg_url

        def victims_trial():
            try:
                study = optuna.load_study(study_name="quick-cnn", storage=storage)
            except KeyError:  # not created yet
                return None
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                mine = trial.user_attrs.get("worker", "").endswith(f":{victim.pid}")
                if mine and trial.intermediate_values and list(artifacts.glob(f"checkpoints/*/trial-{trial.number}.pt")):
                    return trial
            return None

        def wait_victim():
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            return victims_trial()

        killed = wait_for(wait_victim, 100, "the first worker's trial to save a checkpoint")
        survivor = start_cli(*common, cwd=tmp_path, log=tmp_path / "survivor.log")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        assert survivor.wait(timeout=130) == 0, (tmp_path / "survivor.log").read_text()
    finally:
        stop_all([p for p in (victim, survivor) if p is not None])
    output = (tmp_path / "survivor.log").read_text()
    assert no_errors(output), output

    study = optuna.load_study(study_name="quick-cnn", storage=storage_mod.open_storage(pg_url))
    trials = study.trials
    assert len(finished(study)) == 3
    dead = trials[killed.number]
    assert dead.state == optuna.trial.TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["worker"].endswith(f":{survivor.pid}")
    assert retry.user_attrs["resumed_from_trial"] == killed.number
    assert 1 <= retry.user_attrs["resumed_from_epoch"] < EPOCHS
    assert retry.user_attrs["epochs_run"] == EPOCHS
    assert sorted(retry.intermediate_values) == list(range(1, EPOCHS + 1))  # inherited, then its own
    assert retry.user_attrs["seed"] == dead.user_attrs["seed"]  # a retry repeats its original
    assert f"resumes trial {killed.number} from its checkpoint" in output
    # Checkpoints of ended trials are removed, and no temporary file was left half-written.
    assert not [p for p in artifacts.rglob("checkpoints/**/*") if p.is_file()]
