"""`anncnn-tune reference --study NAME`: a classical model beside the retrained net, on the same splits.

Histogram gradient boosting for tables, logistic regression on the pixels for images: the honest
bar a network has to clear. The reference mirrors the net's own path step by step:

- search: on the study's train split, judged by the study's metric on its validation split. Tables
  get a TPE search (Optuna) over gradient boosting's usual knobs with as many trials as the net's
  search finished (TRIALS_BOUNDS apply; --trials overrides), each trial stopping its boosting
  rounds when the validation loss has not improved for PATIENCE rounds (the net's patience); images
  get a small grid of logistic regression's C (one fit of 784+ features costs minutes on a CPU).
- refit: the chosen setting, with the number of boosting rounds the search stopped at, on
  train+validation, as `retrain` refits the net (no early stopping: no validation split is left).
- test: scored once per seed, with the same scoring code as the net's retrain (results/scoring),
  with as many seeds as the net's retrain (at least MIN_SEEDS), so `compare` can put an interval
  on the difference. A setting without randomness (all features at each split, or logistic
  regression) gives the same model for every seed: fitted once, and the entry says so.

The entry is recorded on the study (records.write_reference, its one home), so `compare` shows it
and writes nothing. The study must have been retrained first: the reference's seeds and its one
test scoring stand beside the net's.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass

import numpy as np

from anncnn_tune.data import load_dataset
from anncnn_tune.data.source import source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.results.export import load_stored_study
from anncnn_tune.results.scoring import correctness, score
from anncnn_tune.service.records import StudyRecord, encode_correct, is_maximize, write_reference
from anncnn_tune.service.storage import mask

TABLE_MODEL = "histogram gradient boosting"
IMAGE_GRID = {"C": (0.01, 0.1, 1.0)}
TRIALS_BOUNDS = (10, 200)  # the net's finished trials, clamped: a few trials tune nothing, many cost minutes
MIN_SEEDS = 3  # an interval over seeds needs at least 2; 3 as the benchmarks use
MAX_ROUNDS = 2000  # boosting rounds a trial may use; early stopping on validation ends it sooner
PATIENCE = 20  # rounds without a better validation loss before a trial stops
_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before they become logits


@dataclass(frozen=True)
class Budget:
    """How much search the reference gets, and where that number came from (said in the output)."""

    trials: int
    seeds: int
    source: str


def _space(trial, task: str) -> dict:
    """Gradient boosting's search space (the ranges tabular benchmarks tune it over)."""
    setting = {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 256, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.3, 1.0),
    }
    if task != "regression":
        setting["class_weight"] = trial.suggest_categorical("class_weight", [None, "balanced"])
    return setting


def _table_model(task: str, setting: dict, seed: int, rounds: int | None):
    """rounds None: a search trial (early stopping on the validation split passed to fit); else a refit."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    stopping = {"early_stopping": True, "n_iter_no_change": PATIENCE} if rounds is None else {"early_stopping": False}
    return cls(max_iter=rounds or MAX_ROUNDS, random_state=seed, **stopping, **setting)


def _image_model(task: str, setting: dict):
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        return Ridge(alpha=1.0 / setting["C"])
    return LogisticRegression(C=setting["C"], max_iter=300)


def outputs(task: str, model, x) -> np.ndarray:
    """A fitted scikit-learn model's outputs in the net's form (as_outputs)."""
    return as_outputs(task, model.predict(x) if task == "regression" else model.predict_proba(x))


def as_outputs(task: str, predicted: np.ndarray) -> np.ndarray:
    """Predictions in the net's output form, so results.scoring scores any model as it scores the net:
    values for regression; from class probabilities (n, classes), the logit of the positive class
    for binary and log-probabilities for several classes."""
    if task == "regression":
        return np.asarray(predicted, dtype=np.float32).reshape(-1)
    proba = np.clip(np.asarray(predicted, dtype=np.float64), _EPS, 1 - _EPS)
    if task == "binary":
        return (np.log(proba[:, 1]) - np.log(proba[:, 0])).astype(np.float32)
    return np.log(proba).astype(np.float32)


def score_outputs(task: str, out: np.ndarray, y: np.ndarray, classes) -> dict:
    """The scalar metrics results.scoring gives the net, for outputs in its form (as_outputs)."""
    import torch

    scalars, _ = score(task, torch.from_numpy(out), torch.from_numpy(np.ascontiguousarray(y)), classes)
    return scalars


def _scores(task: str, model, x, y, classes) -> tuple[dict, np.ndarray]:
    """(the scalar metrics results.scoring gives the net, the outputs they came from)."""
    out = outputs(task, model, x)
    return score_outputs(task, out, y, classes), out


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def _retrained(record: StudyRecord, study_name: str) -> dict:
    """The net's most recent retrain on this study: the reference stands beside it."""
    if not record.test_metrics:
        raise UserError(f"study {study_name!r} has no retrained trial yet; run `anncnn-tune export --study "
                        f"{study_name} -o run.yaml` and `anncnn-tune retrain run.yaml --seeds 3` first (the "
                        "reference uses its seeds and stands beside its test score)")
    return max(record.test_metrics.values(), key=lambda entry: entry.get("retrained_at", ""))


