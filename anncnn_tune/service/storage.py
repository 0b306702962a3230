"""Where studies live: resolve the storage URL and open it as an Optuna storage.

Resolution order (like optuna's own CLI): the --storage flag, then $ANNCNN_TUNE_STORAGE, then
the documented default, a SQLite file `anncnn-tune.db` in the working directory.

One process opens one storage per URL (and heartbeat setting), so it holds one SQLAlchemy engine
with a small pool; every engine is disposed at exit, so the server sees its connections closed
rather than dropped. SQLite runs in WAL mode with a long busy timeout: several local workers then
wait for the write lock instead of failing with "database is locked" (docs/service.md has the
measurement behind that choice).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import warnings
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from anncnn_tune.errors import UserError
from anncnn_tune.service.locks import ExclusiveLock
from anncnn_tune.service.settings import DEFAULT_HEARTBEAT, DEFAULT_URL, ENV_VAR, resolve_url  # noqa: F401 (re-exported)

CONNECT_TIMEOUT = 5  # seconds before an unreachable server is reported
SQLITE_BUSY_TIMEOUT = 60  # seconds a local worker waits for SQLite's write lock
MAX_RETRY = 3  # a trial whose worker dies is retried at most this many times


def file_identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of a SQLite file, to notice it deleted or replaced; None for a server or no file."""
    try:
        return None if path is None else (path.stat().st_dev, path.stat().st_ino)
    except FileNotFoundError:
        return None


class OpenedStorages:
    """The storages this process opened, by key, each with its SQLite file's identity when opened:
    one engine per key, and never one whose file was deleted or replaced since (its pooled
    connections would point at the old file). Emptied at exit, registered on first use (no
    import-time effects); `open_storage` and `readonly.open_storage_readonly` each keep one."""

    def __init__(self) -> None:
        self._open: dict[tuple, tuple[optuna.storages.RDBStorage, tuple | None, Path | None]] = {}

    def get(self, key: tuple, path: Path | None) -> optuna.storages.RDBStorage | None:
        if key not in self._open:
            return None
        storage, identity, _ = self._open[key]
        if identity == file_identity(path):
            return storage
        del self._open[key]
        storage.engine.dispose()
        return None

    def add(self, key: tuple, path: Path | None, storage: optuna.storages.RDBStorage) -> optuna.storages.RDBStorage:
        if not self._open:
            atexit.register(self.close)
        self._open[key] = (storage, file_identity(path), path)
        return storage

    def lost_file(self, storage: optuna.storages.RDBStorage) -> Path | None:
        """The SQLite file `storage` was opened on, if it is no longer the file at that path."""
        for opened, identity, path in list(self._open.values()):
            if opened is storage and identity is not None and file_identity(path) != identity:
                return path
        return None

    def close(self) -> None:
        """Dispose every engine, emptying the cache."""
        atexit.unregister(self.close)
        while self._open:
            _, (storage, _identity, _path) = self._open.popitem()
            # The server may be gone already; there is nothing left to release then.
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, OSError):
                storage.remove_session()
                storage.engine.dispose()


_OPEN = OpenedStorages()  # the workers' storages, by (url, heartbeat, retry)


def quiet_experimental_warnings() -> None:
    """Hide Optuna's ExperimentalWarning: heartbeats, the stale-trial retry and TPE's group option
    are marked experimental, we rely on them on purpose, and the warnings would drown the progress
    output. Applied when a command opens its storage (before any of those is used), not at import,
    so importing the package leaves a notebook's or a test's warning filters alone."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def mask(url: str) -> str:
    """The URL with any password replaced by ***, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url.split("@")[-1] if "@" in url else url


