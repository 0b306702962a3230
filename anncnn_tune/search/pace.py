"""How fast this worker trains, in FLOPs per second, so a trial that cannot finish before --timeout
is not started (a 20-epoch notebook CNN begun at minute 28 of a 30-minute search would otherwise
run on long past it: Optuna's timeout only stops new trials).

A trial's cost follows from its parameters alone (the family's FLOPs per sample, before building):
each epoch trains on every training sample (forward and backward, 3x the forward) and validates on
every validation sample once per test-time view. The pace is the cost of the epochs this worker has
trained, over the seconds they took.
"""

from __future__ import annotations

from anncnn_tune.training import families


def epoch_flops(model: str, params: dict, in_shape, out_dim: int, n_train: int, n_val: int) -> int:
    family = families.get(model)
    forward = family.flops(params, tuple(in_shape), out_dim)
    return 3 * forward * n_train + forward * family.eval_views(params) * n_val


class Pace:
    def __init__(self):
        self.flops = 0.0
        self.seconds = 0.0

    def add(self, flops: float, seconds: float) -> None:
        if flops > 0 and seconds > 0:
            self.flops += flops
            self.seconds += seconds

    def seconds_for(self, flops: float) -> float | None:
        """The time this much training takes at the pace so far; None before anything was measured."""
        return flops * self.seconds / self.flops if self.flops > 0 else None
