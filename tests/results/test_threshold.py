"""Issue 23, class imbalance: the binary threshold is chosen on validation outputs (results/threshold.py),
test labels use it, balanced accuracy and PR AUC are scored, and class_weight is a classification option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from anncnn_tune.errors import UserError
from anncnn_tune.results import threshold as T
from anncnn_tune.results.scoring import predicted, score
from anncnn_tune.search.spec import spec_from_dict
from anncnn_tune.training import metrics as M


def imbalanced(n=400, seed=0):
    """Logits of a model trained with the classes unweighted: the positives (15%) score lower than 0."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.15
    logits = np.where(truth, rng.normal(-0.5, 1, n), rng.normal(-2.5, 1, n))
    return logits, truth.astype(np.int64)


def test_the_threshold_maximises_the_criterion_on_validation():
    logits, truth = imbalanced()
    threshold, value, at_half = T.best_threshold(logits, truth, "f1")
    assert threshold < 0.5 and value > at_half  # the minority class is found below 0.5
    # no cut of the same outputs does better (checked by brute force over probability cuts)
    probs = 1 / (1 + np.exp(-logits))
    labels = probs[None, :] > np.linspace(0.001, 0.999, 999)[:, None]  # one row of labels per cut
    tp = (labels & (truth == 1)).sum(1)
    best = (2 * tp / (labels.sum(1) + truth.sum())).max()  # F1 = 2TP / (predicted + actual positives)
    assert value >= best - 1e-9
    assert skm.f1_score(truth, probs > threshold) == pytest.approx(value)


def test_a_cut_that_does_no_better_than_one_half_keeps_one_half():
    truth = np.array([0, 0, 1, 1])
    assert T.best_threshold(np.array([-3.0, -2.0, 2.0, 3.0]), truth, "accuracy")[0] == 0.5


def test_the_criterion_follows_the_metric():
    assert T.criterion("val_roc_auc") == "f1" and T.criterion("val_accuracy") == "accuracy"
    assert T.criterion("val_balanced_accuracy") == "balanced_accuracy"


def test_test_labels_use_the_chosen_threshold_and_pr_auc_is_scored():
    logits, truth = imbalanced(seed=1)
    outputs, targets = torch.tensor(logits, dtype=torch.float32).view(-1, 1), torch.tensor(truth)
    scalars, details = score("binary", outputs, targets, ("no", "yes"), threshold=0.2)
    labels = (1 / (1 + np.exp(-logits)) > 0.2).astype(int)
    assert scalars["accuracy"] == pytest.approx(np.mean(labels == truth))
    assert scalars["f1"] == pytest.approx(skm.f1_score(truth, labels))
    assert scalars["pr_auc"] == pytest.approx(skm.average_precision_score(truth, logits))
    assert scalars["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, labels))
    assert details["confusion_matrix"]["matrix"] == skm.confusion_matrix(truth, labels).tolist()
    assert (predicted("binary", outputs, 0.2) == labels).all()


def test_balanced_accuracy_is_scikit_learns_on_the_device():
    rng = np.random.default_rng(2)
    truth = rng.choice(4, 300, p=[0.7, 0.2, 0.1, 0.0])
    outputs = torch.tensor(rng.normal(size=(300, 4)), dtype=torch.float32)
    got = float(M.compute("multiclass", outputs, torch.tensor(truth))["balanced_accuracy"])
    assert got == pytest.approx(skm.balanced_accuracy_score(truth, outputs.argmax(1).numpy()), abs=1e-6)
    assert M.METRICS["val_balanced_accuracy"][0] == "maximize"


def test_class_weight_is_refused_for_a_regression_target():
    raw = {"dataset": "california-housing", "model": "ann", "metric": "val_mse", "epochs": 1,
           "params": {"class_weight": {"type": "categorical", "choices": ["none", "balanced"]}}}
    with pytest.raises(UserError, match="class_weight applies only to binary and multiclass"):
        spec_from_dict(raw, source="s.yaml", name="s")
    raw["dataset"], raw["metric"] = "churn", "val_roc_auc"
    assert "class_weight" in spec_from_dict(raw, source="s.yaml", name="s").space
