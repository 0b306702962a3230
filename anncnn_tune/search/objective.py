"""The only place where Optuna meets training: suggest, build, fit with a pruning hook, record.

With an artifact directory, a trial also checkpoints after every epoch (a retry of a trial whose
worker died resumes there) and leaves its learning curve and model summary for the dashboard.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import optuna
import torch

from anncnn_tune.search import fidelity
from anncnn_tune.search.pace import Pace, epoch_flops
from anncnn_tune.search.spec import Spec, suggest
from anncnn_tune.service import records, signals
from anncnn_tune.service.artifacts import AtomicArtifactStore, upload_trial_files
from anncnn_tune.service.checkpoints import TrialCheckpoint
from anncnn_tune.service.records import TrialRecord
from anncnn_tune.training import models
from anncnn_tune.training.fit import (
    DeviceData,
    NonFiniteLoss,
    RunOptions,
    fit,
    is_out_of_memory,
    seed_everything,
)
from anncnn_tune.training.observer import TimingObserver


class TrialObserver(TimingObserver):
    """What fit() reports during one trial: each value to Optuna (which may prune), each epoch to the
    progress lines, the checkpoint to its file, and the rows and time so far, which the objective
    records however the trial ends."""

    def __init__(self, trial: optuna.Trial, epochs: int, steps_per_epoch: int, progress,
                 checkpoint: TrialCheckpoint | None, resumed: dict | None, *, prunes_full_run: bool = True):
        super().__init__()
        self.trial, self.epochs, self.progress, self.checkpoint = trial, epochs, progress, checkpoint
        self.steps_per_epoch = steps_per_epoch  # Optuna's step is 1/steps_per_epoch of an epoch
        # With rungs on parts of the images, only those are judged: the full run's epochs are reported
        # (the dashboard's curve) but a schedule in progress is not compared with finished ones.
        self.prunes_full_run = prunes_full_run
        self.rung_seconds = 0.0  # time and resource (in epochs of the whole split) of the rungs on parts
        self.rung_epochs = 0.0
        resumed = resumed or {}
        self.rows = [dict(row) for row in resumed.get("history", [])]  # the resumed epochs, then this run's
        self.partial = [dict(row) for row in resumed.get("partial", [])]  # rows inside the first epoch
        self.saves_checkpoints = checkpoint is not None

    def on_epoch(self, row: dict) -> None:
        self.rows.append(row)
        if not self.saves_checkpoints:
            signals.check_stop()  # a safe point: the epoch is over (with checkpoints: once it is saved)

    def on_partial(self, row: dict) -> None:
        self.partial.append(row)

    def on_value(self, epoch: float, value: float) -> None:
        self.trial.report(value, round(epoch * self.steps_per_epoch))
        if self.progress:
            self.progress.epoch(self.trial.number, epoch, value, self.epochs)
        if (epoch < 1 or self.prunes_full_run) and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}" if self.prunes_full_run
                                     else f"pruned after training on {epoch:.3g} of the training images")

    def on_rung(self, rung: fidelity.RungResult, metric: str) -> None:
        """A rung on part of the images finished: record it, then report its value (which may prune)."""
        self.rung_seconds += rung.seconds
        self.rung_epochs += rung.fraction * self.epochs
        self.on_partial(rung.row(metric))
        self.on_value(rung.fraction, rung.value)

    def load_checkpoint(self) -> dict | None:
        return self.checkpoint.load()

    def save_checkpoint(self, state: dict) -> None:
        try:
            self.checkpoint.save(state)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            # The trial goes on without checkpoints: a dead worker's retry then starts at epoch 1.
            self.saves_checkpoints = False
            folder = self.checkpoint.path.parent
            free = _free_bytes(folder)
            message = (f"warning: trial {self.trial.number}: cannot write its checkpoint in {folder} "
                       f"({_first_line(exc)}; {free} free); it goes on without checkpoints")
            if self.progress:
                self.progress.message(message)
            else:
                optuna.logging.get_logger("anncnn_tune").warning(message)
        signals.check_stop()  # a safe point: the epoch and its checkpoint are written

    def record_progress(self, n_train: int) -> None:
        """What the trial trained, however it ends: its time, its resource, the rows inside epoch 1."""
        records.write_timing(self.trial, epochs_run=self.timing.epochs_run,
                             train_seconds=self.timing.train_seconds + self.rung_seconds,
                             compile_seconds=self.timing.compile_seconds, n_train=n_train,
                             epochs_trained=self.timing.epochs_trained + self.rung_epochs)
        if self.partial:
            records.write_partial_epochs(self.trial, self.partial)


def _epochs_done(observer: TrialObserver) -> int:
    """The last epoch the trial finished (0: none), for an interruption's reason."""
    return observer.rows[-1]["epoch"] if observer.rows else 0


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _free_bytes(folder: Path) -> str:
    for candidate in (folder, *folder.parents):
        try:
            return f"{shutil.disk_usage(candidate).free // 1024} KiB"
        except OSError:
            continue
    return "unknown space"


