"""Fixtures shared by the test files: running the real CLI, and a snapshot of a storage."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess (as a user runs it)."""
    full_env = {k: v for k, v in os.environ.items() if k != "ANNCNN_TUNE_STORAGE"}  # the default, unless given
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "anncnn_tune.cli", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def sqlite_snapshot(path: Path) -> object:
    """Everything a study storage holds that a failed command must not change (None: no file)."""
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}"))) for t in tables if t != "alembic_version"}


@pytest.fixture
def cli():
    return run_cli
