"""`anncnn-tune init PATH`: small generated files of every kind in, study files that load out; bad input
is one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import main_in_process as run
from helpers import sqlite_snapshot

from anncnn_tune.search.spec import load_spec


def listing(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_table(path, n=240, kind="binary"):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"row{i}" for i in range(n)], "x1": rng.normal(size=n),
                          "x2": rng.integers(0, 100, n).astype(float), "color": rng.choice(["red", "blue"], n)})
    frame.loc[::17, "x1"] = np.nan
    if kind == "binary":
        frame["label"] = np.where(rng.random(n) < 0.2, "yes", "no")
    elif kind == "multiclass":
        frame["label"] = rng.choice(["a", "b", "c"], n)
    else:
        frame["label"] = rng.normal(size=n) * 3 + 1
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path


def write_images(root, classes=("cat", "dog", "owl"), per_class=12, size=(8, 8), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            pixels = np.clip(rng.normal(60 + 60 * c, 30, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.parametrize(("suffix", "kind", "metric"), [(".csv", "binary", "val_roc_auc"),
                                                        (".tsv", "multiclass", "val_accuracy"),
                                                        (".parquet", "regression", "val_mse")])
def test_a_table_gives_an_ann_study_that_loads(tmp_path, monkeypatch, capsys, suffix, kind, metric):
    monkeypatch.chdir(tmp_path)
    write_table(tmp_path / f"my data{suffix}", kind=kind)
    code, out, err = run(capsys, "init", f"my data{suffix}", "--target", "label")
    assert code == 0, err
    assert "target: label" in out and "dropped" in out  # the schema is printed; the ID column noted
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["my-data-ann.yaml"]
    spec = load_spec(str(tmp_path / "my-data-ann.yaml"))
    assert spec.model == "ann" and spec.metric == metric and spec.name == "my-data-ann"
    assert spec.data_source.path == str((tmp_path / f"my data{suffix}").resolve())
    written = yaml.safe_load((tmp_path / "my-data-ann.yaml").read_text())["dataset"]
    assert written["path"] == f"my data{suffix}" and written["task"] == kind  # relative; task written resolved


def test_data_outside_the_output_folder_is_written_absolute(tmp_path, monkeypatch, capsys):
    write_table(tmp_path / "t.csv")
    (tmp_path / "studies").mkdir()
    monkeypatch.chdir(tmp_path / "studies")
    code, _, err = run(capsys, "init", "../t.csv", "--target", "label", "--name", "churn2")
    assert code == 0, err
    written = yaml.safe_load((tmp_path / "studies" / "churn2-ann.yaml").read_text())["dataset"]
    assert written["path"] == str((tmp_path / "t.csv").resolve())


def test_drop_and_out_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_table(tmp_path / "t.csv")
    code, _, err = run(capsys, "init", "t.csv", "--target", "label", "--drop", "x2", "--out-dir", "out/studies")
    assert code == 0, err
    written = yaml.safe_load((tmp_path / "out/studies/t-ann.yaml").read_text())["dataset"]
    assert written["drop"] == ["x2"] and written["path"] == str((tmp_path / "t.csv").resolve())
    assert load_spec(str(tmp_path / "out/studies/t-ann.yaml")).data_source.drop == ("x2",)


def test_an_image_folder_gives_a_fair_pair(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "Pets 8x8")
    code, out, err = run(capsys, "init", "Pets 8x8")
    assert code == 0, err
    assert "images: 36" in out
    ann, cnn = (load_spec(str(tmp_path / f"pets-8x8-{f}.yaml")) for f in ("ann", "cnn"))
    assert (ann.model, cnn.model) == ("ann", "cnn")
    a, c = ann.to_dict(), cnn.to_dict()
    assert all(a[k] == c[k] for k in ("dataset", "metric", "epochs", "seed", "sampler", "pruner"))
    assert cnn.space["blocks"].high == 1  # 8x8: one halving leaves 4x4


def test_an_rgb_folder_with_train_and_test(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "d" / "train", size=(16, 16), mode="RGB")
    write_images(tmp_path / "d" / "test", size=(16, 16), mode="RGB", per_class=4)
    code, _, err = run(capsys, "init", "d")
    assert code == 0, err
    spec = load_spec(str(tmp_path / "d-cnn.yaml"))
    assert spec.space["blocks"].high == 2


def test_image_size_is_written_and_used(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "p", size=(8, 8))
    code, _, err = run(capsys, "init", "p", "--image-size", "16x16")
    assert code == 0, err
    assert yaml.safe_load((tmp_path / "p-cnn.yaml").read_text())["dataset"]["image_size"] == [16, 16]
    assert load_spec(str(tmp_path / "p-cnn.yaml")).space["blocks"].high == 2


def test_an_npz_of_images(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "arr.npz", x=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8),
             y=np.repeat(np.arange(3), 20))
    code, _, err = run(capsys, "init", "arr.npz")
    assert code == 0, err
    assert load_spec(str(tmp_path / "arr-cnn.yaml")).model == "cnn"


def test_an_npz_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "feat.npz", x=rng.normal(size=(90, 5)).astype(np.float32), y=np.repeat(np.arange(3), 30))
    code, _, err = run(capsys, "init", "feat.npz")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == ["feat-ann.yaml"]
    load_spec(str(tmp_path / "feat-ann.yaml"))


def test_existing_files_need_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "p")
    (tmp_path / "p-cnn.yaml").write_text("# mine\n")
    before = listing(tmp_path)
    code, _, err = run(capsys, "init", "p")
    assert code == 2 and err.count("\n") == 1 and "p-cnn.yaml already exists" in err and "--force" in err
    assert listing(tmp_path) == before  # neither file written, not even p-ann.yaml
    code, _, err = run(capsys, "init", "p", "--force")
    assert code == 0, err
    assert (tmp_path / "p-cnn.yaml").read_text().startswith("# Generated")
    load_spec(str(tmp_path / "p-ann.yaml"))


def _bad_inputs(tmp_path):
    write_table(tmp_path / "t.csv")
    write_images(tmp_path / "imgs")
    (tmp_path / "empty").mkdir()
    write_images(tmp_path / "sizes", classes=("a",), per_class=3, size=(8, 8))
    write_images(tmp_path / "sizes", classes=("b",), per_class=3, size=(10, 10))
    pd.DataFrame({"x": range(30), "y": [1] * 30}).to_csv(tmp_path / "one.csv", index=False)
    (tmp_path / "broken.csv").write_text('a,b\n1,"2\n3,4,5,6\n')
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "corrupt" / "a").mkdir(parents=True)
    (tmp_path / "corrupt" / "b").mkdir(parents=True)
    write_images(tmp_path / "corrupt", classes=("a", "b"), per_class=3)
    (tmp_path / "corrupt" / "b" / "zzz.png").write_bytes(b"not a png")


BAD = {
    "missing file": (["nope.csv", "--target", "y"], "nope.csv"),
    "no target": (["t.csv"], "--target"),
    "target not a column": (["t.csv", "--target", "nope"], "x1"),  # the columns are listed
    "one-valued target": (["one.csv", "--target", "y"], "y"),
    "empty folder": (["empty"], "empty"),
    "mixed sizes": (["sizes"], "image"),
    "unreadable image": (["corrupt"], "zzz.png"),
    "csv that does not parse": (["broken.csv", "--target", "a"], "broken.csv"),
    "not data": (["notes.txt"], "notes.txt"),
    "bad image size": (["imgs", "--image-size", "big"], "--image-size"),
    "bad name": (["imgs", "--name", "../x"], "--name"),
    "out dir is a file": (["imgs", "--out-dir", "afile"], "afile"),
    "target on images": (["imgs", "--target", "y"], "target"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    _bad_inputs(tmp_path)
    before = listing(tmp_path)
    args, needle = BAD[case]
    code, out, err = run(capsys, "init", *args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert listing(tmp_path) == before
    assert not list(tmp_path.rglob("*.yaml"))


@pytest.mark.slow
def test_init_optimize_compare_export_retrain_on_an_image_folder(tmp_path, monkeypatch, capsys):
    """The whole path a user takes with their own folder of images, through the CLI, in this process."""
    import json

    from anncnn_tune.service.storage import close_all

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)
    write_images(tmp_path / "data" / "shapes", per_class=16)
    try:
        code, out, err = run(capsys, "init", "data/shapes", "--name", "shapes")
        assert code == 0, err
        for family in ("ann", "cnn"):
            code, out, err = run(capsys, "optimize", "--study", f"shapes-{family}.yaml", "--n-trials", "2",
                                 "--epochs", "1", "--quiet", "--threads", "1", "--device", "cpu")
            assert code == 0, err
            assert f"study shapes-{family}: 2 complete" in out
        code, out, err = run(capsys, "datasets")
        assert code == 0, err
        assert "shapes-ann" in out and "shapes-cnn" in out and str(tmp_path / "data" / "shapes") in out

        code, out, err = run(capsys, "compare", "--format", "json")
        assert code == 0, err
        (entry,) = json.loads(out)["datasets"]
        assert entry["dataset"] == "shapes" and entry["fair"], entry.get("differs")
        assert entry["families"] == ["ann", "cnn"]

        code, out, err = run(capsys, "export", "--study", "shapes-cnn", "-o", "best.yaml")
        assert code == 0, err
        run_file = yaml.safe_load((tmp_path / "best.yaml").read_text())
        assert run_file["dataset"]["path"] == str((tmp_path / "data" / "shapes").resolve())

        code, out, err = run(capsys, "retrain", "best.yaml", "--out", "final", "--device", "cpu")
        assert code == 0, err
        assert (tmp_path / "final").is_dir() and any((tmp_path / "final").iterdir())

        # The folder changes under the studies: compare lists them, left out; export and retrain refuse;
        # nothing is written.
        from PIL import Image

        Image.new("L", (8, 8), 7).save(tmp_path / "data" / "shapes" / "cat" / "new.png")
        def files():  # the storage by content (SQLite's -shm/-wal change on reads); the images aside
            kept = (p for p in tmp_path.rglob("*") if p.is_file() and p.suffix not in (".png", ".db")
                    and not p.name.endswith(("-shm", "-wal")))
            return {p: p.read_bytes() for p in kept}, sqlite_snapshot(tmp_path / "anncnn-tune.db")

        before = files()
        code, out, err = run(capsys, "compare")
        assert code == 0, err
        assert sum(line.startswith("warning: study shapes-") and "has changed since the study began" in line
                   for line in err.splitlines()) == 2, err  # on stderr: stdout holds the report alone
        for args in (("export", "--study", "shapes-cnn", "-o", "again.yaml"),
                     ("retrain", "best.yaml", "--out", "again", "--device", "cpu")):
            code, out, err = run(capsys, *args)
            assert code == 2 and err.count("\n") == 1 and "has changed since the study began" in err, (args, err)
        assert files() == before and not (tmp_path / "again").exists()
    finally:
        close_all()


def _folder_with_a_corrupt_png(root):
    write_images(root, classes=("a", "b"), per_class=6)
    (root / "b" / "zzz.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated, not an image")
    return root


def test_an_unreadable_image_is_refused_with_the_flag_that_skips_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _folder_with_a_corrupt_png(tmp_path / "pets")
    before = listing(tmp_path)
    code, _, err = run(capsys, "init", "pets")
    assert code == 2 and err.count("\n") == 1 and "zzz.png" in err
    assert "--on-bad-file skip" in err, err  # a flag this command has, not only a study-file key
    assert listing(tmp_path) == before


def test_on_bad_file_skip_writes_the_studies_with_the_skip_recorded(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _folder_with_a_corrupt_png(tmp_path / "pets")
    code, out, err = run(capsys, "init", "pets", "--on-bad-file", "skip")
    assert code == 0, err
    assert "skipped 1 unreadable files" in out and "zzz.png" in out, out
    for family in ("ann", "cnn", "fastcnn"):
        written = yaml.safe_load((tmp_path / f"pets-{family}.yaml").read_text())
        assert written["dataset"]["on_bad_file"] == "skip"
        spec = load_spec(str(tmp_path / f"pets-{family}.yaml"))
        assert spec.data_source.on_bad_file == "skip"
    from anncnn_tune.data.source import load_source

    splits = load_source(spec.data_source)  # the recorded skip holds for every later load
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 12


def test_the_api_takes_on_bad_file(tmp_path):
    import anncnn_tune as at
    from anncnn_tune.errors import UserError

    _folder_with_a_corrupt_png(tmp_path / "pets")
    result = at.init(tmp_path / "pets", on_bad_file="skip", out_dir=tmp_path / "studies")
    assert "pets-ann.yaml" in [f.name for f in result.files]
    assert result.schema.skipped and "zzz.png" in result.schema.skipped[0]
    with pytest.raises(UserError, match="on_bad_file"):
        at.init(tmp_path / "pets", on_bad_file="ignore", out_dir=tmp_path / "other")
    assert not (tmp_path / "other").exists()
