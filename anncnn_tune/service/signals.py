"""SIGINT and SIGTERM (Ctrl-C, `docker stop`, a scheduler) ask a worker to stop at its next safe point.

A handler that raises wherever the interpreter happens to be lands inside torch.save, a storage
commit or a garbage-collection callback: there it was swallowed (the run went on and exited 0) or
turned into torch's "unexpected pos" crash. So the first signal only records itself; the worker
checks it where stopping is safe (after an epoch and its checkpoint, between trials, while it
waits) and raises StopRequested there, which the objective and run_worker turn into an
interrupted, re-queued trial. A second signal means the user insists: it raises at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

_requested: list[str] = []  # the signal names received and not yet acted on (a list: no `global`)
_notice: list[Callable[[str], None]] = []  # says what the stop will do (set_notice); at most one


class StopRequested(KeyboardInterrupt):
    """Raised at a safe point after SIGINT/SIGTERM; args[0] is the signal's name. trial_number is
    set by the objective when a running trial was interrupted (run_worker re-queues it)."""

    trial_number: int | None = None


def request_stop(signum, frame) -> None:
    """Signal handler: the first signal asks for a stop at the next safe point, a second one raises."""
    name = signal.Signals(signum).name
    if _requested:
        raise KeyboardInterrupt(name)
    _requested.append(name)
    if _notice:
        # Said at once, though the stop waits for the epoch's end. From a thread: this handler may
        # have interrupted a write to the very stream the notice goes to.
        threading.Thread(target=_notice[0], args=(name,), name="anncnn-tune-stop-notice", daemon=True).start()


def set_notice(notice: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """What to say when the first signal arrives: notice(signal_name) words what will happen (the
    worker names its running trial). Returns the notice it replaces, to be set back after."""
    previous = _notice[0] if _notice else None
    _notice[:] = [notice] if notice is not None else []
    return previous


# The name optimize.py and the workers install; it no longer raises on the first signal.
raise_keyboard_interrupt = request_stop


def stop_requested() -> str | None:
    """The name of the signal that asked for a stop, or None."""
    return _requested[0] if _requested else None


def check_stop() -> None:
    """Raise StopRequested if a signal asked for a stop (call only where stopping is safe)."""
    if _requested:
        raise StopRequested(_requested[0])


def clear() -> None:
    """Forget a stop request once it has been acted on (a test or notebook may run again in-process)."""
    _requested.clear()