def plan(study, record: StudyRecord, trials: int | None, seeds: int | None) -> Budget:
    """The reference's budget: the net's finished trials and retrain seeds, unless given."""
    from optuna.trial import TrialState

    if trials is not None and trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    net = _retrained(record, study.study_name)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))
    low, high = TRIALS_BOUNDS
    if trials is None:
        trials = min(max(finished, low), high)
        source = f"as many as the net's {finished} finished trials" if low <= finished <= high else \
            f"the net's {finished} finished trials, clamped to {low}..{high}"
    else:
        source = f"--trials {trials}; the net finished {finished}"
    net_seeds = int(net.get("seeds") or 1)
    return Budget(trials=trials, seeds=seeds if seeds is not None else max(net_seeds, MIN_SEEDS), source=source)


def _search_table(splits, key: str, maximize: bool, budget: Budget, seed: int, log) -> tuple[dict, float, int]:
    """(best setting, its validation value, its boosting rounds) of a TPE search on the validation split."""
    import optuna

    def objective(trial) -> float:
        setting = _space(trial, splits.task)
        model = _table_model(splits.task, setting, seed, None)
        model.fit(splits.x_train, splits.y_train, X_val=splits.x_val, y_val=splits.y_val)
        val, _ = _scores(splits.task, model, splits.x_val, splits.y_val, splits.classes)
        rounds[trial.number] = int(model.n_iter_)
        log(f"reference trial {trial.number}: validation {key} {val[key]:.4f} ({model.n_iter_} rounds)")
        return val[key]

    rounds: dict[int, int] = {}  # boosting rounds each trial ran to (its early stopping), by trial number
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its own lines say each trial; Optuna's would repeat them
    try:
        search = optuna.create_study(direction="maximize" if maximize else "minimize",
                                     sampler=optuna.samplers.TPESampler(seed=seed))
        search.optimize(objective, n_trials=budget.trials)
    finally:
        optuna.logging.set_verbosity(verbosity)  # a notebook's setting stays as it was
    best = search.best_trial
    setting = {**_space(optuna.trial.FixedTrial(best.params), splits.task)}
    return setting, float(best.value), rounds[best.number]


def _search_grid(splits, x_train, x_val, key: str, maximize: bool, log) -> tuple[dict, float, int]:
    tried = []
    for c in IMAGE_GRID["C"]:
        setting = {"C": c}
        model = _image_model(splits.task, setting).fit(x_train, splits.y_train)
        val, _ = _scores(splits.task, model, x_val, splits.y_val, splits.classes)
        tried.append((val[key], setting))
        log(f"reference {setting}: validation {key} {val[key]:.4f}")
    best_val, best = (max if maximize else min)(tried, key=lambda item: item[0])
    return best, best_val, 0


def _check_metric(splits, key: str, metric: str) -> None:
    """The study's metric must be one the net's scoring reports for this task (before any fit)."""
    import torch

    n = 2
    fake = torch.zeros(n) if splits.task in ("regression", "binary") else torch.zeros(n, len(splits.classes or (0, 1)))
    target = torch.zeros(n) if splits.task == "regression" else torch.zeros(n, dtype=torch.int64)
    reported, _ = score(splits.task, fake, target, splits.classes)
    if key not in reported:
        raise UserError(f"the reference cannot score {metric}; it reports {', '.join(reported)}")


