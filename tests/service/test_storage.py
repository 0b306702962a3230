"""Storage hygiene: one engine per process, passwords never printed, an unreachable server is one
line and exit code 2 within seconds, SQLite in WAL mode."""

from __future__ import annotations

import sqlite3
import time

import optuna
import pytest
from helpers import run_cli

from anncnn_tune.service import storage as storage_mod

SECRET = "s3cret-Pa55word"


def test_mask_hides_the_password():
    url = f"postgresql+psycopg://alice:{SECRET}@db.example:5432/studies"
    assert storage_mod.mask(url) == "postgresql+psycopg://alice:***@db.example:5432/studies"
    assert SECRET not in storage_mod.scrub(f"could not connect to {url}: password {SECRET} rejected", url)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # heartbeats are, on purpose
def test_the_same_url_gives_the_same_storage_and_close_all_disposes_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    first = storage_mod.open_storage(url)
    try:
        assert storage_mod.open_storage(url) is first
        beating = storage_mod.open_storage(url, heartbeat_interval=5, retry_stale=True)
        assert beating is not first and beating.heartbeat_interval == 5
    finally:
        storage_mod.close_all()
    assert storage_mod.open_storage(url) is not first
    storage_mod.close_all()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    storage = storage_mod.open_storage(url)
    try:
        optuna.create_study(study_name="s", storage=storage)
        with sqlite3.connect(tmp_path / "wal.db") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert storage.engine.url.get_backend_name() == "sqlite"
    finally:
        storage_mod.close_all()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", [
    ("optimize", "--study", "digits-ann", "--n-trials", "1"),
    ("dashboard", "--port", "0"),
])
def test_an_unreachable_server_is_one_line_and_exit_2_within_seconds(tmp_path, command):
    url = f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x"
    started = time.monotonic()
    result = run_cli(*command, "--storage", url, cwd=tmp_path, timeout=100)
    seconds = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open storage postgresql+psycopg://u:***@"), lines
    assert SECRET not in result.stdout + result.stderr
    # Interpreter and torch start-up included; the storage is checked before any data is loaded.
    assert seconds < 30, seconds
    assert list(tmp_path.iterdir()) == []  # nothing created on the way out


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_a_password_in_the_url_is_never_printed(pg_url, tmp_path):
    # The local server trusts its users, so any password works, and every output must hide it.
    url = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    ran = run_cli("optimize", "--study", "digits-ann", "--n-trials", "1", "--epochs", "1", "--storage", url,
                  cwd=tmp_path, timeout=100, env={"OMP_NUM_THREADS": "1"})
    assert ran.returncode == 0, ran.stderr
    listed = run_cli("studies", "--json", "--storage", url, cwd=tmp_path, timeout=60)
    assert listed.returncode == 0 and "digits-ann" in listed.stdout
    for result in (ran, listed):
        output = result.stdout + result.stderr
        assert SECRET not in output and "postgres:***@" in output, output
