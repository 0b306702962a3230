"""The parameter table and the sampler/pruner table: what derives from them stays in step with them."""

from __future__ import annotations

import re

import optuna
import pytest
from helpers import REPO

from anncnn_tune.errors import UserError
from anncnn_tune.search import samplers
from anncnn_tune.search import spec as spec_mod
from anncnn_tune.training import families as F
from anncnn_tune.training import fit
from anncnn_tune.training import params as P
from anncnn_tune.training.families.layers import ACTIVATIONS

README = REPO / "README.md"


def test_readme_parameter_list_is_the_generated_one():
    text = README.read_text()
    assert F.README_BEGIN in text and F.README_END in text, "README lost the parameter-list markers"
    inside = text.split(F.README_BEGIN, 1)[1].split(F.README_END, 1)[0]
    assert inside.strip() == F.markdown().strip(), (
        "README.md's parameter list differs from training/params.py; regenerate it with "
        "`python -m anncnn_tune.training.families README.md`")


def test_write_readme_replaces_only_the_marked_part(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{F.README_BEGIN}\nstale\n{F.README_END}\n\noutro\n")
    assert F.write_readme(readme) is True and F.write_readme(readme) is False  # changed, then already current
    text = readme.read_text()
    assert text.startswith("intro\n\n") and text.endswith("\n\noutro\n") and "stale" not in text
    assert F.markdown() in text


def test_readme_lists_every_parameter_once_per_family():
    inside = README.read_text().split(F.README_BEGIN, 1)[1].split(F.README_END, 1)[0]
    named = re.findall(r"^- `(\w+)`", inside, flags=re.MULTILINE)
    assert named == [p.name for p in F.all_params()]


def test_defaults_of_fit_and_models_are_the_table():
    assert fit.TRAIN_DEFAULTS == P.defaults("train")
    assert F.get("ann").defaults() == {**P.defaults("train"), **{p.name: p.default for p in F.get("ann").params}}
    assert fit.CHOICES["optimizer"] == ("sgd", "adam", "adamw")
    assert F.get("cnn").declared()["pooling"].choices == ("max", "avg")


def test_activation_choices_are_what_the_builders_know():
    for family in F.FAMILIES.values():
        assert set(family.declared()["activation"].choices) <= set(ACTIVATIONS)


@pytest.mark.parametrize("param", F.all_params(), ids=lambda p: f"{p.family}.{p.name}")
def test_every_default_passes_its_own_check(param):
    assert param.check(param.default, "default") == param.default


def test_a_new_table_entry_reaches_validation_defaults_and_suggest(monkeypatch, tmp_path):
    """What 'two files' rests on: one entry is enough for the study file, fit's defaults and suggest."""
    extra = P.Param("warmup", "train", "int", 0, "warm-up epochs", low=0)
    monkeypatch.setattr(P, "TABLE", (*P.TABLE, extra))
    raw = {"dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 2,
           "params": {"warmup": {"type": "int", "low": 0, "high": 3}}}
    spec = spec_mod.spec_from_dict(raw, source="s.yaml", name="s")
    params = spec_mod.suggest(spec, optuna.trial.FixedTrial({"warmup": 2}))
    assert params["warmup"] == 2 and params["lr"] == 1.0e-3
    with pytest.raises(UserError, match=r"params.warmup.low must be at least 0, got -1"):
        spec_mod.spec_from_dict({**raw, "params": {"warmup": {"type": "int", "low": -1, "high": 3}}},
                                source="s.yaml", name="s")


@pytest.mark.parametrize(("value", "fragment"), [
    (float("nan"), "finite"), (float("inf"), "finite"), ("nan", "finite"), (10**30, "too large"),
    (True, "must be a number"), ([1], "must be a number"),
])
def test_number_refuses_non_finite_huge_and_non_numbers(value, fragment):
    with pytest.raises(UserError, match=fragment):
        P.number(value, "x", integer=isinstance(value, int))


@pytest.mark.parametrize(("value", "expected"), [(64, 64), (0.2, 0.2), (1.0, 1.0), ("0.5", 0.5), ("50", 50)])
def test_sizes_are_counts_or_fractions(value, expected):
    got = P.check_size(value, "subset")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("value", "fragment"), [
    (2.0, "a count is written as an integer"), (0, "positive count"), (-3, "positive count"),
    (0.0, "positive count"), (float("nan"), "finite"), (True, "positive count"),
])
def test_bad_sizes_are_refused(value, fragment):
    with pytest.raises(UserError, match=fragment):
        P.check_size(value, "subset")


def test_bools_and_ints_are_not_confused_in_choices():
    assert not P.same_value(True, 1) and P.same_value(3, 3.0) and P.same_value("adam", "adam")
    with pytest.raises(UserError, match="must be one of"):
        F.get("ann").declared()["batch_norm"].check(1, "batch_norm")


# -- samplers and pruners --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(samplers.SAMPLERS))
def test_every_sampler_builds_from_its_table_entry(kind):
    spec = spec_mod.spec_from_dict({"dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 3,
                                    "sampler": {"type": kind, "seed": 5}, "params": {"lr": 0.01}},
                                   source="s.yaml", name="s")
    assert isinstance(samplers.make_sampler(spec), optuna.samplers.BaseSampler)
    assert spec.sampler["seed"] == 5


@pytest.mark.parametrize("kind", sorted(samplers.PRUNERS))
def test_every_pruner_builds_from_its_table_entry(kind):
    spec = spec_mod.spec_from_dict({"dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 3,
                                    "pruner": kind, "params": {"lr": 0.01}}, source="s.yaml", name="s")
    assert isinstance(samplers.make_pruner(spec), optuna.pruners.BasePruner)


def test_study_module_still_exports_the_constructors():
    from anncnn_tune.search import study

    assert study.make_sampler is samplers.make_sampler and study.make_pruner is samplers.make_pruner


def test_spec_validates_sections_from_the_same_table():
    assert spec_mod.SAMPLERS == {k: set(v.options) for k, v in samplers.SAMPLERS.items()}
    assert spec_mod.PRUNERS == {k: set(v.options) for k, v in samplers.PRUNERS.items()}
