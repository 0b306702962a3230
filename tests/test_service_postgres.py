"""The service on the real PostgreSQL of this machine: several workers share one study's budget
exactly, and a worker killed with SIGKILL mid-trial has its trial failed and retried elsewhere,
resuming from the checkpoint of its last finished epoch.

Each test creates and drops its own database. The helpers here (pg_url, start_cli, stop_all) are
imported by the other service tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml

from anncnn_tune.service import storage as storage_mod

ADMIN = os.environ.get("ANNCNN_TUNE_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=test")
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"

# A digits CNN that trains for a few seconds per trial on a CPU, with no pruning (a trial runs all
# its epochs, so there is always a middle to kill it in) and random sampling (no TPE start-up cost).
QUICK_CNN = {
    "dataset": "digits", "model": "cnn", "metric": "val_accuracy", "epochs": 5, "seed": 0,
    "sampler": {"type": "random"}, "pruner": {"type": "none"},
    "params": {"blocks": 2, "filters": {"type": "int", "low": 8, "high": 12}, "growth": 2.0, "convs": 1,
               "lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-3, "log": True},
               "optimizer": "adam", "batch_size": 64},
}


@pytest.fixture
def pg_url():
    """A fresh database on the local server, dropped afterwards (skips where there is no server)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN + " connect_timeout=3", autocommit=True)
    except psycopg.OperationalError as exc:
        message = (f"PostgreSQL is not reachable at '{ADMIN}' ({str(exc).strip().splitlines()[0]}); start it with "
                   "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
        if os.environ.get("ANNCNN_TUNE_REQUIRE_POSTGRES"):  # CI: a missing server must not pass as skipped
            pytest.fail(message)
        pytest.skip(message)
    name = f"anncnn_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        storage_mod.close_all()  # this process's pooled connections, or DROP would wait for them
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def study_file(tmp_path: Path, raw: dict = QUICK_CNN, name: str = "quick-cnn", **changes) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**raw, **changes}))
    return path


def start_cli(*args, cwd, env=None, log: Path | None = None) -> subprocess.Popen:
    """The real CLI as a separate process (its own session, so stop_all can end its children too)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANNCNN_TUNE_")}
    # Tests run several trainers at once on a small machine: one torch thread each, as
    # `--workers N` gives its workers, rather than N processes x all cores spinning on each other.
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.update(env or {})
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "anncnn_tune.cli", *map(str, args)], cwd=cwd, env=full_env,
                            stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                            start_new_session=True)


def stop_all(processes) -> None:
    """Kill whatever is still running, with its whole process group (workers of --workers N)."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def no_errors(text: str) -> bool:
    return "Traceback" not in text and "error:" not in text and "database is locked" not in text


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
