"""`anncnn-tune studies`: the study files we ship and the studies a storage holds."""

from __future__ import annotations

from collections.abc import Callable

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


def _per_study(url: str, row: Callable[..., dict | None]) -> list[dict] | None:
    """row(summary, storage) for every stored study, leaving out those it gives None for; None when
    the SQLite file does not exist yet: a listing creates nothing to find out that there is nothing to list."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    try:
        storage = open_storage_readonly(url)
    except NoStudiesYet:  # an empty file or database: nothing to list, and nothing is created
        return None
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    return [r for r in (row(summary, storage) for summary in summaries) if r is not None]


def stored_studies(url: str) -> list[dict] | None:
    """Per study: trials by state and best value; None when the default SQLite file does not exist yet."""
    return _per_study(url, _study_row)


def _study_row(summary, storage) -> dict:
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    spec = StudyRecord.read_summary(summary, storage).spec or {}
    best = study_best_trial(study)
    return {
        "name": summary.study_name,
        "metric": spec.get("metric", "value"),
        "direction": summary.direction.name.lower(),
        "states": {k: v for k, v in counts(study).items() if v},
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
    }


def stored_sources(url: str) -> list[dict] | None:
    """Per study on a user's own data: its source (path, kind), task and data fingerprint, from the
    study's stored spec and data description. None when the default SQLite file does not exist yet."""
    rows = _per_study(url, _source_row)
    return None if rows is None else sorted(rows, key=lambda r: (str(r["path"]), r["study"]))


def _source_row(summary, storage) -> dict | None:
    record = StudyRecord.read_summary(summary, storage)
    source = (record.spec or {}).get("dataset")
    if not isinstance(source, dict):  # a registry key: listed with the built-in datasets
        return None
    data = record.data
    task = data.get("task") or source.get("task")
    return {"study": summary.study_name, "path": source.get("path"), "kind": source.get("kind"),
            "task": task, "fingerprint": data.get("fingerprint")}
