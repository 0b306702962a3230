"""CPU thread settings for training processes: call configure_threads() once per process, early.

Each of `workers` training processes on one machine gets an equal share of the cores this process
may run on, so N workers do not oversubscribe the machine. Oversubscription is expensive here: on
a 2-core machine already running other work, training steps with 2 intra-op threads measured
6-20x slower than with 1 (each parallel region waits for a descheduled thread; see
benchmarks/RESULTS.md). On a shared machine, pass threads=1 (or set OMP_NUM_THREADS=1).

Inter-op threads run independent operators of TorchScript graphs in parallel, which eager training
does not use; one is enough and keeps idle threads off the cores. torch accepts that setting only
once per process and before any inter-op work, so later calls leave it as it is.
"""

from __future__ import annotations

import os

import torch

_interop_set = False


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def configure_threads(workers: int = 1, *, threads: int | None = None) -> int:
    """Set torch's intra-op threads to max(1, cores // workers) and inter-op threads to 1.

    threads overrides the computed count; without it, an OMP_NUM_THREADS in the environment (which
    torch has already applied) is respected. Returns the intra-op thread count now in effect.
    """
    global _interop_set
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if threads is None and not os.environ.get("OMP_NUM_THREADS"):
        threads = max(1, available_cores() // workers)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(int(threads))
    if not _interop_set:
        _interop_set = True
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # inter-op work already started in this process: torch keeps its pool
            pass
    return torch.get_num_threads()
