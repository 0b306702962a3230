"""A lock shared by all workers of one study, so that the trial budget is exact.

A worker holds it from "count the finished and running trials" until its new trial is RUNNING
in the storage (the objective releases it on entry). Two workers can then never both start
trial number n+1. PostgreSQL: a session-level advisory lock, which also works across
machines, and is released by the server when a worker dies (its session ends). SQLite: an
flock on a file beside the database (one machine by construction), released by the kernel when a
worker dies. Other databases get no lock: the budget may then overshoot by a trial per worker.
"""

from __future__ import annotations

import fcntl
import hashlib

import optuna
import sqlalchemy

from anncnn_tune.service.storage import lock_path


class StudyLock:
    def __init__(self, storage: optuna.storages.BaseStorage, url: str, study_name: str):
        self._held = False
        self._file = None
        self._connection = None
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        self._path = lock_path(url)
        self._engine = None
        engine = getattr(storage, "engine", None)
        if self._path is None and engine is not None and engine.dialect.name == "postgresql":
            self._engine = engine

    def acquire(self) -> None:
        if self._held:
            return
        if self._path is not None:
            self._file = open(self._path, "a")  # noqa: SIM115 - held open until release()
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self._engine is not None:
            self._connection = self._engine.connect()
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        elif self._connection is not None:
            try:
                self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            finally:
                self._connection.close()
                self._connection = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
