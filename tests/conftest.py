"""Fixtures shared by the test files: running the CLI (in-process or as a real subprocess), and a
snapshot of a storage."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    """The parts of subprocess.CompletedProcess the tests read."""

    args: list
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, cwd=None, env=None, timeout=300, subprocess_=False):
    """Run `anncnn-tune ARGS` and return its exit code and output.

    In-process by default: the same `main()` the console script calls, with the working directory,
    the environment and the signal handlers set for the call and restored after. That saves the
    2-3 s a fresh interpreter spends importing torch and optuna. `subprocess_=True` runs the real
    console entry point in its own process, for what only a process shows (signals, exit codes set
    by the interpreter, --timeout of a hung command).
    """
    if subprocess_:
        return _run_subprocess(args, cwd, env, timeout)
    from anncnn_tune.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    os.environ.pop("ANNCNN_TUNE_STORAGE", None)  # the default, unless given
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    code = 0
    try:
        os.chdir(cwd or saved_cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # noqa: BLE001 - what the interpreter prints for an uncaught exception
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
    return CliResult(["anncnn-tune", *map(str, args)], code, out.getvalue(), err.getvalue())


def _run_subprocess(args, cwd, env, timeout) -> subprocess.CompletedProcess:
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
