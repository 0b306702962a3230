"""Messages that say what is wrong and what to do (issue 11, part 6): one line, exit 2, nothing written."""

from __future__ import annotations

import optuna
from helpers import run_cli

from anncnn_tune.service import storage as storage_mod
from anncnn_tune.service.readonly import close_readonly
from anncnn_tune.service.storage import close_all


def one_error(result) -> str:
    close_all()
    close_readonly()
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_data_dir_naming_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    line = one_error(run_cli("optimize", "--study", "mnist-ann", "--data-dir", "afile", cwd=tmp_path))
    assert "--data-dir afile is a file, not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_folder_where_a_dataset_file_should_be(tmp_path):
    (tmp_path / "dd" / "california-housing" / "cal_housing.tgz").mkdir(parents=True)
    line = one_error(run_cli("optimize", "--study", "california-housing-ann", "--data-dir", "dd", cwd=tmp_path,
                             env={"ANNCNN_TUNE_OFFLINE": "1"}))
    assert "is a folder where the file cal_housing.tgz should be" in line


def test_a_sqlite_storage_in_a_read_only_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = storage_mod.os.access
    # Tests may run as root, for whom chmod does not make a folder read-only: the check is what counts.
    monkeypatch.setattr(storage_mod.os, "access", lambda p, mode: False if str(p) == str(folder) else real_access(p, mode))
    line = one_error(run_cli("optimize", "--study", "digits-ann", "--storage", f"sqlite:///{folder}/s.db",
                             "--artifacts", str(tmp_path / "art"), cwd=tmp_path))
    assert "is read-only" in line and "server" not in line and "artifact" not in line
    assert list(folder.iterdir()) == [] and not (tmp_path / "art").exists()


def test_a_text_file_given_as_sqlite_storage(tmp_path):
    (tmp_path / "notes.db").write_text("my notes\n")
    line = one_error(run_cli("optimize", "--study", "digits-ann", "--storage", "sqlite:///notes.db", cwd=tmp_path))
    assert "is not a SQLite database" in line and "server" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    assert (tmp_path / "notes.db").read_text() == "my notes\n"


def test_exporting_a_plain_optuna_study_says_what_to_do(tmp_path):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    optuna.create_study(study_name="plain", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    line = one_error(run_cli("export", "--study", "plain", "--storage", url, cwd=tmp_path))
    assert "not created by anncnn-tune" in line and "anncnn-tune optimize --study" in line


def test_datasets_data_dir_before_fetch_is_honoured(tmp_path):
    (tmp_path / "dd").mkdir()
    result = run_cli("datasets", "--data-dir", "dd", "fetch", "mnist", cwd=tmp_path, env={"ANNCNN_TUNE_OFFLINE": "1"})
    line = one_error(result)
    assert "dd/mnist" in line  # the folder given to the group, not the per-user cache
