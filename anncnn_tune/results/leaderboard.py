"""`anncnn-tune compare`, its first job: read the leaderboard's facts from the storage alone.

Every study carries its spec and data description, and retrain adds its test metrics
(service/records.py reads them all). So one pass over the storage gives, per study, its best
trial, its baseline trial, its test score once retrained and its budget; `fairness` then
judges each dataset's studies together, and `render` writes the same dicts as a table, Markdown,
CSV, JSON or an HTML report, so every format carries the same numbers.

A row's values are declared once, in FIELDS (name, source, CSV form); the table's cells once, in
render.TABLE (header, cell). A new leaderboard column is a Field here and a Column there, plus,
where it shows a trial attribute not yet read, that attribute in records.TrialRecord.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from anncnn_tune.data.source import source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.results.export import data_change
from anncnn_tune.results.fairness import dataset_entry
from anncnn_tune.service.readonly import open_storage_readonly
from anncnn_tune.service.records import FAIR_KEYS, StudyRecord, TrialRecord, best_trial, is_maximize
from anncnn_tune.service.storage import mask


def _duration(trial) -> float:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0


@dataclass(frozen=True)
class StudyFacts:
    """What a leaderboard row is read from: a study's record, its best trial and baseline, its test."""

    name: str
    record: StudyRecord
    maximize: bool
    trials: list
    states: dict
    best: FrozenTrial | None
    best_record: TrialRecord  # all None where there is no best trial yet
    baseline: FrozenTrial | None  # the best baseline trial, else the first one
    test_trial: int | None
    test: dict | None

    @classmethod
    def read(cls, study: optuna.Study) -> StudyFacts:
        maximize = is_maximize(study)
        trials = study.get_trials(deepcopy=False)
        best = best_trial(trials, maximize)
        baselines = [t for t in trials if TrialRecord.read(t).baseline]
        record = StudyRecord.read(study)
        test_trial, test = _test_entry(record, best.number if best else None)
        return cls(name=study.study_name, record=record, maximize=maximize, trials=trials,
                   states={s: sum(t.state == s for t in trials) for s in TrialState}, best=best,
                   best_record=TrialRecord.read(best) if best else TrialRecord(number=-1),
                   baseline=best_trial(baselines, maximize) or (baselines[0] if baselines else None),
                   test_trial=test_trial, test=test)

    @property
    def spec(self) -> dict:
        return self.record.spec

    @property
    def baseline_value(self) -> float | None:
        trial = self.baseline
        return trial.value if trial is not None and trial.state == TrialState.COMPLETE else None

    def test_field(self, key: str):
        return self.test[key] if self.test else None


def _test_entry(record: StudyRecord, best_number: int | None) -> tuple[int | None, dict | None]:
    """The best trial's recorded test metrics; else the most recently retrained trial's."""
    recorded = record.test_metrics
    if best_number is not None and best_number in recorded:
        return best_number, recorded[best_number]
    if recorded:
        return max(recorded.items(), key=lambda item: item[1].get("retrained_at", ""))
    return None, None


def _vs_baseline(f: StudyFacts) -> float | None:
    value = f.baseline_value
    return f.best.value - value if value is not None and f.best is not None else None


def _latency_ms(f: StudyFacts, key: str) -> float | None:
    latency = (f.test_field("cost") or {}).get("latency_s") or {}
    return round(latency[key] * 1e3, 5) if key in latency else None


def _trial_points(f: StudyFacts) -> list[dict]:
    """Every complete trial as a point of the accuracy-versus-cost plane (cost: parameters)."""
    return [{"study": f.name, "model": f.spec["model"], "trial": t.number, "value": t.value,
             "cost": TrialRecord.read(t).n_params} for t in f.trials
            if t.state == TrialState.COMPLETE and t.value is not None and TrialRecord.read(t).n_params]


def _json_or_empty(value) -> str:
    return json.dumps(value, sort_keys=True) if value is not None else ""


def _plain(value):
    return "" if value is None else value


@dataclass(frozen=True)
class Field:
    """One value of a leaderboard row: its name (row key, JSON key, CSV column) and where it comes from.

    value(facts) reads a study's row; entry(dataset_entry) reads the dataset's instead (CSV only, as
    the JSON has it once per dataset). csv: how the CSV writes it; None leaves it out of the CSV.
    """

    name: str
    value: Callable[[StudyFacts], object] | None = None
    entry: Callable[[dict], object] | None = None
    csv: Callable[[object], object] | None = _plain


