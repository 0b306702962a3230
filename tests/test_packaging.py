
"""The package as pip installs it: every subpackage and the built-in study files are in the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
from helpers import REPO


def test_every_subpackage_is_listed_in_pyproject():
    # pyproject lists the packages (see its comment): a new subpackage left out would be missing
    # from the wheel while every test of the source tree passed.
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    root = REPO / "anncnn_tune"  # nested packages too (anncnn_tune.data.sources)
    on_disk = {"anncnn_tune"} | {".".join(("anncnn_tune", *p.parent.relative_to(root).parts))
                                 for p in root.rglob("*/__init__.py")}
    assert listed == on_disk | {"anncnn_tune.studies"}


@pytest.mark.slow
def test_the_wheel_ships_the_top_level_study_files_inside_the_package(tmp_path):
    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info/ beside the sources
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(source)], check=False, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("anncnn_tune-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    studies = {f"anncnn_tune/studies/{p.name}" for p in (REPO / "studies").glob("*.yaml")}
    assert studies and studies <= names
    assert {"anncnn_tune/search/spec.py", "anncnn_tune/cli/__main__.py", "anncnn_tune/data/source.py"} <= names
