"""`optimize --study NAME` finds a study the way users name it: a built-in name, a path, NAME.yaml in the
working folder, or a study of that name in the storage (each of the last two said in one line on
stderr); resuming with a changed flag says which flag to repeat."""

from __future__ import annotations

import pytest
import yaml
from helpers import main_in_process as run
from helpers import sqlite_snapshot

TINY_ANN = {
    "dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 3, "seed": 0,
    "sampler": {"type": "random"}, "pruner": {"type": "none"},
    "params": {"layers": 1, "width": {"type": "int", "low": 16, "high": 32}, "dropout": 0.0, "lr": 1.0e-3,
               "optimizer": "adam", "batch_size": 128},
}
QUICK = ("--quiet", "--threads", "1", "--device", "cpu")


@pytest.fixture
def here(tmp_path, monkeypatch):
    from anncnn_tune.service.storage import close_all

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)
    yield tmp_path
    close_all()


def test_a_bare_name_finds_the_file_here_then_the_stored_study(here, capsys):
    (here / "penguins-ann.yaml").write_text(yaml.safe_dump(TINY_ANN))
    code, out, err = run(capsys, "optimize", "--study", "penguins-ann", "--n-trials", "1", "--epochs", "1")
    assert code == 0, err
    assert "study penguins-ann: 1 complete" in out
    assert "--study penguins-ann: using the study file ./penguins-ann.yaml" in err, err

    (here / "penguins-ann.yaml").unlink()  # the file is gone; the study is in the storage
    code, out, err = run(capsys, "optimize", "--study", "penguins-ann", "--n-trials", "2", *QUICK[1:])
    assert code == 0, err
    assert "study penguins-ann: 2 complete" in out
    notes = [line for line in err.splitlines() if line.startswith("--study penguins-ann:")]
    assert len(notes) == 1 and "resuming the study of that name in sqlite:///" in notes[0], err


def test_an_unknown_name_is_still_unknown(here, capsys):
    code, _, err = run(capsys, "optimize", "--study", "penguins-ann", "--n-trials", "1")
    assert code == 2 and err.count("\n") == 1 and "unknown study 'penguins-ann'" in err, err
    assert not (here / "anncnn-tune.db").exists()


@pytest.mark.parametrize(("first", "again", "says"), [
    (("--epochs", "1"), (), "repeat `--epochs 1` to resume, or pass --study-name NAME for a new study"),
    (("--epochs", "1"), ("--epochs", "2"), "repeat `--epochs 1` to resume"),
    (("--epochs", "1", "--seed", "5"), ("--epochs", "1"), "repeat `--seed 5` to resume"),
    (("--epochs", "1", "--subset", "300"), ("--epochs", "1"), "repeat `--subset 300` to resume"),
    (("--epochs", "1"), ("--epochs", "1", "--subset", "300"), "leave out --subset to resume"),
])
def test_resuming_with_a_changed_flag_names_the_flag_to_repeat(here, capsys, first, again, says):
    (here / "tiny-ann.yaml").write_text(yaml.safe_dump(TINY_ANN))
    code, _, err = run(capsys, "optimize", "--study", "tiny-ann.yaml", "--n-trials", "1", *first, *QUICK)
    assert code == 0, err
    before = sqlite_snapshot(here / "anncnn-tune.db")
    code, _, err = run(capsys, "optimize", "--study", "tiny-ann.yaml", "--n-trials", "2", *again, *QUICK)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert says in err, err
    assert sqlite_snapshot(here / "anncnn-tune.db") == before
