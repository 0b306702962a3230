"""`anncnn-tune export` and `retrain` on a real digits study: every produced file read back, bad input refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from helpers import build_digits_demo, run_cli, sqlite_snapshot, url
from helpers import main_in_process as cli

from anncnn_tune.data import load_dataset
from anncnn_tune.results import export as export_mod
from anncnn_tune.results.weights import load_weights
from anncnn_tune.search.spec import suggest
from anncnn_tune.search.study import stored_spec
from anncnn_tune.service import records
from anncnn_tune.service.records import StudyRecord

FILES = ("run.yaml", "metrics.json", "report.md", "model.pt", "model.onnx", "learning_curves.png",
         "confusion_matrix.png")


@pytest.fixture(autouse=True)
def _no_env_storage(monkeypatch):
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A private copy of the demo storage: retrain writes test metrics into it."""
    folder = tmp_path_factory.mktemp("export-retrain")
    shutil.copy(build_digits_demo(tmp_path_factory), folder / "anncnn-tune.db")
    return folder


@pytest.fixture(scope="module")
def retrained(work):
    """export the best digits-cnn trial, then retrain it with 2 seeds and 2-fold CV, as a user would."""
    exported = run_cli("export", "--study", "digits-cnn", "-o", "best.yaml", cwd=work)
    assert exported.returncode == 0, exported.stderr
    result = run_cli("retrain", "best.yaml", "--out", "out", "--seeds", "2", "--cv", "2", cwd=work, timeout=600)
    assert result.returncode == 0, result.stderr
    return work, exported, result


def test_export_writes_the_best_trial_as_a_run_file(retrained):
    work, exported, _ = retrained
    assert "wrote best.yaml: study digits-cnn trial" in exported.stdout
    raw = yaml.safe_load((work / "best.yaml").read_text())
    study = optuna.load_study(study_name="digits-cnn", storage=url(work / "anncnn-tune.db"))
    best = study.best_trial
    assert raw["dataset"] == "digits" and raw["model"] == "cnn" and raw["metric"] == "val_accuracy"
    assert raw["params"] == suggest(stored_spec(study), optuna.trial.FixedTrial(best.params))
    assert raw["epochs"] == best.user_attrs["best_epoch"] and raw["seed"] == best.user_attrs["seed"]
    assert raw["data"] == {"fingerprint": StudyRecord.read(study).fingerprint, "split_seed": 0}
    assert raw["source"]["study"] == "digits-cnn" and raw["source"]["trial"] == best.number
    assert raw["source"]["value"] == best.value
    assert raw["source"]["storage"] == f"sqlite:///{work / 'anncnn-tune.db'}"  # absolute, found from any folder
    assert raw["versions"]["torch"] == torch.__version__ and raw["versions"]["optuna"] == optuna.__version__
    run = export_mod.load_run(str(work / "best.yaml"))
    assert run.params == raw["params"] and run.label == f"digits-cnn-trial{best.number}"


def test_export_masks_the_storage_password(retrained):
    work, _, _ = retrained
    study = optuna.load_study(study_name="digits-cnn", storage=url(work / "anncnn-tune.db"))
    raw = export_mod.run_from_trial(study, study.best_trial, "postgresql+psycopg://tuner:s3cret@db.example/studies")
    assert "s3cret" not in export_mod.to_yaml(raw) and raw["source"]["storage"].startswith("postgresql+psycopg://tuner:***@")


def test_export_of_a_chosen_trial_prints_the_run_file(retrained, capsys):
    work, _, _ = retrained
    study = optuna.load_study(study_name="digits-cnn", storage=url(work / "anncnn-tune.db"))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    other = complete[0]
    code, out, err = cli(capsys, "export", "--study", "digits-cnn", "--trial", other.number,
                         "--storage", url(work / "anncnn-tune.db"))
    assert code == 0, err
    raw = yaml.safe_load(out)
    assert raw["source"]["trial"] == other.number
    assert raw["epochs"] == (other.user_attrs.get("best_epoch") or other.user_attrs["epochs_run"])


