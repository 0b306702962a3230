"""Scoring a retrained model on one split, and mean ± std over seeds or folds."""

from __future__ import annotations

import numpy as np
import torch

from anncnn_tune.results.threshold import logit
from anncnn_tune.training import metrics as M


def score(task: str, outputs: torch.Tensor, targets: torch.Tensor, classes,
          threshold: float = 0.5) -> tuple[dict, dict]:
    """(scalar metrics, details) of one model on one split.

    Loss and accuracy come from metrics.compute, the very code that scored validation during the
    search, so "validation vs test" compares like with like; scikit-learn adds the rest. A binary
    model's labels use `threshold` (a probability, chosen on validation: results/threshold.py);
    ROC AUC and PR AUC (average precision) do not depend on it.
    """
    from sklearn import metrics as skm

    scalars = {k: float(v) for k, v in M.compute(task, outputs, targets).items()}
    truth = targets.cpu().numpy()
    out = outputs.float().cpu().numpy()
    if task == "regression":
        scalars["r2"] = float(skm.r2_score(truth, out.reshape(-1)))
        return scalars, {}
    if task == "binary":
        predicted = (out.reshape(-1) > logit(threshold)).astype(np.int64)
        truth = truth.astype(np.int64)
        both = len(set(truth)) == 2
        scalars["roc_auc"] = float(skm.roc_auc_score(truth, out.reshape(-1))) if both else float("nan")
        scalars["pr_auc"] = float(skm.average_precision_score(truth, out.reshape(-1))) if both else float("nan")
        if threshold != 0.5:  # the labels at the chosen cut, not at metrics.compute's logit 0
            scalars["accuracy"] = float(np.mean(predicted == truth))
            scalars["balanced_accuracy"] = float(skm.balanced_accuracy_score(truth, predicted))
            p, r, f, _ = skm.precision_recall_fscore_support(truth, predicted, average="binary", zero_division=0)
            scalars.update(precision=float(p), recall=float(r), f1=float(f))
    else:
        predicted = out.argmax(1)
    labels = list(range(len(classes) if classes else int(max(truth.max(), predicted.max())) + 1))
    names = [str(c) for c in classes] if classes else [str(i) for i in labels]
    p, r, f, _ = skm.precision_recall_fscore_support(truth, predicted, labels=labels, average="macro",
                                                     zero_division=0)
    scalars.update(macro_precision=float(p), macro_recall=float(r), macro_f1=float(f))
    details = {
        "per_class": skm.classification_report(truth, predicted, labels=labels, target_names=names,
                                               output_dict=True, zero_division=0),
        "confusion_matrix": {"classes": names,
                             "matrix": skm.confusion_matrix(truth, predicted, labels=labels).tolist()},
    }
    return scalars, details


def summarize(rows: list[dict]) -> dict:
    """mean and std (sample std, 0 for a single run) of every scalar over seeds or folds."""
    keys = rows[0].keys() if rows else ()
    out = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=float)
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return out


def predicted(task: str, outputs: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """A model's test predictions, compact: class indices as int16 (labels for binary, at `threshold`),
    values as float32."""
    out = outputs.float().cpu().numpy()
    if task == "regression":
        return out.reshape(-1).astype(np.float32)
    if task == "binary":
        return (out.reshape(-1) > logit(threshold)).astype(np.int16)
    return out.argmax(1).astype(np.int16)


def correctness(task: str, predictions: np.ndarray, truth) -> np.ndarray | None:
    """Per test example, 1 where the prediction is right (None for regression: nothing is right or wrong)."""
    if task == "regression":
        return None
    return (predictions.astype(np.int64) == np.asarray(truth).astype(np.int64).reshape(-1)).astype(np.uint8)
