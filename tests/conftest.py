"""Fixtures shared by the test files; plain helpers are in helpers.py."""

from __future__ import annotations

import os
import uuid

import pytest
from helpers import ADMIN, SERVER, run_cli

from anncnn_tune.service import storage as storage_mod


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