def scrub(text: str, url: str) -> str:
    """`text` (e.g. a driver's error message) with the URL and its password masked."""
    text = text.replace(url, mask(url))
    try:
        password = make_url(url).password
    except (sqlalchemy.exc.ArgumentError, ValueError):
        password = None
    if password:
        text = text.replace(f":{password}@", ":***@")
        if len(str(password)) >= 6:  # a short one would mask ordinary words of the message
            text = text.replace(str(password), "***")
    return text


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def lock_path(url: str) -> Path | None:
    """The file beside a SQLite database that its workers flock (None for server databases)."""
    path = sqlite_path(url)
    return None if path is None else path.with_name(path.name + ".lock")


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options per backend (readonly.py opens its engines with the same)."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    if backend == "postgresql":
        # A worker uses at most three connections at once: its trial's session, the heartbeat
        # thread and the claim lock; the dashboard's threads may briefly need a few more.
        return {"pool_pre_ping": True, "pool_size": 3, "max_overflow": 5, "pool_recycle": 1800,
                "pool_timeout": 30,
                "connect_args": {"connect_timeout": CONNECT_TIMEOUT, "application_name": "anncnn-tune"}}
    return {"pool_pre_ping": True}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the dashboard, `studies`, other workers' polls) run beside the one writer,
    # and commits are shorter, so the busy timeout is rarely reached. NORMAL sync is safe in WAL
    # (a power cut may lose the last commits, never corrupt the file).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def unreachable_error(url: str, exc: BaseException) -> UserError:
    """The one-line error for a storage that cannot be opened, its password masked."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = scrub(reason[0] if reason else type(exc).__name__, url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":  # a file: there is no server to blame
        return UserError(f"cannot open storage {mask(url)} (sqlite): {reason}; check that the file is a SQLite "
                         "database and its folder is writable, or choose another --storage")
    return UserError(f"cannot open storage {mask(url)} ({backend}): {reason}; check that the server is up "
                     "and the URL is right")


# Any constant works: it only has to differ from the per-study keys of budget_lock.StudyLock (hashes).
_SCHEMA_LOCK_KEY = 0x616E6E636E6E  # "anncnn"


@contextlib.contextmanager
def _schema_lock(url: str):
    """Serialise the first opening of a storage: Optuna creates its tables without a lock, and N
    workers starting together on a fresh database otherwise fail with "table ... already exists".

    The PostgreSQL branch connects once without a pool, so it is also the reachability check.
    """
    path = lock_path(url)
    if path is not None or make_url(url).get_backend_name() != "postgresql":
        with ExclusiveLock(path=path):  # no path: no lock (neither SQLite nor PostgreSQL)
            yield
        return
    engine = None
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args=engine_kwargs(url)["connect_args"])
        lock = ExclusiveLock(engine=engine, key=_SCHEMA_LOCK_KEY)
        lock.acquire()
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        if engine is not None:
            engine.dispose()
        raise unreachable_error(url, exc) from None
    try:
        yield
    finally:
        lock.release()  # and the session ends with its connection (NullPool), should the unlock fail
        engine.dispose()


def parse_url(url: str):
    """The parsed storage URL, or a one-line UserError for text that is not a database URL."""
    try:
        return make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise UserError(f"storage URL {mask(url)!r} is not a database URL; use e.g. sqlite:///anncnn-tune.db or "
                        "postgresql+psycopg://user@host/db") from None


def _check_sqlite(url: str, must_exist: bool) -> None:
    path = sqlite_path(url)
    if path is None:
        return
    if must_exist and not path.is_file():
        raise UserError(f"no study storage at {path}; run `anncnn-tune optimize` first or pass --storage")
    if not path.parent.is_dir():
        raise UserError(f"storage directory {path.parent} does not exist; create it or choose another --storage")
    _check_sqlite_file(path, writable=not must_exist)


def _check_sqlite_file(path: Path, *, writable: bool) -> None:
    """A SQLite storage's own mistakes, named before the driver reports them as an unreachable server."""
    if path.is_dir():
        raise UserError(f"storage {path} is a directory, not a SQLite file; pass --storage sqlite:///FILE.db")
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                raise UserError(f"storage {path} is not a SQLite database (it is some other file); pass "
                                "--storage with a new or existing .db file")
    # SQLite writes its journal and the workers their lock file beside the database.
    if writable and not os.access(path.parent, os.W_OK | os.X_OK):
        raise UserError(f"storage folder {path.parent} is read-only (SQLite writes its journal and lock there); "
                        "choose a --storage in a folder you can write")


