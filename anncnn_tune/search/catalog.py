"""`anncnn-tune studies`: the study files we ship and the studies a storage holds."""

from __future__ import annotations

import optuna

from anncnn_tune.search.spec import builtin_names, load_spec
from anncnn_tune.search.study import counts
from anncnn_tune.service.readonly import NoStudiesYet, open_storage_readonly
from anncnn_tune.service.records import StudyRecord, study_best_trial
from anncnn_tune.service.storage import sqlite_path


def builtin_studies() -> list[dict]:
    rows = []
    for name in builtin_names():
        spec = load_spec(name)
        rows.append({"name": name, "dataset": spec.dataset, "model": spec.model, "metric": spec.metric,
                     "epochs": spec.epochs, "searchable": len(spec.space), "baselines": len(spec.baselines)})
    return rows


def _summaries(url: str):
    """(storage, its study summaries), or None when the SQLite file does not exist yet: a listing
    creates nothing to find out that there is nothing to list."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    try:
        storage = open_storage_readonly(url)
    except NoStudiesYet:  # an empty file or database: nothing to list, and nothing is created
        return None
    return storage, optuna.get_all_study_summaries(storage, include_best_trial=False)


def stored_studies(url: str) -> list[dict] | None:
    """Per study: trials by state and best value; None when the default SQLite file does not exist yet."""
    found = _summaries(url)
    if found is None:
        return None
    storage, summaries = found
    rows = []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        spec = StudyRecord.read_summary(summary, storage).spec or {}
        best = study_best_trial(study)
        rows.append({
            "name": summary.study_name,
            "metric": spec.get("metric", "value"),
            "direction": summary.direction.name.lower(),
            "states": {k: v for k, v in counts(study).items() if v},
            "best_value": best.value if best else None,
            "best_trial": best.number if best else None,
        })
    return rows


def stored_sources(url: str) -> list[dict] | None:
    """Per study on a user's own data: its source (path, kind), task and data fingerprint, from the
    study's stored spec and data description. None when the default SQLite file does not exist yet."""
    found = _summaries(url)
    if found is None:
        return None
    storage, summaries = found
    rows = []
    for summary in summaries:
        record = StudyRecord.read_summary(summary, storage)
        source = (record.spec or {}).get("dataset")
        if not isinstance(source, dict):  # a registry key: listed with the built-in datasets
            continue
        data = record.data
        task = data.get("task") or source.get("task")
        rows.append({"study": summary.study_name, "path": source.get("path"), "kind": source.get("kind"),
                     "task": task, "fingerprint": data.get("fingerprint")})
    return sorted(rows, key=lambda r: (str(r["path"]), r["study"]))
