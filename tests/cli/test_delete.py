"""`delete NAME` removes a study with its artifacts; `optimize --study-name` keeps variants side by side."""

from __future__ import annotations

import optuna
import pytest
from helpers import main_in_process as run
from helpers import sqlite_snapshot

from anncnn_tune.service.storage import close_all

# Two epochs: a checkpoint is saved after every epoch but the last, so each study leaves a directory.
QUICK = ("--study", "digits-ann", "--n-trials", "2", "--epochs", "2", "--subset", "200", "--quiet", "--threads", "1")


def study_names(db) -> list[str]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:
        return sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    finally:
        storage.engine.dispose()


@pytest.fixture
def two_variants(tmp_path, monkeypatch, capsys):
    """digits-ann under its own name and, with another epoch budget, under --study-name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    monkeypatch.delenv("ANNCNN_TUNE_ARTIFACTS", raising=False)
    code, _, err = run(capsys, "optimize", *QUICK)
    assert code == 0, err
    code, out, err = run(capsys, "optimize", *QUICK, "--epochs", "3", "--study-name", "digits-ann-e3")
    assert code == 0, err
    assert "study digits-ann-e3:" in out
    yield tmp_path
    close_all()


def test_study_name_keeps_variants_side_by_side(two_variants):
    assert study_names(two_variants / "anncnn-tune.db") == ["digits-ann", "digits-ann-e3"]
    checkpoints = two_variants / "anncnn-tune-artifacts" / "checkpoints"
    assert sorted(p.name.rsplit("-", 1)[0] for p in checkpoints.iterdir()) == ["digits-ann", "digits-ann-e3"]


def test_changed_epochs_names_stored_and_new_value(two_variants, capsys):
    before = sqlite_snapshot(two_variants / "anncnn-tune.db")
    code, _, err = run(capsys, "optimize", *QUICK, "--epochs", "4")
    assert code == 2 and err.count("\n") == 1
    assert "was started with `--epochs 2`, this run has `--epochs 4`" in err and "--study-name" in err
    assert sqlite_snapshot(two_variants / "anncnn-tune.db") == before


def test_bad_study_name_is_refused_before_any_work(two_variants, capsys):
    before = sqlite_snapshot(two_variants / "anncnn-tune.db")
    code, _, err = run(capsys, "optimize", *QUICK, "--study-name", "a/b")
    assert code == 2 and "--study-name 'a/b'" in err
    assert sqlite_snapshot(two_variants / "anncnn-tune.db") == before


def test_delete_removes_the_study_and_its_artifacts_only(two_variants, capsys):
    root = two_variants / "anncnn-tune-artifacts"
    storage = optuna.storages.RDBStorage(f"sqlite:///{two_variants / 'anncnn-tune.db'}")
    owned = {}
    for name in ("digits-ann", "digits-ann-e3"):
        study = optuna.load_study(study_name=name, storage=storage)
        owned[name] = {m.artifact_id for t in study.get_trials() for m in
                       optuna.artifacts.get_all_artifact_meta(t, storage=storage)}
        assert owned[name] and all((root / a).is_file() for a in owned[name])
    storage.engine.dispose()

    code, out, err = run(capsys, "delete", "digits-ann", "--yes")
    assert code == 0, err
    assert "deleted study digits-ann: 2 trial(s), 4 artifact file(s), checkpoints" in out
    assert study_names(two_variants / "anncnn-tune.db") == ["digits-ann-e3"]
    assert not any((root / a).exists() for a in owned["digits-ann"])
    assert all((root / a).is_file() for a in owned["digits-ann-e3"])
    assert [p.name.rsplit("-", 1)[0] for p in (root / "checkpoints").iterdir()] == ["digits-ann-e3"]


def test_delete_asks_and_a_no_changes_nothing(two_variants, capsys, monkeypatch):
    import io

    before = sqlite_snapshot(two_variants / "anncnn-tune.db")
    files = sorted((two_variants / "anncnn-tune-artifacts").rglob("*"))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, _, err = run(capsys, "delete", "digits-ann")
    assert code == 1 and "nothing deleted" in err
    assert sqlite_snapshot(two_variants / "anncnn-tune.db") == before
    assert sorted((two_variants / "anncnn-tune-artifacts").rglob("*")) == files


def test_unknown_study_is_one_line_and_changes_nothing(two_variants, capsys):
    before = sqlite_snapshot(two_variants / "anncnn-tune.db")
    code, _, err = run(capsys, "delete", "nope", "--yes")
    assert code == 2 and err.count("\n") == 1
    assert "no study 'nope'" in err and "digits-ann, digits-ann-e3" in err
    assert sqlite_snapshot(two_variants / "anncnn-tune.db") == before


def test_delete_without_a_storage_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    code, _, err = run(capsys, "delete", "digits-ann", "--yes")
    assert code == 2 and "no studies yet" in err
    assert list(tmp_path.iterdir()) == []


def test_datasets_without_a_storage_says_no_studies_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    code, out, err = run(capsys, "datasets")
    assert code == 0, err
    assert "no studies yet" in out
    assert list(tmp_path.iterdir()) == []
