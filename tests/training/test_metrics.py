"""The on-device metrics agree with scikit-learn's, ties and degenerate cases included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from anncnn_tune.training import metrics as M


def rng(seed=0):
    return np.random.default_rng(seed)


def binary_case(seed, n=300, decimals=None):
    r = rng(seed)
    y = r.integers(0, 2, n)
    logits = r.normal(size=n) + y * 0.8
    if decimals is not None:
        logits = np.round(logits, decimals)  # many tied scores
    return torch.tensor(logits, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_roc_auc_matches_sklearn_with_and_without_ties(seed, decimals):
    logits, y = binary_case(seed, decimals=decimals)
    expected = skm.roc_auc_score(y.numpy(), logits.numpy())
    assert M.roc_auc(logits, y).item() == pytest.approx(expected, abs=1e-6)


def test_roc_auc_of_all_tied_scores_is_one_half_and_perfect_ranking_is_one():
    y = torch.tensor([0, 1, 0, 1, 1])
    assert M.roc_auc(torch.zeros(5), y).item() == pytest.approx(0.5)
    assert M.roc_auc(y.float(), y).item() == pytest.approx(1.0)
    assert M.roc_auc(-y.float(), y).item() == pytest.approx(0.0)


def test_roc_auc_is_nan_when_a_class_is_missing():
    assert math.isnan(M.roc_auc(torch.randn(6), torch.ones(6, dtype=torch.long)).item())
    assert math.isnan(M.roc_auc(torch.randn(6), torch.zeros(6, dtype=torch.long)).item())


def test_roc_auc_accepts_bool_labels_and_column_shaped_scores():
    logits, y = binary_case(1)
    expected = M.roc_auc(logits, y).item()
    assert M.roc_auc(logits.view(-1, 1), y.bool()).item() == pytest.approx(expected)


def test_roc_auc_stays_exact_on_large_splits():
    logits, y = binary_case(2, n=200_000, decimals=2)
    expected = skm.roc_auc_score(y.numpy(), logits.numpy())
    assert M.roc_auc(logits, y).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_binary_metrics_match_sklearn(seed):
    logits, y = binary_case(seed)
    out = {k: v.item() for k, v in M.compute("binary", logits.view(-1, 1), y).items()}
    predicted = (logits.numpy() > 0).astype(int)
    probabilities = 1 / (1 + np.exp(-logits.double().numpy()))
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert out["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert out["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert out["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, logits.numpy()), abs=1e-6)
    assert out["loss"] == pytest.approx(skm.log_loss(y, probabilities), rel=1e-5)


def test_binary_precision_recall_f1_are_zero_when_nothing_is_predicted_positive():
    y = torch.tensor([0, 1, 1, 0])
    out = M.compute("binary", torch.full((4, 1), -3.0), y)
    predicted = np.zeros(4, dtype=int)
    for key, sk in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert out[key].item() == pytest.approx(sk(y.numpy(), predicted, zero_division=0))


def test_multiclass_accuracy_and_loss_match_sklearn():
    r = rng(3)
    logits = torch.tensor(r.normal(size=(500, 7)), dtype=torch.float32)
    y = torch.tensor(r.integers(0, 7, 500))
    out = M.compute("multiclass", logits, y)
    probabilities = torch.softmax(logits.double(), 1).numpy()
    assert out["accuracy"].item() == pytest.approx(skm.accuracy_score(y, logits.argmax(1)))
    assert out["loss"].item() == pytest.approx(skm.log_loss(y, probabilities, labels=range(7)), rel=1e-5)


def test_regression_metrics_match_sklearn():
    r = rng(4)
    truth = r.normal(size=400).astype(np.float32)
    prediction = truth + r.normal(scale=0.5, size=400).astype(np.float32)
    out = M.compute("regression", torch.tensor(prediction).view(-1, 1), torch.tensor(truth))
    assert out["mse"].item() == pytest.approx(skm.mean_squared_error(truth, prediction), rel=1e-5)
    assert out["mae"].item() == pytest.approx(skm.mean_absolute_error(truth, prediction), rel=1e-5)
    assert out["loss"].item() == out["mse"].item()


def test_metrics_are_zero_dim_tensors_on_the_input_device():
    logits, y = binary_case(0)
    for task, outputs, targets in (("binary", logits, y), ("multiclass", torch.randn(10, 3), torch.arange(10) % 3),
                                   ("regression", torch.randn(10), torch.randn(10))):
        for name, value in M.compute(task, outputs, targets).items():
            assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.device == outputs.device, name


@pytest.mark.parametrize("metric,better,worse", [("val_accuracy", 0.9, 0.8), ("val_roc_auc", 0.7, 0.6),
                                                 ("val_loss", 0.1, 0.2), ("val_mae", 1.0, 2.0)])
def test_is_better_follows_the_metric_direction(metric, better, worse):
    assert M.is_better(better, worse, metric) and not M.is_better(worse, better, metric)
    assert M.is_better(worse, None, metric)
    assert not M.is_better(better, better, metric)  # ties keep the earlier epoch
