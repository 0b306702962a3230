"""`--workers auto`: how many worker processes a search starts on this machine, by a measured rule.

A CPU can run a search two ways: N worker processes with one torch thread each (trials side by
side), or one worker with N threads (each trial faster, one at a time). Small models gain little
from more threads: a training step is hundreds of small parallel regions, each waiting at its
barrier for every thread, so N workers do more trials per second. A model large enough to keep N
threads busy inside each operation gains more from threads than it loses to the barriers, and one
worker also holds one copy of the data, not N. What decides is the work of one training step:
below STEP_FLOPS_PER_THREAD per thread, a thread costs more than it brings (benchmarks/workers.py,
figures in benchmarks/RESULTS.md, "Parallel trials").

The rule: each worker gets as many threads as its model's step work keeps busy (at least one),
the cores are shared out among workers of that size, and the count is capped by the memory each
worker needs (its data copy and its largest model) and by the trials the study asks for. On CUDA
it is one worker per device. The cores are the ones this process may use: its CPU affinity and
its cgroup's CPU quota (training.threads.available_cores), never the machine's core count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from anncnn_tune.data.base import Splits
from anncnn_tune.search.spec import Spec
from anncnn_tune.training.fit import resolve_batch_size
from anncnn_tune.training.size_check import available_memory, largest, step_flops
from anncnn_tune.training.threads import available_cores

# Measured on this project's 2-core machine (benchmarks/workers.py, benchmarks/RESULTS.md "Parallel
# trials", 2026-12-05): two single-threaded processes did the same trials 1.03-1.82x faster than one
# process with two threads for every model from 0.1 MFLOP to 29 GFLOP per step, and 0.94x (threads
# 6% faster) at 118 GFLOP; interpolated, the two ways tie near 70 GFLOP per step. A worker is given
# a second thread where its step reaches that: 35 GFLOP of step work per thread.
STEP_FLOPS_PER_THREAD = 35e9
MEMORY_SHARE = 0.8  # of the memory available now: the rest for the launcher, the OS and other work


@dataclass(frozen=True)
class WorkerPlan:
    workers: int
    threads: int  # torch intra-op threads per worker
    reason: str  # one line: why this many


def typical_params(spec: Spec) -> dict:
    """The middle of the search space: a number at the (geometric, for log) middle of its range, a
    categorical parameter at its middle choice, fixed values and the table's defaults elsewhere."""
    params = spec.family.full(spec.fixed)
    for name, s in spec.space.items():
        if s.type == "categorical":
            params[name] = s.choices[len(s.choices) // 2]
            continue
        middle = math.sqrt(s.low * s.high) if s.log and s.low > 0 else (s.low + s.high) / 2
        params[name] = round(middle) if s.type == "int" else middle
    return params


def plan_workers(spec: Spec, splits: Splits, devices: tuple[torch.device, ...], n_trials: int, *,
                 cores: int | None = None, memory: int | None = None) -> WorkerPlan:
    """The workers `--workers auto` starts (cores and memory: this machine's unless given, for tests)."""
    if any(d.type == "cuda" for d in devices):
        return WorkerPlan(len(devices), 1, f"one worker per device ({', '.join(map(str, devices))})")
    cores = cores or available_cores()
    params = typical_params(spec)
    n_train = len(splits.y_train)
    flops = step_flops(spec.model, params, splits.input_shape, splits.out_dim,
                       resolve_batch_size(params["batch_size"], n_train))
    threads = min(cores, max(1, math.floor(flops / STEP_FLOPS_PER_THREAD)))
    workers = max(1, cores // threads)
    reason = (f"{cores} core(s); a mid-space model does {flops / 1e6:,.0f} MFLOP per training step, "
              f"{'enough for ' + str(threads) + ' threads' if threads > 1 else 'too little to keep a second thread busy'}")
    per_worker = _data_bytes(splits) + largest(spec.model, spec.space, spec.fixed, splits.input_shape, splits.out_dim,
                                               n_train).bytes
    free = memory if memory is not None else available_memory(torch.device("cpu"))[0]
    by_memory = max(1, int(free * MEMORY_SHARE // per_worker))
    if by_memory < workers:
        workers, reason = by_memory, (f"{reason}; memory for {by_memory} (each worker needs about "
                                      f"{per_worker / 2**20:,.0f} MiB of the {free / 2**20:,.0f} MiB available)")
    if n_trials < workers:
        workers, reason = n_trials, f"{reason}; only {n_trials} trial(s) asked for"
    return WorkerPlan(workers, max(1, cores // workers), reason)


def _data_bytes(splits: Splits) -> int:
    return sum(a.nbytes for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val) if a is not None)
