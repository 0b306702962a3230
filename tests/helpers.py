"""What test files share: running the CLI (in-process, as a subprocess, as a background process),
storage snapshots, the real datasets' folder, and the small studies several tests build.

Fixtures live in conftest.py; test files import these with `from helpers import ...`.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# The real datasets (the layout of ../shared/datasets); tests that need one skip where it is absent.
SHARED_DATASETS = Path(os.environ.get("ANNCNN_TUNE_SHARED_DATASETS") or REPO.parent / "shared" / "datasets")


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



def main_in_process(capsys, *args) -> tuple[int, str, str]:
    """`anncnn-tune ARGS` through main() in this process, output read from capsys: (code, out, err)."""
    from anncnn_tune.cli.main import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def url(path: Path) -> str:
    return f"sqlite:///{path}"


# -- the digits ANN-vs-CNN storage the results tests share ------------------------------------------

DEMO_TRIALS = ("--n-trials", "6", "--epochs", "4", "--quiet")


def build_digits_demo(tmp_path_factory) -> Path:
    """digits-cnn and digits-ann (6 trials of 4 epochs) via the real `anncnn-tune optimize`.

    Built once per pytest session and shared with test_export_retrain.py (which copies it before
    writing to it): the two real searches are most of the test time on two cores.
    """
    root = tmp_path_factory.getbasetemp() / "digits-demo"
    root.mkdir(exist_ok=True)
    if not (root / "done").exists():
        for study in ("digits-cnn", "digits-ann"):
            # A real process: its exit closes the SQLite connections, so the WAL is folded into the
            # .db file that tests copy with shutil.
            result = run_cli("optimize", "--study", study, *DEMO_TRIALS, cwd=root, timeout=900, subprocess_=True)
            assert result.returncode == 0, result.stderr
        (root / "done").write_text("")
    return root / "anncnn-tune.db"



# -- processes and small studies for the service and fault tests ---------------------------------------

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
    # A suite started as a background job (`make test &`, a non-interactive shell's `cmd &`) runs
    # with SIGINT ignored, and an ignored signal stays ignored through exec: the CLI would then leave
    # Ctrl-C alone, as it does in the workers it spawns, and the tests that send SIGINT would wait in
    # vain. Start it as from a terminal, where SIGINT is not ignored.
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, "-m", "anncnn_tune.cli", *map(str, args)], cwd=cwd, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_all(processes) -> None:
    """Kill whatever is still running, with its whole process group (workers of --workers N)."""
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)


def exit_code(process: subprocess.Popen, log: Path, timeout: float, after: str) -> int:
    """The process's exit code within `timeout` s; else the test fails with what it printed (its folder
    goes with a later run, so the log is the only record of where it hung)."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit {timeout:.0f} s after {after}; its output:\n{log.read_text()}")


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