def check_sqlite_intact(url: str) -> None:
    """A one-line UserError naming the file and the way out where a SQLite storage is damaged.

    A damaged header fails at once, but damage in the middle surfaced only at some later query, as
    three tracebacks from `studies`, `compare`, `export` and `optimize`. PRAGMA quick_check reads
    every page once (about a second per 100 MB; docs/service.md), read-only, and once per process.
    """
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT)
        try:
            problem = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        problem = str(exc)
    if problem != "ok":
        problem = " ".join(str(problem).split())[:120]
        raise UserError(f"the study storage {path} is damaged ({problem}); save what it still holds with "
                        f"`sqlite3 {path} .recover | sqlite3 {path.with_name(path.stem + '-recovered.db')}` "
                        "and pass --storage sqlite:///" + str(path.with_name(path.stem + "-recovered.db")))


def check_reachable(url: str) -> None:
    """Fail fast, with a one-line UserError, before a command spends minutes loading data.

    Changes nothing: no SQLite file is created and no table on a server.
    """
    parsed = parse_url(url)
    _check_sqlite(url, must_exist=False)
    if parsed.get_backend_name() == "postgresql":
        with _schema_lock(url):
            pass


def open_storage(url: str, *, must_exist: bool = False, heartbeat_interval: int | None = None,
                 retry_stale: bool = False) -> optuna.storages.RDBStorage:
    """An Optuna RDBStorage for `url`; a one-line UserError where it cannot be reached.

    must_exist: for read-only commands, refuse to create a SQLite file that is not there.
    heartbeat_interval: workers record a heartbeat; trials that stop beating are failed and,
    with retry_stale, enqueued again with the same parameters (and their reported epochs).
    The same arguments in the same process return the same storage (one engine per process).
    """
    parsed = parse_url(url)
    _check_sqlite(url, must_exist)
    quiet_experimental_warnings()
    key = (url, heartbeat_interval or None, bool(retry_stale and heartbeat_interval))
    opened = _OPEN.get(key, sqlite_path(url))
    if opened is not None:
        return opened
    check_sqlite_intact(url)
    kwargs = {}
    if heartbeat_interval:
        kwargs = {"heartbeat_interval": heartbeat_interval, "grace_period": 2 * heartbeat_interval}
        if retry_stale:
            # inherit_intermediate_values: the retry keeps the learning curve of the epochs it
            # resumes from its checkpoint instead of showing a hole there.
            kwargs["heartbeat_stale_trial_callback"] = optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY, inherit_intermediate_values=True)
    try:
        with _schema_lock(url):
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url), **kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise unreachable_error(url, exc) from None
    if parsed.get_backend_name() == "sqlite":
        sqlalchemy.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # the connections RDBStorage opened to create the schema lack the pragmas
    return _OPEN.add(key, sqlite_path(url), storage)


class StorageLost(UserError):
    """The SQLite file a run writes to was deleted or replaced under it: nothing it writes now is kept.

    A UserError (one line, no traceback) whose exit code is 1, not 2: the input was fine, the run failed.
    """

    exit_code = 1


def check_storage_file(study: optuna.Study) -> None:
    """Raise StorageLost if the SQLite file the study's storage opened is no longer at its path.

    The pooled connections keep writing into the deleted file, so without this check a run reports
    "40 complete" and exits 0 with every trial gone. Server databases: nothing to check.
    """
    from anncnn_tune.service.optuna_private import rdb_storage

    path = _OPEN.lost_file(rdb_storage(study))
    if path is not None:
        raise StorageLost(f"the study storage {path} was deleted or replaced during the run, so this run's "
                          "trials are lost; restore the file from a backup, or rerun to start the study again")


def close_all() -> None:
    """Dispose every engine this process opened (at exit, and in tests before dropping a database)."""
    _OPEN.close()


def load_existing_study(url: str, name: str) -> optuna.Study:
    """Study `name` of an existing storage, or a one-line UserError naming the studies there; creates
    nothing (a missing SQLite file is not made)."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise UserError(f"no study {name!r}: there is no storage at {path} (no studies yet); pass --storage")
    storage = open_storage(url, must_exist=True)
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    if name not in names:
        raise UserError(f"no study {name!r} in {mask(url)}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=storage)
