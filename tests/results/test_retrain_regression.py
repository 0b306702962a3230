"""A table in dollars through init, optimize, export and retrain: test metrics, predictions and the ONNX
file in dollars, the ONNX check relative to the outputs' scale; a study stored before targets were
scaled (no target_scaling recorded) still exports and retrains, on raw values as its trials did."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from helpers import main_in_process as run
from helpers import url

from anncnn_tune.data import load_dataset
from anncnn_tune.data.base import TargetScaling
from anncnn_tune.results import onnx_table
from anncnn_tune.results.export import load_run
from anncnn_tune.results.weights import Deployable, load_weights, raw_table_inputs
from anncnn_tune.service import optuna_private
from anncnn_tune.service.records import SYSTEM_PREFIX, StudyRecord


def dollars_csv(path, n=500, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    price = 2.5e5 + 7e4 * x[:, 0] - 4e4 * np.tanh(x[:, 1]) + rng.normal(0, 5e3, n)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "price": price}).to_csv(path, index=False)


def onnx_outputs(path, feeds):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["numeric"]  # a table of numbers only: no `categorical`
    return session.run(None, feeds)[0]


@pytest.fixture
def study_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)
    dollars_csv(tmp_path / "homes.csv")
    code, _, err = run(capsys, "init", "homes.csv", "--target", "price", "--name", "homes")
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "homes-ann.yaml").read_text())["dataset"]["target_transform"] == "standardize"
    code, _out, err = run(capsys, "optimize", "--study", "homes-ann.yaml", "--n-trials", "2", "--epochs", "4",
                         "--quiet", "--threads", "1", "--device", "cpu")
    assert code == 0, err
    return tmp_path


def test_retrain_scores_predicts_and_exports_in_dollars(study_dir, capsys):
    study = optuna.load_study(study_name="homes-ann", storage=url(study_dir / "anncnn-tune.db"))
    recorded = StudyRecord.read(study).target_scaling
    assert recorded["transform"] == "standardize" and 1e5 < recorded["mean"] < 5e5
    assert study.best_value > 1e6  # val_mse in dollars squared
    code, _, err = run(capsys, "export", "--study", "homes-ann", "-o", "best.yaml")
    assert code == 0, err
    assert load_run(str(study_dir / "best.yaml")).target_scaling == recorded
    code, _out, err = run(capsys, "retrain", "best.yaml", "--out", "final", "--device", "cpu")
    assert code == 0, err

    final = study_dir / "final"
    metrics = json.loads((final / "metrics.json").read_text())
    run_file = load_run(str(final / "run.yaml"))
    splits = load_dataset(run_file.data_source, seed=run_file.split_seed)
    predictions = np.load(final / "test_predictions.npy")[0].astype(np.float64)
    error = predictions - splits.y_test
    summary = metrics["test"]["summary"]
    assert summary["mse"]["mean"] == pytest.approx(np.mean(error**2), rel=1e-4)
    assert summary["mae"]["mean"] == pytest.approx(np.mean(np.abs(error)), rel=1e-4)
    truth = splits.y_test.astype(np.float64)
    assert summary["r2"]["mean"] == pytest.approx(1 - (error**2).sum() / ((truth - truth.mean()) ** 2).sum(), rel=1e-4)
    assert 1e5 < np.median(predictions) < 5e5  # dollars, not standardised units

    onnx = metrics["onnx"]
    assert onnx["passed"] and onnx["max_abs_diff"] <= onnx["tolerance"] == pytest.approx(
        1e-4 * np.abs(predictions).max(), rel=1e-3)
    model, saved = load_weights(str(final / "model.pt"))
    assert saved["target_scaling"] == recorded
    # The ONNX inputs are the raw columns (the graph imputes and scales them): the test rows of the CSV.
    table = json.loads((final / "preprocess.json").read_text())["table"]
    rows = onnx_table.raw_frame(splits.x_test, table)
    frame = pd.read_csv(study_dir / "homes.csv")
    assert [c["name"] for c in table["columns"]] == ["a", "b", "c"]
    assert (np.abs(rows[["a"]].to_numpy() - frame["a"].to_numpy()[None, :]).min(axis=1) < 1e-5).all()  # the file's values
    got = onnx_outputs(final / "model.onnx", onnx_table.feeds(rows, table)).reshape(-1)
    with torch.inference_mode():
        expected = Deployable(model, None, None, TargetScaling.from_dict(saved["target_scaling"]), table)(
            torch.from_numpy(raw_table_inputs(splits.x_test, table))).numpy().reshape(-1)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert np.allclose(expected, predictions, rtol=1e-4)  # the ONNX file predicts what retrain scored


def test_a_study_without_recorded_scaling_exports_and_retrains_on_raw_values(study_dir, capsys):
    """What a study made before targets were scaled holds: a data record without target_scaling."""
    study = optuna.load_study(study_name="homes-ann", storage=url(study_dir / "anncnn-tune.db"))
    data = dict(StudyRecord.read(study).data)
    del data["target_scaling"]
    optuna_private.set_study_system_attr(study, SYSTEM_PREFIX + "data", data)
    code, _, err = run(capsys, "optimize", "--study", "homes-ann.yaml", "--n-trials", "3", "--epochs", "4",
                         "--quiet", "--threads", "1", "--device", "cpu")
    assert code == 0, err  # a resumed old study keeps training on raw values
    code, _, err = run(capsys, "export", "--study", "homes-ann", "-o", "old.yaml")
    assert code == 0, err
    raw = yaml.safe_load((study_dir / "old.yaml").read_text())
    assert "target_scaling" not in raw["data"] and load_run(str(study_dir / "old.yaml")).target_scaling is None
    code, _out, err = run(capsys, "retrain", "old.yaml", "--out", "old", "--device", "cpu")
    assert code == 0, err
    metrics = json.loads((study_dir / "old" / "metrics.json").read_text())
    _, saved = load_weights(str(study_dir / "old" / "model.pt"))
    assert saved["target_scaling"]["transform"] == "none"
    assert metrics["onnx"]["passed"]  # outputs far from 2e5 after a few raw-unit epochs: still in tolerance
