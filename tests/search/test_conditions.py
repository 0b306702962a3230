"""Conditional parameters (`when`): validated like the rest of a study file, stored and read back,
suggested only where they apply, and required of a baseline only where they apply to it."""

from __future__ import annotations

import optuna
import pytest
import yaml

from anncnn_tune.errors import UserError
from anncnn_tune.search import spec as spec_mod

SGD = {"type": "categorical", "choices": ["adam", "sgd"]}
RAW = {
    "dataset": "digits",
    "model": "ann",
    "metric": "val_accuracy",
    "epochs": 2,
    "params": {
        "layers": {"type": "int", "low": 1, "high": 3},
        "shrink": {"type": "float", "low": 0.25, "high": 1.0},  # declared: only when layers >= 2
        "optimizer": SGD,
        "momentum": {"type": "float", "low": 0.8, "high": 0.99},  # declared: only when optimizer = sgd
        "nesterov": {"type": "categorical", "choices": [False, True]},  # declared: only when optimizer = sgd
        "lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2, "when": {"optimizer": "sgd"}},
        "weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True, "when": {"layers": {"low": 2}}},
        "batch_size": 64,
    },
}


def spec_of(raw) -> spec_mod.Spec:
    return spec_mod.spec_from_dict(yaml.safe_load(yaml.safe_dump(raw)), source="s.yaml", name="s")


def with_param(name, value, raw=RAW):
    return {**raw, "params": {**raw["params"], name: value}}


def one_line_error(raw) -> str:
    with pytest.raises(UserError) as info:
        spec_of(raw)
    text = str(info.value)
    assert "\n" not in text and text.startswith("s.yaml")
    return text


LR = {"type": "float", "low": 1.0e-3, "high": 1.0e-1}


@pytest.mark.parametrize("when, key, message", [
    ({"colour": "red"}, "params.lr.when.colour", "unknown parameter"),
    ({"lr": {"low": 0.01}}, "params.lr.when.lr", "cannot depend on itself"),
    ({"dropout": {"low": 0.1}}, "params.lr.when.dropout", "neither searched nor set"),
    ({"optimizer": "rmsprop-ish"}, "params.lr.when.optimizer", "rmsprop-ish"),
    ({"optimizer": "adamw"}, "params.lr.when.optimizer", "never holds (optimizer is searched over ['adam', 'sgd'])"),
    ({"optimizer": {"low": 1}}, "params.lr.when.optimizer", "needs a numeric parameter"),
    ({"layers": {"low": 4}}, "params.lr.when.layers", "never holds (layers is searched over 1..3)"),
    ({"layers": {"low": 3, "high": 2}}, "params.lr.when.layers", "never holds"),
    ({"layers": {"top": 3}}, "params.lr.when.layers", "unknown key 'top'"),
    ({"batch_size": 32}, "params.lr.when.batch_size", "never holds (batch_size is fixed at 64)"),
    ({"optimizer": []}, "params.lr.when.optimizer", "at least one value"),
    ({}, "params.lr.when", "at least one parameter"),
    ("sgd", "params.lr.when", "must be a mapping"),
])
def test_a_bad_condition_is_one_line_naming_the_key(when, key, message):
    text = one_line_error(with_param("lr", {**LR, "when": when}))
    assert f"s.yaml.{key}" in text and message in text


def test_a_cycle_between_two_parameters_names_both():
    raw = with_param("lr", {**LR, "when": {"dropout": {"low": 0.1}}},
                     with_param("dropout", {"type": "float", "low": 0.0, "high": 0.5, "when": {"lr": {"high": 0.05}}}))
    text = one_line_error(raw)
    assert "s.yaml.params" in text and "cycle" in text and "lr" in text and "dropout" in text


def test_a_cycle_through_a_declared_condition_is_found():
    # momentum is declared only when optimizer = sgd; the file makes optimizer depend on momentum.
    text = one_line_error(with_param("optimizer", {**SGD, "when": {"momentum": {"low": 0.9}}}))
    assert "cycle" in text and "optimizer" in text and "momentum" in text


def test_when_applies_to_searched_parameters_only():
    text = one_line_error(with_param("lr", 0.01) | {"params": {**RAW["params"], "lr": {"when": {"optimizer": "sgd"}}}})
    assert "s.yaml.params.lr.type" in text


def test_conditions_come_before_their_dependants():
    raw = {**RAW, "params": {"label_smoothing": RAW["params"]["label_smoothing"], "momentum": RAW["params"]["momentum"],
                             "optimizer": SGD}}
    assert list(spec_of(raw).space) == ["optimizer", "label_smoothing", "momentum"]


