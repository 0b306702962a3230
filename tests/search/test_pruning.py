"""Pruning lives in the objective: a real Optuna pruner stops a hopeless trial early, and a
diverging trial ends as pruned with its reason recorded."""

from __future__ import annotations

import optuna
import pytest
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.search.objective import Objective
from anncnn_tune.search.spec import spec_from_dict
from anncnn_tune.search.study import make_pruner
from anncnn_tune.training.fit import DeviceData, RunOptions

RAW = {
    "dataset": "digits",
    "model": "ann",
    "metric": "val_accuracy",
    "epochs": 6,
    "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    "params": {"lr": {"type": "float", "low": 1.0e-6, "high": 1.0e4, "log": True},
               "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
               "width": 64, "layers": 1, "batch_size": 64},
}


@pytest.fixture(scope="module")
def setup():
    spec = spec_from_dict(RAW, source="test", name="prune-test")
    splits = load_dataset("digits")
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    objective = Objective(spec, data, splits.input_shape, splits.out_dim, RunOptions())
    return spec, objective


def test_median_pruner_stops_a_hopeless_trial(setup):
    spec, objective = setup
    study = optuna.create_study(direction=spec.direction, pruner=make_pruner(spec))
    for _ in range(2):
        study.enqueue_trial({"lr": 1e-3, "optimizer": "adam"})
    study.enqueue_trial({"lr": 1e-6, "optimizer": "sgd"})  # learns nothing in 6 epochs
    study.optimize(objective, n_trials=3)
    good, _, hopeless = study.trials
    assert good.state == optuna.trial.TrialState.COMPLETE and good.user_attrs["epochs_run"] == 6
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert hopeless.user_attrs["epochs_run"] < spec.epochs
    assert max(hopeless.intermediate_values) == hopeless.user_attrs["epochs_run"]


def test_non_finite_loss_ends_the_trial_as_pruned_with_a_reason(setup):
    spec, objective = setup
    study = optuna.create_study(direction=spec.direction)
    study.enqueue_trial({"lr": 1e4, "optimizer": "sgd"})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_reason"].startswith("non-finite training loss at epoch ")


def test_hyperband_uses_the_epoch_budget_as_max_resource():
    spec = spec_from_dict({**RAW, "pruner": {"type": "hyperband", "min_resource": 1, "reduction_factor": 3}},
                          source="test", name="hb")
    pruner = make_pruner(spec)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._max_resource == spec.epochs


def test_completed_trial_records_what_compare_needs(setup):
    spec, objective = setup
    study = optuna.create_study(direction=spec.direction)
    study.enqueue_trial({"lr": 3e-3, "optimizer": "adam"})
    study.optimize(objective, n_trials=1)
    attrs = study.trials[0].user_attrs
    assert {"n_params", "epochs_run", "best_epoch", "train_seconds", "samples_per_second", "device", "seed",
            "history"} <= set(attrs)
    assert attrs["n_params"] == 64 * 64 + 64 + 64 * 10 + 10
    assert attrs["device"] == "cpu" and len(attrs["history"]) == attrs["epochs_run"]
    best = max(row["val_accuracy"] for row in attrs["history"])
    assert study.trials[0].value == pytest.approx(best)
