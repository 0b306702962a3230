"""Short real studies on the real files in ../shared/datasets, through the real CLI.

Budgets are cut (--epochs, --n-trials, --subset) to fit CI on two cores; what is asserted is that
the whole path works on real data and learns something, not the final quality.
"""

from __future__ import annotations

import optuna
import pytest
from helpers import SHARED_DATASETS, run_cli

from anncnn_tune.service.records import StudyRecord

SHARED = SHARED_DATASETS
FOLDERS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "california-housing": "california-housing",
           "churn": "telco-churn"}

CASES = [
    # study, extra flags, metric floor (or ceiling for MSE)
    ("mnist-ann", ("--epochs", "2", "--subset", "0.1"), ("min", 0.85)),
    ("fashion-mnist-cnn", ("--epochs", "2", "--subset", "0.05"), ("min", 0.6)),
    ("california-housing-ann", ("--epochs", "6",), ("max", 1.0)),
    ("churn-ann", ("--epochs", "6",), ("min", 0.75)),
]


@pytest.mark.slow
@pytest.mark.parametrize("study, flags, bound", CASES, ids=[c[0] for c in CASES])
def test_short_real_study(tmp_path, study, flags, bound):
    dataset = study.rsplit("-", 1)[0]
    if not (SHARED / FOLDERS[dataset]).is_dir():
        pytest.skip(f"real {dataset} files not in {SHARED}; set ANNCNN_TUNE_SHARED_DATASETS")
    result = run_cli("optimize", "--study", study, "--n-trials", "3", "--data-dir", SHARED, *flags,
                     cwd=tmp_path, env={"ANNCNN_TUNE_OFFLINE": "1"}, timeout=900)
    assert result.returncode == 0, result.stderr
    stored = optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path / 'anncnn-tune.db'}")
    finished = [t for t in stored.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert len(finished) == 3
    kind, limit = bound
    assert (stored.best_value >= limit) if kind == "min" else (stored.best_value <= limit), stored.best_value
    record = StudyRecord.read(stored)
    data = record.data
    assert data["dataset"] == dataset and len(data["fingerprint"]) == 64 and data["split_seed"] == 0
    baseline = stored.trials[0]
    assert baseline.user_attrs["baseline"] and baseline.params == {
        k: v for k, v in record.spec["baselines"][0]["params"].items()}
    if dataset == "churn":
        history = baseline.user_attrs["history"][-1]
        assert {"val_accuracy", "val_precision", "val_recall", "val_f1", "val_roc_auc"} <= set(history)
