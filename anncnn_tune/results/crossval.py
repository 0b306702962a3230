"""K-fold cross-validation of a run file's configuration on train+validation (never the test split)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from anncnn_tune.errors import UserError
from anncnn_tune.results.export import Run
from anncnn_tune.results.refit import train_once
from anncnn_tune.results.scoring import score, summarize
from anncnn_tune.training.fit import DeviceData, RunOptions, predict


def cross_validate(run: Run, splits, k: int, device: torch.device, options: RunOptions, log=None) -> dict:
    """K-fold CV on train+validation: each fold's model is scored on its held-out fold, never on test.

    The normalisation statistics stay the training split's (as in the search); they are a
    per-channel mean and std, so the leak into held-out folds is negligible and keeps every
    fold's inputs identical to what the tuned model saw.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    splitter = (KFold if splits.task == "regression" else StratifiedKFold)(n_splits=k, shuffle=True,
                                                                             random_state=run.seed)
    try:
        folds = list(splitter.split(x, y))
    except ValueError as exc:
        raise UserError(f"--cv {k}: {exc}") from None
    rows, histories = [], []
    for i, (train_index, held_index) in enumerate(folds):
        fold = replace(splits, x_train=x[train_index], y_train=y[train_index], x_val=x[held_index],
                       y_val=y[held_index])
        data = DeviceData.from_splits(fold, device)
        model, result = train_once(run, fold, data, run.seed, options, log, f"fold {i + 1}/{k}: ")
        scalars, _ = score(splits.task, predict(model, data, data.x_val, options), data.y_val, splits.classes)
        rows.append({"fold": i, **scalars})
        histories.append(result.history)
    return {"k": k, "folds": rows, "summary": summarize([{k_: v for k_, v in r.items() if k_ != "fold"}
                                                          for r in rows]), "histories": histories}
