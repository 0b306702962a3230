"""Study-file validation: each rule fails at load time with one line naming the file and the key."""

from __future__ import annotations

import optuna
import pytest
import yaml

from anncnn_tune.errors import UserError
from anncnn_tune.search import spec as spec_mod

GOOD = {
    "dataset": "digits",
    "model": "ann",
    "metric": "val_accuracy",
    "epochs": 3,
    "params": {
        "layers": {"type": "int", "low": 1, "high": 3},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "batch_size": 64,
    },
    "baselines": [{"name": "ref", "params": {"layers": 2, "lr": 1.0e-3, "optimizer": "adam"}}],
}


def load(tmp_path, raw) -> spec_mod.Spec:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return spec_mod.load_spec(str(path))


def with_change(path: str, value):
    """GOOD with one nested key set (value None deletes it)."""
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    node, keys = raw, path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return raw


def test_good_file_loads_with_defaults(tmp_path):
    spec = load(tmp_path, GOOD)
    assert spec.name == "custom" and spec.direction == "maximize"
    assert spec.sampler == {"type": "tpe", "multivariate": True, "group": True, "seed": 0}
    assert spec.pruner == {"type": "hyperband", "min_resource": 1, "reduction_factor": 3}
    assert set(spec.space) == {"layers", "lr", "optimizer"} and spec.fixed == {"batch_size": 64}


def test_pyyaml_string_numbers_are_cast(tmp_path):
    # PyYAML reads 1e-4 (no dot) as the string "1e-4"; the loader casts it.
    text = yaml.safe_dump(GOOD).replace("0.0001", "1e-4")
    assert "1e-4" in text
    assert load(tmp_path, text).space["lr"].low == pytest.approx(1e-4)


def test_spec_round_trips_through_its_dict(tmp_path):
    spec = load(tmp_path, GOOD)
    again = spec_mod.spec_from_dict(spec.to_dict(), source="stored", name=spec.name)
    assert again.to_dict() == spec.to_dict()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("colour", "red", "unknown key 'colour'"),
        ("dataset", "imagenet", "unknown dataset 'imagenet'"),
        ("model", "rnn", "unknown model family 'rnn'"),
        ("metric", "val_mse", "does not apply to multiclass"),
        ("metric", "val_top5", "unknown metric 'val_top5'"),
        ("epochs", 0, "epochs must be at least 1"),
        ("epochs", "many", "epochs must be a number"),
        ("params.layers.low", 5, "low (5) is greater than high (3)"),
        ("params.lr.low", 0.0, "log scale needs low > 0"),
        ("params.optimizer.choices", [], "choices must be a non-empty list"),
        ("params.optimizer.choices", ["adam", "lbfgs"], "must be one of"),
        ("params.layers.type", "integer", "type must be int, float or categorical"),
        ("params.layers.scale", 2, "unknown key 'scale'"),
        ("params.layers.low", 1.5, "must be an integer"),
        ("params.colour", 3, "unknown parameter for model ann"),
        ("params.batch_size", -4, "positive count"),
        ("pruner", {"type": "asha"}, "pruner.type must be one of"),
        ("sampler", {"type": "tpe", "bandwidth": 2}, "unknown option 'bandwidth'"),
        ("baselines.0.params.lr", 5.0, "outside the search space"),
        ("baselines.0.params.optimizer", None, "missing searchable parameter 'optimizer'"),
        ("baselines.0.params.batch_size", 32, "differs from the study's fixed value"),
    ],
)
def test_invalid_files_name_the_file_and_key(tmp_path, key, value, message):
    with pytest.raises(UserError) as info:
        load(tmp_path, with_change(key, value))
    text = str(info.value)
    assert message in text
    assert "custom.yaml" in text and "\n" not in text
    leaf = key.split(".")[-1]
    if leaf not in ("colour", "scale") and not leaf.isdigit():
        assert key.split(".")[0] in text


