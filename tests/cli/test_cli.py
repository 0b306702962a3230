"""End to end through the real console entry point, on SQLite in a temporary directory."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import run_cli, sqlite_snapshot

from anncnn_tune.search.spec import builtin_dir

OPTUNA = str(Path(sys.executable).with_name("optuna"))  # optuna's own CLI, from the same environment
QUICK = ("--study", "digits-ann", "--n-trials", "4", "--epochs", "3")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One short real study, shared by the tests that only read it."""
    cwd = tmp_path_factory.mktemp("demo")
    first = run_cli("optimize", *QUICK, cwd=cwd)
    assert first.returncode == 0, first.stderr
    return cwd, first


def test_optimize_writes_a_study_optuna_itself_reads(demo):
    cwd, first = demo
    url = f"sqlite:///{cwd / 'anncnn-tune.db'}"
    printed = float(re.search(r"best value (\S+)", first.stdout).group(1))
    listed = subprocess.run([OPTUNA, "studies", "--storage", url, "-f", "json"],
                            capture_output=True, text=True, check=True)
    assert [s["name"] for s in json.loads(listed.stdout)] == ["digits-ann"]
    best = subprocess.run([OPTUNA, "best-trial", "--study-name", "digits-ann",
                           "--storage", url, "-f", "json"], capture_output=True, text=True, check=True)
    value = json.loads(best.stdout)["value"]
    value = value["val_accuracy"] if isinstance(value, dict) else value
    assert value == pytest.approx(printed, rel=1e-5)


def test_optuna_studies_shows_each_study_in_one_readable_row(demo):
    """Optuna's own listing prints every user attribute: a study's record stays out of it (issue 9)."""
    cwd, _ = demo
    url = f"sqlite:///{cwd / 'anncnn-tune.db'}"
    table = subprocess.run([OPTUNA, "studies", "--storage", url], capture_output=True, text=True, check=True).stdout
    assert max(len(line) for line in table.splitlines()) <= 200, table
    (row,) = [line for line in table.splitlines() if "digits-ann" in line]
    assert "ann on digits, val_accuracy, 3 epochs" in row and "anncnn-tune" in row
    listed = subprocess.run([OPTUNA, "studies", "--storage", url, "-f", "json"],
                            capture_output=True, text=True, check=True)
    (study,) = json.loads(listed.stdout)
    assert study["user_attrs"] == {"created_by": "anncnn-tune", "summary": "ann on digits, val_accuracy, 3 epochs"}


def test_progress_and_summary_are_printed(demo):
    _, first = demo
    assert re.search(r"trial +0 (complete|pruned) +epoch +\d+/3 val_accuracy=0\.\d{4}.*\[keras-mlp-128-64\]",
                     first.stderr)
    assert "study digits-ann:" in first.stdout and "best params {" in first.stdout


def test_n_trials_is_the_study_total_across_runs(demo):
    cwd, _ = demo
    again = run_cli("optimize", *QUICK, cwd=cwd)
    assert again.returncode == 0, again.stderr
    listing = run_cli("studies", "--json", cwd=cwd)
    (study,) = json.loads(listing.stdout)["studies"]
    finished = study["states"].get("complete", 0) + study["states"].get("pruned", 0)
    assert finished == 4 and "0 of 4" not in again.stderr and "4 of 4 trials finished" in again.stderr


def test_the_study_stores_its_spec_and_data(demo):
    import optuna

    cwd, _ = demo
    from anncnn_tune.service.records import StudyRecord

    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{cwd / 'anncnn-tune.db'}")
    record = StudyRecord.read(study)
    assert record.spec["epochs"] == 3 and record.spec["model"] == "ann" and record.created_by == "anncnn-tune"
    assert record.data["n_train"] == 1257 and len(record.fingerprint) == 64
    baseline = study.trials[0]
    assert baseline.user_attrs["baseline"] == "keras-mlp-128-64" and baseline.params["width"] == 128


def test_studies_lists_files_and_stored_studies(demo):
    cwd, _ = demo
    out = run_cli("studies", cwd=cwd).stdout
    assert re.search(r"digits-cnn +digits +cnn", out)
    assert re.search(r"digits-ann +\d+ complete.*best val_accuracy 0\.\d{4}", out)


