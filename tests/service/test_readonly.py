"""Commands that only read (studies, compare, export, datasets, dashboard) leave the folder of
their storage byte for byte as it was: no schema, no `<db>.lock`, no artifact folder; and
`optimize` writes nothing before every input has been checked."""

from __future__ import annotations

import sqlite3

import pytest
from helpers import run_cli

from anncnn_tune.service.readonly import close_readonly
from anncnn_tune.service.storage import close_all

READERS = [
    ("studies",),
    ("compare",),
    ("compare", "--format", "json"),
    ("export", "--study", "digits-ann"),
    ("datasets",),
]


def snapshot(folder) -> dict:
    """Every path under the folder (files, folders) with its bytes."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def real_storage(tmp_path_factory):
    """One finished anncnn-tune study in a SQLite file (the digits ANN, one short trial)."""
    folder = tmp_path_factory.mktemp("real")
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "1", "--epochs", "1", "--quiet",
                     "--storage", "sqlite:///study.db", cwd=folder)
    assert result.returncode == 0, result.stderr
    close_all()
    for leftover in folder.glob("study.db.lock"):  # the workers' lock: not what this test is about
        leftover.unlink()
    return folder


def _close():
    close_all()
    close_readonly()


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_readers_change_nothing_on_a_real_storage(real_storage, args):
    before = snapshot(real_storage)
    result = run_cli(*args, "--storage", "sqlite:///study.db", cwd=real_storage)
    _close()
    assert result.returncode == 0, result.stderr
    assert snapshot(real_storage) == before


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_readers_create_no_schema_in_an_empty_file(tmp_path, args):
    (tmp_path / "empty.db").write_bytes(b"")
    before = snapshot(tmp_path)
    result = run_cli(*args, "--storage", "sqlite:///empty.db", cwd=tmp_path)
    _close()
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    if result.returncode == 2:
        assert result.stderr.count("error:") == 1 and "no studies yet" in result.stderr
    assert snapshot(tmp_path) == before
    assert (tmp_path / "empty.db").stat().st_size == 0


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_readers_create_nothing_for_a_missing_file(tmp_path, args):
    result = run_cli(*args, "--storage", "sqlite:///missing.db", cwd=tmp_path)
    _close()
    assert result.returncode in (0, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == {}


def test_a_database_without_optuna_tables_is_named_and_left_alone(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("create table notes (text)")
    before = snapshot(tmp_path)
    result = run_cli("compare", "--storage", "sqlite:///other.db", cwd=tmp_path)
    _close()
    assert result.returncode == 2
    assert "not an Optuna study storage" in result.stderr and result.stderr.count("error:") == 1
    assert snapshot(tmp_path) == before


def test_dashboard_opens_without_writing(real_storage):
    from anncnn_tune.service.dashboard import make_dashboard_server

    before = snapshot(real_storage)
    url = f"sqlite:///{real_storage / 'study.db'}"
    server = make_dashboard_server(url, "127.0.0.1", 0, None)
    server.server_close()
    _close()
    assert snapshot(real_storage) == before


def test_dashboard_refuses_an_empty_file_without_a_schema(tmp_path):
    from anncnn_tune.errors import UserError
    from anncnn_tune.service.dashboard import make_dashboard_server

    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(UserError, match="no studies yet"):
        make_dashboard_server(f"sqlite:///{tmp_path / 'empty.db'}", "127.0.0.1", 0, None)
    _close()
    assert snapshot(tmp_path) == {"empty.db": b""}


@pytest.mark.parametrize("bad", [("--subset", "3"), ("--data-dir", "afile")], ids=["subset", "data-dir"])
def test_optimize_writes_nothing_when_an_input_is_wrong(tmp_path, bad):
    (tmp_path / "afile").write_text("not a folder")
    before = snapshot(tmp_path)
    study = "digits-ann" if bad[0] == "--subset" else "mnist-ann"
    result = run_cli("optimize", "--study", study, "--n-trials", "1", *bad, cwd=tmp_path)
    _close()
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("error:") == 1
    assert snapshot(tmp_path) == before  # no storage, no lock file, no artifact folder


def test_the_dashboard_waits_for_the_first_study_instead_of_creating_the_schema(tmp_path, capsys):
    # The compose file starts the dashboard beside the workers, before any study exists.
    from anncnn_tune.service.dashboard import _when_there_are_studies
    from anncnn_tune.service.readonly import NoStudiesYet

    calls = []

    def make():
        calls.append(1)
        if len(calls) < 3:
            raise NoStudiesYet("empty")
        return "server"

    assert _when_there_are_studies(make, "sqlite:///x.db", poll_seconds=0) == "server" and len(calls) == 3
    assert capsys.readouterr().err.count("waiting for the first") == 1


def _schema_tables(url: str) -> dict[str, int]:
    """Each table of a database with its row count."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return {table: connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
                    for table in sqlalchemy.inspect(connection).get_table_names()}
    finally:
        engine.dispose()


def _half_created_schema(url: str, *, stamped_table: bool) -> None:
    """Where a worker's `RDBStorage` is between creating Optuna's tables and stamping alembic's
    version: the moment the compose file's dashboard, started beside the workers, can look."""
    import sqlalchemy
    from optuna.storages._rdb import models  # the worker's first step, without the ones after it

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        models.BaseModel.metadata.create_all(engine)
        if stamped_table:  # alembic has created its table but not written the revision yet
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("stamped_table", [False, True], ids=["no-alembic-table", "empty-alembic-table"])
def test_a_schema_being_created_is_waited_for_and_not_finished_by_the_dashboard(pg_url, stamped_table):
    """The dashboard took such a schema for 'not an Optuna study storage' and exited 2 (CI, stop 17)."""
    from anncnn_tune.service.dashboard import make_dashboard_server
    from anncnn_tune.service.readonly import NoStudiesYet

    _half_created_schema(pg_url, stamped_table=stamped_table)
    before = _schema_tables(pg_url)
    with pytest.raises(NoStudiesYet, match="a worker is creating its schema"):
        make_dashboard_server(pg_url, "127.0.0.1", 0, None)
    result = run_cli("studies", "--storage", pg_url)
    _close()
    assert result.returncode == 0 and "(no storage yet" in result.stdout, result.stderr
    assert _schema_tables(pg_url) == before  # neither the version row nor alembic's stamp written


def test_a_half_created_sqlite_schema_reads_as_no_studies_and_stays_as_it_is(tmp_path):
    _half_created_schema(f"sqlite:///{tmp_path / 'study.db'}", stamped_table=False)
    before = snapshot(tmp_path)
    result = run_cli("compare", "--storage", "sqlite:///study.db", cwd=tmp_path)
    _close()
    assert result.returncode == 2 and result.stderr.count("error:") == 1
    assert "a worker is creating its schema" in result.stderr
    assert snapshot(tmp_path) == before


def test_a_database_with_other_tables_and_part_of_optunas_is_still_not_a_study_storage(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("create table studies (name)")
        connection.execute("create table notes (text)")
    result = run_cli("compare", "--storage", "sqlite:///other.db", cwd=tmp_path)
    _close()
    assert result.returncode == 2 and "not an Optuna study storage" in result.stderr
