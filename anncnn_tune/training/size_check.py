"""Will the largest model of a search space fit? Checked before anything is written.

A search space whose highs describe a model of billions of parameters (`width: 1000000000`)
otherwise passes validation, writes the study, and crashes at trial time trying to allocate
terabytes. Here the largest model is built on PyTorch's "meta" device (shapes only, no memory),
run forward on a meta batch of the largest batch size, and its training memory estimated:

    parameters * 4 bytes * 4   (weights, gradients, and Adam's two moments; the worst optimizer)
  + activations * 4 bytes * 2  (every module output is kept for the backward pass, plus its gradient)

That is an estimate, not a measurement (the allocator's overhead, cuDNN workspaces and the data
itself come on top), so it only refuses what clearly cannot fit: more than the memory available
now (CPU: MemAvailable; CUDA: the device's total memory).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import product

import torch

from anncnn_tune.errors import UserError
from anncnn_tune.training import families, models
from anncnn_tune.training.fit import is_out_of_memory, resolve_batch_size  # noqa: F401 (re-exported)

BYTES = 4  # float32
OPTIMIZER_COPIES = 4  # weights, gradients, two Adam moments
ACTIVATION_COPIES = 2  # the kept output and its gradient
# Categorical parameters that change the number of weights (the others do not change the size).
SIZE_CHOICES = ("batch_norm", "residual")


@dataclass(frozen=True)
class Estimate:
    params: dict  # the configuration estimated
    n_params: int
    batch_size: int
    activations: int  # elements kept for the backward pass, for one batch
    bytes: int


def estimate(family: str, params: dict, in_shape: tuple[int, ...], out_dim: int, batch_size: int) -> Estimate:
    """The training memory of one configuration, computed on the meta device (allocates nothing)."""
    kept = []
    with torch.device("meta"):
        model = models.build(family, params, tuple(in_shape), out_dim)
        hooks = [m.register_forward_hook(lambda _m, _i, out: kept.append(out.numel()))
                 for m in model.modules() if not list(m.children())]
        model.train()
        if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            batch_size = max(batch_size, 2)  # batch norm refuses a batch of one in training mode
        model(torch.empty((batch_size, *in_shape)))
        for hook in hooks:
            hook.remove()
    n_params = sum(p.numel() for p in model.parameters())
    activations = sum(kept) + batch_size * math.prod(in_shape)
    total = n_params * BYTES * OPTIMIZER_COPIES + activations * BYTES * ACTIVATION_COPIES
    return Estimate(params=dict(params), n_params=n_params, batch_size=batch_size, activations=activations,
                    bytes=total)


def step_flops(family: str, params: dict, in_shape: tuple[int, ...], out_dim: int, batch_size: int) -> int:
    """The FLOPs of one training step (forward and backward of one batch; a multiply-add counts 2),
    counted by torch.utils.flop_counter on the meta device (allocates nothing). The quantity that
    decides whether parallel trials or more threads per trial use a CPU better (search/parallel.py)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = models.build(family, params, tuple(in_shape), out_dim)
        model.train()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty((max(batch_size, 2), *in_shape))).sum().backward()
    return int(counter.get_total_flops())


def available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes a trial may use on `device`, and how to name them in a message."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return total, f"the {total / 2**30:.1f} GiB of {device}"
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    return free, f"this machine's {free / 2**30:.1f} GiB of available memory"
    except OSError:
        pass
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return total, f"this machine's {total / 2**30:.1f} GiB of memory"


def _largest_choice(name: str, choices, n_train: int):
    numbers = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if len(numbers) != len(choices):
        return choices[0]  # text choices (activation, pooling...) do not change the size
    if name == "batch_size":
        return max(numbers, key=lambda c: resolve_batch_size(c, n_train))
    return max(numbers)


def _configurations(space: dict, fixed: dict, n_train: int):
    """The largest configurations: every numeric parameter at its high (a numeric choice at its
    largest), and each combination of the boolean choices that change the size."""
    base = dict(fixed)
    for name, s in space.items():
        if s.type != "categorical":
            base[name] = int(s.high) if s.type == "int" else s.high
        else:
            base[name] = _largest_choice(name, s.choices, n_train)
    varying = [name for name in SIZE_CHOICES if name in space and space[name].type == "categorical"]
    for values in product(*(space[name].choices for name in varying)):
        yield {**base, **dict(zip(varying, values))}


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def _fits_batch(params: dict, n_train: int) -> int:
    return resolve_batch_size(params.get("batch_size", 128), n_train)


def largest(family: str, space: dict, fixed: dict, in_shape, out_dim: int, n_train: int) -> Estimate:
    """The estimate of the largest model of the space (space: name -> ParamSpace-like objects with
    type, low, high, choices; fixed: the fixed parameters)."""
    best = None
    for params in _configurations(space, fixed, n_train):
        e = estimate(family, params, in_shape, out_dim, _fits_batch(params, n_train))
        if best is None or e.bytes > best.bytes:
            best = e
    return best


def _culprit(family: str, worst: Estimate, space: dict, in_shape, out_dim: int, n_train: int) -> str | None:
    """The searched number whose lowering (to its low) shrinks the estimate most."""
    gains = {}
    for name, s in space.items():
        if s.type == "categorical" or s.low == s.high:
            continue
        params = {**worst.params, name: int(s.low) if s.type == "int" else s.low}
        try:
            e = estimate(family, params, in_shape, out_dim, _fits_batch(params, n_train))
        except (ValueError, RuntimeError):  # e.g. a low that makes the model invalid
            continue
        gains[name] = worst.bytes - e.bytes
    if not gains:
        return None
    name = max(gains, key=gains.get)
    return name if gains[name] > 0 else None


def check_space_fits(family: str, space: dict, fixed: dict, baselines: list[dict], in_shape, out_dim: int,
                     n_train: int, device: torch.device, *, where: str = "the study") -> Estimate:
    """A one-line UserError when the largest model of the space, or a baseline, cannot fit in the
    memory of `device`; returns the largest estimate otherwise."""
    limit, limit_text = available_memory(device)
    worst = largest(family, space, fixed, in_shape, out_dim, n_train)
    if worst.bytes > limit:
        culprit = _culprit(family, worst, space, in_shape, out_dim, n_train)
        sizes = (*families.get(family).size_params(), "batch_size")  # the parameters that set the size
        shown = ", ".join(f"{k}={worst.params[k]}" for k in sizes if k in space)
        advice = (f"lower the high of `{culprit}` in the space" if culprit
                  else "lower the highs of the search space")
        raise UserError(f"{where}: its largest model ({shown}) has {worst.n_params:,} parameters and needs about "
                        f"{_human(worst.bytes)} to train at batch {worst.batch_size}, more than {limit_text}; "
                        f"{advice}")
    for i, baseline in enumerate(baselines):
        params = {**fixed, **baseline.get("params", {})}
        e = estimate(baseline.get("model", family), params, in_shape, out_dim, _fits_batch(params, n_train))
        if e.bytes > limit:
            label = baseline.get("name", f"#{i}")
            raise UserError(f"{where}: baseline {label} has {e.n_params:,} parameters and needs about "
                            f"{_human(e.bytes)} to train at batch {e.batch_size}, more than {limit_text}; "
                            "make it smaller")
    return worst
