"""Every use of Optuna's private API, in one place, each with the reason the public API is not enough.

Optuna may rename any of these in a minor release; tests/service/test_optuna_private.py checks each one
on a real study, so an upgrade that breaks one fails there, by name, instead of somewhere deep in
a worker.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models as rdb_models
from optuna.study import StudySummary

# The logger that reports failed trials. A logger's filters do not apply to its children's records,
# so a filter must sit on this very logger, not on "optuna".
FAILED_TRIAL_LOGGER = "optuna.study._optimize"


def schema_tables() -> frozenset[str]:
    """Every table of Optuna's RDB schema, alembic's included: a reader that finds only some of them
    knows a worker is creating the schema right now. Optuna's table models are private."""
    return frozenset(rdb_models.BaseModel.metadata.tables) | {"alembic_version"}


def rdb_storage(study: optuna.Study) -> RDBStorage | None:
    """The RDBStorage a study runs on, or None for other storages.

    Optuna wraps an RDBStorage in a _CachedStorage inside every Study, so `study._storage` itself
    is never an RDBStorage: unwrap it.
    """
    storage = study._storage
    if isinstance(storage, _CachedStorage):
        storage = storage._backend
    return storage if isinstance(storage, RDBStorage) else None


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Whether the study's storage records heartbeats (so stale trials can be found and failed)."""
    storage = rdb_storage(study)
    return storage is not None and bool(storage.heartbeat_interval)


def study_id(study: optuna.Study) -> int:
    """The storage's id of a study: two studies of one name (deleted and recreated) differ here."""
    return study._study_id


def study_system_attrs(study: optuna.Study) -> dict:
    """A study's system attributes, where service/records.py keeps the study's record. Optuna 5 has
    no public reader or writer for them (neither Study nor StudySummary has `system_attrs`), so this
    goes through the study's private storage and id, as optuna-dashboard does for its notes."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value) -> None:
    """Set one of a study's system attributes (JSON-serializable value); see study_system_attrs."""
    study._storage.set_study_system_attr(study._study_id, key, value)


def summary_system_attrs(storage: BaseStorage, summary: StudySummary) -> dict:
    """The system attributes of a listed study: a StudySummary carries its user attributes only, and
    its storage id is private (one query per study; it reads, never writes)."""
    return storage.get_study_system_attrs(summary._study_id)


def system_attrs_by_id(storage: BaseStorage, study_id: int) -> dict:
    """The system attributes of the study with this storage id (KeyError where there is none): what
    optuna-dashboard's API names a study by."""
    return storage.get_study_system_attrs(study_id)


def frozen_trial(trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    """A live trial's record in the storage: a live Trial does not expose its system attributes
    (where the stale-trial retry records the trial it retries)."""
    return trial.storage.get_trial(trial._trial_id)


def artifact_path(store: FileSystemArtifactStore, artifact_id: str) -> Path:
    """Where a FileSystemArtifactStore keeps an artifact (validated against escaping its base)."""
    return store._get_filepath(artifact_id)


def failed_trial_logger() -> logging.Logger:
    return logging.getLogger(FAILED_TRIAL_LOGGER)


def mark_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """Fail a RUNNING trial that its own worker no longer runs (after a storage outage), with the
    reason in its user attributes: a FrozenTrial's storage id is private, and study.tell alone
    cannot set an attribute."""
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def retry_history(trial) -> list[int]:
    """The numbers of the trials a retried trial repeats (Optuna's `retry_history` system attribute)."""
    return list(trial.system_attrs.get("retry_history", []))


def retry_system_attrs(trial) -> dict:
    """The system attributes of a retry of `trial`, as RetryHeartbeatStaleTrialCallback writes them:
    `failed_trial` names the chain's first trial (so the retry finds its checkpoint) and
    `retry_history` grows by this trial. Optuna has no public function that builds them."""
    attrs = {"failed_trial": trial.number, "retry_history": [], **trial.system_attrs}
    attrs["retry_history"] = [*attrs["retry_history"], trial.number]
    return attrs
