"""A table study whose MLP quantile-transforms and PLR-embeds its numeric columns, end to end: `init`
offers the choices, a 2-trial search stores them, the run file carries them, retrain's ONNX check
passes, and `predict` and the ONNX file give the PyTorch model's numbers."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch
import yaml
from helpers import main_in_process as run

from anncnn_tune.data.base import TargetScaling
from anncnn_tune.data.pipeline import encode_table
from anncnn_tune.results import onnx_table
from anncnn_tune.results.weights import load_weights


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)


def homes(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    color = rng.choice(["red", "blue"], size=n)
    price = 2e5 + 5e4 * np.sin(2 * x[:, 0]) + 3e4 * x[:, 1] ** 2 + np.where(color == "red", 2e4, 0)
    return pd.DataFrame({"sqft": 1500 + 400 * x[:, 0], "age": np.exp(x[:, 1]), "garage": rng.integers(0, 2, n),
                         "color": color, "price": np.round(price, 2)})


@pytest.mark.parametrize("transform, embedding, knob", [("quantile", "plr", "plr_sigma"),
                                                         ("robust", "piecewise_linear", "n_bins")])
def test_a_study_with_numeric_embeddings_searches_retrains_exports_and_predicts(tmp_path, capsys, transform,
                                                                                embedding, knob):
    homes(240, 0).to_csv("homes.csv", index=False)
    code, _, err = run(capsys, "init", "homes.csv", "--name", "homes", "--target", "price")
    assert code == 0, err
    study = yaml.safe_load((tmp_path / "homes-ann.yaml").read_text())
    for name in ("numeric_transform", "numeric_embedding", "embedding_dim", "plr_sigma", "n_bins"):
        assert isinstance(study["params"][name], dict), name  # init offers every choice and knob
    study["params"].update(numeric_transform=transform, numeric_embedding=embedding, width=16, layers=1)
    study["baselines"] = []
    (tmp_path / "homes-ann.yaml").write_text(yaml.safe_dump(study))
    for args in (("optimize", "--study", "homes-ann.yaml", "--n-trials", "2", "--epochs", "1", "--quiet",
                  "--threads", "1", "--device", "cpu"),
                 ("export", "--study", "homes-ann", "-o", "best.yaml"),
                 ("retrain", "best.yaml", "--out", "final", "--device", "cpu")):
        code, out, err = run(capsys, *args)
        assert code == 0, (args, err)
    assert "onnx max abs diff to pytorch" in out + err
    exported = yaml.safe_load((tmp_path / "best.yaml").read_text())["params"]
    assert exported["numeric_transform"] == transform and exported["numeric_embedding"] == embedding
    assert knob in exported

    # The saved model knows which columns are numbers: sqft and age (garage is a 0/1 flag, color one-hot).
    final = tmp_path / "final"
    model, saved = load_weights(str(final / "model.pt"))
    record = json.loads((final / "preprocess.json").read_text())
    roles = [c["role"] for c in record["table"]["columns"]]
    assert saved["numeric_columns"] == [i for i, r in enumerate(roles) if r == "numeric"] == [1, 2]

    raw = homes(30, 1)
    raw.to_csv("new.csv", index=False)
    code, _, err = run(capsys, "predict", str(final), "new.csv", "-o", "predictions.csv")
    assert code == 0, err
    got = pd.read_csv("predictions.csv")["prediction"].to_numpy()
    assert np.isfinite(got).all() and 5e4 < np.median(got) < 5e5  # dollars
    # predict gives the rebuilt PyTorch model's numbers, and so does the ONNX graph (imputation,
    # scaling, the transform and the embedding).
    encoded = encode_table(raw, record["table"])
    with torch.inference_mode():
        expected = TargetScaling.from_dict(saved["target_scaling"]).to_user(model(torch.from_numpy(encoded)))
    np.testing.assert_allclose(got, expected.numpy()[:, 0], rtol=1e-4)
    session = onnxruntime.InferenceSession(str(final / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, onnx_table.feeds(raw, record["table"]))[0][:, 0]  # the raw columns
    np.testing.assert_allclose(onnx_out, got, rtol=1e-4)
