"""The only place where Optuna meets training: suggest, build, fit with a pruning hook, record.

With an artifact directory, a trial also checkpoints after every epoch (a retry of a trial whose
worker died resumes there) and leaves its learning curve and model summary for the dashboard.
"""

from __future__ import annotations

import os
import socket

import optuna
import torch

from anncnn_tune.search.spec import Spec, suggest
from anncnn_tune.service import records
from anncnn_tune.service.artifacts import AtomicArtifactStore, upload_trial_files
from anncnn_tune.service.checkpoints import TrialCheckpoint
from anncnn_tune.service.records import TrialRecord
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, NonFiniteLoss, RunOptions, fit, seed_everything
from anncnn_tune.training.observer import TimingObserver
from anncnn_tune.training.size_check import is_out_of_memory


class TrialObserver(TimingObserver):
    """What fit() reports during one trial: each value to Optuna (which may prune), each epoch to the
    progress lines, the checkpoint to its file, and the rows and time so far, which the objective
    records however the trial ends."""

    def __init__(self, trial: optuna.Trial, epochs: int, progress, checkpoint: TrialCheckpoint | None,
                 rows: list[dict]):
        super().__init__()
        self.trial, self.epochs, self.progress, self.checkpoint = trial, epochs, progress, checkpoint
        self.rows = rows  # the resumed epochs, then this run's
        self.saves_checkpoints = checkpoint is not None

    def on_epoch(self, row: dict) -> None:
        self.rows.append(row)

    def on_value(self, epoch: int, value: float) -> None:
        self.trial.report(value, epoch)
        if self.progress:
            self.progress.epoch(self.trial.number, epoch, value, self.epochs)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    def load_checkpoint(self) -> dict | None:
        return self.checkpoint.load()

    def save_checkpoint(self, state: dict) -> None:
        self.checkpoint.save(state)

    def record_timing(self, n_train: int) -> None:
        records.write_timing(self.trial, epochs_run=self.timing.epochs_run, train_seconds=self.timing.train_seconds,
                             compile_seconds=self.timing.compile_seconds, n_train=n_train)


class Objective:
    """Callable objective for study.optimize; data is already on the device (loaded once per process)."""

    def __init__(self, spec: Spec, data: DeviceData, input_shape, out_dim: int, options: RunOptions,
                 progress=None, on_start=None, store: AtomicArtifactStore | None = None):
        self.spec = spec
        self.data = data
        self.input_shape = tuple(input_shape)
        self.out_dim = out_dim
        self.options = options
        self.progress = progress
        self.on_start = on_start  # called once the trial is RUNNING in the storage (releases the claim lock)
        self.store = store
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float:
        if self.on_start is not None:
            self.on_start()
        params = suggest(self.spec, trial)
        record = TrialRecord.read(trial)
        epochs = record.epoch_budget(self.spec.epochs)
        checkpoint = TrialCheckpoint(self.store.root, trial.study, trial) if self.store else None
        seed = records.trial_seed(self.spec.seed, checkpoint.original if checkpoint else trial.number)
        seed_everything(seed)
        try:
            model = models.build(self.spec.model, params, self.input_shape, self.out_dim)
        except RuntimeError as exc:  # the sampled model's weights alone do not fit in memory now
            if not is_out_of_memory(exc):
                raise
            records.write_fail_reason(trial, f"out of memory building the model: {str(exc).splitlines()[0][:200]}")
            raise torch.OutOfMemoryError(str(exc)) from exc
        n_train = len(self.data.y_train)
        records.write_setup(trial, n_params=models.count_params(model), device=str(self.options.device), seed=seed,
                            worker=self.worker)
        observer = TrialObserver(trial, epochs, self.progress, checkpoint, self._resume(trial, checkpoint))
        if self.progress:
            self.progress.trial_started(trial.number, f"[{record.baseline}] " if record.baseline else "")
            if observer.rows:
                self.progress.message(f"trial {trial.number:>3} resumes trial {checkpoint.original} from its "
                                      f"checkpoint after epoch {len(observer.rows)}")
        try:
            result = fit(model, self.data, params, epochs=epochs, metric=self.spec.metric, seed=seed,
                         options=self.options, observer=observer)
        except optuna.TrialPruned:
            observer.record_timing(n_train)
            self._finish(trial, checkpoint, model, observer.rows)
            raise
        except NonFiniteLoss as exc:
            # Pruned rather than failed: the sampler then learns that this region diverges.
            observer.record_timing(n_train)
            records.write_pruned_reason(trial, str(exc))
            self._finish(trial, checkpoint, model, observer.rows)
            raise optuna.TrialPruned(str(exc)) from None
        except RuntimeError as exc:  # CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError
            if not is_out_of_memory(exc):
                raise
            records.write_fail_reason(trial, f"out of memory on {self.options.device} at batch_size="
                                             f"{params['batch_size']}, n_params={models.count_params(model)}")
            if self.options.device.type == "cuda":
                torch.cuda.empty_cache()
            self._discard(checkpoint)
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            # One type for the worker's catch=(torch.OutOfMemoryError,): the trial fails, the worker goes on.
            raise torch.OutOfMemoryError(str(exc)) from exc
        except KeyboardInterrupt as exc:
            # The trial ends FAILED and is not retried (only stale trials are), so its checkpoint goes too.
            signal_name = str(exc.args[0]) if exc.args else "SIGINT"
            done = observer.rows[-1]["epoch"] if observer.rows else 0
            records.write_fail_reason(trial, f"interrupted by {signal_name} after epoch {done} of {epochs}")
            self._discard(checkpoint)
            raise
        except Exception:
            self._discard(checkpoint)
            raise
        observer.record_timing(n_train)
        records.write_result(trial, best_epoch=result.best_epoch, stopped=result.stopped, history=result.history)
        self._finish(trial, checkpoint, model, result.history)
        return result.best_value

    def _resume(self, trial: optuna.Trial, checkpoint: TrialCheckpoint | None) -> list[dict]:
        """Record whether this trial continues a predecessor's checkpoint; the rows trained so far."""
        if checkpoint is None:
            return []
        state = checkpoint.peek()
        if checkpoint.original != trial.number:
            records.write_resumed(trial, from_trial=checkpoint.original, from_epoch=checkpoint.resumed_epoch)
        return [dict(row) for row in state["history"]] if state else []

    def _finish(self, trial: optuna.Trial, checkpoint, model, rows: list[dict]) -> None:
        """The trial ended for good: drop its checkpoint, leave its curve and summary for the dashboard."""
        self._discard(checkpoint)
        if self.store is not None:
            upload_trial_files(self.store, trial, rows=rows, metric=self.spec.metric,
                               summary=models.describe(model, self.input_shape))

    @staticmethod
    def _discard(checkpoint) -> None:
        if checkpoint is not None:
            checkpoint.discard()