def fit_reference(study_name: str, storage: str, data_dir: str | None = None, trials: int | None = None,
                  seeds: int | None = None, log=print) -> dict:
    """Tune, refit and score the classical reference of a study, record it there, and return the entry."""
    study = load_stored_study(storage, study_name, writable=True)  # it records the reference
    record = StudyRecord.read(study)
    budget = plan(study, record, trials, seeds)
    spec = record.spec
    dataset = source_from_dict(spec["dataset"]) if isinstance(spec["dataset"], dict) else spec["dataset"]
    splits = load_dataset(dataset, data_dir=data_dir, seed=record.split_seed(0), subset=spec.get("subset"))
    if splits.fingerprint != record.fingerprint:
        raise UserError(f"the {splits.key} files here are not the ones study {study_name!r} in {mask(storage)} "
                        "used; pass the original --data-dir")
    key = spec["metric"].removeprefix("val_")
    _check_metric(splits, key, spec["metric"])
    maximize = is_maximize(study)
    seed = int(spec.get("seed") or 0)
    started = time.perf_counter()
    if splits.kind == "image":
        x_train, x_val, x_test = _flat(splits.x_train), _flat(splits.x_val), _flat(splits.x_test)
        scale = float(np.abs(x_train).max()) or 1.0  # pixels to [0, 1]: logistic regression converges on scaled inputs
        x_train, x_val, x_test = x_train / scale, x_val / scale, x_test / scale
        best, best_val, rounds = _search_grid(splits, x_train, x_val, key, maximize, log)
        search = {"method": "grid", "trials": len(IMAGE_GRID["C"]), "budget": "a fixed grid of C"}
        name = "logistic regression on pixels" if splits.task != "regression" else "ridge on pixels"
    else:
        x_train, x_val, x_test = splits.x_train, splits.x_val, splits.x_test
        best, best_val, rounds = _search_table(splits, key, maximize, budget, seed, log)
        search = {"method": "tpe", "trials": budget.trials, "budget": budget.source}
        name = TABLE_MODEL
    search["seconds"] = round(time.perf_counter() - started, 3)
    x_all = np.concatenate([x_train, x_val])
    y_all = np.concatenate([splits.y_train, splits.y_val])
    random = splits.kind != "image" and best.get("max_features", 1.0) < 1.0
    per_seed, correct = [], []
    for k in range(budget.seeds if random else 1):
        model = (_table_model(splits.task, best, seed + k, rounds) if splits.kind != "image"
                 else _image_model(splits.task, best))
        fit_started = time.perf_counter()
        model.fit(x_all, y_all)
        seconds = time.perf_counter() - fit_started
        scalars, out = _scores(splits.task, model, x_test, splits.y_test, splits.classes)
        per_seed.append({"seed": seed + k, "train_seconds": round(seconds, 3), **scalars})
        correct.append(correctness(splits.task, _labels(splits.task, out), splits.y_test))
        log(f"reference seed {seed + k}: test {key} {scalars[key]:.4f} ({len(y_all)} train+val rows, {seconds:.1f}s)")
    if not random:  # the same model for every seed: one fit stands for them all
        per_seed = [{**per_seed[0], "seed": seed + k} for k in range(budget.seeds)]
        correct = correct * budget.seeds
    values = [row[key] for row in per_seed]
    entry = {"model": name, "metric": key, "setting": {**best, **({"max_iter": rounds} if rounds else {})},
             "validation": best_val, "test": float(np.mean(values)),
             "test_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
             "seeds": budget.seeds, "deterministic": not random, "per_seed_values": values,
             "test_metrics": {k: float(np.mean([row[k] for row in per_seed])) for k in per_seed[0]
                              if k not in ("seed", "train_seconds") and _finite(per_seed[0][k])},
             "correct": encode_correct(np.stack(correct)) if correct[0] is not None else None,
             "search": search, "train_seconds": per_seed[0]["train_seconds"],
             "splits": {"fingerprint": record.fingerprint, "split_seed": record.split_seed(),
                        "subset": spec.get("subset")},
             "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    write_reference(study, entry)
    return entry


def _labels(task: str, out: np.ndarray) -> np.ndarray:
    if task == "regression":
        return out
    return (out > 0).astype(np.int64) if task == "binary" else out.argmax(1)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
