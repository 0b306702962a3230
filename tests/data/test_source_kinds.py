"""Source kinds (data/sources/): each is one module declaring a SourceType, and data.source.SOURCE_TYPES
lists them one line each. A kind the table lacks is refused in one line, never read as another kind."""

from __future__ import annotations

import json

import jsonl_kind
import numpy as np
import pytest

from anncnn_tune.data import kind_and_task, load_dataset
from anncnn_tune.data import source as source_mod
from anncnn_tune.data.source import SOURCE_TYPES, DataSource, parse_source, source_from_dict
from anncnn_tune.errors import UserError


def refusal(call, *args, **kwargs) -> str:
    """The one-line UserError that call(*args, **kwargs) raises."""
    with pytest.raises(UserError) as excinfo:
        call(*args, **kwargs)
    assert str(excinfo.value) and "\n" not in str(excinfo.value)
    return str(excinfo.value)


def write_jsonl(path, n=80, seed=0):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            row = {"height": float(rng.normal(170, 10)), "owner": bool(rng.integers(0, 2)),
                   "city": str(rng.choice(["north", "south"])), "label": "yes" if i % 2 else "no"}
            fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def registered(monkeypatch):
    """The one table line a new kind adds, put in for one test."""
    monkeypatch.setitem(SOURCE_TYPES, "jsonl", jsonl_kind.SOURCE)


def test_every_kind_is_stored_under_its_own_name():
    assert {name: kind.name for name, kind in SOURCE_TYPES.items()} == {name: name for name in SOURCE_TYPES}
    assert list(SOURCE_TYPES) == ["table", "images", "arrays"]  # the names studies stored by earlier versions hold


def test_a_kind_from_one_module_loads_end_to_end(tmp_path, registered):
    path = write_jsonl(tmp_path / "people.jsonl")
    source = parse_source({"path": "people.jsonl", "target": "label"}, base_dir=tmp_path, where="dataset")
    assert source.kind == "jsonl" and source.key == "people" and source_mod.kind_of(path) == "jsonl"
    assert source_from_dict(source.to_dict()) == source

    splits = load_dataset(source, seed=3)
    assert (splits.kind, splits.task, splits.classes) == ("tabular", "binary", ("no", "yes"))
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 80
    assert splits.x_train.dtype == np.float32 and splits.x_train.shape[1] == 4  # height, owner, city one-hot
    assert splits.split_seed == 3 and splits.fingerprint == source_mod.current_fingerprint(source)
    assert splits.describe()["source"]["kind"] == "jsonl"
    assert kind_and_task(source) == ("tabular", "binary")
    assert source_mod.inspect(source).columns["categorical"] == ["city"]

    source_mod.check_unchanged(source, splits.fingerprint)
    write_jsonl(path, seed=1)
    assert "has changed since the study began" in refusal(source_mod.check_unchanged, source, splits.fingerprint)


def test_a_kind_refuses_the_options_it_does_not_read_and_applies_its_own_rules(tmp_path, registered):
    write_jsonl(tmp_path / "people.jsonl")
    dropped = {"path": "people.jsonl", "target": "label", "drop": ["city"]}
    assert refusal(parse_source, dropped, base_dir=tmp_path, where="dataset") == (
        "dataset.drop applies to tables only; people.jsonl is a JSON-lines table: remove it")
    assert refusal(parse_source, {"path": "people.jsonl"}, base_dir=tmp_path, where="dataset") == (
        "dataset.target is missing: name the key of people.jsonl to predict")


def test_the_spec_reads_the_data_kind_a_kind_declares(tmp_path, registered):
    from anncnn_tune.search.spec import spec_from_dict

    write_jsonl(tmp_path / "people.jsonl")
    raw = {"dataset": {"path": "people.jsonl", "target": "label"}, "model": "cnn", "metric": "val_accuracy",
           "epochs": 2, "params": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}}
    message = refusal(spec_from_dict, raw, source="people-cnn.yaml", name="people-cnn", base_dir=tmp_path)
    assert "cnn needs an image dataset" in message and "is tabular" in message


def test_an_unregistered_kind_is_refused_in_one_line(tmp_path):
    path = write_jsonl(tmp_path / "people.jsonl")
    # Before the table was the one place, the last branch read any kind it did not know as an .npz file.
    assert refusal(load_dataset, DataSource(path=str(path), kind="jsonl", target="label")) == (
        "unknown data source kind 'jsonl'; known kinds: table, images, arrays")
    assert "table, images, arrays" in refusal(source_from_dict, {"path": str(path), "kind": "jsonl"})
    assert refusal(parse_source, {"path": "people.jsonl", "target": "label"}, base_dir=tmp_path, where="dataset") == (
        f"dataset.path: {path} is neither a folder of images nor a .csv, .tsv, .parquet or .npz file; "
        "convert it to one of those")


def test_the_refusal_of_an_unknown_file_names_a_registered_kind_too(tmp_path, registered):
    (tmp_path / "notes.txt").write_text("x")
    assert ".npz or .jsonl file" in refusal(parse_source, {"path": "notes.txt"}, base_dir=tmp_path, where="dataset")


@pytest.mark.parametrize(("option", "value"), [("test", "other.npz"), ("image_size", [8, 8]),
                                               ("on_bad_file", "skip")])
def test_an_array_file_refuses_what_it_would_ignore(tmp_path, option, value):
    for name in ("data.npz", "other.npz"):
        np.savez(tmp_path / name, x=np.zeros((20, 3), np.float32), y=np.arange(20) % 2)
    message = refusal(parse_source, {"path": "data.npz", option: value}, base_dir=tmp_path, where="dataset")
    assert message.startswith(f"dataset.{option} applies to ") and message.endswith("data.npz is arrays: remove it")
