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

import math
import os
from pathlib import Path

import torch

_interop_set = False


def available_cores(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Cores this process may keep busy: its CPU affinity (taskset, cpusets), lowered to its CPU quota
    where a cgroup sets one (docker --cpus, Kubernetes limits), rounded down: a 1.5-core quota
    runs two busy threads at 75% each, throttled every period, which is slower than one thread."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors, in cores (None where none is set).

    cgroup v2 keeps "QUOTA PERIOD" (or "max PERIOD") in cpu.max; v1 keeps cpu.cfs_quota_us (-1: none)
    and cpu.cfs_period_us in the cpu controller's hierarchy. /proc/self/cgroup names this process's
    cgroup in each hierarchy; inside a container with its own cgroup namespace that is "/", and the
    container's limit sits at the root.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # v2 (pure, or the unified part of a hybrid layout)
            base = cgroup_root if (cgroup_root / "cgroup.controllers").exists() else cgroup_root / "unified"
            limits += [_v2_limit(folder) for folder in _ancestors(base, relative)]
        elif "cpu" in controllers.split(","):
            for mount in (cgroup_root / controllers, cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"):
                if mount.is_dir():
                    limits += [_v1_limit(folder) for folder in _ancestors(mount, relative)]
                    break
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _ancestors(base: Path, relative: str) -> list[Path]:
    """base/relative and every folder above it up to base (a limit may be set at any level)."""
    parts = [part for part in relative.split("/") if part]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limit(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return None
    return int(quota) / int(period)


def _v1_limit(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0 or int(period) <= 0:
        return None
    return int(quota) / int(period)


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
