
"""The architecture as checked rules: the import layers (import-linter) and one home for stored attributes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "anncnn_tune"


def test_the_import_contracts_hold():
    # pyproject.toml's [tool.importlinter]: cli -> results -> search -> service -> training -> data.
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_only_the_record_module_touches_optuna_attributes():
    # Every study/trial attribute goes through service/records.py (its typed readers and writers),
    # so a new stored fact is added in one place and old studies keep reading. Optuna's own
    # bookkeeping there (a retry chain's system attributes) is read in service/optuna_private.py,
    # which also wraps the storage's study system attributes that records.py keeps a study's record in.
    pattern = re.compile(r"\b(user_attrs|set_user_attr|system_attrs|set_system_attr"
                         r"|(get|set)_(study|trial)_(user|system)_attrs?)\b")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in PACKAGE.rglob("*.py") if path.name not in ("records.py", "optuna_private.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line) and "records." not in line]
    assert offenders == []
