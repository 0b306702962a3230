"""From a search to predictions on raw input: init -> optimize -> export -> retrain -> predict, on real
files (a CSV in dollars with a categorical column and blanks, a classification CSV, PNG folders written
with Pillow), checked against the model rebuilt here and scikit-learn's own fitted transformer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import main_in_process as run
from PIL import Image

import anncnn_tune as at
from anncnn_tune.data.base import TargetScaling, split_rows
from anncnn_tune.data.table import _prepare, transformer
from anncnn_tune.results.export import load_run
from anncnn_tune.results.weights import load_weights

QUICK = ("--n-trials", "2", "--epochs", "1", "--quiet", "--threads", "1", "--device", "cpu")


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)


def search_and_retrain(capsys, data: str, name: str, family: str = "ann", *init_args) -> str:
    """init, a 2-trial 1-epoch search, export and retrain: the retrain folder."""
    for args in (("init", data, "--name", name, *init_args), ("optimize", "--study", f"{name}-{family}.yaml", *QUICK),
                 ("export", "--study", f"{name}-{family}", "-o", "best.yaml"),
                 ("retrain", "best.yaml", "--out", "final", "--device", "cpu")):
        code, _, err = run(capsys, *args)
        assert code == 0, (args, err)
    return "final"


def homes(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    color = rng.choice(["red", "green", "blue"], size=n)
    price = 2.5e5 + 7e4 * x[:, 0] - 4e4 * np.tanh(x[:, 1]) + np.where(color == "red", 3e4, 0) + rng.normal(0, 5e3, n)
    frame = pd.DataFrame({"sqft": 1500 + 400 * x[:, 0], "age": 30 + 10 * x[:, 1], "color": color,
                          "price": np.round(price, 2)})
    frame.loc[3, "sqft"] = np.nan  # a missing number: imputed with the training median
    frame.loc[5, "color"] = None  # a missing category: the most frequent one
    return frame


def test_a_dollar_table_predicts_in_dollars_as_the_python_model_does(tmp_path, capsys):
    homes(300, 0).to_csv("homes.csv", index=False)
    final = tmp_path / search_and_retrain(capsys, "homes.csv", "homes", "ann", "--target", "price")
    record = json.loads((final / "preprocess.json").read_text())
    assert [c["role"] for c in record["table"]["columns"]] == ["numeric", "numeric", "categorical"]
    assert record["target"]["column"] == "price" and record["target"]["scaling"]["transform"] == "standardize"

    raw = homes(40, 1)
    raw.loc[0, "age"] = np.nan
    raw.loc[1, "color"] = "purple"  # unseen in training: all one-hot indicators 0
    raw["note"] = "an extra column, ignored"
    raw[["note", "color", "price", "age", "sqft"]].to_csv("new.csv", index=False)  # any column order
    code, out, err = run(capsys, "predict", str(final), "new.csv", "-o", "predictions.csv", "--batch-size", "16")
    assert code == 0, err
    assert "predict: 32 rows done" in err and "wrote predictions.csv: 40 predictions" in err
    got = pd.read_csv("predictions.csv")
    assert list(got.columns) == ["row", "prediction"] and list(got["row"]) == list(range(40))

    import onnxruntime

    # The same path by hand: scikit-learn's transformer fitted on the same training rows, the model
    # rebuilt from model.pt, the target back in dollars.
    run_file = load_run(str(final / "run.yaml"))
    prepared = _prepare(run_file.data_source)
    train, _, _ = split_rows(prepared.y, run_file.split_seed, run_file.subset, False, has_test=False)
    encoded, _ = prepared.cols.encoded()  # the features in the order the model reads them
    features = encoded.features
    fitted = transformer(encoded).fit(prepared.frame.iloc[train][features])
    rows = pd.read_csv("new.csv")
    rows["color"] = rows["color"].astype(object).where(rows["color"].notna(), np.nan)
    x = fitted.transform(rows[features]).astype(np.float32)
    model, saved = load_weights(str(final / "model.pt"))
    with torch.inference_mode():
        expected = TargetScaling.from_dict(saved["target_scaling"]).to_user(model(torch.from_numpy(x))).numpy()[:, 0]
    assert 1e5 < np.median(expected) < 5e5  # dollars
    np.testing.assert_allclose(got["prediction"].to_numpy(), expected, rtol=1e-4)

    # The API gives the same numbers as a DataFrame; stdout the same CSV.
    frame = at.predict(final, "new.csv")
    np.testing.assert_allclose(frame["prediction"].to_numpy(), got["prediction"].to_numpy(), rtol=1e-6)
    code, out, err = run(capsys, "predict", str(final), "new.csv")
    assert code == 0, err
    assert out.splitlines()[0] == "row,prediction" and len(out.splitlines()) == 41

    # The ONNX file takes the raw columns: `numeric` (NaN for missing) and `categorical` as the CSV's
    # own text (a blank cell "", pandas' missing word "NA", an unseen "purple"), and gives predict's dollars.
    record = json.loads((final / "preprocess.json").read_text())
    assert set(record["onnx"]["inputs"]) == {"numeric", "categorical"}
    text = pd.read_csv("new.csv", dtype=str, keep_default_na=False)  # the cells exactly as written
    assert text.loc[5, "color"] == "" and text.loc[1, "color"] == "purple"
    text.loc[7, "color"] = "NA"
    text = pd.concat([text, text.iloc[[7]].assign(color="")], ignore_index=True)  # row 40: row 7, colour blank
    text.to_csv("new-na.csv", index=False)
    via_predict = at.predict(final, "new-na.csv")["prediction"].to_numpy()
    assert via_predict[7] == pytest.approx(via_predict[40], rel=1e-9)  # "NA" read as missing, like a blank cell
    numbers = pd.read_csv("new-na.csv")[["age", "sqft"]].to_numpy(np.float32)  # the columns by name, as recorded
    feeds = {"numeric": numbers, "categorical": text[["color"]].to_numpy(dtype=object)}
    assert np.isnan(feeds["numeric"]).any()
    session = onnxruntime.InferenceSession(str(final / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("numeric", "tensor(float)"),
                                                                 ("categorical", "tensor(string)")]
    onnx_out = session.run(None, feeds)[0][:, 0]
    np.testing.assert_allclose(onnx_out, via_predict, rtol=1e-4)
    others = np.arange(len(rows)) != 7
    np.testing.assert_allclose(onnx_out[:40][others], expected[others], rtol=1e-4)
    report = (final / "report.md").read_text()
    assert "input `numeric`: float32 (N, 2): the columns age, sqft" in report
    assert "input `categorical`: string (N, 1): the columns color" in report and "`color` == 'red'" in report


def flowers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(["setosa", "versicolor", "virginica"], size=n)
    centre = pd.Series(species).map({"setosa": 0.0, "versicolor": 2.0, "virginica": 4.0}).to_numpy()
    return pd.DataFrame({"petal": centre + rng.normal(0, 0.3, n), "sepal": rng.normal(size=n),
                         "soil": rng.choice(["clay", "sand"], size=n), "species": species})


def test_a_classification_table_gives_class_names_and_probabilities(tmp_path, capsys):
    flowers(240, 0).to_csv("flowers.csv", index=False)
    final = search_and_retrain(capsys, "flowers.csv", "flowers", "ann", "--target", "species")
    new = flowers(30, 1)
    new.drop(columns="species").to_parquet("new.parquet")
    code, _, err = run(capsys, "predict", final, "new.parquet", "-o", "out.csv")
    assert code == 0, err
    got = pd.read_csv("out.csv")
    classes = ["setosa", "versicolor", "virginica"]
    assert list(got.columns) == ["row", "prediction"] + [f"prob_{c}" for c in classes]
    probs = got[[f"prob_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert list(got["prediction"]) == [classes[i] for i in probs.argmax(axis=1)]
    # The ONNX file on the same raw rows (numbers, and the soil as text): softmax of its logits is
    # predict's probabilities.
    import onnxruntime

    session = onnxruntime.InferenceSession(f"{final}/model.onnx", providers=["CPUExecutionProvider"])
    logits = session.run(None, {"numeric": new[["petal", "sepal"]].to_numpy(np.float32),
                                "categorical": new[["soil"]].to_numpy(dtype=object)})[0]
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), probs, atol=1e-5)

    # A missing training column: one line naming it, exit 2, no file written.
    new.drop(columns=["petal", "species"]).to_csv("short.csv", index=False)
    code, out, err = run(capsys, "predict", final, "short.csv", "-o", "short-out.csv")
    assert code == 2 and out == ""
    assert "short.csv lacks column petal of the training table" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "short-out.csv").exists()
    # A table for an image model, or images for a table model: one line each.
    Image.new("RGB", (8, 8)).save("x.png")
    code, _, err = run(capsys, "predict", final, "x.png")
    assert code == 2 and "trained on a table, not on images" in err


def test_an_ensemble_set_in_the_study_file_goes_through_export_retrain_predict_and_onnx(tmp_path, capsys):
    import onnxruntime
    import yaml

    from anncnn_tune.training.families.ensemble import EnsembleMLP

    flowers(240, 0).to_csv("flowers.csv", index=False)
    code, _, err = run(capsys, "init", "flowers.csv", "--name", "flowers", "--target", "species")
    assert code == 0, err
    study_file = tmp_path / "flowers-ann.yaml"
    study = yaml.safe_load(study_file.read_text())
    study["params"]["ensemble"] = 3  # fixed: the baselines need not name it
    study_file.write_text(yaml.safe_dump(study))
    for args in (("optimize", "--study", "flowers-ann.yaml", *QUICK),
                 ("export", "--study", "flowers-ann", "-o", "best.yaml"), ("retrain", "best.yaml", "--out", "final", "--device", "cpu")):
        code, _, err = run(capsys, *args)
        assert code == 0, (args, err)
    assert load_run("final/run.yaml").params["ensemble"] == 3
    model, _ = load_weights("final/model.pt")
    assert isinstance(model, EnsembleMLP) and model.k == 3
    new = flowers(30, 1)
    new.drop(columns="species").to_csv("new.csv", index=False)
    probs = at.predict("final", "new.csv")[["prob_setosa", "prob_versicolor", "prob_virginica"]]
    session = onnxruntime.InferenceSession("final/model.onnx", providers=["CPUExecutionProvider"])
    logits = session.run(None, {"numeric": new[["petal", "sepal"]].to_numpy(np.float32),
                                "categorical": new[["soil"]].to_numpy(dtype=object)})[0]
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), probs.to_numpy(), atol=1e-5)


def write_images(root, per_class=16, size=8):
    """Two classes told apart by colour: reddish and bluish squares with noise."""
    rng = np.random.default_rng(0)
    for name, channel in (("blue", 2), ("red", 0)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
            pixels[:, :, channel] = rng.integers(170, 256, size=(size, size), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i:02d}.png")


def test_an_image_model_predicts_a_file_and_a_folder(tmp_path, capsys):
    write_images(tmp_path / "colours")
    final = tmp_path / search_and_retrain(capsys, "colours", "colours", "ann")
    record = json.loads((final / "preprocess.json").read_text())
    assert record["image"]["size"] == [8, 8] and record["image"]["mode"] == "RGB" and record["classes"] == ["blue",
                                                                                                          "red"]
    new = tmp_path / "new"
    (new / "more").mkdir(parents=True)
    red = np.zeros((16, 16, 3), np.uint8)
    red[:, :, 0] = 240
    Image.fromarray(red).save(new / "big-red.png")  # twice the training size: resized to 8x8
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[:, :, 2] = 230
    Image.fromarray(blue).convert("RGBA").save(new / "more" / "blue.png")  # alpha dropped as in training
    (new / "notes.txt").write_text("not an image: skipped")

    code, out, err = run(capsys, "predict", str(final), str(new / "big-red.png"))
    assert code == 0, err
    one = pd.read_csv(pd.io.common.StringIO(out))
    assert list(one["file"]) == ["big-red.png"] and list(one.columns) == ["file", "prediction", "prob_blue", "prob_red"]

    code, _, err = run(capsys, "predict", str(final), str(new), "-o", "folder.csv")
    assert code == 0, err
    got = pd.read_csv("folder.csv")
    assert list(got["file"]) == ["big-red.png", "more/blue.png"]
    # by hand: Pillow's decode and bilinear resize, the saved mean/std, the rebuilt model
    model, saved = load_weights(str(final / "model.pt"))
    images = [Image.open(new / "big-red.png").convert("RGB").resize((8, 8), Image.Resampling.BILINEAR),
              Image.open(new / "more" / "blue.png").convert("RGB")]
    x = torch.from_numpy(np.stack([np.asarray(i).transpose(2, 0, 1) for i in images])).float()
    mean, std = (torch.tensor(saved[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    threshold = record["decision"]["threshold"]  # chosen on validation by retrain (results/threshold.py)
    assert record["task"] == "binary" and 0 < threshold < 1  # two classes: one logit
    with torch.inference_mode():
        red = torch.sigmoid(model((x - mean) / std)).numpy()[:, 0]
    probs = np.column_stack([1 - red, red])
    np.testing.assert_allclose(got[["prob_blue", "prob_red"]].to_numpy(), probs, rtol=1e-4, atol=1e-6)
    assert list(got["prediction"]) == [["blue", "red"][int(p > threshold)] for p in probs[:, 1]]

    # A corrupt image: one line naming it, nothing written; --skip-bad names it and goes on.
    (new / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, _, err = run(capsys, "predict", str(final), str(new), "-o", "bad.csv")
    assert code == 2 and "broken.png is not a readable image" in err and "--skip-bad" in err
    assert not (tmp_path / "bad.csv").exists()
    code, _, err = run(capsys, "predict", str(final), str(new), "-o", "bad.csv", "--skip-bad")
    assert code == 0, err
    assert "skipped broken.png" in err and list(pd.read_csv("bad.csv")["file"]) == ["big-red.png", "more/blue.png"]
    code, _, err = run(capsys, "predict", str(final), "colours.csv")
    assert code == 2 and "does not exist" in err


def test_predict_help_says_what_goes_in_and_out(capsys):
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0
    for words in ("RUN_DIR INPUT", ".csv/.tsv/.parquet", "folder of", "prob_<class>", "--skip-bad", "-o, --output"):
        assert words in " ".join(out.split()), words


def test_a_folder_without_a_retrain_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "predict", "empty", "x.csv")
    assert code == 2 and "has no model.pt" in err
