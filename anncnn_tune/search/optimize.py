"""`anncnn-tune optimize`: one worker process from a study file to a stored, pruned study.

Several workers (`--workers N`) are N of these in spawned processes; see workers.py.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass, replace

import optuna
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.search.names import check_study_name
from anncnn_tune.search.objective import Objective
from anncnn_tune.search.progress import Progress
from anncnn_tune.search.spec import fits_data, load_spec
from anncnn_tune.search.study import counts, open_study, run_worker
from anncnn_tune.service.artifacts import open_store, resolve_dir
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.signals import raise_keyboard_interrupt
from anncnn_tune.service.storage import DEFAULT_HEARTBEAT, check_reachable, mask, open_storage
from anncnn_tune.training import devices
from anncnn_tune.training.fit import DeviceData, RunOptions
from anncnn_tune.training.threads import configure_threads


@dataclass
class OptimizeRequest:
    study: str
    storage_url: str
    n_trials: int
    timeout: float | None = None
    device: str = "auto"
    epochs: int | None = None
    seed: int | None = None
    subset: float | None = None
    compile: bool = False
    threads: int | None = None  # torch CPU threads per worker; None: cores // workers (or OMP_NUM_THREADS)
    data_dir: str | None = None
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    quiet: bool = False
    artifacts: str | None = None  # None: $ANNCNN_TUNE_ARTIFACTS, else beside the storage (artifacts.resolve_dir)
    workers: int = 1
    devices: tuple[str, ...] = ()  # round-robin over the workers; empty: every worker uses `device`
    label: str = ""  # prefix of this worker's progress lines ("[worker 2] ") when several run
    share: int = 1  # how many workers share this machine's cores (each gets max(1, cores // share) threads)
    study_name: str | None = None  # run the study file under this name (variants side by side in one storage)


class _Prefixed:
    """A text stream that starts every line with a label, so N workers' lines can be told apart."""

    def __init__(self, stream, label: str):
        self._stream, self._label = stream, label

    def write(self, text: str) -> None:
        self._stream.write("".join(self._label + line for line in text.splitlines(keepends=True)))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False  # several workers' live lines would overwrite each other


class _QuietFailures(logging.Filter):
    """Optuna logs a failed trial with its traceback, then once more with its value (None).
    An interrupted trial is the user's intent, not a bug: its reason is in the trial's fail_reason
    and the CLI prints one line, so its traceback goes. Other failures keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            return False
        return not record.getMessage().endswith("failed with value None.")


def optimize(request: OptimizeRequest) -> dict:
    """Validate everything that can be validated before touching the storage, then run the worker(s)."""
    spec = load_spec(request.study).with_overrides(epochs=request.epochs, seed=request.seed,
                                                subset=request.subset)
    if request.study_name:
        spec = replace(spec, name=check_study_name(request.study_name))
    # Every device must exist, the storage answer and the artifact directory be usable before any
    # data is loaded or worker started: seconds, not minutes, to a one-line error.
    flag = "--devices" if request.devices else "--device"
    resolved = [devices.resolve(name, flag) for name in request.devices or (request.device,)]
    device = resolved[0]  # this process's; spawned workers take theirs round-robin (for_worker)
    check_reachable(request.storage_url)
    store = open_store(resolve_dir(request.artifacts, request.storage_url))
    if request.workers > 1:
        from anncnn_tune.search.workers import run_workers

        return run_workers(request, spec)
    configure_threads(request.share, threads=request.threads)  # respects OMP_NUM_THREADS where it is set
    splits = load_dataset(spec.data_source or spec.dataset, data_dir=request.data_dir, seed=spec.seed,
                          subset=spec.subset)
    if spec.data_source is not None:  # an array file's kind and an `auto` task are known only now
        fits_data(spec, splits.kind, splits.task)
    storage = open_storage(request.storage_url, heartbeat_interval=request.heartbeat_interval, retry_stale=True)
    optuna.logging.set_verbosity(logging.WARNING)
    # The logger that reports failed trials (a logger's filters do not apply to its children's records).
    logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietFailures) for f in logger.filters):
        logger.addFilter(_QuietFailures())
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # spawned workers leave SIGINT to their parent
        signal.signal(signal.SIGINT, raise_keyboard_interrupt)

    lock = StudyLock(storage, request.storage_url, spec.name)
    study = open_study(spec, storage, splits.describe(), lock)
    stream = _Prefixed(sys.stderr, request.label) if request.label else None
    progress = Progress(spec.name, spec.metric, spec.epochs, stream=stream, quiet=request.quiet)
    before = counts(study)
    progress.message(f"study {spec.name} on {mask(request.storage_url)}: {before['complete'] + before['pruned']} "
                     f"of {request.n_trials} trials finished; training on {device}; artifacts in {store.root}")
    data = DeviceData.from_splits(splits, device)
    options = RunOptions(device=device, compile=request.compile)
    objective = Objective(spec, data, splits.input_shape, splits.out_dim, options, progress,
                          store=store)
    result = run_worker(study, objective, lock, n_trials=request.n_trials, timeout=request.timeout,
                        progress=progress, catch=(torch.OutOfMemoryError,))
    return summary(study, result)


def summary(study: optuna.Study, result=None) -> dict:
    states = counts(study)
    out = {"study": study.study_name, "states": {k: v for k, v in states.items() if v},
           "ran_here": result.ran if result else 0,
           "interrupted": bool(result and result.interrupted), "timed_out": bool(result and result.timed_out)}
    try:
        best = study.best_trial
    except ValueError:
        return out
    out.update(best_value=best.value, best_trial=best.number, best_params=best.params,
               best_baseline=best.user_attrs.get("baseline"))
    return out