def test_retrain_writes_every_file_and_each_reads_back(retrained):
    from matplotlib.image import imread

    work, _, result = retrained
    out = work / "out"
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["test"]
    assert test["metric"] == "accuracy" and test["seeds"] == 2 and len(test["per_seed"]) == 2
    accuracies = [row["accuracy"] for row in test["per_seed"]]
    assert test["mean"] == pytest.approx(np.mean(accuracies)) and test["std"] == pytest.approx(np.std(accuracies,
                                                                                                        ddof=1))
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "loss"):
        assert 0 <= test["summary"][key]["mean"] <= (1 if key != "loss" else 10), key
    assert set(test["per_class"]) >= {str(c) for c in range(10)}
    cm = test["confusion_matrix"]
    assert cm["classes"] == [str(c) for c in range(10)]
    assert np.asarray(cm["matrix"]).shape == (10, 10) and np.asarray(cm["matrix"]).sum() == metrics["n_test"] == 270
    assert metrics["cv"]["k"] == 2 and len(metrics["cv"]["folds"]) == 2
    assert metrics["onnx"]["passed"] and metrics["onnx"]["max_abs_diff"] <= 1e-4
    assert f"test accuracy {test['mean']:.4f}" in result.stdout and "recorded on study digits-cnn" in result.stdout

    report = (out / "report.md").read_text()
    assert "## Test metrics" in report and f"{test['mean']:.4f} ± {test['std']:.4f}" in report
    assert "![confusion matrix](confusion_matrix.png)" in report and "cross-validation" in report
    for png in ("learning_curves.png", "confusion_matrix.png"):
        assert imread(out / png).shape[0] > 200

    run = export_mod.load_run(str(out / "run.yaml"))  # the copy beside the weights validates too
    assert run.as_dict()["params"] == yaml.safe_load((work / "best.yaml").read_text())["params"]


def test_weights_rebuild_the_model_and_onnx_matches_it(retrained):
    import onnxruntime

    work, _, _ = retrained
    out = work / "out"
    saved = torch.load(out / "model.pt", weights_only=True)
    assert saved["config"]["model"] == "cnn" and saved["input_shape"] == [1, 8, 8] and saved["out_dim"] == 10
    model, _ = load_weights(str(out / "model.pt"))
    splits = load_dataset("digits", seed=saved["config"]["data"]["split_seed"])
    raw = torch.from_numpy(splits.x_test).float()
    mean, std = torch.tensor(saved["mean"]).view(1, -1, 1, 1), torch.tensor(saved["std"]).view(1, -1, 1, 1)
    with torch.inference_mode():
        logits = model((raw - mean) / std).numpy()
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {session.get_inputs()[0].name: raw.numpy()})[0]  # raw pixels in, logits out
    assert np.abs(onnx_logits - logits).max() <= 1e-4
    # The saved model is the first seed's: its accuracy is the first per-seed test accuracy.
    metrics = json.loads((out / "metrics.json").read_text())
    accuracy = float((logits.argmax(1) == splits.y_test).mean())
    assert accuracy == pytest.approx(metrics["test"]["per_seed"][0]["accuracy"], abs=1e-6)


def test_compare_shows_the_recorded_test_metrics(retrained, capsys):
    work, _, _ = retrained
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    study = optuna.load_study(study_name="digits-cnn", storage=url(work / "anncnn-tune.db"))
    recorded = StudyRecord.read(study).test_metrics[study.best_trial.number]
    assert recorded["mean"] == metrics["test"]["mean"] and recorded["seeds"] == 2
    code, out, _ = cli(capsys, "compare", "--storage", url(work / "anncnn-tune.db"), "--format", "json")
    assert code == 0
    row = next(r for r in json.loads(out)["datasets"][0]["studies"] if r["study"] == "digits-cnn")
    assert row["test_value"] == metrics["test"]["mean"] and row["test_trial"] == study.best_trial.number
    _code, table, _ = cli(capsys, "compare", "--storage", url(work / "anncnn-tune.db"))
    assert f"{metrics['test']['mean']:.4f}±{metrics['test']['std']:.4f}" in table


# -- bad input: one line, exit 2, storage untouched ------------------------------------------------

EDITS = {
    "negative lr": (("params", "lr"), -0.1, "params.lr"),
    "unknown optimizer": (("params", "optimizer"), "rmsprop", "params.optimizer"),
    "dropout above 1": (("params", "dropout"), 1.5, "params.dropout"),
    "zero epochs": (("epochs",), 0, ".epochs"),
    "unknown parameter": (("params", "colour"), "red", "params.colour"),
    "unknown dataset": (("dataset",), "imagenet", ".dataset"),
    "wrong fingerprint": (("data", "fingerprint"), "0" * 64, "not the ones the study used"),
    # valid, but no longer the trial's configuration: its score must not be filed under the trial
    "another configuration": (("epochs",), 97, "cannot be recorded on that trial"),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_an_edited_run_file_is_refused_in_one_line(retrained, tmp_path, capsys, case):
    work, _, _ = retrained
    keys, value, fragment = EDITS[case]
    raw = yaml.safe_load((work / "best.yaml").read_text())
    target = raw
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(raw))
    before = sqlite_snapshot(work / "anncnn-tune.db")
    code, out, err = cli(capsys, "retrain", edited, "--out", tmp_path / "out")
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err
    assert str(edited) in err  # the file is named
    assert sqlite_snapshot(work / "anncnn-tune.db") == before
    assert not (tmp_path / "out").exists()


