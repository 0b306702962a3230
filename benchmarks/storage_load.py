"""Load that a shared study holds: N concurrent workers running near-zero-cost trials through the
project's own worker loop (search/study.run_worker, with the budget lock of service/budget_lock.py
and the heartbeat the CLI's workers use), against one storage.

Measures: trials per second the storage and the lock sustain; the lock's share of a trial's
overhead (time spent waiting for it and holding it, over each worker's wall time per trial); and
checks that the budget stays exact (exactly --trials finished trials, none beyond) and that no
worker hangs (every worker exits before --deadline, else it is reported as a deadlock and killed).

    python benchmarks/storage_load.py --storage postgresql+psycopg://postgres@127.0.0.1:5432/test --workers 16
    python benchmarks/storage_load.py --storage sqlite:///load.db --workers 4

The study has a unique name and is deleted afterwards (SQLite: the file is kept only if it was there).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEARTBEAT = 30  # the CLI's default (service/storage.DEFAULT_HEARTBEAT)


class _TimedLock:
    """The study lock, with the time spent waiting for it and holding it."""

    def __init__(self, lock):
        self.lock, self.wait, self.held, self._since = lock, 0.0, 0.0, None

    def acquire(self):
        start = time.perf_counter()
        self.lock.acquire()
        now = time.perf_counter()
        self.wait += now - start
        if self._since is None:
            self._since = now

    def release(self):
        if self._since is not None:
            self.held += time.perf_counter() - self._since
            self._since = None
        self.lock.release()


class _Objective:
    on_start = None  # run_worker sets it to the lock's release

    def __call__(self, trial):
        if self.on_start is not None:
            self.on_start()
        return trial.suggest_float("x", 0.0, 1.0) ** 2  # near-zero cost: the storage is what is measured


def _worker(url: str, name: str, n_trials: int, timeout: float, queue) -> None:
    import optuna

    from anncnn_tune.search.study import run_worker
    from anncnn_tune.service.budget_lock import StudyLock
    from anncnn_tune.service.storage import close_all, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url, heartbeat_interval=HEARTBEAT, retry_stale=True)
    study = optuna.load_study(study_name=name, storage=storage)
    lock = _TimedLock(StudyLock(storage, url, name))
    start = time.perf_counter()
    result = run_worker(study, _Objective(), lock, n_trials=n_trials, timeout=timeout, poll_seconds=0.05)
    wall = time.perf_counter() - start
    queue.put({"ran": result.ran, "wall": wall, "lock_wait": lock.wait, "lock_held": lock.held,
               "timed_out": result.timed_out})
    close_all()


def run(url: str, workers: int, n_trials: int, timeout: float, deadline: float) -> dict:
    import optuna

    from anncnn_tune.service.storage import close_all, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from anncnn_tune.service.storage import sqlite_path

    name = f"storage-load-{uuid.uuid4().hex[:12]}"
    db = sqlite_path(url)
    created = db is not None and not db.exists()
    storage = open_storage(url)
    optuna.create_study(study_name=name, storage=storage)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_worker, args=(url, name, n_trials, timeout, queue)) for _ in range(workers)]
    start = time.perf_counter()
    for p in processes:
        p.start()
    reports, hung = [], 0
    end = start + deadline
    # Reports are read before joining: a process that has put on a Queue exits only once it is read.
    while len(reports) < workers and time.perf_counter() < end:
        try:
            reports.append(queue.get(timeout=max(0.1, min(5.0, end - time.perf_counter()))))
        except Empty:  # look again until the deadline
            if not any(p.is_alive() for p in processes):
                break
    for p in processes:
        p.join(max(0.0, end - time.perf_counter()) + 5.0)
        if p.exitcode is None:
            hung += 1
            p.kill()
            p.join()
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=storage)
    states = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    optuna.delete_study(study_name=name, storage=storage)
    close_all()
    if created:  # leave no file behind that was not there
        for leftover in (db, *(db.with_name(db.name + end) for end in ("-wal", "-shm", ".lock"))):
            leftover.unlink(missing_ok=True)
    finished = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    ran = sum(r["ran"] for r in reports)
    worker_time = sum(r["wall"] for r in reports)
    lock_wait = sum(r["lock_wait"] for r in reports)
    lock_held = sum(r["lock_held"] for r in reports)
    timed_out = any(r["timed_out"] for r in reports)
    loop = max((r["wall"] for r in reports), default=0.0)
    return {
        "storage": url.split("@")[-1], "workers": workers, "budget": n_trials, "states": states,
        "finished": finished, "budget_exact": finished == n_trials or (timed_out and finished < n_trials),
        "reached_budget": finished == n_trials, "deadlocked_workers": hung, "workers_reported": len(reports),
        # Rate over the workers' own loop (the slowest one), not the seconds spent spawning them.
        "wall_seconds": round(wall, 3), "loop_seconds": round(loop, 3),
        "trials_per_second": round(finished / loop, 2) if loop else None,
        "seconds_per_trial_per_worker": round(worker_time / ran, 4) if ran else None,
        "lock_wait_share": round(lock_wait / worker_time, 3) if worker_time else None,
        "lock_held_share": round(lock_held / worker_time, 3) if worker_time else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=None, help="budget (default: 40 per worker)")
    parser.add_argument("--timeout", type=float, default=90.0, help="each worker stops after this many seconds")
    parser.add_argument("--quick", action="store_true", help="2 workers, 6 trials (the smoke test)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.trials, args.timeout = 2, 6, 60.0
    n_trials = args.trials or 40 * args.workers
    report = run(args.storage, args.workers, n_trials, args.timeout, deadline=args.timeout + 60.0)
    report.update(machine=f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} {platform.release()}",
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), command=" ".join(sys.argv))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    ok = report["deadlocked_workers"] == 0 and report["budget_exact"] and report["workers_reported"] == args.workers
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