# The row, in CSV column order. A new column: a Field here (and a Column below for the table).
FIELDS: tuple[Field, ...] = (
    Field("dataset", lambda f: _dataset_label(f.spec["dataset"])),
    Field("study", lambda f: f.name),
    Field("model", lambda f: f.spec["model"]),
    Field("metric", lambda f: f.spec["metric"]),
    Field("direction", lambda f: "maximize" if f.maximize else "minimize"),
    Field("winner", lambda f: False),  # dataset_entry decides
    Field("best_value", lambda f: f.best.value if f.best else None),
    Field("best_trial", lambda f: f.best.number if f.best else None),
    Field("best_is_baseline", lambda f: f.best_record.baseline),
    Field("test_metric", lambda f: f.test_field("metric")),
    Field("test_value", lambda f: f.test_field("mean")),
    Field("test_std", lambda f: f.test_field("std")),
    Field("test_seeds", lambda f: f.test_field("seeds")),
    Field("test_trial", lambda f: f.test_trial),
    Field("baseline_name", lambda f: TrialRecord.read(f.baseline).baseline if f.baseline else None),
    Field("baseline_trial", lambda f: f.baseline.number if f.baseline else None),
    Field("baseline_state", lambda f: f.baseline.state.name.lower() if f.baseline else None),
    Field("baseline_value", lambda f: f.baseline_value),
    Field("vs_baseline", _vs_baseline),
    Field("n_params", lambda f: f.best_record.n_params),
    Field("train_seconds", lambda f: f.best_record.train_seconds),
    Field("epochs_run", lambda f: f.best_record.epochs_run),
    Field("best_epoch", lambda f: f.best_record.best_epoch),
    Field("complete", lambda f: f.states[TrialState.COMPLETE]),
    Field("pruned", lambda f: f.states[TrialState.PRUNED]),
    Field("failed", lambda f: f.states[TrialState.FAIL]),
    Field("running", lambda f: f.states[TrialState.RUNNING] + f.states[TrialState.WAITING]),
    # Summed trial durations: the compute spent, independent of idle gaps between resumed runs.
    Field("search_seconds", lambda f: round(sum(_duration(t) for t in f.trials), 3)),
    Field("finished_trials", lambda f: f.states[TrialState.COMPLETE] + f.states[TrialState.PRUNED]),
    Field("epochs_spent", lambda f: round(sum(TrialRecord.read(t).epochs_spent for t in f.trials), 3)),
    Field("test_scorings", lambda f: f.record.test_scorings),
    Field("test_per_seed", lambda f: f.test_field("per_seed_values"), csv=None),
    Field("test_correct", lambda f: f.test_field("correct"), csv=None),
    Field("flops_per_sample", lambda f: (f.test_field("cost") or {}).get("flops_per_sample")),
    Field("latency_ms_b1", lambda f: _latency_ms(f, "batch_1")),
    Field("latency_ms_b256", lambda f: _latency_ms(f, "batch_256")),
    Field("trial_points", lambda f: _trial_points(f), csv=None),
    Field("classical", lambda f: f.record.reference, csv=_json_or_empty),  # this study's own classical reference
    # The net against the classical reference on test: better, worse, not significant, no verdict (dataset_entry decides).
    Field("vs_reference", lambda f: None),
    Field("fair", entry=lambda e: e["fair"]),
    Field("differs", entry=lambda e: ",".join(e["differs"])),
    Field("verdict", entry=lambda e: e["verdict"]["line"]),
    *(Field(key, lambda f, key=key: f.record.fairness()[key], csv=_json_or_empty if key in ("sampler", "pruner")
            else _plain) for key in FAIR_KEYS if key != "metric"),
    Field("best_params", lambda f: dict(f.best.params) if f.best else None, csv=_json_or_empty),
    Field("task", lambda f: f.record.data.get("task"), csv=None),
    Field("kind", lambda f: f.record.data.get("kind"), csv=None),  # table or image: what a comparison can be
)
CSV_FIELDS = tuple(f.name for f in FIELDS if f.csv is not None)


def _dataset_label(dataset) -> str:
    """A registry key, or a user dataset's key (its file stem or folder name), to group studies by."""
    return dataset if isinstance(dataset, str) else source_from_dict(dataset).key


def study_row(study: optuna.Study) -> dict:
    """One leaderboard row: a study's best trial, its baseline trial, its budget and its test score."""
    facts = StudyFacts.read(study)
    return {f.name: f.value(facts) for f in FIELDS if f.value is not None}


def leaderboard(url: str, datasets: tuple[str, ...] | list[str] | None = None) -> dict:
    """Per dataset, the anncnn-tune studies of the storage side by side (reads only; writes nothing).

    A study whose user data changed or moved since it began is left out, with its one-line reason in
    "left_out": its scores stand for data that is no longer there. Every other study, of its dataset
    or of any other, is compared as usual.
    """
    storage = open_storage_readonly(url)
    rows, foreign, left_out = [], [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if not StudyRecord.read_summary(summary, storage).is_ours:
            foreign.append(summary.study_name)  # a study some other tool made: nothing to compare it on
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        reason = data_change(study)
        if reason is not None:
            left_out.append({"study": study.study_name, "dataset": _dataset_label(StudyRecord.read(study).spec["dataset"]),
                             "reason": reason})
            continue
        rows.append(study_row(study))
    if not rows and not left_out:
        raise UserError(f"no anncnn-tune studies in {mask(url)}; run `anncnn-tune optimize --study NAME` first "
                        "or pass --storage")
    present = sorted({r["dataset"] for r in rows} | {s["dataset"] for s in left_out})
    if datasets:
        unknown = [d for d in datasets if d not in present]
        if unknown:
            raise UserError(f"no studies of dataset {unknown[0]!r} in {mask(url)}; datasets there: "
                            f"{', '.join(present)}")
        present = [d for d in present if d in datasets]
    compared = [d for d in present if any(r["dataset"] == d for r in rows)]
    return {
        "storage": mask(url),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "datasets": [dataset_entry(d, [r for r in rows if r["dataset"] == d]) for d in compared],
        "left_out": [s for s in left_out if s["dataset"] in present],
        "other_studies": foreign,
    }


def stored_studies(url: str, board: dict) -> dict[str, optuna.Study]:
    """The leaderboard's studies, loaded once, for the figures of the HTML report (reads only)."""
    storage = open_storage_readonly(url)
    return {row["study"]: optuna.load_study(study_name=row["study"], storage=storage)
            for entry in board["datasets"] for row in entry["studies"]}
