"""What fit() tells its caller while it trains, through one object: the FitObserver.

fit() knows nothing of Optuna, terminals or checkpoint files. It calls its observer after every
epoch with the epoch's history row, with the validation value (where raising stops training: the
objective raises optuna.TrialPruned there), and with the time spent so far; and it asks the
observer for a checkpoint to resume from and hands it one after each epoch. The search's
objective, retrain and the benchmarks each pass one observer; the base class does nothing, so an
observer overrides only what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FitTiming:
    """Time spent so far, as in FitResult: epochs finished, their wall time (training and
    validation, compilation excluded), and torch.compile's time."""

    epochs_run: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    # The resource spent, in epochs: epochs_run plus the fraction of a running first epoch where a
    # validation inside it (fit's partial_epochs) is the last news.
    epochs_trained: float = 0.0


class FitObserver:
    """Base observer: override the hooks you need. on_step runs after every training step. Hooks run
    in this order after each epoch:
    on_timing, on_epoch, (the non-finite-loss check), on_value, (early stopping), save_checkpoint;
    and at a validation inside the first epoch: on_timing, then per fraction on_partial, (the check),
    on_value."""

    # fit() builds a checkpoint state (a copy of the model and optimizer) only for observers that
    # keep one, as building it costs a state_dict per epoch.
    saves_checkpoints: bool = False

    def on_timing(self, timing: FitTiming) -> None:
        """After resuming and after every epoch: the time spent so far."""

    def on_epoch(self, row: dict) -> None:
        """Each epoch's history row ({"epoch", "train_loss", "val_...": ...}) once it is known."""

    def on_step(self, epoch: int, seen: int, total: int) -> None:
        """After every training step: `seen` of the epoch's `total` samples trained on so far. Called
        without a device sync (it only counts), so it costs a Python call per step."""

    def on_partial(self, row: dict) -> None:
        """A row validated inside the first epoch ({"epoch": the fraction, "samples": trained on, ...})."""

    def on_value(self, epoch: float, value: float) -> None:
        """The validation metric after an epoch, or after a fraction of the first (only with a metric);
        raise to stop training."""

    def load_checkpoint(self) -> dict | None:
        """A state that save_checkpoint was given, to resume from; None to start at epoch 1."""
        return None

    def save_checkpoint(self, state: dict) -> None:
        """After every finished epoch but the last (only where saves_checkpoints is true)."""


class TimingObserver(FitObserver):
    """An observer that keeps the latest timing, for callers whose training may be stopped early."""

    def __init__(self):
        self.timing = FitTiming()

    def on_timing(self, timing: FitTiming) -> None:
        self.timing = timing
