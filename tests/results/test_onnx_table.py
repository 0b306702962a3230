"""The raw-column front of a table's ONNX graph (results/onnx_table.py), without a search: a fitted
table record and a small model, exported as retrain exports them, against predict's encode_table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from anncnn_tune.data import pipeline
from anncnn_tune.data.base import TargetScaling
from anncnn_tune.results import onnx_table
from anncnn_tune.results.weights import Deployable, _export, raw_table_inputs

# flags, numbers, categories: the order of the fitted ColumnTransformer's output. The second
# categorical column holds the text "NA" as a category, as a Parquet table can.
TABLE = {"dropped": [], "columns": [
    {"name": "member", "role": "flag", "fill": 1.0},
    {"name": "size", "role": "numeric", "fill": 3.0, "mean": 2.5, "scale": 1.5},
    {"name": "colour", "role": "categorical", "fill": "blue", "categories": ["blue", "green", "red"]},
    {"name": "weight kg", "role": "numeric", "fill": 70.0, "mean": 71.0, "scale": 12.0},
    {"name": "region", "role": "categorical", "fill": "EU", "categories": ["EU", "NA"]},
]}


def test_the_missing_words_are_pandas_csv_defaults():
    parsers = pytest.importorskip("pandas._libs.parsers")
    assert set(onnx_table.NA_WORDS) == set(parsers.STR_NA_VALUES)


def test_raw_columns_in_give_what_predict_computes(tmp_path):
    import onnx
    import onnxruntime

    torch.manual_seed(0)
    width = pipeline.table_width(TABLE)
    model = torch.nn.Sequential(torch.nn.Linear(width, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).eval()
    target = TargetScaling()
    path = tmp_path / "model.onnx"
    sample = torch.zeros(2, width)
    _export(Deployable(model, None, None, target, TABLE).eval(), torch.from_numpy(raw_table_inputs(sample, TABLE)),
            path)
    onnx.save(onnx_table.prepend(onnx.load(str(path)), TABLE), str(path))

    rows = pd.DataFrame({
        "member": [1.0, 0.0, np.nan, 1.0, 0.0, 1.0, 0.0],
        "size": [1.0, np.nan, 4.0, 2.0, 8.5, -1.0, 3.0],
        "colour": ["red", "green", "", "  ", "purple", "blue", "Red"],  # blank, whitespace, unseen, case
        "weight kg": [60.0, 80.0, 72.5, np.nan, 55.0, 90.0, 70.0],
        "region": ["EU", "NA", "", "NA", "US", "EU", " EU"],  # "NA" is a training category here
    })
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("numeric", "tensor(float)"),
                                                                 ("categorical", "tensor(string)")]
    feeds = onnx_table.feeds(rows, TABLE)
    assert feeds["numeric"].shape == (7, 3) and feeds["categorical"].shape == (7, 2)
    got = session.run(None, feeds)[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(pipeline.encode_table(rows, TABLE))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

    # pandas' missing words are missing unless a training category: "nan" in colour is the fill
    # (blue), "NA" in region stays the category NA; None from a DataFrame is fed as "".
    words = rows.iloc[[0, 0]].copy()
    words["colour"] = ["nan", "blue"]
    words["region"] = ["NA", "NA"]
    out = session.run(None, onnx_table.feeds(words, TABLE))[0]
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)
    none = rows.iloc[[2]].copy()
    none["colour"] = None
    np.testing.assert_allclose(session.run(None, onnx_table.feeds(none, TABLE))[0], got[[2]], rtol=1e-6)


def test_encoded_rows_come_back_as_the_raw_rows_they_encode():
    rows = pd.DataFrame({"member": [1.0, 0.0], "size": [1.0, 4.0], "colour": ["red", "purple"],
                         "weight kg": [60.0, 80.0], "region": ["NA", "EU"]})
    back = onnx_table.raw_frame(pipeline.encode_table(rows, TABLE), TABLE)
    assert list(back.columns) == [c["name"] for c in TABLE["columns"]]
    np.testing.assert_allclose(back[["member", "size", "weight kg"]].to_numpy(),
                               rows[["member", "size", "weight kg"]].to_numpy(), rtol=1e-5)
    assert back.loc[0, "colour"] == "red" and back.loc[1, "colour"] == onnx_table.UNSEEN  # unseen: no category
    assert list(back["region"]) == ["NA", "EU"]
