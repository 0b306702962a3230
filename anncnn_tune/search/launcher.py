"""`optimize`: check a request once, then run its trials here or in N spawned worker processes.

Everything that can be checked before any work is checked here, once, in the launching process:
the study file (with --epochs/--seed/--subset applied), every --devices entry, that the storage
answers, that the artifact directory can be created. Seconds, not minutes, to a one-line error,
and N workers do not print the same error N times. The workers (worker.py) get the result of
those checks, a `worker.Job`, plus an `Assignment` of their own (device, share of the cores,
label); the user's request never reaches them.

Several workers are processes, not threads: each has its own interpreter, torch thread pool,
storage engine and copy of the data (loaded once per process, then on its device). They are
spawned, not forked, so no engine, CUDA context or OpenMP pool is inherited half-initialised.
Each gets max(1, cores // N) torch threads (N workers x all cores each would thrash), and with
--devices the devices go round-robin (cuda:0,cuda:1 with 4 workers: 0, 1, 0, 1; several per GPU
are fine).

Signals: workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group) and stop on
SIGTERM, which the launcher sends them on its first SIGINT or SIGTERM: each ends its running trial
as failed with the reason, and exits. A second signal to the launcher kills the workers outright
(their trials then go stale and are retried by the next run).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import optuna
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.errors import UserError
from anncnn_tune.search.live import make_view
from anncnn_tune.search.names import check_study_name
from anncnn_tune.search.parallel import plan_workers
from anncnn_tune.search.samplers import grid_size
from anncnn_tune.search.spec import UnknownStudy, fits_data, fits_shape, load_spec
from anncnn_tune.search.study import FINISHED, WorkerResult, counts, stored_spec
from anncnn_tune.search.watch import StudyWatch
from anncnn_tune.search.worker import EXIT_INTERRUPTED, Assignment, Job, check_sizes, run_trials, spawned_main
from anncnn_tune.service import records
from anncnn_tune.service.artifacts import check_store_dir, resolve_dir
from anncnn_tune.service.readonly import open_storage_readonly
from anncnn_tune.service.records import TrialRecord, study_best_trial
from anncnn_tune.service.storage import DEFAULT_HEARTBEAT, check_reachable, mask, open_storage
from anncnn_tune.training import devices


@dataclass
class OptimizeRequest:
    """What the user asks for (the `optimize` command's options)."""

    study: str  # a built-in study name or a path to a study file
    storage_url: str
    n_trials: int | None  # None: a grid's size, else DEFAULT_TRIALS
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
    workers: int | str = 1  # or "auto": search.parallel's measured rule picks the count
    devices: tuple[str, ...] = ()  # round-robin over the workers; empty: every worker uses `device`
    study_name: str | None = None  # run the study file under this name (variants side by side in one storage)
    dataset: str | None = None  # run the study on this file or folder instead of its own data (NAME-on-FOLDER)


@dataclass
class OptimizeResult:
    """How a launch ended and what the study holds now (all its trials, not only this launch's)."""

    study_name: str
    states: dict[str, int]  # trial state -> count, states with no trial left out
    ran_here: int = 0  # trials this process ran (0 with several workers: they ran them)
    interrupted: bool = False
    timed_out: bool = False
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict | None = None
    best_baseline: str | None = None  # the baseline's name where the best trial is one
    workers: int = 1
    worker_exit_codes: list[int | None] = field(default_factory=list)
    worker_failures: list[str] = field(default_factory=list)  # "worker 2 exited with code 1"
    worker_ids: tuple[str, ...] = ()  # this launch's workers, as the trials record them (host:pid)
    wall_seconds: float | None = None  # this launch, from the request's checks to the workers' end
    finished_here: int = 0  # complete or pruned trials this launch's worker(s) ran
    study: optuna.Study | None = field(default=None, repr=False, compare=False)  # the stored study, to explore


def optimize(request: OptimizeRequest) -> OptimizeResult:
    """Check everything that can be checked before touching the storage, then run the worker(s)."""
    clock, since = time.perf_counter(), datetime.now()
    result = _optimize(request)
    return replace(result, wall_seconds=time.perf_counter() - clock,
                   finished_here=_finished_by(result.study, result.worker_ids, since))


def _optimize(request: OptimizeRequest) -> OptimizeResult:
    check_numbers(request)
    spec = _find_spec(request).with_overrides(epochs=request.epochs, seed=request.seed, subset=request.subset)
    if request.dataset is not None:
        spec = spec.on_dataset(request.dataset)
    request = _default_trials(request, spec)
    if request.study_name:
        spec = replace(spec, name=check_study_name(request.study_name))
    # Every device must exist, the storage answer and the artifact directory be usable before any
    # data is loaded or worker started.
    flag = "--devices" if request.devices else "--device"
    resolved = tuple(str(devices.resolve(name, flag)) for name in request.devices or (request.device,))
    check_reachable(request.storage_url)
    # Checked, not created: the worker creates it once the data has loaded (nothing is written before).
    artifacts = check_store_dir(resolve_dir(request.artifacts, request.storage_url))
    job = Job(spec=spec, storage_url=request.storage_url, artifacts=artifacts, n_trials=request.n_trials,
              timeout=request.timeout, compile=request.compile, threads=request.threads, data_dir=request.data_dir,
              heartbeat_interval=request.heartbeat_interval, quiet=request.quiet)
    # From here on the workers see checked device names ("auto" has become "cpu" or "cuda").
    checked = replace(request, device=resolved[0], devices=resolved if request.devices else ())
    splits = None
    if request.workers == AUTO:
        splits = _checked_splits(spec, job)
        plan = plan_workers(spec, splits, tuple(map(torch.device, resolved)), request.n_trials)
        if not request.quiet:
            print(f"--workers auto: {plan.workers} worker(s) x {plan.threads} thread(s): {plan.reason}",
                  file=sys.stderr)
        checked = replace(checked, workers=plan.workers)
    if checked.workers > 1:
        return _run_workers(checked, job, splits)
    study, result = run_trials(job, Assignment(device=resolved[0]), splits)  # only the first device is used
    return replace(summarize(study, result), worker_ids=(records.worker_id(os.getpid()),))


AUTO = "auto"


def _find_spec(request: OptimizeRequest):
    """--study as a built-in name, a path, NAME.yaml in the working folder, or else the name of a study
    in the storage (resumed with the spec it stored); the last two say so in one line on stderr."""
    def note(line: str) -> None:
        if not request.quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        return load_spec(request.study, note)
    except UnknownStudy:
        study = _stored_study(request.storage_url, request.study)
        if study is None:
            raise
    note(f"--study {request.study}: resuming the study of that name in {mask(request.storage_url)} with the spec "
         "it stored (no study file or built-in study has that name)")
    return stored_spec(study)


def _stored_study(url: str, name: str) -> optuna.Study | None:
    """The anncnn-tune study `name` in the storage, read only; None where there is none (or no storage)."""
    try:
        storage = open_storage_readonly(url)
        names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    except UserError:  # no storage yet, or not one: the study is unknown, which the caller says
        return None
    if name not in names:
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    return study if records.StudyRecord.read(study).is_ours else None


def _checked_splits(spec, job: Job):
    """The study's data, loaded once here and checked against the spec (a user dataset's kind and
    task are known only once it is read)."""
    splits = load_dataset(spec.data_source or spec.dataset, data_dir=job.data_dir, seed=spec.seed, subset=spec.subset)
    if spec.data_source is not None:
        fits_data(spec, splits.kind, splits.task)
    fits_shape(spec, splits.input_shape)
    return splits


DEFAULT_TRIALS = 30


def _default_trials(request: OptimizeRequest, spec) -> OptimizeRequest:
    """n_trials None: the grid's size for a grid-sampled study (printed), else DEFAULT_TRIALS."""
    grid = grid_size(spec)
    if grid is not None and not request.quiet:
        print(f"grid sampler: {grid} combinations of {', '.join(spec.space)}", file=sys.stderr)
    if request.n_trials is not None:
        return request
    return replace(request, n_trials=grid if grid is not None else DEFAULT_TRIALS)


def check_numbers(request: OptimizeRequest) -> None:
    """The request's counts and limits: the CLI's option types check them too, the Python API only here."""
    def whole(name: str, minimum: int) -> None:
        value = getattr(request, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"{name} (--{name.replace('_', '-')}) must be a whole number of at least {minimum}, "
                            f"got {value!r}")

    if request.workers != AUTO:
        whole("workers", 1)
    whole("heartbeat_interval", 1)
    if request.n_trials is not None:  # None: the grid's size, or DEFAULT_TRIALS
        whole("n_trials", 1)
    for name in ("epochs", "threads"):
        if getattr(request, name) is not None:
            whole(name, 1)
    if request.seed is not None and (isinstance(request.seed, bool) or not isinstance(request.seed, int)):
        raise UserError(f"seed (--seed) must be an integer, got {request.seed!r}")
    for name in ("timeout", "subset"):
        value = getattr(request, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise UserError(f"{name} (--{name}) must be a positive number, got {value!r}")


def for_worker(request: OptimizeRequest, index: int) -> Assignment:
    """Worker `index`'s share of `request.workers`: its device (round-robin over --devices), its
    share of the cores, and the label of its progress lines."""
    device = request.devices[index % len(request.devices)] if request.devices else request.device
    return Assignment(device=device, share=request.workers, label=f"[worker {index + 1}] ", index=index)


def summarize(study: optuna.Study, result: WorkerResult | None = None) -> OptimizeResult:
    out = OptimizeResult(study_name=study.study_name, states={k: v for k, v in counts(study).items() if v},
                         ran_here=result.ran if result else 0, interrupted=bool(result and result.interrupted),
                         timed_out=bool(result and result.timed_out), study=study)
    best = study_best_trial(study)
    if best is None:
        return out
    baseline = TrialRecord.read(best).baseline
    params = best.params
    spec = stored_spec(study)
    if spec.baseline_model(baseline) != spec.model:  # a baseline of another family samples nothing: its own
        params = {"model": spec.baseline_model(baseline),
                  **next(b["params"] for b in spec.baselines if b["name"] == baseline)}
    return replace(out, best_value=best.value, best_trial=best.number, best_params=params,
                   best_baseline=baseline)


def _finished_by(study: optuna.Study | None, workers: tuple[str, ...], since: datetime) -> int:
    """Complete or pruned trials that `workers` started after `since` (a pid a later launch reuses
    cannot claim an earlier launch's trials)."""
    if study is None:
        return 0
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED)
               if TrialRecord.read(t).worker in workers and t.datetime_start and t.datetime_start >= since)


