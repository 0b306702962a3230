"""One exclusive lock between processes: an flock on a file, or a PostgreSQL advisory lock.

Both kinds are released by the system when their holder dies (the kernel closes the file, the
server ends the session), so a killed worker never leaves a lock behind. SQLite storages use the
file beside the database (one machine by construction); PostgreSQL ones a session-level advisory
lock, which also works across machines. With neither (another database) the lock does nothing.
Used for the study's trial budget (budget_lock.StudyLock) and for creating a storage's schema
(storage.open_storage).
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

import sqlalchemy


def key_of(name: str) -> int:
    """A signed 64-bit advisory-lock key for a name (what pg_advisory_lock takes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class ExclusiveLock:
    """acquire() blocks until this process holds the lock; release() is safe to call when not held.

    path: the file to flock, or None. engine: a PostgreSQL engine whose connection holds the
    advisory lock `key` (used where path is None).
    """

    def __init__(self, *, path: Path | None = None, engine: sqlalchemy.Engine | None = None, key: int = 0):
        self._path = path
        self._engine = engine if path is None and engine is not None and engine.dialect.name == "postgresql" else None
        self._key = key
        self._file = None
        self._connection = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> None:
        if self._held:
            return
        if self._path is not None:
            self._file = open(self._path, "a")  # noqa: SIM115 - held open until release()
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self._engine is not None:
            self._connection = self._engine.connect()
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            # A session-level lock outlives the transaction: end it, so the connection does not
            # sit "idle in transaction" while the lock is held.
            self._connection.commit()
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            finally:
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