def test_storage_from_environment_variable(tmp_path):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "1", "--epochs", "1", "--quiet",
                     cwd=tmp_path, env={"ANNCNN_TUNE_STORAGE": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").is_file() and not (tmp_path / "anncnn-tune.db").exists()


def bad_study_file(tmp_path, problem: str):
    raw = yaml.safe_load((builtin_dir() / "digits-ann.yaml").read_text())
    if problem == "unknown key":
        raw["colour"] = "red"
    elif problem == "low > high":
        raw["params"]["layers"] = {"type": "int", "low": 9, "high": 2}
    elif problem == "log with low <= 0":
        raw["params"]["lr"] = {"type": "float", "low": 0.0, "high": 0.1, "log": True}
    elif problem == "empty choices":
        raw["params"]["optimizer"] = {"type": "categorical", "choices": []}
    elif problem == "unknown dataset":
        raw["dataset"] = "imagenet"
    elif problem == "unknown family":
        raw["model"] = "transformer"
    elif problem == "unknown metric":
        raw["metric"] = "val_bleu"
    elif problem == "wrong type":
        raw["epochs"] = "twenty"
    path = tmp_path / f"{problem.replace(' ', '-').replace('>', 'gt').replace('<=', 'le')}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD_INPUTS = {
    "negative --n-trials": (("--study", "digits-ann", "--n-trials", "-3"), "--n-trials"),
    "unknown --device": (("--study", "digits-ann", "--device", "tpu"), "unknown --device 'tpu'"),
    "unavailable cuda": (("--study", "digits-ann", "--device", "cuda:3"), "--device cuda:3"),
    "unknown study": (("--study", "imagenet-vit"), "unknown study 'imagenet-vit'"),
    "bad --storage": (("--study", "digits-ann", "--storage", "not a url"), "is not a database URL"),
    "zero --epochs": (("--study", "digits-ann", "--epochs", "0"), "--epochs"),
    "unusable --artifacts": (("--study", "digits-ann", "--artifacts", "anncnn-tune.db/artifacts"),
                             "cannot create the artifact directory anncnn-tune.db/artifacts"),
}
PROBLEMS = ["unknown key", "low > high", "log with low <= 0", "empty choices", "unknown dataset", "unknown family",
            "unknown metric", "wrong type"]


def assert_user_error(result, fragment):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_cli_values_fail_in_one_line_and_leave_the_storage_alone(demo, case):
    cwd, _ = demo
    if case == "unavailable cuda":
        import torch

        if torch.cuda.device_count() > 3:
            pytest.skip("this machine has a cuda:3")
    before = sqlite_snapshot(cwd / "anncnn-tune.db")
    args, fragment = BAD_INPUTS[case]
    assert_user_error(run_cli("optimize", *args, cwd=cwd), fragment)
    assert sqlite_snapshot(cwd / "anncnn-tune.db") == before


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_study_files_fail_in_one_line_and_write_nothing(tmp_path, problem):
    path = bad_study_file(tmp_path, problem)
    result = run_cli("optimize", "--study", path, cwd=tmp_path)
    assert_user_error(result, path.name)
    assert not (tmp_path / "anncnn-tune.db").exists()


def test_bad_study_file_leaves_an_existing_storage_unchanged(demo, tmp_path):
    cwd, _ = demo
    before = sqlite_snapshot(cwd / "anncnn-tune.db")
    result = run_cli("optimize", "--study", bad_study_file(tmp_path, "low > high"), cwd=cwd)
    assert_user_error(result, "low (9) is greater than high (2)")
    assert sqlite_snapshot(cwd / "anncnn-tune.db") == before


def test_changed_study_file_is_refused_on_resume(demo, tmp_path):
    cwd, _ = demo
    before = sqlite_snapshot(cwd / "anncnn-tune.db")
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "4", "--epochs", "5", cwd=cwd)
    assert_user_error(result, "was started with `--epochs")
    assert sqlite_snapshot(cwd / "anncnn-tune.db") == before


def test_studies_without_storage_says_how_to_start(tmp_path):
    result = run_cli("studies", cwd=tmp_path)
    assert result.returncode == 0 and "no storage yet" in result.stdout
    assert not (tmp_path / "anncnn-tune.db").exists()


def test_help_names_the_default_storage():
    out = run_cli("optimize", "--help").stdout
    assert "anncnn-tune.db" in out and "ANNCNN_TUNE_STORAGE" in out


def test_subset_trains_on_part_of_the_training_split(tmp_path):
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "1", "--epochs", "1", "--subset", "0.25",
                     "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import optuna

    from anncnn_tune.service.records import StudyRecord

    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{tmp_path / 'anncnn-tune.db'}")
    record = StudyRecord.read(study)
    assert record.spec["subset"] == 0.25 and record.summary.endswith(", subset 0.25")
    assert record.data["n_train"] == round(1257 * 0.25) and record.data["n_val"] == 270


def test_bad_subset_is_a_one_line_error(tmp_path):
    assert_user_error(run_cli("optimize", "--study", "digits-ann", "--subset", "-1", cwd=tmp_path), "--subset")
    assert not (tmp_path / "anncnn-tune.db").exists()


def test_timeout_stops_starting_trials_and_says_so(tmp_path):
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "30", "--epochs", "2", "--timeout", "2",
                     "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ran = int(re.search(r"--timeout reached after (\d+) trial\(s\) here", result.stdout).group(1))
    assert 1 <= ran < 30
