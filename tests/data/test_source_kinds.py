"""Source kinds (data/sources/): each is one module declaring a SourceType, and data.source.SOURCE_TYPES
lists them one line each. A kind the table lacks is refused in one line, never read as another kind."""

from __future__ import annotations

import json

import jsonl_kind
import numpy as np
import pytest

from anncnn_tune.data import kind_and_task, load_dataset
from anncnn_tune.data import source as source_mod
from anncnn_tune.data.source import (
    SOURCE_TYPES,
    DataSource,
    check_unchanged,
    current_fingerprint,
    inspect,
    kind_of,
    parse_source,
    source_from_dict,
)
from anncnn_tune.errors import UserError


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


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
    assert source.kind == "jsonl" and source.key == "people" and kind_of(path) == "jsonl"
    assert source_from_dict(source.to_dict()) == source

    splits = load_dataset(source, seed=3)
    assert (splits.kind, splits.task, splits.classes) == ("tabular", "binary", ("no", "yes"))
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 80
    assert splits.x_train.dtype == np.float32 and splits.x_train.shape[1] == 4  # height, owner, city one-hot
    assert splits.split_seed == 3 and splits.fingerprint == current_fingerprint(source)
    assert splits.describe()["source"]["kind"] == "jsonl"
    assert kind_and_task(source) == ("tabular", "binary")
    assert inspect(source).columns["categorical"] == ["city"]

    check_unchanged(source, splits.fingerprint)
    write_jsonl(path, seed=1)
    with pytest.raises(UserError) as excinfo:
        check_unchanged(source, splits.fingerprint)
    assert "has changed since the study began" in one_line(excinfo)


def test_a_kind_refuses_the_options_it_does_not_read_and_applies_its_own_rules(tmp_path, registered):
    write_jsonl(tmp_path / "people.jsonl")
    with pytest.raises(UserError) as excinfo:
        parse_source({"path": "people.jsonl", "target": "label", "drop": ["city"]}, base_dir=tmp_path, where="dataset")
    assert one_line(excinfo) == ("dataset.drop applies to tables only; people.jsonl is a JSON-lines table: "
                                 "remove it")
    with pytest.raises(UserError) as excinfo:
        parse_source({"path": "people.jsonl"}, base_dir=tmp_path, where="dataset")
    assert one_line(excinfo) == "dataset.target is missing: name the key of people.jsonl to predict"


def test_an_unregistered_kind_is_refused_in_one_line(tmp_path):
    path = write_jsonl(tmp_path / "people.jsonl")
    # Before the table was the one place, the last branch read any kind it did not know as an .npz file.
    with pytest.raises(UserError) as excinfo:
        load_dataset(DataSource(path=str(path), kind="jsonl", target="label"))
    assert one_line(excinfo) == "unknown data source kind 'jsonl'; known kinds: table, images, arrays"
    with pytest.raises(UserError) as excinfo:
        source_from_dict({"path": str(path), "kind": "jsonl", "target": "label"})
    assert "table, images, arrays" in one_line(excinfo)
    with pytest.raises(UserError) as excinfo:
        parse_source({"path": "people.jsonl", "target": "label"}, base_dir=tmp_path, where="dataset")
    assert one_line(excinfo) == (f"dataset.path: {path} is neither a folder of images nor a .csv, .tsv, .parquet "
                                 "or .npz file; convert it to one of those")


def test_the_refusal_names_a_registered_kind_too(tmp_path, registered):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError) as excinfo:
        parse_source({"path": "notes.txt"}, base_dir=tmp_path, where="dataset")
    assert ".npz or .jsonl file" in one_line(excinfo)


@pytest.mark.parametrize(("option", "value"), [("test", "other.npz"), ("image_size", [8, 8]),
                                               ("on_bad_file", "skip")])
def test_an_array_file_refuses_what_it_would_ignore(tmp_path, option, value):
    for name in ("data.npz", "other.npz"):
        np.savez(tmp_path / name, x=np.zeros((20, 3), np.float32), y=np.arange(20) % 2)
    with pytest.raises(UserError) as excinfo:
        parse_source({"path": "data.npz", option: value}, base_dir=tmp_path, where="dataset")
    assert one_line(excinfo).startswith(f"dataset.{option} applies to ")
    assert "data.npz is arrays: remove it" in str(excinfo.value)


def test_the_declared_data_kind_is_what_the_spec_reads(registered):
    assert {name: kind.data_kind for name, kind in source_mod.SOURCE_TYPES.items()} == {
        "table": "tabular", "images": "image", "arrays": None, "jsonl": "tabular"}
