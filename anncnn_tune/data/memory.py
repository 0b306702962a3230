"""Refuse, before reading or decoding, data that would not fit in the memory available now."""

from __future__ import annotations

import os

from anncnn_tune.errors import UserError

MEMORY_ENV = "ANNCNN_TUNE_MEMORY_LIMIT"  # bytes; overrides what the machine reports (tests, shared hosts)
HEADROOM = 0.8  # leave a fifth for the training process itself


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (what can be had without swapping), else free physical pages."""
    if os.environ.get(MEMORY_ENV):
        return int(os.environ[MEMORY_ENV])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 1 << 62


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(needed: int, what: str, suggestion: str) -> None:
    """One line naming the estimate and what to do, when `needed` bytes exceed the headroom."""
    budget = int(available_bytes() * HEADROOM)
    if needed > budget:
        raise UserError(f"{what} needs about {_gib(needed)} of memory, but only {_gib(budget)} is available; {suggestion}")
