"""`optimize --study BUILTIN --dataset PATH`: a built-in study's space, baselines, budget and pruner on
the user's copy of its data, stored under a name that says so; a dataset of another kind is refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

from anncnn_tune.errors import UserError
from anncnn_tune.search.spec import load_spec
from anncnn_tune.service.records import TrialRecord

CLI = [sys.executable, "-m", "anncnn_tune.cli"]


@pytest.fixture
def colour_folder(tmp_path):
    """30 colour PNGs of 32x32 in 3 class folders (the shape of the CIFAR-10 JPEG copy)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "my-cifar"
    for c, name in enumerate(("cat", "dog", "ship")):
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
            pixels[..., c] += 180  # each class has its own dominant channel
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def run(*args, cwd):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False)


def test_the_study_is_the_builtin_one_on_the_users_data(colour_folder):
    builtin = load_spec("cifar10-cnn")
    spec = builtin.on_dataset(str(colour_folder))
    assert spec.name == "cifar10-cnn-on-my-cifar" and spec.data_source is not None
    assert (spec.space, spec.fixed, spec.baselines, spec.epochs, spec.pruner) == (
        builtin.space, builtin.fixed, builtin.baselines, builtin.epochs, builtin.pruner)


def test_data_of_another_kind_is_refused(colour_folder):
    with pytest.raises(UserError, match=r"holds image data, study churn-ann searches tabular data"):
        load_spec("churn-ann").on_dataset(str(colour_folder))


@pytest.mark.slow
def test_optimize_runs_the_headline_study_on_a_folder_and_exports_a_notebook_baseline(colour_folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    done = run("optimize", "--study", "cifar10-cnn", "--dataset", str(colour_folder), "--epochs", "1",
               "--n-trials", "3", "--storage", url, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="cifar10-cnn-on-my-cifar", storage=url)
    narrow, first, second = study.trials[:3]
    # A quarter-width recipe first (a finished model within minutes), then the public recipe itself.
    assert TrialRecord.read(narrow).baseline == "airbench94-recipe-narrow" and narrow.params["width"] == 16
    assert TrialRecord.read(first).baseline == "airbench94-recipe" and first.params["width"] == 64
    # The notebook CNN samples nothing (its own recipe), and goes through the same rungs on parts of the images.
    assert TrialRecord.read(second).baseline == "vgg-bn-l2-dropout-augment" and second.params == {}
    assert second.user_attrs["partial_epochs"][0]["epoch"] == pytest.approx(1 / 9, abs=1e-6)
    out = tmp_path / "nb.yaml"
    exported = run("export", "--study", study.study_name, "--trial", "2", "--storage", url, "-o", str(out),
                   cwd=tmp_path)
    if second.state == optuna.trial.TrialState.COMPLETE:
        assert exported.returncode == 0, exported.stderr
        run_file = yaml.safe_load(out.read_text())
        assert run_file["model"] == "cnn" and run_file["params"]["blocks"] == 3 and run_file["params"]["lr"] == 1e-3
    else:  # pruned at its first rung: export says so and writes nothing
        assert exported.returncode == 2 and "pruned" in exported.stderr and not out.exists()


def test_a_missing_dataset_path_is_one_line_exit_2_and_writes_nothing(tmp_path):
    done = run("optimize", "--study", "cifar10-cnn", "--dataset", str(tmp_path / "nowhere"), "--storage",
               f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "nowhere" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