def test_to_dict_round_trips_when():
    raw = with_param("dropout", {"type": "float", "low": 0.0, "high": 0.5,
                                 "when": {"optimizer": ["adam", "sgd"], "layers": {"low": 1, "high": 2}}})
    spec = spec_of(raw)
    stored = spec.to_dict()
    assert stored["params"]["label_smoothing"]["when"] == {"optimizer": "sgd"}
    assert stored["params"]["weight_decay"]["when"] == {"layers": {"low": 2}}
    assert stored["params"]["dropout"]["when"] == {"optimizer": ["adam", "sgd"], "layers": {"low": 1, "high": 2}}
    assert "when" not in stored["params"]["momentum"]  # a declared condition is the declaration's, not stored
    again = spec_mod.spec_from_dict(yaml.safe_load(yaml.safe_dump(stored)), source="stored", name="s")
    assert again.to_dict() == stored
    assert {n: again.space[n].when for n in again.space} == {n: spec.space[n].when for n in spec.space}


def test_suggest_skips_inactive_parameters():
    spec = spec_of(RAW)
    # FixedTrial raises for a name it was not given, so any inactive parameter asked for would fail here.
    trial = optuna.trial.FixedTrial({"layers": 1, "optimizer": "adam", "lr": 0.01})
    params = spec_mod.suggest(spec, trial)
    assert set(trial.params) == {"layers", "optimizer", "lr"}
    # The inactive ones keep their defaults in the full dict the builder reads.
    assert params["momentum"] == 0.9 and params["nesterov"] is False and params["shrink"] == 0.5
    assert params["label_smoothing"] == 0.0 and params["weight_decay"] == 0.0

    trial = optuna.trial.FixedTrial({"layers": 2, "shrink": 0.5, "optimizer": "sgd", "momentum": 0.95,
                                     "nesterov": True, "lr": 0.01, "label_smoothing": 0.1, "weight_decay": 1e-4})
    params = spec_mod.suggest(spec, trial)
    assert set(trial.params) == set(spec.space)
    assert params["momentum"] == 0.95 and params["nesterov"] is True and params["label_smoothing"] == 0.1


def test_a_condition_on_a_skipped_parameter_does_not_hold():
    # weight_decay reads momentum, which applies only to sgd: with adam, momentum is skipped, and its
    # default (0.9, inside the condition) must not switch weight_decay on.
    raw = with_param("weight_decay", {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True,
                                      "when": {"momentum": {"low": 0.85}}})
    spec = spec_of(raw)
    trial = optuna.trial.FixedTrial({"layers": 1, "optimizer": "adam", "lr": 0.01})
    spec_mod.suggest(spec, trial)
    assert "weight_decay" not in trial.params
    trial = optuna.trial.FixedTrial({"layers": 1, "optimizer": "sgd", "momentum": 0.9, "nesterov": False, "lr": 0.01,
                                     "label_smoothing": 0.0, "weight_decay": 1e-4})
    spec_mod.suggest(spec, trial)
    assert trial.params["weight_decay"] == 1e-4
    # ... and a baseline with adam need not give it.
    spec_of({**raw, "baselines": [{"name": "adam", "params": {"layers": 1, "optimizer": "adam", "lr": 0.01}}]})


def test_baselines_omit_inactive_parameters_and_give_active_ones():
    ok = [{"name": "adam-1", "params": {"layers": 1, "optimizer": "adam", "lr": 0.01}},
          {"name": "sgd-2", "params": {"layers": 2, "shrink": 0.5, "optimizer": "sgd", "momentum": 0.9, "nesterov": True,
                                       "lr": 0.01, "label_smoothing": 0.0, "weight_decay": 1e-4}},
          # an inactive value may still be given (older baselines wrote every parameter)
          {"name": "adam-verbose", "params": {"layers": 1, "shrink": 0.5, "optimizer": "adam", "momentum": 0.9,
                                              "lr": 0.01}}]
    assert [b["name"] for b in spec_of({**RAW, "baselines": ok}).baselines] == ["adam-1", "sgd-2", "adam-verbose"]
    for params, missing in [({"layers": 2, "optimizer": "adam", "lr": 0.01, "weight_decay": 1e-4}, "shrink"),
                            ({"layers": 1, "optimizer": "sgd", "nesterov": False, "lr": 0.01,
                              "label_smoothing": 0.0}, "momentum"),
                            ({"layers": 1, "optimizer": "sgd", "momentum": 0.9, "nesterov": False, "lr": 0.01},
                             "label_smoothing"),
                            ({"layers": 2, "shrink": 0.5, "optimizer": "adam", "lr": 0.01}, "weight_decay")]:
        text = one_line_error({**RAW, "baselines": [{"name": "b", "params": params}]})
        assert "s.yaml.baselines[0].params" in text and f"missing searchable parameter {missing!r}" in text


