"""The real shared files as a user would bring them: housing.csv, the Telco CSV, the CIFAR-10 JPEG folder.

Each test skips, with the reason, where its files are absent ($ANNCNN_TUNE_SHARED_DATASETS).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATASETS

from anncnn_tune.data import fetch, load_dataset
from anncnn_tune.data.source import inspect, load_source, parse_source

SHARED = SHARED_DATASETS
HOUSING = SHARED / "california-housing" / "housing.csv"
TELCO = SHARED / "telco-churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
CIFAR_JPEG = SHARED / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"


def need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} not found; set ANNCNN_TUNE_SHARED_DATASETS")
    return path


def test_housing_csv_with_only_its_target(tmp_path):
    source = parse_source({"path": str(need(HOUSING)), "target": "median_house_value"}, base_dir=tmp_path,
                          where="dataset")
    schema = inspect(source)
    assert schema.task == "regression" and schema.n_samples == 20640
    assert schema.missing == {"total_bedrooms": 207} and schema.columns["categorical"] == ["ocean_proximity"]
    assert schema.input_shape == (8 + 5,)  # 8 numbers and the 5 ocean_proximity values one-hot
    splits = load_source(source, seed=0)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (14448, 3096, 3096)
    assert not np.isnan(splits.x_train).any() and splits.y_train.dtype == np.float32


def test_telco_csv_as_a_plain_table_matches_the_builtin_churn_but_for_the_blank_total_charges(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "_download", lambda spec, folder: pytest.fail("download attempted"))
    source = parse_source({"path": str(need(TELCO)), "target": "Churn"}, base_dir=tmp_path, where="dataset")
    plain = load_source(source, seed=4)
    builtin = load_dataset("churn", data_dir=SHARED, seed=4)
    assert plain.feature_names == builtin.feature_names and plain.classes == builtin.classes == ("No", "Yes")
    assert plain.task == builtin.task == "binary"
    column = builtin.feature_names.index("TotalCharges")
    for part in ("train", "val", "test"):
        a, b = getattr(plain, f"x_{part}"), getattr(builtin, f"x_{part}")
        assert np.array_equal(getattr(plain, f"y_{part}"), getattr(builtin, f"y_{part}"))
        assert np.array_equal(np.delete(a, column, 1), np.delete(b, column, 1))
    # TotalCharges: the 11 blanks are the training median here and 0 in the built-in reader; that
    # moves the scaler's mean and std a little, so elsewhere the column agrees up to that affine map
    a, b = plain.x_train[:, column].astype(np.float64), builtin.x_train[:, column].astype(np.float64)
    differs = np.abs(a - b) > 0.05
    assert 1 <= differs.sum() <= 11
    slope, intercept = np.polyfit(b[~differs], a[~differs], 1)
    np.testing.assert_allclose(a[~differs], slope * b[~differs] + intercept, atol=1e-4)


@pytest.mark.slow
def test_cifar10_jpeg_folder_loads_and_is_cached(tmp_path):
    with tarfile.open(need(CIFAR_JPEG)) as tar:
        tar.extractall(tmp_path, filter="data")
    source = parse_source(str(tmp_path / "cifar10-jpeg"), base_dir=tmp_path, where="dataset")
    first = load_source(source, data_dir=tmp_path / "cache")
    assert first.classes[0] == "airplane" and first.input_shape == (3, 32, 32)
    assert (len(first.y_train), len(first.y_val), len(first.y_test)) == (45000, 5000, 10000)
    again = load_source(source, data_dir=tmp_path / "cache")
    assert np.array_equal(first.x_test, again.x_test) and np.array_equal(first.y_train, again.y_train)
