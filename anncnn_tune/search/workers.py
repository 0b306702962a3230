"""`optimize --workers N`: N worker processes on one study, started by one command.

Processes, not threads: each worker has its own interpreter, torch thread pool, storage engine and
copy of the data (loaded once per process, then on its device). They are spawned, not forked, so no
engine, CUDA context or OpenMP pool is inherited half-initialised. Each worker gets
max(1, cores // N) torch threads (threads.configure_threads: N workers x all cores each would
thrash), and with --devices the devices round-robin (cuda:0,cuda:1 with 4 workers: 0, 1, 0, 1;
several per GPU are fine).

Signals: workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group) and stop on
SIGTERM, which the parent sends them on its first SIGINT or SIGTERM: each ends its running trial as
failed with the reason, and exits. A second signal to the parent kills the workers outright (their
trials then go stale and are retried by the next run).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.search.optimize import OptimizeRequest

EXIT_INTERRUPTED = 130


def _worker_main(request) -> None:
    """Entry point of one spawned worker: its exit code tells the parent how it ended."""
    from anncnn_tune.search.optimize import optimize

    try:
        result = optimize(request)
    except UserError as exc:
        print(f"{request.label}error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # a SIGTERM before the worker loop was entered
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_INTERRUPTED if result["interrupted"] else 0)


def for_worker(request: OptimizeRequest, index: int) -> OptimizeRequest:
    """The request that worker `index` of `request.workers` runs: its device (round-robin over
    --devices), its share of the cores, and the label of its progress lines."""
    device = request.devices[index % len(request.devices)] if request.devices else request.device
    return replace(request, workers=1, devices=(), device=device, share=request.workers,
                   label=f"[worker {index + 1}] ")


def run_workers(request, spec) -> dict:
    from anncnn_tune.search.optimize import summary
    from anncnn_tune.service.storage import open_storage

    # optimize() has checked the devices, the storage and the artifact directory. Create the schema once, here, rather than racing N workers at it (open_storage also locks).
    open_storage(request.storage_url)
    context = multiprocessing.get_context("spawn")
    processes = []
    stop = {"signals": 0}

    def on_signal(signum, frame):
        stop["signals"] += 1
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM if stop["signals"] == 1 else signal.SIGKILL)

    # Children inherit "ignore SIGINT" through exec, so no Ctrl-C can hit one half-started.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        for index in range(request.workers):
            process = context.Process(target=_worker_main, args=(for_worker(request, index),),
                                      name=f"anncnn-tune-worker-{index + 1}")
            process.start()
            processes.append(process)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        while any(p.exitcode is None for p in processes):
            for process in processes:
                process.join(timeout=0.5)
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        for process in processes:  # only reached with live workers when the parent itself fails
            if process.exitcode is None:
                process.kill()
                process.join()
    codes = [p.exitcode for p in processes]
    failed = [f"worker {i + 1} exited with {_describe(code)}" for i, code in enumerate(codes)
              if code not in (0, EXIT_INTERRUPTED)]
    if not stop["signals"] and 2 in codes:
        raise UserError("; ".join(failed) + " (the reason is printed above)")
    import optuna

    try:
        study = optuna.load_study(study_name=spec.name, storage=open_storage(request.storage_url))
    except KeyError:
        raise UserError(f"no worker got as far as creating study {spec.name!r}: " + "; ".join(failed)) from None
    out = summary(study)
    out.update(workers=request.workers, worker_exit_codes=codes, worker_failures=failed,
               interrupted=bool(stop["signals"]) or EXIT_INTERRUPTED in codes)
    return out


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
