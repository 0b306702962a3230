"""Where a retrain's test metrics go: the trial it retrained, on its study, where compare finds them.

The target is found and checked before any training (wrong storage, a missing trial or other data
are one-line errors that leave everything as it was), and written only after every file exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import optuna

from anncnn_tune.errors import UserError
from anncnn_tune.results.export import Run, load_stored_study
from anncnn_tune.service.records import StudyRecord, TrialRecord, write_test_metrics
from anncnn_tune.service.storage import ENV_VAR, mask


@dataclass(frozen=True)
class RecordTarget:
    study: optuna.Study
    trial: int


def record_target(run: Run, storage: str | None, record: bool = True) -> RecordTarget | None:
    """The study and trial to write the test metrics back to (None: nothing to record), checked now.

    storage: an explicit URL; else $ANNCNN_TUNE_STORAGE, else the one the run file was exported from.
    """
    study_name, trial_number = run.source.get("study"), run.source.get("trial")
    if not record or study_name is None or trial_number is None:
        return None
    url = storage or os.environ.get(ENV_VAR) or run.source.get("storage")
    if not url or "***" in url:
        raise UserError(f"{run.path}: the source storage URL has its password masked; pass --storage URL "
                        "to record the test metrics on the study, or --no-record")
    study = load_stored_study(url, study_name, writable=True)
    if not any(t.number == trial_number for t in study.get_trials(deepcopy=False)):
        raise UserError(f"study {study_name!r} in {mask(url)} has no trial {trial_number}; pass the --storage "
                        "the run file was exported from, or --no-record")
    if StudyRecord.read(study).fingerprint != run.fingerprint:
        raise UserError(f"study {study_name!r} in {mask(url)} was run on other data than {run.path} records; "
                        "pass the right --storage, or --no-record")
    return RecordTarget(study, int(trial_number))


def trial_history(target: RecordTarget | None) -> list[dict]:
    """The search's learning curve of the retrained trial (empty without a target)."""
    if target is None:
        return []
    trial = next(t for t in target.study.get_trials(deepcopy=False) if t.number == target.trial)
    return TrialRecord.read(trial).history or []


def record(target: RecordTarget, metrics: dict, out: Path) -> None:
    """The test metrics on the study (keyed by trial number), where compare finds them."""
    test = metrics["test"]
    write_test_metrics(target.study, target.trial, {
        "metric": test["metric"], "mean": test["mean"], "std": test["std"], "seeds": test["seeds"],
        "epochs": metrics["epochs"], "summary": test["summary"],
        "cv": metrics["cv"]["summary"] if metrics["cv"] else None,
        "onnx_max_abs_diff": metrics["onnx"]["max_abs_diff"], "out": str(out.resolve()),
        "retrained_at": metrics["retrained_at"],
    })
