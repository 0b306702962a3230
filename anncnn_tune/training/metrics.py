"""Validation and test metrics computed on the device, so an epoch ends with one host sync.

`METRICS` maps each metric a study may optimise to its direction and the tasks it applies to.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

METRICS = {
    "val_accuracy": ("maximize", ("multiclass", "binary")),
    "val_loss": ("minimize", ("multiclass", "binary", "regression")),
    "val_roc_auc": ("maximize", ("binary",)),
    "val_f1": ("maximize", ("binary",)),
    "val_mse": ("minimize", ("regression",)),
    "val_mae": ("minimize", ("regression",)),
    # the mean of the per-class recalls: a model that predicts the majority class scores 1/classes
    "val_balanced_accuracy": ("maximize", ("multiclass", "binary")),
}


def direction(metric: str) -> str:
    return METRICS[metric][0]


def is_better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value > best if direction(metric) == "maximize" else value < best


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC with tied scores given their average rank (the value sklearn computes).

    No host sync (no torch.unique, no boolean-mask indexing: both wait for the device on CUDA):
    sort, number the runs of equal scores, average the ranks within each run by scatter-add.
    Rank sums are float64, exact for any realistic split size. NaN when one class is absent.
    """
    scores = scores.reshape(-1).float()
    weight = positive.reshape(-1).to(torch.float64)  # 1 for positives, 0 for negatives
    n = scores.numel()
    if n == 0:
        return torch.full((), float("nan"), device=scores.device)
    ordered, order = torch.sort(scores)
    starts = torch.ones(n, dtype=torch.bool, device=scores.device)
    starts[1:] = ordered[1:] != ordered[:-1]
    run = torch.cumsum(starts, 0) - 1  # run number of each sorted score
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=scores.device)
    rank_sum = torch.zeros(n, dtype=torch.float64, device=scores.device).scatter_add_(0, run, ranks)
    run_size = torch.zeros(n, dtype=torch.float64, device=scores.device).scatter_add_(0, run, torch.ones_like(ranks))
    average = (rank_sum / run_size.clamp(min=1))[run]
    n_pos = weight.sum()
    n_neg = n - n_pos
    u = (average * weight[order]).sum() - n_pos * (n_pos + 1) / 2
    auc = u / (n_pos * n_neg).clamp(min=1)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan"))).float()


def balanced_accuracy(predicted: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Mean recall over the classes present in `targets` (scikit-learn's balanced_accuracy_score), no sync."""
    targets = targets.reshape(-1).long()
    hits = torch.bincount(targets, weights=(predicted.reshape(-1) == targets).double(), minlength=n_classes)
    counts = torch.bincount(targets, minlength=n_classes).double()
    present = counts > 0
    recall = torch.where(present, hits / counts.clamp(min=1), torch.zeros_like(hits))
    return (recall.sum() / present.sum().clamp(min=1)).float()


def compute(task: str, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics for a task as 0-d device tensors (no sync); names without the val_/test_ prefix."""
    outputs = outputs.float()
    if task == "multiclass":
        predicted = outputs.argmax(1)
        return {
            "loss": F.cross_entropy(outputs, targets),
            "accuracy": (predicted == targets).float().mean(),
            "balanced_accuracy": balanced_accuracy(predicted, targets, outputs.shape[1]),
        }
    if task == "binary":
        logits = outputs.view(-1)
        truth = targets.float()
        predicted = (logits > 0).float()
        tp = (predicted * truth).sum()
        precision = tp / predicted.sum().clamp(min=1)
        recall = tp / truth.sum().clamp(min=1)
        return {
            "loss": F.binary_cross_entropy_with_logits(logits, truth),
            "accuracy": (predicted == truth).float().mean(),
            "balanced_accuracy": balanced_accuracy(predicted.long(), targets.long(), 2),
            "roc_auc": roc_auc(logits, targets),
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall).clamp(min=1e-12),
        }
    error = outputs.view(-1) - targets.float()
    mse = (error**2).mean()
    return {"loss": mse, "mse": mse, "mae": error.abs().mean()}