def _empty_study(db: Path) -> None:
    """A study with a stored spec but no complete trial (as right after a crashed first trial)."""
    source = optuna.load_study(study_name="digits-cnn", storage=url(db))
    study = optuna.create_study(study_name="digits-cnn-empty", storage=url(db), direction="maximize",
                                load_if_exists=True)
    stored = StudyRecord.read(source)
    records.write_study_created(study, stored.spec, stored.data)
    if not study.trials:
        trial = study.ask()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


BAD = {
    "unknown study": (("export", "--study", "digits-vit"), "no study 'digits-vit'"),
    "no complete trial": (("export", "--study", "digits-cnn-empty"), "has no complete trial"),
    "missing trial": (("export", "--study", "digits-cnn", "--trial", "999"), "has no trial 999"),
    "unwritable -o": (("export", "--study", "digits-cnn", "-o", "{blocker}/run.yaml"), "cannot write"),
    "unwritable --out": (("retrain", "{run}", "--out", "{blocker}/out"), "cannot write to --out"),
    "missing run file": (("retrain", "{tmp}/nothing.yaml"), "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_export_and_retrain_input_is_one_line_and_exit_2(retrained, tmp_path, capsys, case):
    work, _, _ = retrained
    db = work / "anncnn-tune.db"
    _empty_study(db)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args, fragment = BAD[case]
    args = [a.format(blocker=blocker, run=work / "best.yaml", tmp=tmp_path) for a in args]
    before = sqlite_snapshot(db)
    code, out, err = cli(capsys, *args, "--storage", url(db))
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err, err
    assert sqlite_snapshot(db) == before


def test_the_real_console_script_reports_a_bad_run_file_in_one_line(retrained, tmp_path):
    work, _, _ = retrained
    raw = yaml.safe_load((work / "best.yaml").read_text())
    raw["params"]["batch_size"] = 0
    edited = tmp_path / "bad.yaml"
    edited.write_text(yaml.safe_dump(raw))
    before = sqlite_snapshot(work / "anncnn-tune.db")
    result = run_cli("retrain", edited, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{edited}.params.batch_size" in result.stderr
    assert sqlite_snapshot(work / "anncnn-tune.db") == before and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_full_digits_cnn_search_generalises_to_test(tmp_path):
    """The acceptance figure: a 30-trial digits-cnn search; retrained test accuracy within 1.5 points."""
    searched = run_cli("optimize", "--study", "digits-cnn", "--n-trials", "30", "--quiet", cwd=tmp_path, timeout=900)
    assert searched.returncode == 0, searched.stderr
    assert run_cli("export", "--study", "digits-cnn", "-o", "best.yaml", cwd=tmp_path).returncode == 0
    retrained = run_cli("retrain", "best.yaml", "--out", "out", cwd=tmp_path)
    assert retrained.returncode == 0, retrained.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert abs(metrics["test"]["mean"] - metrics["validation"]["value"]) <= 0.015
    assert metrics["onnx"]["max_abs_diff"] <= 1e-4


def test_a_long_retrain_prints_an_epoch_line_every_few_seconds():
    from anncnn_tune.results import refit

    clock = iter([0.0, 3.0, 11.0, 14.0, 25.0])  # the observer's start, then one reading per epoch
    lines = []
    observer = refit.ProgressLines(lines.append, "seed 0: ", 4, clock=lambda: next(clock))
    for epoch in (1, 2, 3, 4):
        observer.on_epoch({"epoch": epoch, "train_loss": 1.0 / epoch})
    # 3 s: too soon; 11 s: 10 s since the start; 14 s: 3 s since that line; 25 s: 14 s since it.
    assert lines == ["seed 0: epoch 2/4 train_loss=0.5000 (11s)", "seed 0: epoch 4/4 train_loss=0.2500 (25s)"]


def test_a_long_epoch_prints_the_samples_done_after_half_a_minute_of_silence():
    from anncnn_tune.results import refit

    # The observer's start, then one reading per step (the epoch's last step prints no step line:
    # its epoch line follows), then the epoch line's.
    clock = iter([0.0, 20.0, 31.0, 50.0, 62.0, 70.0])
    lines = []
    observer = refit.ProgressLines(lines.append, "seed 3: ", 15, clock=lambda: next(clock))
    for seen in (10_000, 20_000, 30_000, 40_000):
        observer.on_step(2, seen, 45_000)
    observer.on_step(2, 45_000, 45_000)
    observer.on_epoch({"epoch": 2, "train_loss": 1.25})
    # 20 s: too soon; 31 s: 31 since the start; 50 s: 19 since that line; 62 s: 31 since it;
    # the epoch line at 70 s: 8 s since the last line, under the epoch lines' 10 s.
    assert lines == ["seed 3: epoch 2/15: 20,000 of 45,000 samples (31s)",
                     "seed 3: epoch 2/15: 40,000 of 45,000 samples (62s)"]
