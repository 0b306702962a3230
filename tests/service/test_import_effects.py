"""Importing the package changes nothing in the process: no warning filter, no umask (issue 10, part 6)."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import REPO

from anncnn_tune import atomic

# Third-party imports add filters of their own (scipy, torch); ours must add none, above all not
# the one that hides Optuna's ExperimentalWarning (storage.quiet_experimental_warnings applies it).
PROBE = """
import os, warnings
os.umask(0o027)
import anncnn_tune.atomic, anncnn_tune.service.storage, anncnn_tune.service.artifacts
import anncnn_tune.search.launcher, anncnn_tune.results.leaderboard, anncnn_tune.results.render
import optuna
assert not [f for f in warnings.filters if f[2] is optuna.exceptions.ExperimentalWarning], "filter at import"
anncnn_tune.service.storage.quiet_experimental_warnings()
assert [f for f in warnings.filters if f[2] is optuna.exceptions.ExperimentalWarning]
assert os.umask(0o027) == 0o027, "the umask changed at import"
assert anncnn_tune.atomic.file_mode() == 0o640, oct(anncnn_tune.atomic.file_mode())
print("ok")
"""


def test_importing_the_package_leaves_warning_filters_and_umask_alone():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_atomic_writes_get_the_mode_an_ordinary_open_gives(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    atomic.write_atomically(tmp_path / "atomic", lambda f: f.write(b"x"))
    assert (tmp_path / "atomic").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == atomic.file_mode()
