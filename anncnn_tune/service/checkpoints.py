"""Per-trial training checkpoints, so a trial whose worker died resumes where it stopped.

A checkpoint belongs to the *original* trial of a retry chain: Optuna's
RetryHeartbeatStaleTrialCallback copies the stale trial's parameters into a new WAITING trial and
records the original's number in the system attribute `failed_trial`, so the retry finds the
file its predecessor wrote. The file is keyed by the study's storage id as well as its name, as two
studies of one name (a deleted and a recreated one) must not share checkpoints.

Writes are atomic (atomic.write_atomically): a worker killed while saving leaves the previous
checkpoint intact, never half a file. What it does leave is a temporary file, so discarding the
chain's checkpoint removes its temporaries too. Saves are durable (fsync): a preempted machine's
retry elsewhere then finds the last epoch, not an empty file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import torch

from anncnn_tune.atomic import leftover_temporaries, write_atomically
from anncnn_tune.service.optuna_private import frozen_trial, study_id

SUBDIR = "checkpoints"


def study_folder(root: Path, study: optuna.Study) -> Path:
    """The folder of a study's checkpoints under the artifact root: its name and storage id, so a
    recreated study of one name never finds its predecessor's files (cleanup deletes this folder)."""
    return Path(root) / SUBDIR / f"{study.study_name}-{study_id(study)}"


def original_trial_number(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The number of the first trial of this trial's retry chain (its own number if it is no retry)."""
    frozen = trial if isinstance(trial, optuna.trial.FrozenTrial) else frozen_trial(trial)
    failed = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return int(failed) if failed is not None else trial.number


class TrialCheckpoint:
    """What fit(checkpoint=...) needs: load() -> dict | None and save(dict)."""

    def __init__(self, root: Path, study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial):
        self.original = original_trial_number(trial)
        self.path = study_folder(root, study) / f"trial-{self.original}.pt"
        self.resumed_epoch = 0
        self._peeked: dict | None = None

    def peek(self, model: torch.nn.Module | None = None) -> dict | None:
        """Load the state now (to record the resume before training); load() then returns it.

        With the model the trial built, a state saved for another model (a file copied over this
        one) is refused here, as fit would fail in load_state_dict and fail the trial.
        """
        self._peeked = self._read()
        if self._peeked is not None and model is not None and not _fits(self._peeked, model):
            self._peeked, self.resumed_epoch = None, 0
        return self._peeked

    def load(self) -> dict | None:
        state, self._peeked = self._peeked, None  # fit keeps its own reference; do not hold two copies
        return state if state is not None else self._read()

    def _read(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            # weights_only: the state holds tensors, numbers, lists and dicts only, and a shared
            # directory must not be able to run code in the worker.
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            # An unreadable checkpoint (a foreign file, another torch version) costs the epochs
            # it saved, not the trial.
            return None
        if not _is_training_state(state):
            # It loads, but holds something else: starting at epoch 1 is the only safe reading.
            return None
        self.resumed_epoch = len(state["history"])
        return state

    def save(self, state: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, lambda f: torch.save(state, f), durable=True)

    def discard(self) -> None:
        """Remove the checkpoint once the trial has ended for good (complete, pruned or failed)."""
        self.path.unlink(missing_ok=True)
        # Only this chain writes these, and its last trial has ended, so none is still being written.
        for orphan in leftover_temporaries(self.path):
            orphan.unlink(missing_ok=True)
        # The study's directory stays: removing it could race with another worker's save.


# What fit's checkpoint state holds (training/fit.py's _checkpoint_state and _resume).
_STATE_KEYS = ("model", "optimizer", "generator", "history", "best_value", "best_epoch", "since_best", "elapsed")


def _is_training_state(state) -> bool:
    return isinstance(state, dict) and isinstance(state.get("history"), list)


def _fits(state: dict, model: torch.nn.Module) -> bool:
    """Whether a state is fit's, for exactly this model's tensors (names and shapes)."""
    if not all(key in state for key in _STATE_KEYS) or not isinstance(state["model"], dict):
        return False
    saved, current = state["model"], model.state_dict()
    return saved.keys() == current.keys() and all(
        getattr(saved[k], "shape", None) == current[k].shape for k in current)
