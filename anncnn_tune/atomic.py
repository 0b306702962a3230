"""Files that readers never see half-written: a temporary file beside the target, then a rename.

Shared by the dataset cache, the artifact store and the trial checkpoints, all of which other
processes (workers, the dashboard, other machines on a shared volume) read while they are written.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


@functools.cache
def file_mode() -> int:
    """The mode an ordinary open() gives a new file in this process (0o666 less the umask).

    mkstemp creates 0600 files and the rename keeps that mode; a volume shared by several users
    (workers on other machines, the dashboard) needs what an ordinary open() would have made.
    Read on the first write, not at import. Linux shows the umask in /proc; elsewhere it can only
    be read by setting it, which is done once (and set straight back).
    """
    try:
        with open("/proc/self/status") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


def write_atomically(target: Path, write: Callable[[BinaryIO], None], *, durable: bool = False) -> None:
    """Call write(file) on a temporary beside `target`, then rename it to `target`.

    durable: fsync before the rename, so the new content survives the machine crashing, not only
    the process dying (the rename alone covers the process).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def leftover_temporaries(target: Path) -> Iterator[Path]:
    """Temporaries of `target` that a process killed mid-write (SIGKILL runs no cleanup) left behind."""
    target = Path(target)
    return target.parent.glob(f".{target.name}.*.tmp")
