"""Every private Optuna API anncnn-tune uses (service/optuna_private.py), checked on real studies:
when an Optuna upgrade renames one, this file fails and names it."""

from __future__ import annotations

import io
import logging

import optuna
import pytest

from anncnn_tune.service import optuna_private
from anncnn_tune.service.storage import open_storage


def test_rdb_storage_is_found_under_the_cache_optuna_wraps_it_in(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'a.db'}")
    study = optuna.create_study(storage=storage)
    assert not isinstance(study._storage, optuna.storages.RDBStorage)  # why the unwrapping is needed
    assert optuna_private.rdb_storage(study) is storage
    assert not optuna_private.heartbeat_enabled(study)
    assert optuna_private.rdb_storage(optuna.create_study()) is None  # in memory
    assert not optuna_private.heartbeat_enabled(optuna.create_study())


def test_heartbeats_of_a_storage_opened_for_workers_are_seen(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=30, retry_stale=True)
    study = optuna.create_study(storage=storage)
    assert optuna_private.rdb_storage(study) is storage and optuna_private.heartbeat_enabled(study)


def test_study_id_tells_a_recreated_study_of_the_same_name_apart(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    first = optuna_private.study_id(optuna.create_study(study_name="s", storage=storage))
    optuna.create_study(study_name="other", storage=storage)
    optuna.delete_study(study_name="s", storage=storage)
    study = optuna.create_study(study_name="s", storage=storage)
    second = optuna_private.study_id(study)
    assert isinstance(first, int) and first != second == storage.get_study_id_from_name("s")


@pytest.mark.parametrize("kind", ["rdb", "journal", "memory"])
def test_study_system_attributes_are_read_and_written_by_study_by_summary_and_by_id(tmp_path, kind):
    """Where service/records.py keeps a study's record: there is no public API for it."""
    storage = {"rdb": lambda: optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'e.db'}"),
               "journal": lambda: optuna.storages.JournalStorage(
                   optuna.storages.journal.JournalFileBackend(str(tmp_path / "e.log"))),
               "memory": optuna.storages.InMemoryStorage}[kind]()
    assert not hasattr(optuna.Study, "system_attrs")  # why these are needed
    assert not hasattr(optuna.study.StudySummary, "system_attrs")
    optuna.create_study(study_name="other", storage=storage)
    study = optuna.create_study(study_name="s", storage=storage)
    optuna_private.set_study_system_attr(study, "anncnn-tune:spec", {"model": "cnn", "epochs": 3})
    assert optuna_private.study_system_attrs(study)["anncnn-tune:spec"] == {"model": "cnn", "epochs": 3}
    assert "anncnn-tune:spec" not in study.user_attrs
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    assert optuna_private.summary_system_attrs(storage, summaries["s"])["anncnn-tune:spec"]["epochs"] == 3
    assert "anncnn-tune:spec" not in optuna_private.summary_system_attrs(storage, summaries["other"])
    by_id = optuna_private.system_attrs_by_id(storage, optuna_private.study_id(study))
    assert by_id == optuna_private.study_system_attrs(study)
    with pytest.raises(KeyError):  # the dashboard's rename of a study that is not there
        optuna_private.system_attrs_by_id(storage, 10_000)
    again = optuna.load_study(study_name="s", storage=storage)  # another Study object on the same storage
    assert optuna_private.study_system_attrs(again)["anncnn-tune:spec"]["model"] == "cnn"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_frozen_trial_carries_the_system_attributes_of_a_live_trial():
    study = optuna.create_study()
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, "failed_trial", 0)
    frozen = optuna_private.frozen_trial(trial)
    assert frozen.number == trial.number and frozen.system_attrs["failed_trial"] == 0
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen) == 0


def test_artifact_path_is_where_the_file_system_store_reads(tmp_path):
    store = optuna.artifacts.FileSystemArtifactStore(tmp_path)
    store.write("abc", io.BytesIO(b"data"))
    path = optuna_private.artifact_path(store, "abc")
    assert path == tmp_path / "abc" and path.read_bytes() == b"data"


def test_failed_trials_are_logged_by_the_logger_the_filter_sits_on():
    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = optuna_private.failed_trial_logger()
    handler = Catch()
    logger.addHandler(handler)
    try:
        def failing(trial):
            raise ValueError("boom")

        optuna.create_study().optimize(failing, n_trials=1, catch=(ValueError,))
    finally:
        logger.removeHandler(handler)
    assert any("failed" in r.getMessage() and r.name == optuna_private.FAILED_TRIAL_LOGGER for r in records)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_worker_fails_a_dead_workers_trial_before_counting_the_budget(tmp_path):
    """The stale-trial check in run_worker fires (it never did while it tested study._storage)."""
    import time

    from anncnn_tune.search.study import run_worker
    from anncnn_tune.service.budget_lock import StudyLock

    url = f"sqlite:///{tmp_path / 'd.db'}"
    storage = open_storage(url, heartbeat_interval=1)  # stale after 2 s without a beat
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask()
    storage.record_heartbeat(dead._trial_id)  # a worker that beat once, then died
    time.sleep(2.5)

    class Objective:
        on_start = None

        def __call__(self, trial):
            return 1.0

    result = run_worker(study, Objective(), StudyLock(storage, url, "s"), n_trials=1, timeout=20, poll_seconds=0.2)
    states = [t.state.name for t in study.get_trials()]
    assert not result.timed_out and result.ran == 1 and states == ["FAIL", "COMPLETE"]


def test_schema_tables_are_the_tables_of_a_new_storage(tmp_path):
    import sqlalchemy

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'c.db'}")
    assert set(sqlalchemy.inspect(storage.engine).get_table_names()) == optuna_private.schema_tables()
    storage.engine.dispose()
