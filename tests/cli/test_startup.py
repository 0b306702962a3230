"""`--help` loads no heavy library (issue 24, part 8): the commands import torch, Optuna, scikit-learn
and pandas inside their bodies (through anncnn_tune.api), so asking for help costs milliseconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO

HEAVY = ("torch", "optuna", "sklearn", "pandas", "sqlalchemy", "scipy", "matplotlib")
COMMANDS = ([], ["optimize"], ["dashboard"], ["studies"], ["compare"], ["export"], ["retrain"], ["reference"],
            ["datasets"], ["datasets", "fetch"], ["init"], ["delete"])

# Each --help runs in the same fresh interpreter (help exits through click's SystemExit(0)); what it
# loaded is read from sys.modules afterwards.
PROBE = """
import json, sys
from anncnn_tune.cli import main
loaded = {}
for args in json.loads(sys.argv[1]):
    try:
        main([*args, "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
    loaded[" ".join(args) or "(group)"] = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps(loaded))
"""


def test_help_of_every_command_loads_no_heavy_library():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(COMMANDS), json.dumps(HEAVY)],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {" ".join(c) or "(group)": [] for c in COMMANDS}


def test_optimize_help_imports_no_heavy_library_by_importtime():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "anncnn_tune.cli", "optimize", "--help"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "--n-trials" in result.stdout and "--storage" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