def _run_workers(request: OptimizeRequest, job: Job, splits=None) -> OptimizeResult:
    """Spawn request.workers workers on the job, show the study live until they end, and summarise it."""
    _check_data_fits(request, job, splits)
    # Create the schema once, here, rather than racing N workers at it (open_storage also locks).
    open_storage(request.storage_url)
    context = multiprocessing.get_context("spawn")
    spec = job.spec
    # One view of the whole study, from the storage; on a terminal the workers' stderr comes
    # through a pipe, to be printed above the live area (watch.py).
    view = make_view(sys.stderr, quiet=request.quiet, title=spec.name, metric=spec.metric)
    watch = StudyWatch(spec, request.storage_url, job.n_trials, request.workers, view, timeout=job.timeout)
    relay, relay_end = context.Pipe(duplex=False) if watch.relays else (None, None)
    fleet = _Fleet(view)
    # Children inherit "ignore SIGINT" through exec, so no Ctrl-C can hit one half-started.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        watch.start(f"{', '.join(dict.fromkeys(request.devices or (request.device,)))} ({request.workers} workers)",
                    job.artifacts)
        fleet.start(context, job, request, relay_end)
        if relay_end is not None:
            relay_end.close()  # the workers hold it now: the relay ends when the last of them exits
        for sig in previous:
            signal.signal(sig, fleet.on_signal)
        watch.wait(fleet.processes, relay)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        fleet.kill_leftovers()
        watch.close()
    return _outcome(request, job, fleet)


