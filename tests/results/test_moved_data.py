"""One user's file that changed or moved stops only its own study: `compare` lists it with a one-line
warning and compares every other study; `relocate` points a study at its data's new place once the
fingerprint there matches (a mismatch: one line, exit 2, storage unchanged)."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import main_in_process as run
from helpers import sqlite_snapshot


def _table(path, seed):
    rng = np.random.default_rng(seed)
    n = 120
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    frame["label"] = np.where(frame["x1"] + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def two_datasets(tmp_path, monkeypatch, capsys):
    """penguins-ann and other-ann, one finished search each, in ./anncnn-tune.db."""
    from anncnn_tune.service.storage import close_all

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)
    (tmp_path / "data").mkdir()
    for seed, name in enumerate(("penguins", "other")):
        _table(tmp_path / "data" / f"{name}.csv", seed)
        code, _, err = run(capsys, "init", f"data/{name}.csv", "--target", "label")
        assert code == 0, err
        code, _, err = run(capsys, "optimize", "--study", f"{name}-ann.yaml", "--n-trials", "2", "--epochs", "1",
                             "--quiet", "--threads", "1", "--device", "cpu")
        assert code == 0, err
    yield tmp_path
    close_all()


def _board(capsys, *args):
    code, out, err = run(capsys, "compare", "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def test_a_changed_file_leaves_out_only_its_own_study(two_datasets, capsys):
    with open(two_datasets / "data" / "penguins.csv", "a") as f:
        f.write("0.1,0.2,yes\n")  # one appended row
    code, out, err = run(capsys, "compare")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "penguins-ann" in warnings[0] and "has changed since the study began" in warnings[0]
    assert "other-ann" in out and "warning:" not in out  # the report on stdout, the warning on stderr
    code, out, err = run(capsys, "compare", "--format", "csv")
    assert code == 0 and err.startswith("warning: study penguins-ann") and err.count("\n") == 1, err
    rows = list(csv.DictReader(io.StringIO(out)))  # stdout is the CSV alone
    assert [r["study"] for r in rows] == ["other-ann"]
    board = _board(capsys)
    assert [d["dataset"] for d in board["datasets"]] == ["other"]
    assert [s["study"] for s in board["left_out"]] == ["penguins-ann"]
    board = _board(capsys, "--dataset", "other")
    assert [d["dataset"] for d in board["datasets"]] == ["other"] and board["left_out"] == []
    board = _board(capsys, "--dataset", "penguins")  # still a known dataset: listed, not compared
    assert board["datasets"] == [] and [s["study"] for s in board["left_out"]] == ["penguins-ann"]


def test_moved_data_is_listed_then_relocated_after_its_fingerprint_matches(two_datasets, capsys):
    root = two_datasets
    (root / "elsewhere").mkdir()
    shutil.move(root / "data" / "penguins.csv", root / "elsewhere" / "penguins.csv")
    code, out, err = run(capsys, "compare")
    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "does not exist any more" in warning and "anncnn-tune relocate penguins-ann PATH" in warning

    # Data that is not the searched data: refused in one line, the storage as it was.
    (root / "changed").mkdir()
    _table(root / "changed" / "penguins.csv", seed=7)
    before = sqlite_snapshot(root / "anncnn-tune.db")
    for args, needle in ((("penguins-ann", "changed/penguins.csv"), "is not the data study 'penguins-ann' searched"),
                         (("penguins-ann", "nowhere.csv"), "does not exist"),
                         (("penguins-ann", "changed"), "is not a table"),
                         (("nosuch", "elsewhere/penguins.csv"), "no study 'nosuch'")):
        code, out, err = run(capsys, "relocate", *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, (args, err)
    assert sqlite_snapshot(root / "anncnn-tune.db") == before

    code, out, err = run(capsys, "relocate", "penguins-ann", "elsewhere/penguins.csv")
    assert code == 0, err
    assert str(root / "elsewhere" / "penguins.csv") in out
    board = _board(capsys)
    assert sorted(d["dataset"] for d in board["datasets"]) == ["other", "penguins"] and board["left_out"] == []
    code, out, err = run(capsys, "export", "--study", "penguins-ann")  # reads the new place
    assert code == 0 and str(root / "elsewhere" / "penguins.csv") in out, err


def test_the_api_relocates(two_datasets):
    import anncnn_tune as at
    from anncnn_tune.errors import UserError

    root = two_datasets
    shutil.move(root / "data", root / "moved")
    with pytest.raises(UserError, match="is not the data study 'other-ann' searched"):
        at.relocate("other-ann", root / "moved" / "penguins.csv")
    moved = at.relocate("other-ann", root / "moved" / "other.csv")
    assert moved["new"] == str(root / "moved" / "other.csv")
    frame = at.compare()
    assert list(frame["study"]) == ["other-ann"]
    assert [s["study"] for s in frame.attrs["leaderboard"]["left_out"]] == ["penguins-ann"]