def test_cnn_on_tabular_data_is_refused(tmp_path, monkeypatch):
    from anncnn_tune import data

    tabular = data.DatasetInfo("toy-table", "tabular", "binary", lambda **_: None, "test", "test")
    monkeypatch.setitem(data.DATASETS, "toy-table", tabular)
    raw = {**GOOD, "dataset": "toy-table", "model": "cnn", "metric": "val_roc_auc",
           "params": {"filters": {"type": "int", "low": 8, "high": 16}}, "baselines": []}
    with pytest.raises(UserError, match="cnn needs an image dataset"):
        load(tmp_path, raw)


def test_invalid_yaml_reports_the_line(tmp_path):
    with pytest.raises(UserError, match=r"custom.yaml: line 3 is not valid YAML"):
        load(tmp_path, "dataset: digits\nparams: [unclosed\n")


def test_unknown_study_name_lists_the_builtin_ones():
    with pytest.raises(UserError, match="unknown study 'nope'.*digits-cnn"):
        spec_mod.load_spec("nope")


def test_suggest_fills_defaults_and_fixed_values(tmp_path):
    spec = load(tmp_path, GOOD)
    params = spec_mod.suggest(spec, optuna.trial.FixedTrial({"layers": 3, "lr": 0.01, "optimizer": "sgd"}))
    assert params["layers"] == 3 and params["lr"] == 0.01 and params["optimizer"] == "sgd"
    assert params["batch_size"] == 64  # fixed in the file
    assert params["activation"] == "relu" and params["schedule"] == "none"  # defaults


def test_overrides_change_budget_and_sampler_seed(tmp_path):
    spec = load(tmp_path, GOOD).with_overrides(epochs=7, seed=11)
    assert spec.epochs == 7 and spec.seed == 11 and spec.sampler["seed"] == 11


def test_builtin_studies_are_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = spec_mod.builtin_names()
    assert {"digits-ann", "digits-cnn"} <= set(names)
    for name in names:
        assert spec_mod.load_spec(name).name == name


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("dropout", 1.5, "must be in [0, 1)"),
        ("layers", 0, "must be at least 1"),
        ("kernel", 4, "must be odd"),
        ("lr", 0.0, "must be positive"),
        ("head_layers", -1, "must be at least 0"),
        ("weight_decay", -0.1, "must not be negative"),
    ],
)
def test_fixed_values_are_range_checked(tmp_path, name, value, message):
    raw = with_change("params.batch_size", 64)
    raw["model"] = "cnn" if name in ("kernel", "head_layers") else "ann"
    raw["params"] = {name: value, "batch_size": 64}
    raw["baselines"] = []
    with pytest.raises(UserError, match=f"params.{name} {message}".replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        load(tmp_path, raw)


def test_searched_ranges_are_range_checked_at_both_ends(tmp_path):
    raw = with_change("params.layers.high", 3)
    raw["params"]["dropout"] = {"type": "float", "low": 0.0, "high": 1.2}
    raw["baselines"] = []
    with pytest.raises(UserError, match=r"params.dropout.high must be in \[0, 1\)"):
        load(tmp_path, raw)


def test_tabular_studies_accept_augment_none_but_refuse_augmentation(tmp_path, monkeypatch):
    """Run files list every parameter, the default augment 'none' included (a bug export hit)."""
    from anncnn_tune import data

    tabular = data.DatasetInfo("toy-table", "tabular", "binary", lambda **_: None, "test", "test")
    monkeypatch.setitem(data.DATASETS, "toy-table", tabular)
    raw = {**GOOD, "dataset": "toy-table", "metric": "val_roc_auc", "baselines": []}
    raw["params"] = {**GOOD["params"], "augment": "none"}
    assert load(tmp_path, raw).fixed["augment"] == "none"
    raw["params"]["augment"] = "translate"
    with pytest.raises(UserError, match="augment applies only to image datasets"):
        load(tmp_path, raw)
