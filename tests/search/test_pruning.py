"""Pruning lives in the objective: a real Optuna pruner stops a hopeless trial early, and a
diverging trial ends as pruned with its reason recorded."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.errors import UserError
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


def _objective_for(raw: dict, name: str, setup) -> tuple:
    spec = spec_from_dict(raw, source="test", name=name)
    data = setup[1].data
    splits_shape, out_dim = setup[1].input_shape, setup[1].out_dim
    return spec, Objective(spec, data, splits_shape, out_dim, RunOptions())


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


# -- cheap low rungs: a first rung below one epoch ------------------------------------------------

LOW_RUNGS = {**RAW, "epochs": 3, "pruner": {"type": "successive_halving", "min_resource": 0.111, "reduction_factor": 3}}


def test_a_fractional_min_resource_counts_steps_in_parts_of_an_epoch():
    spec = spec_from_dict({**LOW_RUNGS, "pruner": {"type": "hyperband", "min_resource": 0.111}}, source="t",
                          name="hb9")
    assert spec.steps_per_epoch == 9 and spec.partial_epochs == (1 / 9, 3 / 9)
    pruner = make_pruner(spec)
    assert (pruner._min_resource, pruner._max_resource) == (1, 27)  # 1/9 epoch .. 3 epochs, in ninths
    whole = spec_from_dict({**LOW_RUNGS, "pruner": {"type": "hyperband", "min_resource": 2}}, source="t", name="hb")
    assert whole.steps_per_epoch == 1 and whole.partial_epochs == () and make_pruner(whole)._max_resource == 3
    quarter = spec_from_dict({**LOW_RUNGS, "pruner": {"type": "successive_halving", "min_resource": 0.25,
                                                      "reduction_factor": 2}}, source="t", name="sh4")
    assert quarter.steps_per_epoch == 4 and quarter.partial_epochs == (0.25, 0.5)


@pytest.mark.parametrize("value", [0.4, 1.5, 0.0, -1, 0.0005, "a"])
def test_a_min_resource_that_is_no_whole_epoch_and_no_1_over_k_is_refused(value):
    with pytest.raises(UserError, match=r"pruner.min_resource must be a (whole number of epochs|number)"):
        spec_from_dict({**LOW_RUNGS, "pruner": {"type": "hyperband", "min_resource": value}}, source="t", name="x")


def test_the_first_rungs_judge_trials_after_part_of_the_first_epoch_and_record_what_they_trained(setup):
    spec, objective = _objective_for(LOW_RUNGS, "rungs", setup)
    study = optuna.create_study(direction=spec.direction, pruner=make_pruner(spec))
    study.enqueue_trial({"lr": 3e-3, "optimizer": "adam"})
    study.enqueue_trial({"lr": 1e-6, "optimizer": "sgd"})  # learns nothing: behind at the first rung
    study.optimize(objective, n_trials=2)
    good, hopeless = study.trials
    # Every trial reports at the same steps (ninths of an epoch): the rungs compare like with like.
    assert sorted(good.intermediate_values) == [1, 3, 9, 18, 27]
    n_train = len(objective.data.y_train)
    rows = good.user_attrs["partial_epochs"]
    assert [r["epoch"] for r in rows] == [0.111111, 0.333333]
    assert [r["samples"] for r in rows] == [64 * math.ceil(n / 64) for n in (n_train / 9, n_train / 3)]
    assert good.user_attrs["epochs_trained"] == good.user_attrs["epochs_run"] == 3
    assert hopeless.state == optuna.trial.TrialState.PRUNED and sorted(hopeless.intermediate_values) == [1]
    assert hopeless.user_attrs["epochs_run"] == 0
    assert hopeless.user_attrs["epochs_trained"] == pytest.approx(64 * math.ceil(n_train / 9 / 64) / n_train,
                                                                  abs=1e-6)
    assert [r["epoch"] for r in hopeless.user_attrs["partial_epochs"]] == [0.111111]


ON_IMAGES = {**LOW_RUNGS, "pruner": {**LOW_RUNGS["pruner"], "resource": "images"}}


def test_rungs_on_images_train_the_whole_schedule_on_nested_stratified_parts(setup):
    from anncnn_tune.search import fidelity

    data = setup[1].data
    ninth, third = (fidelity.part_of_training_rows(data, f, seed=0) for f in (1 / 9, 1 / 3))
    assert set(ninth.tolist()) < set(third.tolist())  # a promoted trial trains on more of the same images
    assert torch.equal(ninth, fidelity.part_of_training_rows(data, 1 / 9, seed=0))  # the same for every trial
    counts, part_counts = torch.bincount(data.y_train), torch.bincount(data.y_train[third], minlength=10)
    assert torch.all(part_counts == torch.ceil(counts / 3))  # every class keeps its share


def test_rungs_on_images_judge_finished_schedules_and_leave_the_full_run_unpruned(setup):
    spec, objective = _objective_for(ON_IMAGES, "image-rungs", setup)
    assert spec.rungs_on_images and spec.partial_epochs == pytest.approx((1 / 9, 1 / 3))
    study = optuna.create_study(direction=spec.direction, pruner=make_pruner(spec))
    study.enqueue_trial({"lr": 3e-3, "optimizer": "adam"})
    study.enqueue_trial({"lr": 1e-6, "optimizer": "sgd"})  # learns nothing: behind at the first rung
    study.optimize(objective, n_trials=2)
    good, hopeless = study.trials
    n_train = len(objective.data.y_train)
    rows = good.user_attrs["partial_epochs"]
    assert [r["epoch"] for r in rows] == [0.111111, 0.333333]
    assert [r["images"] for r in rows] == [len(fidelity_rows) for fidelity_rows in
                                           (_part(objective, 1 / 9), _part(objective, 1 / 3))]
    assert rows[0]["images"] < n_train / 8
    # Each rung trained the whole 3-epoch schedule on its part: the resource is the parts' epochs plus the run's.
    assert good.user_attrs["epochs_trained"] == pytest.approx(3 * (1 / 9 + 1 / 3) + 3, abs=0.01)
    assert sorted(good.intermediate_values) == [1, 3, 9, 18, 27]
    assert hopeless.state == optuna.trial.TrialState.PRUNED and sorted(hopeless.intermediate_values) == [1]
    assert hopeless.user_attrs["partial_epochs"][0]["images"] == rows[0]["images"]


def test_with_rungs_on_images_the_full_run_is_reported_but_never_judged():
    from anncnn_tune.search.objective import TrialObserver

    class AlwaysPrune:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append(step)

        def should_prune(self):
            return True

    trial = AlwaysPrune()
    observer = TrialObserver(trial, 3, 9, None, None, None, prunes_full_run=False)
    observer.on_value(1, 0.5)
    observer.on_value(2, 0.6)  # a schedule in progress is not compared with finished ones
    with pytest.raises(optuna.TrialPruned, match="after training on 0.333 of the training images"):
        observer.on_value(1 / 3, 0.4)
    assert trial.reported == [9, 18, 3]


def _part(objective, fraction):
    from anncnn_tune.search import fidelity

    return fidelity.part_of_training_rows(objective.data, fraction, seed=objective.spec.seed)


def test_rungs_on_images_need_a_first_rung_below_one_epoch():
    with pytest.raises(UserError, match=r"pruner.resource: images .* min_resource must be a fraction"):
        spec_from_dict({**ON_IMAGES, "pruner": {"type": "successive_halving", "min_resource": 1,
                                                "resource": "images"}}, source="t", name="x")
    with pytest.raises(UserError, match=r"pruner.resource must be one of"):
        spec_from_dict({**ON_IMAGES, "pruner": {**ON_IMAGES["pruner"], "resource": "pixels"}}, source="t", name="x")


def test_rungs_on_images_are_successive_halvings_only():
    # A Hyperband bracket that judges late would train its trials on every part below its first rung for nothing.
    with pytest.raises(UserError, match=r"pruner: unknown option 'resource' for hyperband"):
        spec_from_dict({**ON_IMAGES, "pruner": {"type": "hyperband", "min_resource": 0.111, "resource": "images"}},
                       source="t", name="x")


def test_at_side_averages_blocks_and_keeps_uint8():
    from anncnn_tune.search import fidelity

    image = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8) * 3
    data = DeviceData("classification", "image", image, torch.tensor([0]), image.clone(), torch.tensor([0]),
                      None, None, torch.device("cpu"))
    small = fidelity.at_side(data, 4)
    expected = image.float().view(1, 1, 4, 2, 4, 2).mean(dim=(3, 5)).round().to(torch.uint8)
    assert small.x_train.dtype == torch.uint8 and torch.equal(small.x_train, expected)
    assert torch.equal(small.x_val, expected) and torch.equal(data.x_train, image)  # the full-size data untouched


LOW_FIRST_RUNG = {**ON_IMAGES, "pruner": {**ON_IMAGES["pruner"], "first_rung_side": 4}}


def test_a_first_rung_at_a_lower_side_trains_on_the_same_images_downsampled_and_records_its_side(setup):
    from anncnn_tune.search import fidelity
    from anncnn_tune.training import models

    spec, objective = _objective_for(LOW_FIRST_RUNG, "small-first-rung", setup)
    assert spec.first_rung_side == 4 and spec.partial_epochs == pytest.approx((1 / 9, 1 / 3))
    study = optuna.create_study(direction=spec.direction, pruner=make_pruner(spec))
    study.enqueue_trial({"lr": 3e-3, "optimizer": "adam"})
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    first, second = trial.user_attrs["partial_epochs"]
    assert first["side"] == 4 and "side" not in second  # the later rung trains at the images' own 8x8
    assert first["images"] < second["images"]
    # The first rung is the same training as train_rung on the 4x4 images with a model built for them.
    params = {**spec.fixed, **trial.params}
    again = fidelity.train_rung(lambda: models.build("ann", params, (1, 4, 4), 10), fidelity.at_side(objective.data, 4),
                                params, fraction=1 / 9, epochs=spec.epochs, metric=spec.metric,
                                seed=trial.user_attrs["seed"], data_seed=spec.seed, options=RunOptions())
    assert again.value == pytest.approx(first["val_accuracy"], abs=1e-6)  # the record keeps 6 digits
    full = fidelity.train_rung(lambda: models.build("ann", params, (1, 8, 8), 10), objective.data, params,
                               fraction=1 / 9, epochs=spec.epochs, metric=spec.metric,
                               seed=trial.user_attrs["seed"], data_seed=spec.seed, options=RunOptions())
    assert full.value != pytest.approx(first["val_accuracy"], abs=1e-6)  # not the full-size rung under another name


@pytest.mark.parametrize("pruner, raw, message", [
    ({**LOW_RUNGS["pruner"], "first_rung_side": 4}, {}, "add resource: images, or drop first_rung_side"),
    ({**ON_IMAGES["pruner"], "first_rung_side": -1}, {}, "first_rung_side"),
    ({**ON_IMAGES["pruner"], "first_rung_side": 4},
     {"dataset": "churn", "metric": "val_accuracy"}, "downsamples images, 'churn' is tabular: drop it"),
])
def test_a_first_rung_side_that_cannot_apply_is_refused(pruner, raw, message):
    with pytest.raises(UserError, match=message):
        spec_from_dict({**ON_IMAGES, **raw, "pruner": pruner}, source="t", name="x")


def test_a_first_rung_side_not_below_the_images_own_is_refused_before_anything_is_written(tmp_path):
    import yaml
    from helpers import run_cli

    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**LOW_FIRST_RUNG, "pruner": {**LOW_FIRST_RUNG["pruner"], "first_rung_side": 8}}))
    result = run_cli("optimize", "--study", str(study), "--n-trials", "1", "--storage", "sqlite:///s.db",
                     cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {study}.pruner.first_rung_side: 8 is not below the images' own side (8x8 in digits); give a "
        "smaller side, or 0 to train every rung at their own size")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
