"""A user's own data (data/source.py and its readers) on small generated files of every kind.

Every bad input is one UserError line, and leaves the files and the data cache as they were.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from anncnn_tune.data import folder, kind_and_task, load_dataset
from anncnn_tune.data.memory import MEMORY_ENV
from anncnn_tune.data.source import (
    DataSource,
    check_unchanged,
    current_fingerprint,
    inspect,
    load_source,
    parse_source,
    source_from_dict,
)
from anncnn_tune.errors import UserError

# ---------------------------------------------------------------- helpers


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: to show a failed call wrote nothing."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def src(path, base: Path, **options) -> DataSource:
    return parse_source({"path": str(path), **options}, base_dir=base, where="dataset")


def table_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": [f"c{i:04d}" for i in range(n)],
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.normal(50, 10, n),
        "member": rng.integers(0, 2, n),
        "city": rng.choice(["north", "south", "east"], n),
        "label": np.where(rng.random(n) < 0.5, "yes", "no"),
        "price": rng.normal(100, 20, n),
        "grade": rng.choice([1, 2, 3], n),
    })  # fmt: skip
    frame.loc[[3, 7], "age"] = np.nan
    frame.loc[[5], "city"] = np.nan
    return frame


def write_image(path: Path, size=(8, 8), mode="RGB", seed=0, fmt=None) -> None:
    rng = np.random.default_rng(seed)
    h, w = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)


def image_folder(root: Path, classes=("cat", "dog"), per_class=12, ext="png", size=(8, 8), mode="RGB") -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{i:03d}.{ext}", size=size, mode=mode, seed=c * 1000 + i)
    return root


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    return d


# ---------------------------------------------------------------- the description


def test_relative_paths_resolve_against_the_study_folder_and_round_trip(tmp_path):
    (tmp_path / "data").mkdir()
    table_frame().to_csv(tmp_path / "data" / "people.csv", index=False)
    table_frame(seed=1).to_csv(tmp_path / "data" / "held.csv", index=False)
    source = parse_source({"path": "data/people.csv", "target": "label", "drop": ["price"], "test": "data/held.csv"},
                          base_dir=tmp_path, where="dataset")
    assert source.path == str((tmp_path / "data" / "people.csv").resolve())
    assert source.test == str((tmp_path / "data" / "held.csv").resolve())
    assert source.kind == "table" and source.key == "people" and source.drop == ("price",)
    assert source_from_dict(source.to_dict()) == source
    folder_source = src(image_folder(tmp_path / "pets"), tmp_path, image_size=[4, 6])
    assert folder_source.kind == "images" and folder_source.key == "pets" and folder_source.image_size == (4, 6)
    assert source_from_dict(folder_source.to_dict()) == folder_source


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"path": "nowhere.csv", "target": "y"}, "dataset.path"),
        ({"path": "t.csv"}, "dataset.target is missing"),
        ({"path": "t.csv", "target": "label", "colour": 1}, "dataset.colour"),
        ({"path": "t.csv", "target": "label", "task": "ranking"}, "dataset.task"),
        ({"path": "t.csv", "target": "label", "image_size": [8, 8]}, "dataset.image_size"),
        ({"path": "pets", "image_size": [0, 8]}, "dataset.image_size"),
        ({"path": "pets", "target": "label"}, "dataset.target"),
        ({"path": "pets", "on_bad_file": "ignore"}, "dataset.on_bad_file"),
        ({"path": "t.csv", "target": "label", "test": "missing.csv"}, "dataset.test"),
        ({"path": "t.csv", "target": "label", "test": "pets"}, "dataset.test"),
        ({"path": "notes.txt"}, "dataset.path"),
    ],
)
def test_bad_descriptions_name_the_key(tmp_path, raw, fragment):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "notes.txt").write_text("x")
    image_folder(tmp_path / "pets", per_class=1)
    with pytest.raises(UserError) as excinfo:
        parse_source(raw, base_dir=tmp_path, where="dataset")
    assert fragment in one_line(excinfo)


# ---------------------------------------------------------------- tables


def test_csv_binary_target_id_column_imputation_and_train_only_scaling(tmp_path):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    source = src(tmp_path / "t.csv", tmp_path, target="label", drop=["price", "grade"])
    schema = inspect(source)
    assert schema.kind == "tabular" and schema.task == "binary" and schema.classes == ("no", "yes")
    assert any("task inferred: binary" in n for n in schema.notes)
    assert any("ID-like column id" in n for n in schema.notes)
    assert schema.columns["flag"] == ["member"] and schema.columns["numeric"] == ["age", "income"]
    assert schema.columns["categorical"] == ["city"] and schema.missing == {"age": 2, "city": 1}
    splits = load_source(source, seed=3)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (42, 9, 9)
    assert splits.input_shape == schema.input_shape == (1 + 2 + 3,)
    assert splits.feature_names[:3] == ("member", "age", "income")
    assert not np.isnan(splits.x_train).any() and not np.isnan(splits.x_test).any()
    scaled = splits.x_train[:, 1:3]  # the scaler saw the training rows only: exactly mean 0 there
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    assert abs(splits.x_test[:, 1:3].mean()) > 1e-4
    again = load_source(source, seed=3)
    assert np.array_equal(again.x_train, splits.x_train)
    other = load_source(source, seed=4)
    assert not np.array_equal(other.y_test, splits.y_test)


def test_tsv_and_parquet_give_the_csv_arrays(tmp_path):
    frame = table_frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    loaded = [load_source(src(tmp_path / f"t.{ext}", tmp_path, target="price"), seed=1) for ext in ("csv", "tsv", "parquet")]
    assert loaded[0].task == "regression" and loaded[0].classes is None
    for other in loaded[1:]:
        for name in ("x_train", "y_train", "x_val", "x_test", "y_test"):
            np.testing.assert_allclose(getattr(other, name), getattr(loaded[0], name), rtol=1e-6)
        assert other.feature_names == loaded[0].feature_names


def test_task_inference_follows_autogluon(tmp_path):
    frame = table_frame(n=200)
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert inspect(src(tmp_path / "t.csv", tmp_path, target="grade")).task == "multiclass"  # 3 integers
    assert inspect(src(tmp_path / "t.csv", tmp_path, target="city")).task == "multiclass"  # text
    assert inspect(src(tmp_path / "t.csv", tmp_path, target="member")).task == "binary"
    assert inspect(src(tmp_path / "t.csv", tmp_path, target="income")).task == "regression"
    assert inspect(src(tmp_path / "t.csv", tmp_path, target="grade", task="regression")).task == "regression"


def test_held_out_test_table(tmp_path):
    table_frame(60).to_csv(tmp_path / "train.csv", index=False)
    table_frame(25, seed=9).to_csv(tmp_path / "test.csv", index=False)
    splits = load_source(src(tmp_path / "train.csv", tmp_path, target="label", test="test.csv"))
    assert len(splits.y_test) == 25 and len(splits.y_train) + len(splits.y_val) == 60


def test_describe_records_source_schema_and_fingerprint(tmp_path):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    source = src(tmp_path / "t.csv", tmp_path, target="label")
    record = load_dataset(source).describe()
    assert record["source"] == source.to_dict() and record["dataset"] == "t"
    assert record["schema"]["task"] == "binary" and record["schema"]["n_samples"] == 60
    assert record["fingerprint"] == current_fingerprint(source)
    assert kind_and_task(source) == ("tabular", "binary") and kind_and_task("churn") == ("tabular", "binary")


def test_a_changed_file_is_refused(tmp_path):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    source = src(tmp_path / "t.csv", tmp_path, target="label")
    recorded = current_fingerprint(source)
    check_unchanged(source, recorded)
    table_frame(seed=5).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError) as excinfo:
        check_unchanged(source, recorded)
    assert "has changed since the study began" in one_line(excinfo)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"target": "colour"}, "no column 'colour'; its columns are: id, age"),
        ({"target": "constant"}, "single value"),
        ({"target": "rare"}, "class 'z' has only 1 rows"),
        ({"target": "label", "drop": ["nope"]}, "dataset.drop names 'nope'"),
        ({"target": "city", "task": "binary"}, "task binary needs 2 target values"),
        ({"target": "city", "task": "regression"}, "needs a numeric target"),
    ],
)
def test_bad_table_targets_are_one_line_and_write_nothing(tmp_path, data_dir, options, fragment):
    frame = table_frame()
    frame["constant"] = 1
    frame["rare"] = ["a"] * 30 + ["b"] * 29 + ["z"]
    frame.to_csv(tmp_path / "t.csv", index=False)
    before = tree(tmp_path)
    with pytest.raises(UserError) as excinfo:
        load_source(src(tmp_path / "t.csv", tmp_path, **options), data_dir=data_dir)
    assert fragment in one_line(excinfo)
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.csv", "a,b\n1,2\n3,4,5\n", "does not parse as a csv table"),
        ("empty.csv", "", "is empty"),
        ("header.csv", "a,b\n", "no data rows"),
        ("bad.parquet", "not parquet at all", "does not parse as a parquet table"),
        ("latin.csv", b"a,b\n\xe9,1\n\xe8,2\n", "not UTF-8"),
    ],
)
def test_unparsable_tables_are_one_line(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as excinfo:
        load_source(src(path, tmp_path, target="b"))
    assert fragment in one_line(excinfo)


def test_a_table_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    table_frame().to_csv(tmp_path / "t.csv", index=False)
    monkeypatch.setenv(MEMORY_ENV, "1000")
    with pytest.raises(UserError) as excinfo:
        inspect(src(tmp_path / "t.csv", tmp_path, target="label"))
    assert "of memory, but only" in one_line(excinfo)


# ---------------------------------------------------------------- arrays


def test_npz_images_channels_last_with_test(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.integers(0, 256, (60, 6, 5, 3), dtype=np.uint8), y=np.repeat([0, 1, 2], 20),
             x_test=rng.integers(0, 256, (9, 6, 5, 3), dtype=np.uint8), y_test=np.array([0, 1, 2] * 3))
    source = src(tmp_path / "a.npz", tmp_path)
    splits = load_source(source)
    assert splits.kind == "image" and splits.input_shape == (3, 6, 5) and splits.x_train.dtype == np.uint8
    assert len(splits.y_test) == 9 and len(splits.y_val) == 6 and splits.classes == ("0", "1", "2")
    assert kind_and_task(source) == ("image", "multiclass")


def test_npz_grayscale_floats_and_a_numeric_table(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "g.npz", x=rng.random((40, 7, 7)), y=np.repeat(["on", "off"], 20))
    gray = load_source(src(tmp_path / "g.npz", tmp_path))
    assert gray.input_shape == (1, 7, 7) and gray.task == "binary" and gray.classes == ("off", "on")
    np.savez(tmp_path / "t.npz", x=rng.normal(size=(50, 3)), y=rng.normal(size=50))
    table = load_source(src(tmp_path / "t.npz", tmp_path))
    assert table.kind == "tabular" and table.task == "regression" and table.input_shape == (3,)


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"x": np.zeros((4, 2))}, "no array 'y'"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "one label per row"),
        ({"x": np.zeros((6, 2)), "y": np.arange(6), "x_test": np.zeros((2, 2))}, "only one of x_test and y_test"),
        ({"x": np.full((6, 4, 4), 300.0), "y": np.arange(6) % 2}, "outside 0..255"),
        ({"x": np.zeros((6, 2)), "y": np.ones(6)}, "single value"),
    ],
)
def test_bad_npz_files_are_one_line(tmp_path, arrays, fragment):
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(UserError) as excinfo:
        load_source(src(tmp_path / "a.npz", tmp_path))
    assert fragment in one_line(excinfo)


# ---------------------------------------------------------------- image folders


def test_png_class_folders_load_split_70_15_15_and_cache(tmp_path, data_dir, monkeypatch):
    root = image_folder(tmp_path / "pets", classes=("dog", "cat", "bird"), per_class=20)
    (root / "cat" / ".DS_Store").write_bytes(b"junk")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    source = src(root, tmp_path)
    schema = inspect(source)
    assert schema.classes == ("bird", "cat", "dog")  # sorted, as ImageFolder
    assert schema.input_shape == (3, 8, 8) and schema.n_samples == 60 and schema.task == "multiclass"
    assert any("skipped 2 hidden or non-image files" in n for n in schema.notes)
    first = load_source(source, seed=2, data_dir=data_dir)
    assert (len(first.y_train), len(first.y_val), len(first.y_test)) == (42, 9, 9)
    assert first.x_train.dtype == np.uint8 and first.mean is not None
    pixel = np.asarray(Image.open(root / "bird" / "000.png")).transpose(2, 0, 1)
    assert any(np.array_equal(pixel, img) for img in np.concatenate([first.x_train, first.x_val, first.x_test]))
    cached = list((data_dir / "sources").glob("pets-*.npz"))
    assert len(cached) == 1

    def refuse(*args):
        raise AssertionError("decoded again although the cache matches")

    monkeypatch.setattr(folder, "_decode", refuse)
    monkeypatch.setattr(folder, "_read_headers", refuse)
    second = load_source(source, seed=2, data_dir=data_dir)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert second.describe() == first.describe()


def test_a_changed_image_changes_the_fingerprint_and_the_cache_entry(tmp_path, data_dir):
    root = image_folder(tmp_path / "pets")
    source = src(root, tmp_path)
    before = load_source(source, data_dir=data_dir).fingerprint
    write_image(root / "cat" / "000.png", seed=99)
    assert current_fingerprint(source) != before
    load_source(source, data_dir=data_dir)
    assert len(list((data_dir / "sources").glob("*.npz"))) == 2


def test_jpeg_train_val_test_layout_keeps_the_given_parts(tmp_path, data_dir):
    root = tmp_path / "xr"
    image_folder(root / "train", ("a", "b"), per_class=10, ext="jpg")
    image_folder(root / "val", ("a", "b"), per_class=3, ext="jpg")
    image_folder(root / "test", ("a", "b"), per_class=4, ext="jpeg")
    splits = load_source(src(root, tmp_path), data_dir=data_dir)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (20, 6, 8)
    assert splits.task == "binary" and splits.classes == ("a", "b")
    no_val = tmp_path / "nv"
    image_folder(no_val / "train", ("a", "b"), per_class=10, ext="jpg")
    image_folder(no_val / "test", ("a", "b"), per_class=4, ext="jpg")
    splits = load_source(src(no_val, tmp_path), data_dir=data_dir)
    assert len(splits.y_test) == 8 and len(splits.y_val) == 2 and len(splits.y_train) == 18


def test_held_out_test_folder(tmp_path, data_dir):
    image_folder(tmp_path / "train", per_class=10)
    image_folder(tmp_path / "holdout", per_class=3)
    splits = load_source(src(tmp_path / "train", tmp_path, test="holdout"), data_dir=data_dir)
    assert len(splits.y_test) == 6 and len(splits.y_train) + len(splits.y_val) == 20


def test_rgba_grayscale_mix_becomes_rgb_and_says_so(tmp_path, data_dir):
    root = tmp_path / "mix"
    for i in range(8):
        write_image(root / "a" / f"{i}.png", mode="RGBA", seed=i)
        write_image(root / "b" / f"{i}.png", mode="L", seed=10 + i)
    write_image(root / "a" / "x.bmp", seed=40)
    write_image(root / "b" / "y.gif", mode="L", seed=41)
    write_image(root / "b" / "z.webp", seed=42)
    source = src(root, tmp_path)
    schema = inspect(source)
    assert schema.channels == 3 and schema.input_shape == (3, 8, 8)
    note = next(n for n in schema.notes if n.startswith("channels"))
    assert "8 grayscale images repeated to 3" in note  # the GIF is palette (P), not L and "8 images with alpha had it dropped" in note
    splits = load_source(source, data_dir=data_dir)
    gray = np.asarray(Image.open(root / "b" / "0.png"))
    every = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert any(np.array_equal(img, np.stack([gray] * 3)) for img in every)


def test_all_grayscale_is_one_channel(tmp_path, data_dir):
    splits = load_source(src(image_folder(tmp_path / "g", mode="L"), tmp_path), data_dir=data_dir)
    assert splits.input_shape == (1, 8, 8)


def test_image_size_resizes_mixed_sizes(tmp_path, data_dir):
    root = image_folder(tmp_path / "m", per_class=6)
    write_image(root / "cat" / "big.png", size=(16, 12))
    with pytest.raises(UserError) as excinfo:
        inspect(src(root, tmp_path))
    message = one_line(excinfo)
    assert "2 sizes" in message and "image_size" in message and "cat/big.png" in message
    splits = load_source(src(root, tmp_path, image_size=[5, 7]), data_dir=data_dir)
    assert splits.input_shape == (3, 5, 7)


def test_unreadable_image_is_named_or_skipped_and_recorded(tmp_path, data_dir):
    root = image_folder(tmp_path / "p", per_class=10)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    before = tree(tmp_path)
    with pytest.raises(UserError) as excinfo:
        load_source(src(root, tmp_path), data_dir=data_dir)
    assert "broken.png" in one_line(excinfo) and "on_bad_file: skip" in str(excinfo.value)
    assert tree(tmp_path) == before  # not even the cache
    splits = load_source(src(root, tmp_path, on_bad_file="skip"), data_dir=data_dir)
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 20
    assert splits.describe()["schema"]["skipped"] == ["dog/broken.png"]


def test_an_image_that_fails_only_when_decoded_is_named(tmp_path, data_dir):
    root = image_folder(tmp_path / "p", per_class=10, ext="jpg")
    good = (root / "cat" / "000.jpg").read_bytes()
    (root / "cat" / "000.jpg").write_bytes(good[: len(good) // 2])  # header intact, data cut
    before = tree(tmp_path)
    with pytest.raises(UserError) as excinfo:
        load_source(src(root, tmp_path), data_dir=data_dir)
    assert "cat/000.jpg" in one_line(excinfo)
    assert tree(tmp_path) == before
    splits = load_source(src(root, tmp_path, on_bad_file="skip"), data_dir=data_dir)
    assert splits.schema["skipped"] == ["cat/000.jpg"] and len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 19


@pytest.mark.parametrize("case", ["empty", "loose", "empty_class", "one_class", "tiny_class", "stray_test_class"])
def test_bad_folders_are_one_line_and_write_nothing(tmp_path, data_dir, case):
    root = tmp_path / "f"
    root.mkdir()
    fragment = {
        "empty": "is empty",
        "loose": "no class folders",
        "empty_class": "class folder",
        "one_class": "single class",
        "tiny_class": "class 'mouse' has only 2 training images",
        "stray_test_class": "is a class the training folder",
    }[case]
    if case == "loose":
        write_image(root / "a.png")
    elif case == "empty_class":
        image_folder(root, per_class=5)
        (root / "fish").mkdir()
        (root / "fish" / "readme.txt").write_text("none yet")
    elif case == "one_class":
        image_folder(root, classes=("cat",), per_class=5)
    elif case == "tiny_class":
        image_folder(root, per_class=10)
        image_folder(root, classes=("mouse",), per_class=2)
    elif case == "stray_test_class":
        image_folder(root / "train", per_class=5)
        image_folder(root / "test", classes=("cat", "owl"), per_class=2)
    before = tree(tmp_path)
    with pytest.raises(UserError) as excinfo:
        load_source(src(root, tmp_path), data_dir=data_dir)
    assert fragment in one_line(excinfo)
    assert tree(tmp_path) == before


def test_more_images_than_memory_is_refused_before_decoding(tmp_path, data_dir, monkeypatch):
    root = image_folder(tmp_path / "p", per_class=10, size=(32, 32))
    monkeypatch.setenv(MEMORY_ENV, str(50_000))  # 20 images x 3 KB x 2 > 40 KB of headroom

    def refuse(*args):
        raise AssertionError("decoding started before the memory check")

    monkeypatch.setattr(folder, "_decode", refuse)
    before = tree(tmp_path)
    with pytest.raises(UserError) as excinfo:
        load_source(src(root, tmp_path), data_dir=data_dir)
    message = one_line(excinfo)
    assert "of memory" in message and "image_size" in message and "subset" in message
    assert tree(tmp_path) == before


def test_a_subset_too_large_to_decode_whole_decodes_only_its_part(tmp_path, data_dir, monkeypatch):
    root = image_folder(tmp_path / "p", per_class=40, size=(16, 16))
    full = load_source(src(root, tmp_path), seed=1, subset=10, data_dir=tmp_path / "other")
    monkeypatch.setenv(MEMORY_ENV, str(int(2 * 45 * 768 / 0.8)))  # room for ~45 of the 80 images
    part = load_source(src(root, tmp_path), seed=1, subset=10, data_dir=data_dir)
    assert len(part.y_train) == 10 and not (data_dir / "sources").exists()
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(part, name), getattr(full, name))


def test_parallel_decode_gives_the_sequential_arrays(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "p", per_class=30, ext="jpg")
    source = src(root, tmp_path)
    sequential = load_source(source, data_dir=tmp_path / "a")
    monkeypatch.setattr(folder, "PARALLEL_MIN", 1)
    monkeypatch.setattr(folder, "CHUNK", 7)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    parallel = load_source(source, data_dir=tmp_path / "b")
    assert np.array_equal(sequential.x_train, parallel.x_train) and np.array_equal(sequential.x_test, parallel.x_test)


def test_a_source_mapping_with_keys_of_mixed_types_is_one_line(tmp_path):
    # Found by tests/cli/test_input_fuzz.py: sorting int and str keys raised TypeError.
    from anncnn_tune.data.source import parse_source
    from anncnn_tune.errors import UserError

    with pytest.raises(UserError, match=r"^x\.'' is not a dataset option"):
        parse_source({"": None, 0: None}, base_dir=tmp_path, where="x")
