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
from anncnn_tune.results.export import Run, load_stored_study, run_from_trial
from anncnn_tune.service.records import (
    StudyRecord,
    TrialRecord,
    encode_correct,
    write_test_metrics,
    write_test_scored,
)
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
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == trial_number), None)
    if trial is None:
        raise UserError(f"study {study_name!r} in {mask(url)} has no trial {trial_number}; pass the --storage "
                        "the run file was exported from, or --no-record")
    _same_configuration(run, study, trial, url)
    if StudyRecord.read(study).fingerprint != run.fingerprint:
        raise UserError(f"study {study_name!r} in {mask(url)} was run on other data than {run.path} records; "
                        "pass the right --storage, or --no-record")
    return RecordTarget(study, int(trial_number))


def _same_configuration(run: Run, study: optuna.Study, trial, url: str) -> None:
    """A test score is recorded against a trial only for the configuration that trial trained.

    A hand-edited run file (another depth, more epochs) is a new model: scoring it is fine, but
    filing its score under the trial would make the leaderboard report a model it never searched.
    """
    exported = run_from_trial(study, trial, url)
    differs = [k for k in sorted(exported["params"]) if run.params.get(k) != exported["params"][k]]
    if run.epochs != exported["epochs"]:
        differs.append("epochs")
    if differs:
        first = differs[0]
        was = exported["epochs"] if first == "epochs" else exported["params"][first]
        now = run.epochs if first == "epochs" else run.params.get(first)
        raise UserError(f"{run.path} differs from trial {trial.number} of {study.study_name!r} in "
                        f"{', '.join(differs)} ({first}: trial {was!r}, run file {now!r}); its test score cannot be "
                        "recorded on that trial: pass --no-record to score it anyway, or export the trial again")


def trial_history(target: RecordTarget | None) -> list[dict]:
    """The search's learning curve of the retrained trial (empty without a target)."""
    if target is None:
        return []
    trial = next(t for t in target.study.get_trials(deepcopy=False) if t.number == target.trial)
    return TrialRecord.read(trial).history or []


def check_clean_test(out: Path, force: bool) -> bool:
    """Refuse to overwrite a retrain's folder without --force; True when --force overwrites one.

    The test split is an unbiased estimate only the first time it is looked at: every further
    scoring after which anything is chosen or changed leaks the test set into the decisions."""
    held = out.is_dir() and any(out.iterdir())
    if held and not force:
        raise UserError(f"--out {out} already holds files (an earlier retrain?); pass --force to overwrite it, "
                        "or choose another --out")
    return held


def warn_rescoring(target: RecordTarget | None, overwriting: bool, log) -> None:
    """Said once every check passed, just before training: the test split was scored before."""
    scored = StudyRecord.read(target.study).test_scorings if target is not None else 0
    if scored or overwriting:
        times = f"{scored} time(s) before" if scored else "before (--force overwrites a retrain's folder)"
        log(f"warning: this test split was scored {times}; a second test scoring is no longer a clean held-out "
            "estimate")


def record(target: RecordTarget, metrics: dict, out: Path, correct=None) -> None:
    """The test metrics on the study (keyed by trial number), where compare finds them, and one more
    test scoring counted. correct: (seeds, n_test) 0/1 per test example, for the paired tests."""
    test = metrics["test"]
    write_test_metrics(target.study, target.trial, {
        "metric": test["metric"], "mean": test["mean"], "std": test["std"], "seeds": test["seeds"],
        "epochs": metrics["epochs"], "summary": test["summary"],
        "cv": metrics["cv"]["summary"] if metrics["cv"] else None,
        "onnx_max_abs_diff": metrics["onnx"]["max_abs_diff"], "out": str(out.resolve()),
        "retrained_at": metrics["retrained_at"],
        "per_seed_values": [row[test["metric"]] for row in test["per_seed"]],
        "correct": encode_correct(correct) if correct is not None else None,
        "cost": metrics.get("cost"),
    })
    write_test_scored(target.study)
