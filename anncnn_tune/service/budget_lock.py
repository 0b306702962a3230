"""A lock shared by all workers of one study, so that the trial budget is exact.

A worker holds it from "count the finished and running trials" until its new trial is RUNNING
in the storage (the objective releases it on entry). Two workers can then never both start
trial number n+1. It is a locks.ExclusiveLock: on SQLite an flock on the file beside the database,
on PostgreSQL a session-level advisory lock keyed by the study's name, which also works across
machines; both are released by the system when a worker dies. Other databases get no lock: the
budget may then overshoot by a trial per worker.
"""

from __future__ import annotations

import optuna

from anncnn_tune.service.locks import ExclusiveLock, key_of
from anncnn_tune.service.storage import lock_path


class StudyLock(ExclusiveLock):
    def __init__(self, storage: optuna.storages.BaseStorage, url: str, study_name: str):
        super().__init__(path=lock_path(url), engine=getattr(storage, "engine", None), key=key_of(study_name))
