"""The launcher's view of N workers: it reads the storage without writing to it, and relays their lines."""

from __future__ import annotations

import gc
import io
import multiprocessing
import os

import optuna
from helpers import sqlite_snapshot

from anncnn_tune.search.live import LogView
from anncnn_tune.search.spec import load_spec
from anncnn_tune.search.watch import StudyWatch
from anncnn_tune.service.readonly import close_readonly
from anncnn_tune.service.storage import close_all, open_storage


def test_watching_a_study_reads_its_trials_and_leaves_the_storage_as_it_was(tmp_path):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    spec = load_spec("digits-ann")
    study = optuna.create_study(study_name=spec.name, storage=open_storage(url), direction="maximize")
    for value in (0.5, 0.75):
        study.tell(study.ask(), value)
    study.ask()  # running
    close_all()  # no connection of the test's own left open
    files, before = sorted(p.name for p in tmp_path.iterdir()), sqlite_snapshot(db)
    gc.collect()  # sqlite_snapshot's connection, which would keep the -wal and -shm files there
    log = io.StringIO()
    watch = StudyWatch(spec, url, n_trials=4, workers=2, view=LogView(log, spec.metric))
    watch.start("cpu (2 workers)", tmp_path / "art")
    assert [t.number for t in watch.poll()] == []  # nothing ended since the first read
    snapshot = watch.search.snapshot()
    assert (snapshot.done, snapshot.best_trial, [r.number for r in snapshot.running]) == (2, 1, [2])
    watch.close()
    close_readonly()
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no lock file, no -wal left behind
    assert sqlite_snapshot(db) == before
    # In a log the launcher prints no start line and no trial lines (each worker prints its own), and
    # no status line where nothing changed since its first read.
    assert log.getvalue() == ""


def test_a_study_no_worker_has_created_yet_is_an_empty_view(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_storage(url)
    watch = StudyWatch(load_spec("digits-ann"), url, n_trials=4, workers=2, view=None)
    assert watch.poll() == [] and watch.search.snapshot().done == 0
    close_all()
    close_readonly()


def test_the_relay_prints_every_line_the_workers_wrote_the_last_one_unended_too():
    reader, writer = multiprocessing.Pipe(duplex=False)  # each worker's stderr is the writer's end
    os.write(writer.fileno(), b"[worker 1] error: no such device\n[worker 2] Traceback (most")
    os.write(writer.fileno(), b" recent call last):\n  File \"x\"")
    writer.close()
    log = io.StringIO()
    watch = StudyWatch(load_spec("digits-ann"), "sqlite://", n_trials=4, workers=2, view=LogView(log, "m"))
    watch.wait([], reader)  # the workers have exited: what they wrote is drained to the end
    assert log.getvalue() == ("[worker 1] error: no such device\n[worker 2] Traceback (most recent call last):\n"
                              "  File \"x\"\n")


class _EndsWhileWatched:
    """A worker that ends between two readings of its exit code: running at the first, reaped at the next
    (what a real worker does when it exits while the launcher is between the two); its sentinel is ready."""

    def __init__(self):
        self.readings = 0
        self._reader, writer = multiprocessing.Pipe(duplex=False)
        writer.close()  # the process is gone: its end of the sentinel is closed
        self.sentinel = self._reader

    @property
    def exitcode(self):
        self.readings += 1
        return None if self.readings == 1 else 0


def test_a_worker_ending_between_two_readings_does_not_hang_the_launcher():
    """--quiet (no view, no relay) with the last worker exiting just as the launcher looks: the wait ends."""
    import threading

    watch = StudyWatch(load_spec("digits-ann"), "sqlite://", n_trials=4, workers=1, view=None)
    worker = _EndsWhileWatched()
    waiting = threading.Thread(target=watch.wait, args=([worker], None), daemon=True)
    waiting.start()
    waiting.join(timeout=30)
    assert not waiting.is_alive(), "the launcher waits on no process and never returns"
    assert worker.readings >= 2
