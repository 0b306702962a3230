"""Studies written before the compact layout (their whole record in user attributes, see
service/records.py) still list, compare, export, retrain and resume, as the same studies in the
compact layout do; and what retrain adds to them stays in the layout older versions read."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import build_digits_demo, run_cli, sqlite_snapshot, url

from anncnn_tune.service import optuna_private
from anncnn_tune.service.readonly import close_readonly
from anncnn_tune.service.records import StudyRecord
from anncnn_tune.service.storage import close_all

NAMES = ("digits-ann", "digits-cnn")


def flatten(source: Path, target: Path) -> None:
    """The demo's studies as anncnn-tune wrote them before the compact layout: the same trials, and
    the record as raw user attributes (spec, data, created_by), nothing of it in system attributes."""
    for name in optuna.get_all_study_names(url(source)):  # in the order they were created
        stored = optuna.load_study(study_name=name, storage=url(source))
        record = StudyRecord.read(stored)
        study = optuna.create_study(study_name=name, storage=url(target), directions=stored.directions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(stored.metric_names)
        for key, value in {"spec": record.spec, "data": record.data, "created_by": "anncnn-tune"}.items():
            study.set_user_attr(key, value)
        study.add_trials(stored.get_trials(deepcopy=False))
    optuna.storages.RDBStorage(url(target)).engine.dispose()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """(compact, flat): the demo storage, and the same studies in the flat layout."""
    demo = build_digits_demo(tmp_path_factory)
    compact, flat = tmp_path_factory.mktemp("compact"), tmp_path_factory.mktemp("flat")
    shutil.copy(demo, compact / "anncnn-tune.db")
    flatten(compact / "anncnn-tune.db", flat / "anncnn-tune.db")
    return compact, flat


def _cli(*args, cwd: Path):
    result = run_cli(*args, cwd=cwd)
    close_all()
    close_readonly()
    assert result.returncode == 0, result.stderr
    return result


def _leaderboard(cwd: Path) -> dict:
    board = json.loads(_cli("compare", "--format", "json", cwd=cwd).stdout)
    for key in ("storage", "generated_at"):
        board.pop(key)
    return board


def test_the_flat_copy_is_flat_and_reads_into_the_same_records(folders):
    compact, flat = folders
    for name in NAMES:
        old = optuna.load_study(study_name=name, storage=url(flat / "anncnn-tune.db"))
        new = optuna.load_study(study_name=name, storage=url(compact / "anncnn-tune.db"))
        assert "spec" in old.user_attrs and "spec" not in new.user_attrs
        assert not any(k.startswith("anncnn-tune:") for k in optuna_private.study_system_attrs(old))
        assert StudyRecord.read(old) == StudyRecord.read(new)


def test_flat_studies_list_compare_and_export_as_compact_ones_do_and_nothing_is_written(folders):
    compact, flat = folders
    before = sqlite_snapshot(flat / "anncnn-tune.db")
    listed = [json.loads(_cli("studies", "--json", cwd=cwd).stdout)["studies"] for cwd in (compact, flat)]
    assert listed[0] == listed[1] and {s["name"] for s in listed[1]} == set(NAMES)
    assert _leaderboard(flat) == _leaderboard(compact)
    exported = []
    for cwd in (compact, flat):
        _cli("export", "--study", "digits-cnn", "-o", "best.yaml", cwd=cwd)
        raw = yaml.safe_load((cwd / "best.yaml").read_text())
        for key in ("storage", "exported_at"):
            raw["source"].pop(key)
        exported.append(raw)
    assert exported[0] == exported[1]
    assert sqlite_snapshot(flat / "anncnn-tune.db") == before


def test_a_flat_study_retrains_and_resumes_and_stays_flat(folders):
    _, flat = folders
    _cli("export", "--study", "digits-cnn", "-o", "best.yaml", cwd=flat)
    _cli("retrain", "best.yaml", "--out", "out", "--seeds", "1", "--device", "cpu", cwd=flat)
    study = optuna.load_study(study_name="digits-cnn", storage=url(flat / "anncnn-tune.db"))
    tested = yaml.safe_load((flat / "best.yaml").read_text())["source"]["trial"]
    assert str(tested) in study.user_attrs["test_metrics"] and study.user_attrs["test_scorings"] == 1
    assert StudyRecord.read(study).test_metrics[tested]["seeds"] == 1
    board = _leaderboard(flat)
    (row,) = [r for d in board["datasets"] for r in d["studies"] if r["study"] == "digits-cnn"]
    assert row["test_trial"] == tested

    # resume: open_study compares the stored (flat) spec with the file's, and goes on
    _cli("optimize", "--study", "digits-ann", "--n-trials", "7", "--epochs", "4", "--quiet", cwd=flat)
    ann = optuna.load_study(study_name="digits-ann", storage=url(flat / "anncnn-tune.db"))
    assert len([t for t in ann.trials if t.state.is_finished() and t.state.name != "FAIL"]) == 7
    changed = run_cli("optimize", "--study", "digits-ann", "--n-trials", "8", "--epochs", "3", cwd=flat)
    close_all()
    assert changed.returncode == 2 and "was started with `--epochs" in changed.stderr
    for name in NAMES:
        study = optuna.load_study(study_name=name, storage=url(flat / "anncnn-tune.db"))
        assert "spec" in study.user_attrs and "summary" not in study.user_attrs
        assert not any(k.startswith("anncnn-tune:") for k in optuna_private.study_system_attrs(study))
