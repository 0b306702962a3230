"""Study-file validation: each rule fails at load time with one line naming the file and the key."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import optuna
import pytest
import yaml

from anncnn_tune.cli.main import main
from anncnn_tune.errors import UserError
from anncnn_tune.results import export as export_mod
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


# -- issue 11: inputs the validator did not expect (each a one-line UserError naming the key) ------



def changed(path: str, value):
    """GOOD with one nested key (or list item) set."""
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    node, keys = raw, path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    return raw


def one_line_error(info, *fragments):
    text = str(info.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize(
    "key, value, fragments",
    [
        ("baselines.0.params", [2, 1.0e-3, "adam"], ["baselines[0].params must be a mapping", "got a list"]),
        ("dataset", ["digits"], [".dataset: unknown dataset ['digits']"]),
        ("model", {"family": "ann"}, [".model: unknown model family"]),
        ("metric", ["val_accuracy"], [".metric: unknown metric"]),
        ("params", ["layers", "lr"], [".params must be a mapping", "got a list"]),
        ("params.layers", [1, 2, 3], [".params.layers must be a single value", "type: categorical"]),
        ("baselines", {"name": "ref"}, [".baselines must be a list"]),
        ("baselines.0", "ref", [".baselines[0] must be a mapping"]),
        ("sampler", ["tpe"], [".sampler must be a mapping"]),
        ("sampler", {"type": ["tpe"]}, [".sampler.type must be one of"]),
        ("description", {"a": 1}, [".description must be text"]),
        ("baselines.0.name", ["ref"], [".baselines[0].name must be text"]),
        ("baselines.0.epochs", 0, [".baselines[0].epochs must be at least 1"]),
        ("epochs", float("nan"), [".epochs must be a finite number"]),
        ("params.lr.high", float("inf"), [".params.lr.high must be a finite number"]),
        ("params.batch_size", float("nan"), [".params.batch_size must be a finite number"]),
        ("baselines.0.params.lr", float("nan"), [".baselines[0].params.lr must be a finite number"]),
        ("epochs", 10**400, [".epochs is too large"]),
        ("params.layers.high", 10**400, [".params.layers.high is too large"]),
        ("seed", 2**32, [".seed must be in [0, 4294967295]"]),
        ("seed", -1, [".seed must be in [0, 4294967295]"]),
        ("sampler", {"type": "tpe", "seed": float("nan")}, [".sampler.seed must be a finite number"]),
        ("pruner", {"type": "hyperband", "reduction_factor": 1}, [".pruner.reduction_factor must be at least 2, got 1"]),
        ("pruner", {"type": "median", "n_warmup_steps": -2}, [".pruner.n_warmup_steps must be at least 0"]),
        ("subset", 2.0, [".subset must be a positive count", "a count is written as an integer"]),
        ("subset", float("nan"), [".subset must be a finite number"]),
        ("params.optimizer", {"type": "int", "low": 0, "high": 2}, ["optimizer takes one of", "categorical"]),
        ("params.layers", {"type": "float", "low": 1, "high": 3}, ["layers takes integers; search it with type: int"]),
        ("params.optimizer.choices", ["adam", "adam"], ["lists 'adam' twice"]),
        ("params", {"layers": 2, 3: 4}, [".params: key 3 must be a name"]),
    ],
)
def test_wrong_shapes_and_numbers_are_one_line_errors(tmp_path, key, value, fragments):
    raw = changed(key, value)
    if key.startswith("params.") and key != "params.optimizer.choices" and "baselines" not in key:
        raw["baselines"] = []
    with pytest.raises(UserError) as info:
        spec_mod.spec_from_dict(raw, source="custom.yaml", name="custom")
    one_line_error(info, "custom.yaml", *fragments)


def test_metric_that_does_not_apply_lists_the_ones_that_do(tmp_path):
    with pytest.raises(UserError) as info:
        load(tmp_path, with_change("metric", "val_mse"))
    one_line_error(info, "val_mse does not apply to multiclass", "use one of val_accuracy, val_loss")


def test_a_float_step_that_does_not_divide_the_range_is_refused(tmp_path):
    raw = with_change("params.lr", {"type": "float", "low": 0.0, "high": 1.0, "step": 0.3})
    raw["params"]["dropout"] = raw["params"].pop("lr")
    raw["baselines"] = []
    with pytest.raises(UserError) as info:
        load(tmp_path, raw)
    one_line_error(info, "params.dropout: step 0.3 does not divide the range 0.0..1.0", "high: 0.9")
    raw["params"]["dropout"] = {"type": "float", "low": 0.0, "high": 0.9, "step": 0.3}
    assert load(tmp_path, raw).space["dropout"].step == 0.3  # 0.9 / 0.3 is 3 up to rounding: accepted


def test_an_int_step_that_does_not_divide_the_range_is_refused(tmp_path):
    raw = with_change("params.layers", {"type": "int", "low": 1, "high": 4, "step": 2})
    raw["baselines"] = []
    with pytest.raises(UserError, match=r"params.layers: step 2 does not divide the range 1..4"):
        load(tmp_path, raw)


def test_a_kernel_range_must_stay_odd(tmp_path):
    raw = {**GOOD, "model": "cnn", "baselines": [], "params": {"kernel": {"type": "int", "low": 3, "high": 7}}}
    with pytest.raises(UserError, match="kernel takes odd values only"):
        load(tmp_path, raw)
    raw["params"]["kernel"]["step"] = 2
    assert load(tmp_path, raw).space["kernel"].step == 2


@pytest.mark.parametrize("text, fragment", [
    ("dataset: digits\ndataset: mnist\n", "duplicate key 'dataset'"),
    ("dataset: digits\nparams:\n  lr: 0.1\n  lr: 0.2\n", "duplicate key 'lr'"),
])
def test_a_key_given_twice_is_refused(tmp_path, text, fragment):
    with pytest.raises(UserError) as info:
        load(tmp_path, text)
    one_line_error(info, "custom.yaml", "line", fragment)


def test_yaml_merge_keys_still_work(tmp_path):
    text = yaml.safe_dump(GOOD) + "extra: &base {type: int, low: 1, high: 3}\n"
    text = text.replace("extra:", "x-unused:")  # anchors are fine; an unknown key is still refused
    with pytest.raises(UserError, match="unknown key 'x-unused'"):
        load(tmp_path, text)


def test_a_study_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump({**GOOD, "description": "café"}, allow_unicode=True).encode("latin-1"))
    with pytest.raises(UserError) as info:
        spec_mod.load_spec(str(path))
    one_line_error(info, "latin1.yaml is not UTF-8", "save it as UTF-8")


def test_a_directory_given_as_the_study_file_says_so(tmp_path):
    folder = tmp_path / "studies.yaml"
    folder.mkdir()
    for name in (str(folder), str(tmp_path)):
        with pytest.raises(UserError) as info:
            spec_mod.load_spec(name)
        one_line_error(info, "is a directory")


def test_deeply_nested_yaml_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as info:
        load(tmp_path, "params: " + "[" * 5000 + "]" * 5000 + "\n")
    one_line_error(info, "custom.yaml")


def test_overrides_are_checked_like_the_study_file(tmp_path):
    spec = load(tmp_path, GOOD)
    for kwargs, fragment in [({"subset": float("nan")}, "--subset must be a finite number"),
                             ({"subset": 2.0}, "a count is written as an integer"),
                             ({"seed": -1}, "--seed must be in [0, 4294967295]"),
                             ({"seed": 2**40}, "--seed must be in"),
                             ({"epochs": 0}, "--epochs must be at least 1")]:
        with pytest.raises(UserError) as info:
            spec.with_overrides(**kwargs)
        one_line_error(info, fragment)
    assert spec.with_overrides(subset=50).subset == 50 and spec.with_overrides(subset=0.5).subset == 0.5


# -- run files ------------------------------------------------------------------------------------

RUN = {"format": export_mod.FORMAT, "dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 2,
       "seed": 7, "params": {"lr": 0.01, "layers": 1}, "data": {"fingerprint": "f" * 64, "split_seed": 0}}


def write_run(tmp_path, raw) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw) if not isinstance(raw, str) else raw)
    return str(path)


def test_a_valid_run_file_loads(tmp_path):
    run = export_mod.load_run(write_run(tmp_path, RUN))
    assert run.seed == 7 and run.params["lr"] == 0.01 and run.params["activation"] == "relu"


@pytest.mark.parametrize("change, fragments", [
    ({"seed": 10**30}, [".seed is too large"]),
    ({"seed": 2**32}, [".seed must be in [0, 4294967295]"]),
    ({"seed": float("nan")}, [".seed must be a finite number"]),
    ({"data": {"fingerprint": "f", "split_seed": -1}}, [".data.split_seed must be in"]),
    ({"data": ["f", 0]}, [".data must be a mapping"]),
    ({"params": ["lr", 0.01]}, [".params must be a mapping", "got a list"]),
    ({"params": {"lr": float("inf")}}, [".params.lr must be a finite number"]),
    ({"dataset": ["digits"]}, [".dataset: unknown dataset"]),
    ({"source": ["study"]}, [".source must be a mapping"]),
    ({"source": {"study": ["x"], "trial": 1}}, [".source.study must be the study's name"]),
    ({"epochs": 0}, [".epochs must be at least 1"]),
])
def test_bad_run_files_are_one_line_errors(tmp_path, change, fragments):
    path = write_run(tmp_path, {**RUN, **change})
    with pytest.raises(UserError) as info:
        export_mod.load_run(path)
    one_line_error(info, path, *fragments)


def test_run_file_duplicates_utf8_and_directories(tmp_path):
    for content, fragment in [(yaml.safe_dump(RUN) + "seed: 8\n", "duplicate key 'seed'"),
                              (b"seed: \xff\n", "is not UTF-8")]:
        path = tmp_path / "run.yaml"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(UserError) as info:
            export_mod.load_run(str(path))
        one_line_error(info, fragment)
    with pytest.raises(UserError) as info:
        export_mod.load_run(str(tmp_path))
    one_line_error(info, "is a directory")


# -- command-line values (in process: parse, validate, stop before any work) ---------------------


def run_main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args, fragment", [
    (("--timeout", "nan"), "--timeout must be a finite number"),
    (("--timeout", "inf"), "--timeout must be a finite number"),
    (("--subset", "nan"), "--subset must be a finite number"),
    (("--subset", "2.0"), "a count is written as an integer, e.g. 2; a fraction as e.g. 0.2"),
    (("--seed", "-1"), "--seed must be in [0, 4294967295]"),
    (("--seed", "99999999999"), "--seed must be in [0, 4294967295]"),
    (("--devices", ",,"), "--devices ',,' names no device"),
    (("--devices", "cpu,,cpu"), "has an empty entry"),
])
def test_bad_optimize_values_are_refused_before_anything_is_written(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["optimize", "--study", "digits-ann", *args])
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert list(tmp_path.iterdir()) == []


def test_a_subset_that_rounds_to_too_few_samples_names_the_smallest_fraction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from anncnn_tune.data import load_dataset

    with pytest.raises(UserError) as info:
        load_dataset("digits", subset=0.0001)
    one_line_error(info, "subset 0.0001 keeps 0 of the 1257 training samples", "a fraction of at least 0.008")
    assert len(load_dataset("digits", subset=0.008).y_train) == 10  # the fraction it names works


def test_a_run_file_with_a_huge_seed_is_refused_before_out_is_created(tmp_path):
    path = write_run(tmp_path, {**RUN, "seed": 10**30})
    code, _out, err = run_main(["retrain", path, "--out", tmp_path / "out", "--no-record"])
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and ".seed is too large" in err
    assert not (tmp_path / "out").exists()


def test_error_lines_stay_one_line_when_a_name_holds_a_line_break(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["optimize", "--study", "two\nlines/x.yaml"])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: study file two lines/x.yaml")
