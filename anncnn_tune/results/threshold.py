"""A binary model's decision threshold, chosen on the validation split, never on the test split.

The search scores validation with a fixed cut (logit 0, probability 0.5). Where the classes are
imbalanced, or the loss weighs them (class_weight), that cut is rarely where the model decides
best. Retrain trains on train+validation, so its model cannot pick a cut on validation rows it has
seen: one more model of the run is trained on the training rows alone, exactly as the trial was,
and the cut that maximises the run's criterion on its validation outputs is kept. The threshold,
a probability, then travels in preprocess.json (`decision.threshold`), which `predict` applies,
and the test split's labels (accuracy, F1, confusion matrix) use it.
"""

from __future__ import annotations

import math

import numpy as np

# The threshold maximises what the study's metric rewards where the metric depends on a cut;
# ROC AUC, PR AUC and the loss do not, and then F1 (finding the positives without flooding them
# with false alarms) is the criterion, as it is for most imbalanced binary problems.
CRITERIA = {"val_accuracy": "accuracy", "val_balanced_accuracy": "balanced_accuracy", "val_f1": "f1"}
DEFAULT_CRITERION = "f1"
MAX_CUTS = 2000


def criterion(metric: str) -> str:
    return CRITERIA.get(metric, DEFAULT_CRITERION)


def _value(name: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float(np.sum(predicted & truth))
    fp = float(np.sum(predicted & ~truth))
    fn = float(np.sum(~predicted & truth))
    tn = float(np.sum(~predicted & ~truth))
    if name == "accuracy":
        return (tp + tn) / max(len(truth), 1)
    if name == "balanced_accuracy":
        return 0.5 * (tp / max(tp + fn, 1) + tn / max(tn + fp, 1))
    return 2 * tp / max(2 * tp + fp + fn, 1)  # F1


def best_threshold(logits: np.ndarray, truth: np.ndarray, name: str) -> tuple[float, float, float]:
    """(probability threshold, criterion there, criterion at 0.5): cuts between consecutive distinct
    scores; of equally good cuts, the one nearest 0.5."""
    logits = np.asarray(logits, np.float64).reshape(-1)
    truth = np.asarray(truth).reshape(-1).astype(bool)
    at_half = _value(name, truth, logits > 0)
    scores = np.unique(logits)
    if len(scores) > MAX_CUTS:  # a large validation split: quantiles are as good and stay quick
        scores = np.unique(np.quantile(logits, np.linspace(0, 1, MAX_CUTS)))
    cuts = np.concatenate([[scores[0] - 1.0], (scores[:-1] + scores[1:]) / 2]) if len(scores) else np.zeros(1)
    values = np.array([_value(name, truth, logits > c) for c in cuts])
    best = values.max()
    if best <= at_half + 1e-12:  # no cut beats the usual one on validation: keep it
        return 0.5, at_half, at_half
    tied = cuts[values >= best - 1e-12]
    cut = float(tied[np.argmin(np.abs(tied))])
    return 1.0 / (1.0 + math.exp(-cut)), float(best), at_half


def logit(threshold: float) -> float:
    """The logit cut of a probability threshold (0.5 -> 0)."""
    return math.log(threshold / (1.0 - threshold))


def choose(run, splits, options, log) -> dict:
    """Train the run once on the training rows, and choose the threshold on its validation outputs."""
    import torch

    from anncnn_tune.results.refit import train_once
    from anncnn_tune.training.fit import DeviceData, predict

    data = DeviceData.from_splits(splits, options.device)
    model, _ = train_once(run, splits, data, run.seed, options, log, "threshold: ")
    x_val = torch.from_numpy(np.ascontiguousarray(splits.x_val)).to(options.device)
    logits = predict(model, data, x_val, options).float().cpu().numpy()
    name = criterion(run.metric)
    threshold, value, at_half = best_threshold(logits, splits.y_val, name)
    log(f"threshold: {threshold:.3f} (validation {name} {value:.4f}, at 0.5 {at_half:.4f}; a model trained on the "
        "training rows alone, as in the search)")
    return {"threshold": threshold, "criterion": name, "validation": value, "validation_at_0.5": at_half,
            "chosen_on": "validation outputs of the run trained on the training rows alone"}


__all__ = ["CRITERIA", "best_threshold", "choose", "criterion", "logit"]
