"""A regression target's scaling (data.base.TargetScaling): fitted on the training rows only, chosen by
`init` for a skewed positive target, recorded, and absent (identity) for classes and old studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.data.base import TargetScaling, choose_transform, split_rows
from anncnn_tune.data.source import inspect, load_source, parse_source, source_from_dict
from anncnn_tune.errors import UserError


def dollars_table(path, n=300, seed=0, skewed=False):
    """Three numeric features and a price in dollars (1e5 range), optionally log-normal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    if skewed:
        price = np.exp(11.5 + 0.9 * x[:, 0] + rng.normal(0, 0.2, n))
    else:
        price = 2e5 + 8e4 * x[:, 0] - 3e4 * x[:, 1] + rng.normal(0, 1e4, n)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "price": price})
    frame.to_csv(path, index=False)
    return frame


def src(path, tmp_path, **options):
    return parse_source({"path": str(path), "target": "price", **options}, base_dir=tmp_path, where="dataset")


def test_standardisation_is_fitted_on_the_training_rows(tmp_path):
    frame = dollars_table(tmp_path / "t.csv")
    splits = load_source(src(tmp_path / "t.csv", tmp_path), seed=1)
    scaling = splits.target_scaling
    train = splits.y_train.astype(np.float64)
    assert scaling.transform == "standardize"
    assert scaling.mean == pytest.approx(train.mean(), rel=1e-12) and scaling.std == pytest.approx(train.std(), rel=1e-12)
    model_units = scaling.to_model(splits.y_train)
    assert abs(model_units.mean()) < 1e-5 and model_units.std() == pytest.approx(1.0, rel=1e-5)
    # Validation and test targets changed: the scaling (and the training targets) stay as they were.
    _, val, test = split_rows(frame["price"].to_numpy(np.float32), 1, None, stratify=False)
    changed = frame.copy()
    changed.loc[np.concatenate([val, test]), "price"] *= 7.0
    changed.to_csv(tmp_path / "t.csv", index=False)
    again = load_source(src(tmp_path / "t.csv", tmp_path), seed=1)
    assert np.array_equal(again.y_train, splits.y_train) and not np.array_equal(again.y_val, splits.y_val)
    assert again.target_scaling == scaling


def test_the_scaling_is_recorded_in_the_data_description(tmp_path):
    dollars_table(tmp_path / "t.csv", skewed=True)
    record = load_dataset(src(tmp_path / "t.csv", tmp_path, target_transform="log")).describe()
    assert record["target_scaling"]["transform"] == "log"
    assert TargetScaling.from_dict(record["target_scaling"]) == load_dataset(
        src(tmp_path / "t.csv", tmp_path, target_transform="log")).target_scaling
    assert record["source"]["target_transform"] == "log"


@pytest.mark.parametrize("transform", ["standardize", "log"])
def test_to_user_undoes_to_model_for_numpy_and_torch(transform):
    y = np.random.default_rng(0).lognormal(11, 0.5, 500).astype(np.float32)
    scaling = TargetScaling.fit(y, transform)
    back = scaling.to_user(scaling.to_model(y))
    assert np.allclose(back, y, rtol=1e-5)
    as_tensor = scaling.to_user(torch.from_numpy(scaling.to_model(y)))
    assert isinstance(as_tensor, torch.Tensor) and np.allclose(as_tensor.numpy(), y, rtol=1e-5)


def test_a_wild_output_stays_finite_under_log():
    scaling = TargetScaling.fit(np.array([1e5, 2e5, 4e5]), "log")
    assert torch.isfinite(scaling.to_user(torch.tensor([1e6]))).all()


def test_identity_for_none_missing_records_and_classes():
    y = np.array([1.0, 5.0, 9.0], dtype=np.float32)
    assert TargetScaling.from_dict(None).identity and TargetScaling.fit(y, "none").identity
    assert TargetScaling.from_dict(None).to_user(y) is y


def test_init_proposes_log_for_a_skewed_positive_target_only():
    rng = np.random.default_rng(0)
    assert choose_transform(rng.lognormal(11, 0.9, 2000))[0] == "log"
    assert choose_transform(rng.normal(2e5, 5e4, 2000))[0] == "standardize"
    assert choose_transform(rng.lognormal(0, 0.9, 2000) - 1.0)[0] == "standardize"  # not all positive


def test_inspect_reports_the_choice_from_the_training_rows(tmp_path):
    dollars_table(tmp_path / "skewed.csv", n=600, skewed=True)
    schema = inspect(src(tmp_path / "skewed.csv", tmp_path))
    assert schema.target_transform[0] == "log"
    assert any(line.strip().startswith("target transform: log") for line in schema.lines())
    dollars_table(tmp_path / "plain.csv")
    assert inspect(src(tmp_path / "plain.csv", tmp_path)).target_transform[0] == "standardize"


def test_bad_target_transforms_are_refused(tmp_path):
    frame = dollars_table(tmp_path / "t.csv")
    with pytest.raises(UserError, match="target_transform must be one of"):
        src(tmp_path / "t.csv", tmp_path, target_transform="sqrt")
    with pytest.raises(UserError, match="regression targets only"):
        src(tmp_path / "t.csv", tmp_path, target_transform="log", task="multiclass")
    frame.assign(price=frame["price"] - 2e5).to_csv(tmp_path / "neg.csv", index=False)
    with pytest.raises(UserError, match="log needs positive targets"):
        load_source(src(tmp_path / "neg.csv", tmp_path, target_transform="log"))
    frame.assign(price=(frame["price"] > 2e5).map({True: "high", False: "low"})).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(UserError, match="regression targets only"):
        load_source(src(tmp_path / "c.csv", tmp_path, target_transform="standardize"))


def test_a_source_stored_before_the_option_reads_back_unchanged(tmp_path):
    dollars_table(tmp_path / "t.csv")
    source = src(tmp_path / "t.csv", tmp_path)
    stored = source.to_dict()
    assert "target_transform" not in stored and source_from_dict(stored) == source
    with_choice = src(tmp_path / "t.csv", tmp_path, target_transform="none")
    assert source_from_dict(with_choice.to_dict()) == with_choice
    assert load_source(with_choice).target_scaling.identity


def test_classification_records_no_target_scaling(tmp_path):
    frame = dollars_table(tmp_path / "t.csv")
    frame.assign(price=(frame["price"] > 2e5).astype(int)).to_csv(tmp_path / "b.csv", index=False)
    splits = load_source(src(tmp_path / "b.csv", tmp_path))
    assert splits.task == "binary" and splits.target.identity and "target_scaling" not in splits.describe()
