"""The only place where Optuna meets training: suggest, build, fit with a pruning hook, record.

With an artifact directory, a trial also checkpoints after every epoch (a retry of a trial whose
worker died resumes there) and leaves its learning curve and model summary for the dashboard.
"""

from __future__ import annotations

import os
import socket
import time

import optuna
import torch

from anncnn_tune.search.spec import Spec, suggest
from anncnn_tune.service.artifacts import AtomicArtifactStore, upload_trial_files
from anncnn_tune.service.checkpoints import TrialCheckpoint
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, NonFiniteLoss, RunOptions, fit, seed_everything


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
        epochs = min(int(trial.user_attrs.get("epochs", self.spec.epochs)), self.spec.epochs)
        checkpoint = TrialCheckpoint(self.store.root, trial.study, trial) if self.store else None
        # A retry keeps its original's seed, so that it repeats the original even without a checkpoint.
        seed = self.spec.seed * 100_003 + (checkpoint.original if checkpoint else trial.number)
        seed_everything(seed)
        model = models.build(self.spec.model, params, self.input_shape, self.out_dim)
        n_train = len(self.data.y_train)
        trial.set_user_attr("n_params", models.count_params(model))
        trial.set_user_attr("device", str(self.options.device))
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("worker", self.worker)
        rows = self._resume(trial, checkpoint)
        if self.progress:
            label = f"[{trial.user_attrs['baseline']}] " if trial.user_attrs.get("baseline") else ""
            self.progress.trial_started(trial.number, label)
            if rows:
                self.progress.message(f"trial {trial.number:>3} resumes trial {checkpoint.original} from its "
                                      f"checkpoint after epoch {len(rows)}")

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if self.progress:
                self.progress.epoch(trial.number, epoch, value, epochs)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        started = time.perf_counter()
        timings: dict = {}  # fit keeps epochs_run / train_seconds / compile_seconds current here

        def record_time(epochs_run: int, seconds: float) -> None:
            trial.set_user_attr("epochs_run", epochs_run)
            trial.set_user_attr("train_seconds", round(seconds, 4))
            trial.set_user_attr("samples_per_second", round(n_train * epochs_run / seconds, 1) if seconds else 0.0)
            trial.set_user_attr("compile_seconds", round(timings.get("compile_seconds", 0.0), 4))

        try:
            result = fit(model, self.data, params, epochs=epochs, metric=self.spec.metric, report=report,
                         seed=seed, options=self.options, checkpoint=checkpoint, timings=timings,
                         on_epoch=rows.append)  # rows: the resumed epochs, then this run's
        except optuna.TrialPruned:
            record_time(timings["epochs_run"], timings.get("train_seconds") or time.perf_counter() - started)
            self._finish(trial, checkpoint, model, rows)
            raise
        except NonFiniteLoss as exc:
            # Pruned rather than failed: the sampler then learns that this region diverges.
            record_time(exc.epoch, timings.get("train_seconds") or time.perf_counter() - started)
            trial.set_user_attr("pruned_reason", str(exc))
            self._finish(trial, checkpoint, model, rows)
            raise optuna.TrialPruned(str(exc)) from None
        except torch.OutOfMemoryError:
            trial.set_user_attr("fail_reason", f"out of memory on {self.options.device} at batch_size="
                                               f"{params['batch_size']}, n_params={models.count_params(model)}")
            if self.options.device.type == "cuda":
                torch.cuda.empty_cache()
            self._discard(checkpoint)
            raise
        except KeyboardInterrupt as exc:
            # The trial ends FAILED and is not retried (only stale trials are), so its checkpoint goes too.
            signal_name = str(exc.args[0]) if exc.args else "SIGINT"
            done = rows[-1]["epoch"] if rows else 0
            trial.set_user_attr("fail_reason", f"interrupted by {signal_name} after epoch {done} of {epochs}")
            self._discard(checkpoint)
            raise
        except Exception:
            self._discard(checkpoint)
            raise
        record_time(result.epochs_run, result.train_seconds)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("stopped", result.stopped)
        trial.set_user_attr("history", [{k: round(v, 6) for k, v in row.items()} for row in result.history])
        self._finish(trial, checkpoint, model, result.history)
        return result.best_value

    def _resume(self, trial: optuna.Trial, checkpoint: TrialCheckpoint | None) -> list[dict]:
        """Record whether this trial continues a predecessor's checkpoint; the rows trained so far."""
        if checkpoint is None:
            return []
        state = checkpoint.peek()
        if checkpoint.original != trial.number:
            # Set on every retry: the user attributes were copied from the stale trial, which may
            # itself have resumed from a different epoch.
            trial.set_user_attr("resumed_from_trial", checkpoint.original)
            trial.set_user_attr("resumed_from_epoch", checkpoint.resumed_epoch)
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