FASTCNN = {
    "dataset": "cifar10",
    "model": "fastcnn",
    "metric": "val_accuracy",
    "epochs": 2,
    "params": {"width": {"type": "int", "low": 16, "high": 64, "log": True},
               "depth": {"type": "int", "low": 1, "high": 2},
               "lr": {"type": "float", "low": 1.0e-3, "high": 1.0, "log": True},
               "batch_size": 256},
}
NOTEBOOK_CNN = {"name": "notebook-cnn", "model": "cnn",
                "params": {"blocks": 2, "filters": 32, "head_layers": 0, "lr": 1.0e-2, "batch_size": 256}}


def test_a_notebook_cnn_baseline_loads_in_a_fastcnn_study():
    spec = spec_of({**FASTCNN, "baselines": [NOTEBOOK_CNN]})
    (baseline,) = spec.baselines
    assert baseline["model"] == "cnn" and spec.baseline_model("notebook-cnn") == "cnn"
    assert spec.to_dict()["baselines"][0]["model"] == "cnn"
    # Its trial is the notebook CNN's, trained by its own recipe: nothing is suggested (it lies outside
    # the space the sampler models), every parameter is as written or the cnn family's default.
    trial = optuna.trial.FixedTrial({})
    params = spec_mod.suggest(spec, trial, baseline="notebook-cnn")
    assert trial.params == {}
    assert params["blocks"] == 2 and params["head_layers"] == 0 and "width" not in params
    assert params["lr"] == NOTEBOOK_CNN["params"]["lr"]
    # What it leaves out takes the cnn family's defaults, not the study's space or fixed values.
    no_lr = {**NOTEBOOK_CNN, "params": {k: v for k, v in NOTEBOOK_CNN["params"].items() if k != "lr"}}
    spec = spec_of({**FASTCNN, "baselines": [no_lr]})
    assert spec_mod.suggest(spec, optuna.trial.FixedTrial({}), baseline="notebook-cnn")["lr"] == 1.0e-3


def test_an_ann_baseline_is_refused_in_a_fastcnn_study():
    mlp = {"name": "mlp", "model": "ann", "params": {"layers": 1, "width": 64, "lr": 1.0e-2}}
    text = one_line_error({**FASTCNN, "baselines": [mlp]})
    assert "s.yaml.baselines[0].model must be a family on the study's side (cnn, fastcnn), got 'ann'" in text


def active_names(spec: spec_mod.Spec, stored: dict) -> set[str]:
    """The searched parameters that apply to a trial whose stored values are `stored`, decided in the
    space's order from the study's fixed values and the declarations' defaults."""
    decided = {**spec.family.defaults(), **spec.fixed}
    active: set[str] = set()
    for name in spec.space:
        parents = spec.conditions(name)
        if all(c.name not in spec.space or c.name in active for c in parents) and all(c.holds(decided)
                                                                                     for c in parents):
            active.add(name)
            decided[name] = stored.get(name)
    return active


def test_a_tpe_study_stores_only_the_parameters_that_applied(tmp_path):
    """A real group-TPE search of a conditional space through the public API: every trial's stored
    parameters are exactly the active ones (no inactive value, no active one missing)."""
    import anncnn_tune

    raw = {**RAW, "epochs": 1, "subset": 200, "seed": 3,
           "sampler": {"type": "tpe", "multivariate": True, "group": True, "n_startup_trials": 4},
           "pruner": {"type": "none"},
           "baselines": [{"name": "adam-1", "params": {"layers": 1, "optimizer": "adam", "lr": 0.01}}]}
    path = tmp_path / "digits-cond.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = spec_mod.load_spec(str(path))
    result = anncnn_tune.optimize(str(path), storage=f"sqlite:///{tmp_path / 's.db'}", n_trials=8, device="cpu",
                                  threads=1, quiet=True, artifacts=str(tmp_path / "artifacts"))
    trials = [t for t in result.study.trials if t.state.is_finished()]
    assert len(trials) == 8
    for t in trials:
        assert set(t.params) == active_names(spec, t.params), (t.number, t.params)
    # The space's conditions were exercised both ways, so the check above said something.
    assert {t.params["optimizer"] for t in trials} == {"adam", "sgd"}
    assert {t.params["layers"] >= 2 for t in trials} == {True, False}
