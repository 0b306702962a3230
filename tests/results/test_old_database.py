"""A storage written by the code before model families (commit 48f2903, tests/fixtures/old-48f2903/)
still works with the current code: it lists, compares, exports, retrains and resumes."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
import yaml
from helpers import REPO, run_cli, url

import anncnn_tune

OLD = REPO / "tests" / "fixtures" / "old-48f2903"
QUICK = ("--epochs", "1", "--subset", "200", "--threads", "1", "--device", "cpu", "--quiet")


@pytest.fixture
def storage(tmp_path):
    """A copy of the old storage (the committed file is never written)."""
    db = tmp_path / "old.db"
    shutil.copyfile(OLD / "studies.db", db)
    return url(db)


def trials(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in optuna.load_study(study_name=study, storage=storage).trials if t.state.is_finished()]


def test_the_old_storage_lists_and_compares(storage, tmp_path):
    listing = run_cli("studies", "--storage", storage, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "digits-ann" in listing.stdout and "digits-cnn" in listing.stdout
    assert listing.stdout.count("2 complete, 1 pruned") == 2

    text = run_cli("compare", "--storage", storage, "--wide", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "keras-mlp-128-64" in text.stdout and "conv32-conv64-dense64" in text.stdout  # the baselines
    rows = {r["study"]: r for r in anncnn_tune.compare(storage).to_dict("records")}
    assert set(rows) == {"digits-ann", "digits-cnn"} and all(r["fair"] for r in rows.values())
    assert rows["digits-ann"]["model"] == "ann" and rows["digits-cnn"]["model"] == "cnn"
    assert rows["digits-ann"]["best_trial"] == 1 and rows["digits-cnn"]["best_trial"] == 0
    # The old retrain's test accuracy, recorded on the old study, is read back.
    assert rows["digits-ann"]["test_value"] == pytest.approx(0.8444, abs=1e-4)


def test_the_old_storage_exports_the_old_trial(storage, tmp_path):
    out = tmp_path / "best.yaml"
    done = run_cli("export", "--study", "digits-ann", "--storage", storage, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    new = yaml.safe_load(out.read_text())
    old = yaml.safe_load((OLD / "digits-ann-best.yaml").read_text())
    (trial,) = [t for t in trials(storage, "digits-ann") if t.number == 1]
    assert new["source"]["trial"] == old["source"]["trial"] == 1
    assert {k: new["params"][k] for k in trial.params} == trial.params  # the stored trial's values
    # Every parameter the old export wrote keeps its value; the new code adds its new ones' defaults.
    assert {k: new["params"][k] for k in old["params"]} == old["params"]
    assert {k: new[k] for k in ("dataset", "model", "metric", "epochs", "seed", "data")} == \
        {k: old[k] for k in ("dataset", "model", "metric", "epochs", "seed", "data")}


def test_the_old_run_file_retrains(storage, tmp_path):
    out = tmp_path / "run"
    done = run_cli("retrain", OLD / "digits-ann-best.yaml", "--out", out, "--device", "cpu", "--storage", storage,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    old = json.loads((OLD / "run" / "metrics.json").read_text())
    assert metrics["n_params"] == old["n_params"] == 129_754 and metrics["n_test"] == old["n_test"]
    # The old run file's parameters, as it wrote them; the new code adds its new ones' defaults.
    assert {k: metrics["run"]["params"][k] for k in old["run"]["params"]} == old["run"]["params"]
    # One epoch on 470 samples, seeded: the old code scored 0.8444 and so did this one when written.
    assert metrics["test"]["mean"] == pytest.approx(old["test"]["mean"], abs=0.03)
    assert metrics["onnx"]["passed"] and (out / "model.pt").is_file()


@pytest.mark.parametrize("study", ["digits-ann", "digits-cnn"])
def test_the_old_studies_resume(storage, tmp_path, study):
    before = trials(storage, study)
    done = run_cli("optimize", "--study", study, "--storage", storage, "--n-trials", len(before) + 1, *QUICK,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = trials(storage, study)
    assert len(after) == len(before) + 1
    assert [t.params for t in after[: len(before)]] == [t.params for t in before]  # the old trials untouched
    new = after[-1]
    # The new trial stores only the parameters that applied to it (the old ones stored every one).
    if study == "digits-ann":
        assert ("shrink" in new.params) == (new.params["layers"] >= 2)
    else:
        assert ("growth" in new.params) == (new.params["blocks"] >= 2)
        assert ("head_width" in new.params) == ("head_dropout" in new.params) == (new.params["head_layers"] >= 1)