class Objective:
    """Callable objective for study.optimize; data is already on the device (loaded once per process)."""

    def __init__(self, spec: Spec, data: DeviceData, input_shape, out_dim: int, options: RunOptions,
                 progress=None, on_start=None, store: AtomicArtifactStore | None = None,
                 numeric: tuple[int, ...] | None = None):
        self.spec = spec
        self.data = data
        self.input_shape = tuple(input_shape)
        self.out_dim = out_dim
        self.numeric = numeric  # a table's numeric column positions (Splits.numeric_columns)
        self.options = options
        self.progress = progress
        self.on_start = on_start  # called once the trial is RUNNING in the storage (releases the claim lock)
        self.store = store
        self.worker = records.worker_id(os.getpid())
        self.current_trial: int | None = None
        self.running: int | None = None  # the trial in the objective now
        self.deadline: float | None = None  # time.monotonic() of --timeout (run_worker sets it)
        self.pace = Pace()  # this worker's training FLOPs per second, measured on its trials
        self._small: dict[int, DeviceData] = {}  # the data at a first rung's lower side, made once per worker
        self.out_of_time = False  # a trial could not even start for want of time: the worker stops (run_worker)

    def __call__(self, trial: optuna.Trial) -> float:
        self.running = trial.number  # what a stop notice names (signals.set_notice): only while it trains
        try:
            return self._run(trial)
        finally:
            self.running = None

    def _run(self, trial: optuna.Trial) -> float:
        self.current_trial = trial.number  # run_worker settles it should the storage fail under it
        if self.on_start is not None:
            self.on_start()
        self._stop_if_requested(trial)
        record = TrialRecord.read(trial)
        params = suggest(self.spec, trial, baseline=record.baseline)
        family = self.spec.baseline_model(record.baseline)  # a baseline may be of another family
        epochs = record.epoch_budget(self.spec.epochs)
        checkpoint = TrialCheckpoint(self.store.root, trial.study, trial) if self.store else None
        seed = records.trial_seed(self.spec.seed, checkpoint.original if checkpoint else trial.number)
        seed_everything(seed)
        model = self._build(trial, family, params)
        n_train = len(self.data.y_train)
        n_val = 0 if self.data.y_val is None else len(self.data.y_val)
        per_epoch = epoch_flops(family, params, self.input_shape, self.out_dim, n_train, n_val)
        records.write_setup(trial, n_params=models.count_params(model), device=str(self.options.device), seed=seed,
                            worker=self.worker)
        on_images = self.spec.rungs_on_images
        observer = TrialObserver(trial, epochs, self.spec.steps_per_epoch, self.progress, checkpoint,
                                 self._resume(trial, checkpoint, model), prunes_full_run=not on_images)
        rungs = self.spec.partial_epochs if on_images and not observer.rows else ()
        if not rungs:
            self._check_time_left(trial, family, per_epoch * epochs, f"its {epochs} epoch(s)",
                                  first_step=not observer.rows)
        if self.progress:
            self.progress.trial_started(trial.number)
            if observer.rows:
                self.progress.message(f"trial {trial.number:>3} resumes trial {checkpoint.original} from its "
                                      f"checkpoint after epoch {len(observer.rows)}")
        try:
            result = self._train(trial, family, params, model, epochs, seed, observer, rungs, per_epoch)
        except optuna.TrialPruned:
            self._settle_pruned(trial, family, checkpoint, model, observer, n_train, per_epoch)
            raise
        except NonFiniteLoss as exc:
            # Pruned rather than failed: the sampler then learns that this region diverges.
            self._settle_pruned(trial, family, checkpoint, model, observer, n_train, per_epoch, reason=str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        except RuntimeError as exc:  # CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError
            if not is_out_of_memory(exc):
                raise
            self._settle_out_of_memory(trial, params, model)
            if isinstance(exc, torch.OutOfMemoryError):
                raise  # FAIL for good: trial_stored removes the checkpoint once that is committed
            # One type for the worker's catch=(torch.OutOfMemoryError,): the trial fails, the worker goes on.
            raise torch.OutOfMemoryError(str(exc)) from exc
        except signals.StopRequested as exc:
            self._settle_stop(trial, exc, observer, epochs)
            raise
        except KeyboardInterrupt as exc:
            self._settle_second_signal(trial, exc, observer, epochs)
            raise
        # Any other exception (a storage outage among them) leaves the checkpoint: the trial may stay
        # RUNNING in the storage and be retried from it.
        self._record_progress(family, observer, n_train, per_epoch)
        records.write_result(trial, best_epoch=result.best_epoch, stopped=result.stopped, history=result.history)
        self._finish(trial, checkpoint, model, result.history)
        return result.best_value

    @staticmethod
    def _stop_if_requested(trial: optuna.Trial) -> None:
        """Stopped between the claim and here: nothing trained yet, the trial is re-queued as it is."""
        if signals.stop_requested():
            records.write_interrupted(trial, signals.stop_requested(),
                                      f"interrupted by {signals.stop_requested()} before epoch 1")
            stop = signals.StopRequested(signals.stop_requested())
            stop.trial_number = trial.number
            raise stop

    def _build(self, trial: optuna.Trial, family: str, params: dict, input_shape: tuple[int, ...] | None = None):
        try:
            return models.build(family, params, input_shape or self.input_shape, self.out_dim, self.numeric)
        except RuntimeError as exc:  # the sampled model's weights alone do not fit in memory now
            if not is_out_of_memory(exc):
                raise
            records.write_fail_reason(trial, f"out of memory building the model: {str(exc).splitlines()[0][:200]}")
            raise torch.OutOfMemoryError(str(exc)) from exc

    def _train(self, trial: optuna.Trial, family: str, params: dict, model, epochs: int, seed: int,
               observer: TrialObserver, rungs: tuple[float, ...], per_epoch: float):
        """The rungs on parts of the images (if any are left to run), then the full run: fit()'s result."""
        for i, fraction in enumerate(rungs):
            side = self.spec.first_rung_side if i == 0 else None  # rungs is all of partial_epochs, or none
            self._train_rung(trial, family, params, fraction, epochs, seed, observer, side, first_step=i == 0)
        if rungs:
            self._check_time_left(trial, family, per_epoch * epochs, f"its full run of {epochs} epoch(s)",
                                  first_step=False)
        return fit(model, self.data, params, epochs=epochs, metric=self.spec.metric, seed=seed,
                   options=self.options, observer=observer,
                   partial_epochs=() if self.spec.rungs_on_images else self.spec.partial_epochs)

    def _settle_pruned(self, trial: optuna.Trial, family: str, checkpoint: TrialCheckpoint | None, model,
                       observer: TrialObserver, n_train: int, per_epoch: float, reason: str | None = None) -> None:
        """A pruned trial (or a diverged one, pruned with its reason) still counts for the pace and keeps its
        curve and summary: the dashboard shows how far it got."""
        self._record_progress(family, observer, n_train, per_epoch)
        if reason is not None:
            records.write_pruned_reason(trial, reason)
        self._finish(trial, checkpoint, model, observer.rows)

    def _settle_out_of_memory(self, trial: optuna.Trial, params: dict, model) -> None:
        """Record why the trial failed (the device, batch size and model size that did not fit) and give
        the device's cached memory back, so the worker's next trial starts with all of it."""
        records.write_fail_reason(trial, f"out of memory on {self.options.device} at batch_size="
                                         f"{params['batch_size']}, n_params={models.count_params(model)}")
        if self.options.device.type == "cuda":
            torch.cuda.empty_cache()

    @staticmethod
    def _settle_stop(trial: optuna.Trial, exc: signals.StopRequested, observer: TrialObserver, epochs: int) -> None:
        """Stopped at a safe point: FAIL with the reason, then run_worker re-queues it (exc.trial_number
        names it) and the retry resumes from the checkpoint, which therefore stays."""
        records.write_interrupted(trial, exc.args[0],
                                  f"interrupted by {exc.args[0]} after epoch {_epochs_done(observer)} of {epochs}")
        exc.trial_number = trial.number

    @staticmethod
    def _settle_second_signal(trial: optuna.Trial, exc: KeyboardInterrupt, observer: TrialObserver,
                              epochs: int) -> None:
        """A second signal, raised wherever it landed: the trial ends FAILED and is not retried, but its
        checkpoint stays for a retry of a stale trial or a manual rerun."""
        signal_name = str(exc.args[0]) if exc.args else "SIGINT"
        records.write_fail_reason(trial, f"interrupted by {signal_name} after epoch {_epochs_done(observer)} of {epochs}")

    def _train_rung(self, trial: optuna.Trial, family: str, params: dict, fraction: float, epochs: int, seed: int,
                    observer: TrialObserver, side: int | None = None, first_step: bool = False) -> None:
        """One rung on part of the training images (fidelity.py), at `side` x `side` where given, if it can
        finish before --timeout (first_step: the trial's first training, see _check_time_left)."""
        data, shape = self.data, self.input_shape
        if side is not None:
            data, shape = self._at_side(side), (self.input_shape[0], side, side)
        n_part = round(fraction * len(data.y_train))
        n_val = 0 if data.y_val is None else len(data.y_val)
        # The whole schedule on the part, then one validation: as many FLOPs as epochs * n_part samples.
        flops = epoch_flops(family, params, shape, self.out_dim, epochs * n_part, n_val)
        at = "" if side is None else f" at {side}x{side}"
        self._check_time_left(trial, family, flops, f"its rung on {fraction:.3g} of the training images{at}",
                              first_step)
        rung = fidelity.train_rung(lambda: self._build(trial, family, params, shape), data, params, fraction=fraction,
                                   epochs=epochs, metric=self.spec.metric, seed=seed, data_seed=self.spec.seed,
                                   options=self.options, side=side)
        self.pace.add(family, flops, rung.seconds)
        if self.progress:
            self.progress.message(f"trial {trial.number:>3} rung on {fraction:.3g} of the training images{at} "
                                  f"({rung.images} images, {epochs} epochs): {self.spec.metric} {rung.value:.4f}")
        observer.on_rung(rung, self.spec.metric)

    def _at_side(self, side: int) -> DeviceData:
        if side not in self._small:
            self._small[side] = fidelity.at_side(self.data, side)
        return self._small[side]

    def _check_time_left(self, trial: optuna.Trial, family: str, flops: float, what: str, first_step: bool) -> None:
        """Prune, before it starts, a trial (or its next rung) that would end after --timeout at this
        worker's pace for its family (a family's first trial always runs: it measures the pace).

        first_step: nothing of the trial has trained yet. Only then does the worker stop (out_of_time):
        the next trials, sampled alike, would be refused alike. A later rung or full run refused is
        one large trial's next step; other trials' first rungs, a ninth of it or less, may still fit
        (a race lost 19 of its 30 minutes when the recipe's full run was refused at minute 11)."""
        needed = self.pace.seconds_for(family, flops)
        if self.deadline is None or needed is None:
            return
        left = self.deadline - time.monotonic()
        if needed > left:
            reason = (f"not started: {what} would take about {needed:.0f} s at this worker's pace, "
                      f"{max(0.0, left):.0f} s are left before --timeout")
            records.write_pruned_reason(trial, reason)
            self.out_of_time = first_step
            raise optuna.TrialPruned(reason)

    def _record_progress(self, family: str, observer: TrialObserver, n_train: int, per_epoch: float) -> None:
        observer.record_progress(n_train)
        # The full run's epochs only: each rung added its own (train_rung).
        self.pace.add(family, per_epoch * observer.timing.epochs_trained, observer.timing.train_seconds)

    def _resume(self, trial: optuna.Trial, checkpoint: TrialCheckpoint | None, model) -> dict | None:
        """Record whether this trial continues a predecessor's checkpoint; the state it resumes from."""
        if checkpoint is None:
            return None
        state = checkpoint.peek(model)
        if checkpoint.original != trial.number:
            records.write_resumed(trial, from_trial=checkpoint.original, from_epoch=checkpoint.resumed_epoch)
        return state

    def _finish(self, trial: optuna.Trial, checkpoint, model, rows: list[dict]) -> None:
        """The trial trained to its end: leave its curve and summary for the dashboard. Its checkpoint
        stays until the trial's state is committed (trial_stored): a worker killed in between has
        its trial retried, and the retry resumes from the checkpoint instead of epoch 1."""
        if self.store is not None:
            try:
                upload_trial_files(self.store, trial, rows=rows, metric=self.spec.metric,
                                   summary=models.describe(model, self.input_shape))
            except (OSError, RuntimeError) as exc:  # a full or read-only disk must not fail a trained trial
                optuna.logging.get_logger("anncnn_tune").warning(
                    f"trial {trial.number}: artifacts not saved ({_first_line(exc)})")

    def trial_stored(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """study.optimize callback: the trial's final state is committed, so its checkpoint can go."""
        if self.store is not None and frozen.state.is_finished():
            try:
                TrialCheckpoint(self.store.root, study, frozen).discard()
            except OSError as exc:
                optuna.logging.get_logger("anncnn_tune").warning(
                    f"trial {frozen.number}: checkpoint not removed ({_first_line(exc)})")
