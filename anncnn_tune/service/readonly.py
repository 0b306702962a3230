"""Open a storage for commands that only read it (`studies`, `compare`, `export`, `datasets`,
`dashboard`): they must leave the storage exactly as they found it.

`open_storage` (service/storage.py) is for workers: it creates Optuna's schema when it is missing
and takes the schema lock (a `<db>.lock` file beside a SQLite database). A command that only reads
must do neither, so here:

- the schema is checked, never created: an empty file, a database without Optuna's tables or a
  file that is not SQLite at all is a one-line UserError, not a new schema;
- no lock is taken (reading needs none), so no `.lock` file appears;
- a SQLite file is opened through SQLite's own read-only mode (`mode=ro`), so not even the
  version row Optuna inserts into a schema that lacks one can be written.

The dashboard writes notes into studies it serves, so it opens an existing schema writable
(`read_only=False`) but still creates neither schema nor lock file.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path

import optuna
import sqlalchemy
import sqlalchemy.exc

from anncnn_tune.errors import UserError
from anncnn_tune.service import optuna_private
from anncnn_tune.service.storage import (
    OpenedStorages,
    check_sqlite_intact,
    engine_kwargs,
    mask,
    parse_url,
    quiet_experimental_warnings,
    sqlite_path,
    unreachable_error,
)

# The tables every Optuna RDB schema has since 2.0; their absence means "not a study storage".
REQUIRED_TABLES = frozenset({"studies", "trials", "version_info", "alembic_version"})
SQLITE_MAGIC = b"SQLite format 3\x00"

_OPEN = OpenedStorages()  # by (url, read_only)


class NoStudiesYet(UserError):
    """The storage exists but holds no Optuna schema yet (an empty file, an empty database)."""


def _check_sqlite_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"storage {path} is a directory, not a SQLite file; pass --storage sqlite:///FILE.db")
    if not path.is_file():
        raise UserError(f"no study storage at {path}; run `anncnn-tune optimize` first or pass --storage")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise UserError(f"cannot read storage {path}: {exc.strerror or exc}; check its permissions") from None
    if not head:
        raise NoStudiesYet(f"storage {path} is an empty file with no studies yet; run `anncnn-tune optimize` "
                           "first or pass the --storage the workers use")
    if head != SQLITE_MAGIC:
        raise UserError(f"storage {path} is not a SQLite database (it is some other file); pass the --storage "
                        "the workers use")


def _sqlite_open_url(url: str, path: Path) -> str:
    """SQLite's URI form with mode=ro, which refuses every write at the driver, whatever Optuna
    attempts; except for a WAL database that no one has open (no -shm file): a read-only
    connection would create its -wal and -shm files and could not remove them, where a plain one
    removes them when it closes, leaving the folder as it was."""
    with path.open("rb") as handle:
        header = handle.read(20)
    wal = len(header) == 20 and header[18] == 2 and header[19] == 2  # file format numbers 2: WAL
    if wal and not path.with_name(path.name + "-shm").exists():
        return url
    quoted = urllib.parse.quote(str(path.resolve()))
    return f"sqlite:///file:{quoted}?mode=ro&uri=true"


def _check_intact(url: str, path: Path, *, plain: bool) -> None:
    """Damage in the middle of the file: one line with the recover command (storage.check_sqlite_intact).
    That check opens the file with mode=ro, which leaves -wal and -shm files beside a WAL database no
    one has open; there a plain connection runs the same check and removes them when it closes."""
    if not plain:
        check_sqlite_intact(url)
        return
    try:
        con = sqlite3.connect(str(path), timeout=60)
        try:
            problem = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem != "ok":
        check_sqlite_intact(url)  # raises its one-line message, naming the recover command
        raise UserError(f"the study storage {path} is damaged ({' '.join(str(problem).split())[:120]}); "
                        f"save what it still holds with `sqlite3 {path} .recover`")


def _check_schema(engine: sqlalchemy.engine.Engine, url: str) -> None:
    """A complete Optuna schema, or a one-line error. One that is still being created counts as
    no studies yet (the dashboard waits for it): reading it would mean finishing it, as Optuna
    writes the version row and alembic's stamp when it opens a schema without them."""
    tables = set(sqlalchemy.inspect(engine).get_table_names())
    if not tables:
        raise NoStudiesYet(f"storage {mask(url)} has no studies yet (no tables); run `anncnn-tune optimize` first "
                           "or pass the --storage the workers use")
    missing = REQUIRED_TABLES - tables
    if missing and not tables <= optuna_private.schema_tables():
        raise UserError(f"storage {mask(url)} is a database but not an Optuna study storage (no "
                        f"{', '.join(sorted(missing))} table); pass the --storage the workers use")
    if missing or not _has_rows(engine, "version_info", "alembic_version"):
        raise NoStudiesYet(f"storage {mask(url)} has no studies yet (a worker is creating its schema, or stopped "
                           "while creating it); run the command again once `anncnn-tune optimize` has started")


def _has_rows(engine: sqlalchemy.engine.Engine, *tables: str) -> bool:
    with engine.connect() as connection:
        return all(connection.execute(sqlalchemy.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
                   for table in tables)


def open_storage_readonly(url: str, *, read_only: bool = True) -> optuna.storages.RDBStorage:
    """An Optuna RDBStorage on an existing study storage; creates no schema, no lock file, no file.

    read_only=False (the dashboard): writes to existing studies are allowed, the schema is still
    never created. One-line UserErrors: no such file, an empty file or database (NoStudiesYet), a
    file that is not SQLite, a database without Optuna's tables, an unreachable server.
    """
    parse_url(url)  # a URL that is not one: a one-line error
    quiet_experimental_warnings()
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path)
    key = (url, read_only)
    opened = _OPEN.get(key, path)
    if opened is not None:
        return opened
    open_url = _sqlite_open_url(url, path) if path is not None and read_only else url
    if path is not None:
        _check_intact(url, path, plain=open_url == url)
    kwargs = engine_kwargs(url)
    engine = None
    try:
        engine = sqlalchemy.create_engine(open_url, poolclass=sqlalchemy.pool.NullPool,
                                          connect_args=kwargs.get("connect_args", {}))
        _check_schema(engine, url)
    except sqlalchemy.exc.DatabaseError as exc:
        if path is not None and "not a database" in str(exc):
            raise UserError(f"storage {path} is not a SQLite database (it is damaged or some other file); pass "
                            "the --storage the workers use") from None
        raise unreachable_error(url, exc) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise unreachable_error(url, exc) from None
    finally:
        if engine is not None:
            engine.dispose()
    try:
        storage = optuna.storages.RDBStorage(open_url, engine_kwargs=kwargs, skip_table_creation=True)
    except RuntimeError as exc:  # Optuna's "the schema is older than this version" check
        raise UserError(f"storage {mask(url)}: {str(exc).splitlines()[0]}") from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        raise unreachable_error(url, exc) from None
    return _OPEN.add(key, path, storage)


def close_readonly() -> None:
    """Dispose every engine opened here (at exit, and in tests before removing a database)."""
    _OPEN.close()