def _check_data_fits(request: OptimizeRequest, job: Job, splits) -> None:
    """The data (and --subset, --seed with it) is checked here before the schema is created: a
    mistake there must leave the storage as it was. The workers load it again from the cache."""
    splits = splits or _checked_splits(job.spec, job)
    for device in request.devices or (request.device,):
        check_sizes(job.spec, splits, torch.device(device))


@dataclass
class _Fleet:
    """The launcher's spawned workers, and how many stop signals it has been sent while they ran."""

    view: object | None  # the live view that says a stop is under way (None: plain stderr lines)
    processes: list = field(default_factory=list)
    signals: int = 0

    def start(self, context, job: Job, request: OptimizeRequest, relay_end) -> None:
        for index in range(request.workers):
            process = context.Process(target=spawned_main, args=(job, for_worker(request, index), relay_end),
                                      name=f"anncnn-tune-worker-{index + 1}")
            process.start()
            self.processes.append(process)

    def on_signal(self, signum, frame) -> None:
        """The first SIGINT or SIGTERM stops the workers gently (SIGTERM: each ends its trial); the next kills them."""
        self.signals += 1
        if self.signals == 1:  # said at once, from a thread (this handler may have cut into a write)
            line = (f"{signal.Signals(signum).name}: stopping after the current epoch; each worker's running trial "
                    "will resume from its checkpoint on the next run (again to stop at once)")
            say = self.view.line if self.view is not None else lambda text: print(text, file=sys.stderr, flush=True)
            threading.Thread(target=say, args=(line,), daemon=True).start()
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM if self.signals == 1 else signal.SIGKILL)

    def kill_leftovers(self) -> None:
        """Only reached with live workers when the launcher itself fails."""
        for process in self.processes:
            if process.exitcode is None:
                process.kill()
                process.join()


def _outcome(request: OptimizeRequest, job: Job, fleet: _Fleet) -> OptimizeResult:
    """The study as the workers left it, with their exit codes; a worker's user error (exit 2) is the launch's."""
    codes = [p.exitcode for p in fleet.processes]
    failed = [f"worker {i + 1} exited with {_describe(code)}" for i, code in enumerate(codes)
              if code not in (0, EXIT_INTERRUPTED)]
    if not fleet.signals and 2 in codes:
        raise UserError("; ".join(failed) + " (the reason is printed above)")
    try:
        study = optuna.load_study(study_name=job.spec.name, storage=open_storage(request.storage_url))
    except KeyError:
        raise UserError(f"no worker got as far as creating study {job.spec.name!r}: " + "; ".join(failed)) from None
    return replace(summarize(study), workers=request.workers, worker_exit_codes=codes, worker_failures=failed,
                   interrupted=bool(fleet.signals) or EXIT_INTERRUPTED in codes,
                   worker_ids=tuple(records.worker_id(p.pid) for p in fleet.processes))


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
