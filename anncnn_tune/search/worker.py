"""One worker: trials of one study until the study's budget is spent, in this process.

The launcher (launcher.py) has checked everything that can be checked before any work (the study
file, every device, the storage, the artifact directory) and hands each worker a `Job` (the same
for all workers of one launch) and an `Assignment` (this worker's alone). A worker checks nothing
again: it loads the data once, puts it on its device, opens the study and runs trials.

This module imports nothing from the launcher, so a spawned worker imports only what it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import optuna
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.data.base import TargetScaling
from anncnn_tune.errors import UserError
from anncnn_tune.search.objective import Objective
from anncnn_tune.search.progress import Progress, start_line
from anncnn_tune.search.spec import Spec, fits_data, fits_shape
from anncnn_tune.search.study import WorkerResult, counts, open_study, run_worker
from anncnn_tune.service import signals
from anncnn_tune.service.artifacts import open_store
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.optuna_private import failed_trial_logger
from anncnn_tune.service.records import StudyRecord
from anncnn_tune.service.signals import raise_keyboard_interrupt
from anncnn_tune.service.storage import DEFAULT_HEARTBEAT, open_storage
from anncnn_tune.training.fit import DeviceData, RunOptions
from anncnn_tune.training.size_check import check_space_fits
from anncnn_tune.training.threads import configure_threads

EXIT_INTERRUPTED = 130  # a spawned worker's exit code after SIGTERM (the shell's code for a signal)


@dataclass(frozen=True)
class Job:
    """What every worker of one launch runs: the checked study spec (overrides applied) and settings."""

    spec: Spec
    storage_url: str
    artifacts: Path  # the resolved artifact directory, already created by the launcher
    n_trials: int
    timeout: float | None = None
    compile: bool = False
    threads: int | None = None  # torch CPU threads; None: cores // share (or OMP_NUM_THREADS)
    data_dir: str | None = None
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    quiet: bool = False


@dataclass(frozen=True)
class Assignment:
    """What only one worker needs: its device, how many workers share the cores, its line label."""

    device: str  # a device name the launcher has resolved and checked ("cpu", "cuda:1")
    share: int = 1  # workers on this machine; each gets max(1, cores // share) torch threads
    label: str = ""  # prefix of this worker's progress lines ("[worker 2] ") when several run
    index: int = 0  # this worker's number among the launch's (0-based): its sampler's stream


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


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(logging.WARNING)
    logger = failed_trial_logger()
    if not any(isinstance(f, _QuietFailures) for f in logger.filters):
        logger.addFilter(_QuietFailures())


def check_sizes(spec: Spec, splits, device: torch.device) -> None:
    """Refuse, before the study is written, a space whose largest model cannot fit on `device`."""
    check_space_fits(spec.model, spec.space, spec.fixed, spec.baselines, splits.input_shape, splits.out_dim,
                     len(splits.y_train), device, where=f"study {spec.name}")


def run_trials(job: Job, assignment: Assignment, splits=None, *, own_view: bool = True,
               trial_lines: bool = True) -> tuple[optuna.Study, WorkerResult]:
    """Run trials in this process until the study holds job.n_trials finished trials (all workers').

    splits: the study's data where the caller has loaded and checked it already, else loaded here.
    own_view=False: the launcher of several workers shows the study (a live area, or status lines
    in a log); trial_lines=False as well, on a terminal: this worker prints only its messages.

    SIGTERM (and SIGINT, unless this process ignores it, as spawned workers do) ends the running
    trial as failed with the reason; the handlers in place before are restored on return, so a
    notebook or another caller gets its own back.
    """
    spec = job.spec
    device = torch.device(assignment.device)
    configure_threads(assignment.share, threads=job.threads)  # respects OMP_NUM_THREADS where it is set
    if splits is None:
        splits = load_dataset(spec.data_source or spec.dataset, data_dir=job.data_dir, seed=spec.seed,
                              subset=spec.subset)
        if spec.data_source is not None:  # an array file's kind and an `auto` task are known only now
            fits_data(spec, splits.kind, splits.task)
        fits_shape(spec, splits.input_shape)
    check_sizes(spec, splits, device)
    storage = open_storage(job.storage_url, heartbeat_interval=job.heartbeat_interval, retry_stale=True)
    # Created only now that the data has loaded (the launcher checked it can be).
    store = open_store(job.artifacts)
    _quiet_optuna()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    if previous[signal.SIGINT] is not signal.SIG_IGN:  # spawned workers leave SIGINT to their parent
        signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    try:
        lock = StudyLock(storage, job.storage_url, spec.name)
        study = open_study(spec, storage, splits.describe(), lock, worker=assignment.index)
        if splits.task == "regression":
            # Train on the scaling the study recorded (the one fitted here for a new study): a study
            # made before targets were scaled recorded none, and its trials all train on raw values.
            splits.target_scaling = TargetScaling.from_dict(StudyRecord.read(study).target_scaling)
        stream = _Prefixed(sys.stderr, assignment.label) if assignment.label else None
        progress = Progress(spec.name, spec.metric, spec.epochs, stream=stream, quiet=job.quiet,
                            n_trials=job.n_trials, view=own_view, trials=trial_lines,
                            steps_per_epoch=spec.steps_per_epoch, timeout=job.timeout)
        if trial_lines:  # else the launcher prints the one start line of all its workers
            before = counts(study)
            progress.message(start_line(spec.name, job.storage_url, before["complete"] + before["pruned"],
                                        job.n_trials, str(device), store.root))
        data = DeviceData.from_splits(splits, device)
        options = RunOptions(device=device, compile=job.compile)
        objective = Objective(spec, data, splits.input_shape, splits.out_dim, options, progress, store=store,
                              numeric=splits.numeric_columns)
        previous_notice = signals.set_notice(
            lambda name: _say(progress, stop_notice(name, objective.running, checkpoints=store is not None)))
        try:
            with progress.showing(study):
                result = run_worker(study, objective, lock, n_trials=job.n_trials, timeout=job.timeout,
                                    progress=progress, catch=(torch.OutOfMemoryError,))
        finally:
            signals.set_notice(previous_notice)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return study, result


def stop_notice(signal_name: str, trial: int | None, *, checkpoints: bool = True) -> str:
    """What the first SIGINT/SIGTERM will do, said the moment it arrives (the stop itself waits for a safe point)."""
    if trial is None:
        return f"{signal_name}: stopping before the next trial (again to stop at once)"
    resume = "resume from its checkpoint" if checkpoints else "be re-queued"
    return (f"{signal_name}: stopping after the current epoch; trial {trial} will {resume} on the next run "
            "(again to stop at once)")


def _say(progress: Progress, line: str) -> None:
    """A line for the user even under --quiet: they pressed Ctrl-C and wait for an answer."""
    if progress.view is not None:
        progress.message(line)
    else:
        print(line, file=sys.stderr, flush=True)


def spawned_main(job: Job, assignment: Assignment, relay: Connection | None = None) -> None:
    """Entry point of one spawned worker: its exit code tells the launcher how it ended.

    relay: the write end of a pipe the launcher reads, where it shows a live view on a terminal.
    This process's stderr (its messages, errors, Optuna's warnings, a crash's traceback) goes
    there, and the launcher prints it above the view, which would overwrite a direct write.
    """
    if relay is not None:
        sys.stderr.flush()
        os.dup2(relay.fileno(), sys.stderr.fileno())
        relay.close()
    try:
        _, result = run_trials(job, assignment, own_view=False, trial_lines=relay is None)
    except UserError as exc:
        print(f"{assignment.label}error: {exc}", file=sys.stderr, flush=True)
        sys.exit(getattr(exc, "exit_code", 2))  # 1: the run failed (storage.StorageLost)
    except KeyboardInterrupt:  # a SIGTERM before the trial loop was entered
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_INTERRUPTED if result.interrupted else 0)
