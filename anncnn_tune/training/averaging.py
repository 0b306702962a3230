"""Weight averaging: an exponential moving average of the weights every step, or lookahead.

Both keep a second copy of the trainable weights that validation and the final model use in place
of the weights the optimizer is moving. EMA blends the trained weights into the average after every
step (decay per step). Lookahead, as airbench94 uses it, blends every `LOOKAHEAD_EVERY` steps and
then restarts the fast weights from the average, with a decay that grows over the run as
(decay**5) * progress**3: nothing held back early, when the weights must move, and a strong pull
late, when averaging pays (a constant 0.9 every 5 steps measured 0.776 test accuracy after 8 epochs
on CIFAR-10, where no averaging gave 0.785 after 2). Batch-norm statistics are the trained model's own.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

LOOKAHEAD_EVERY = 5


class WeightAverage:
    def __init__(self, model: nn.Module, kind: str, decay: float, total_steps: int):
        assert kind in ("ema", "lookahead"), kind
        self.kind, self.decay, self.total_steps = kind, float(decay), max(1, total_steps)
        self.weights = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.weights]
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step."""
        self.steps += 1
        if self.kind == "ema":
            torch._foreach_lerp_(self.average, [p.detach() for p in self.weights], 1 - self.decay)
        elif self.steps % LOOKAHEAD_EVERY == 0:
            decay = self.decay**LOOKAHEAD_EVERY * min(1.0, self.steps / self.total_steps) ** 3
            torch._foreach_lerp_(self.average, [p.detach() for p in self.weights], 1 - decay)
            torch._foreach_copy_([p.data for p in self.weights], self.average)

    @contextlib.contextmanager
    def applied(self):
        """The averaged weights in the model for the duration (validation), the trained ones after."""
        with torch.no_grad():
            trained = [p.detach().clone() for p in self.weights]
            torch._foreach_copy_([p.data for p in self.weights], self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_([p.data for p in self.weights], trained)

    @torch.no_grad()
    def finish(self) -> None:
        """Leave the averaged weights in the model: the one a fit returns."""
        torch._foreach_copy_([p.data for p in self.weights], self.average)

    def state_dict(self) -> dict:
        return {"average": [a.clone() for a in self.average], "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])
        self.steps = int(state["steps"])


def make(model: nn.Module, params: dict, total_steps: int) -> WeightAverage | None:
    kind = params.get("averaging", "none")
    return None if kind == "none" else WeightAverage(model, kind, params["average_decay"], total_steps)
