"""fit() on a regression target in dollars: trained on the scaled target, scored in the user's units."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anncnn_tune.data.base import Splits, TargetScaling
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, evaluate, fit, predict, seed_everything

CPU = torch.device("cpu")
PARAMS = {"optimizer": "adam", "lr": 3e-3, "batch_size": 32}


def dollars_splits(n=600, n_val=200, seed=0, scale=1.0, shift=0.0, scaled=True) -> Splits:
    """Standardised features and a smooth price near 2e5 dollars (times scale, plus shift)."""
    rng = np.random.default_rng(seed)
    x, xv = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n_val, 4)).astype(np.float32)

    def price(a):
        return 2e5 + 6e4 * a[:, 0] - 4e4 * np.tanh(a[:, 1]) + 2e4 * a[:, 2] * a[:, 3]

    y, yv = (price(x) * scale + shift).astype(np.float32), (price(xv) * scale + shift).astype(np.float32)
    splits = Splits("dollars", "regression", "tabular", x, y, xv, yv, xv[:0], yv[:0], None, "fp", seed)
    if scaled:
        splits.scale_target()
    return splits


def trained(splits: Splits, epochs=5, seed=0):
    seed_everything(seed)
    model = models.build("ann", {"layers": 2, "width": 32}, splits.input_shape, 1)
    data = DeviceData.from_splits(splits, CPU)
    result = fit(model, data, PARAMS, epochs=epochs, metric="val_mse", seed=seed)
    return model, data, result


def r2(truth, predicted) -> float:
    truth, predicted = np.asarray(truth, np.float64), np.asarray(predicted, np.float64).reshape(-1)
    return 1 - ((truth - predicted) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()


def test_a_target_in_dollars_is_learned_in_a_few_epochs_where_raw_units_fail():
    scaled_model, scaled_data, _ = trained(dollars_splits())
    raw_model, raw_data, _ = trained(dollars_splits(scaled=False))
    y_val = dollars_splits().y_val
    scaled_r2 = r2(y_val, predict(scaled_model, scaled_data, scaled_data.x_val).numpy())
    raw_r2 = r2(y_val, predict(raw_model, raw_data, raw_data.x_val).numpy())
    assert scaled_r2 > 0.9, scaled_r2
    assert raw_r2 < 0.0, raw_r2  # outputs near 0 against targets near 2e5: worse than the mean


def test_training_sees_the_scaled_target_and_metrics_are_in_user_units():
    splits = dollars_splits()
    model, data, result = trained(splits, epochs=3)
    assert float(data.y_train.mean()) == pytest.approx(0.0, abs=1e-4)  # the loss's target: standardised
    assert torch.equal(data.y_val, torch.from_numpy(splits.y_val))  # validation: the user's dollars
    with torch.inference_mode():
        raw = model.eval()(data.x_val).numpy().reshape(-1)  # the network's own output, model units
    predicted = predict(model, data, data.x_val).numpy().reshape(-1)
    assert np.allclose(predicted, raw * splits.target_scaling.std + splits.target_scaling.mean, rtol=1e-5)
    metrics = {k: float(v) for k, v in evaluate(model, data, data.x_val, data.y_val).items()}
    error = predicted.astype(np.float64) - splits.y_val
    assert metrics["mse"] == pytest.approx(np.mean(error**2), rel=1e-5)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-5)
    assert result.history[-1]["val_mse"] == pytest.approx(metrics["mse"], rel=1e-5)
    assert result.history[-1]["val_mse"] > 1e6  # dollars squared, not standardised units
    # The training loss is reported in dollars squared too (std**2 times the standardised MSE).
    assert result.history[-1]["train_loss"] > 1e6


def test_a_log_target_is_predicted_in_user_units():
    splits = dollars_splits(scaled=False, shift=2e5)  # every price positive
    splits.target_scaling = TargetScaling.fit(splits.y_train, "log")
    model, data, _ = trained(splits)
    predicted = predict(model, data, data.x_val).numpy().reshape(-1)
    assert predicted.min() > 0 and r2(splits.y_val, predicted) > 0.8


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.floats(1e-3, 1e3), shift=st.floats(-5.0, 5.0))
def test_an_affine_change_of_the_target_maps_predictions_the_same_way(scale, shift):
    """y -> scale * y + shift (shift in units of the scaled target's size) gives scale * p + shift."""
    base = dollars_splits(n=200, n_val=64)
    moved = dollars_splits(n=200, n_val=64, scale=scale, shift=shift * scale * 2e5)
    model, data, _ = trained(base, epochs=2)
    moved_model, moved_data, _ = trained(moved, epochs=2)
    p = predict(model, data, data.x_val).double().numpy().reshape(-1)
    q = predict(moved_model, moved_data, moved_data.x_val).double().numpy().reshape(-1)
    expected = scale * p + shift * scale * 2e5
    size = scale * float(np.abs(base.y_val).max()) * (1 + abs(shift))  # float32 noise is relative to this
    assert np.abs(q - expected).max() <= 1e-4 * size
