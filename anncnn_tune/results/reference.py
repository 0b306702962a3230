"""`anncnn-tune reference --study NAME`: a classical model beside the networks, on the same splits.

Histogram gradient boosting for tables, logistic regression on the pixels for images: the honest
bar a network has to clear. Tuned lightly on the study's own validation split (a small grid, the
value the study's metric names), refit on train+validation with the chosen setting, and scored
once on the study's test split, the way `retrain` scores the networks. The result is recorded on
the study (records.write_reference), so `compare` shows it while writing nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time

import numpy as np

from anncnn_tune.data import load_dataset
from anncnn_tune.data.source import source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.results.export import load_stored_study
from anncnn_tune.service.records import StudyRecord, is_maximize, write_reference
from anncnn_tune.service.storage import mask

# A light grid: a few settings, so a reference costs seconds to minutes on a CPU.
TABLE_GRID = {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63)}
IMAGE_GRID = {"C": (0.01, 0.1, 1.0)}


def _model(task: str, kind: str, setting: dict, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if kind == "image":
        if task == "regression":
            return Ridge(alpha=1.0 / setting["C"])
        return LogisticRegression(C=setting["C"], max_iter=300)
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return cls(max_iter=300, early_stopping=False, random_state=seed, **setting)


def _score(task: str, model, x, y) -> dict:
    from sklearn import metrics as skm

    if task == "regression":
        pred = model.predict(x)
        return {"mse": float(skm.mean_squared_error(y, pred)), "r2": float(skm.r2_score(y, pred))}
    pred = model.predict(x)
    out = {"accuracy": float(skm.accuracy_score(y, pred)),
           "macro_f1": float(skm.f1_score(y, pred, average="macro", zero_division=0))}
    if task == "binary":
        out["roc_auc"] = float(skm.roc_auc_score(y, model.predict_proba(x)[:, 1])) if len(set(y)) == 2 else None
    return out


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def fit_reference(study_name: str, storage: str, data_dir: str | None = None, log=print) -> dict:
    """Tune, refit and score the classical reference of a study, record it there, and return the entry."""
    study = load_stored_study(storage, study_name, writable=True)  # it records the reference
    record = StudyRecord.read(study)
    spec = record.spec
    dataset = source_from_dict(spec["dataset"]) if isinstance(spec["dataset"], dict) else spec["dataset"]
    splits = load_dataset(dataset, data_dir=data_dir, seed=record.split_seed(0), subset=spec.get("subset"))
    if splits.fingerprint != record.fingerprint:
        raise UserError(f"the {splits.key} files here are not the ones study {study_name!r} in {mask(storage)} "
                        "used; pass the original --data-dir")
    key = spec["metric"].removeprefix("val_")
    maximize = is_maximize(study)
    grid = IMAGE_GRID if splits.kind == "image" else TABLE_GRID
    x_train, x_val, x_test = _flat(splits.x_train), _flat(splits.x_val), _flat(splits.x_test)
    if splits.kind == "image":  # pixels to [0, 1]-ish scale: logistic regression converges on scaled inputs
        scale = float(np.abs(x_train).max()) or 1.0
        x_train, x_val, x_test = x_train / scale, x_val / scale, x_test / scale
    seed = int(spec.get("seed") or 0)
    tried = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        model = _model(splits.task, splits.kind, setting, seed).fit(x_train, splits.y_train)
        val = _score(splits.task, model, x_val, splits.y_val)
        if key not in val:
            raise UserError(f"the reference cannot score {spec['metric']}; it reports {', '.join(val)}")
        tried.append((val[key], setting))
        log(f"reference {setting}: validation {key} {val[key]:.4f}")
    best_val, best = (max if maximize else min)(tried, key=lambda item: item[0])
    started = time.perf_counter()
    final = _model(splits.task, splits.kind, best, seed).fit(np.concatenate([x_train, x_val]),
                                                              np.concatenate([splits.y_train, splits.y_val]))
    seconds = time.perf_counter() - started
    test = _score(splits.task, final, x_test, splits.y_test)
    name = ("logistic regression on pixels" if splits.task != "regression" else "ridge on pixels") \
        if splits.kind == "image" else "histogram gradient boosting"
    entry = {"model": name, "metric": key, "setting": best, "validation": best_val, "test": test[key],
             "test_metrics": test, "train_seconds": round(seconds, 3), "grid_size": len(tried),
             "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    write_reference(study, entry)
    return entry
