"""How fast this worker trains, in FLOPs per second, so a trial that cannot finish before --timeout
is not started (a 20-epoch notebook CNN begun at minute 28 of a 30-minute search would otherwise
run on long past it: Optuna's timeout only stops new trials).

A trial's cost follows from its parameters alone (the family's FLOPs per sample, before building):
each epoch trains on every training sample (forward and backward, 3x the forward) and validates on
every validation sample once per test-time view. The pace is the cost of the epochs this worker has
trained, over the seconds they took, per family.
"""

from __future__ import annotations

from anncnn_tune.training import families


def epoch_flops(model: str, params: dict, in_shape, out_dim: int, n_train: int, n_val: int) -> int:
    family = families.get(model)
    forward = family.flops(params, tuple(in_shape), out_dim)
    return 3 * forward * n_train + forward * family.eval_views(params) * n_val


class Pace:
    """Training FLOPs per second, kept per model family: a notebook CNN at batch 64 in float32 runs at a
    fraction of the fast CNN's FLOP rate in bf16, and one pace for both let a 13-minute notebook baseline
    start with 12 minutes left. A family not measured yet has no pace: its first trial runs and measures it."""

    def __init__(self):
        self.flops: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def add(self, family: str, flops: float, seconds: float) -> None:
        if flops > 0 and seconds > 0:
            self.flops[family] = self.flops.get(family, 0.0) + flops
            self.seconds[family] = self.seconds.get(family, 0.0) + seconds

    def seconds_for(self, family: str, flops: float) -> float | None:
        """The time this much training of `family` takes at its pace so far; None before it was measured."""
        measured = self.flops.get(family, 0.0)
        return flops * self.seconds[family] / measured if measured > 0 else None
