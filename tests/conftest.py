"""Fixtures shared by the test files; plain helpers are in helpers.py."""

from __future__ import annotations

import os
import sys
import uuid

# One torch intra-op thread per test process, set before anything imports torch; the subprocesses the
# tests start (CLI runs, workers, the notebook's kernel) inherit it, as start_cli's already did. Two
# threads on this 2-core machine shared with other work make each training step wait for a
# descheduled thread (benchmarks/RESULTS.md, "Threads"): the digits demo search the results tests
# share (digits-cnn, 6 trials of 4 epochs) took 11-16 s with one thread and 140-167 s with two,
# alternated at a load of 2-3. Tests of the default thread count set it themselves (test_fit.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from helpers import ADMIN, SERVER, run_cli

from anncnn_tune.service import storage as storage_mod


def pytest_configure(config):
    if "torch" in sys.modules:  # imported before this file (by a plugin): the variable came too late for it
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def cli():
    return run_cli


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
