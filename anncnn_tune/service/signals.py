"""SIGTERM (`docker stop`, a scheduler) ends a command the way Ctrl-C does."""

from __future__ import annotations

import signal


def raise_keyboard_interrupt(signum, frame):
    """Signal handler: a KeyboardInterrupt whose argument names the signal, for the recorded reason."""
    raise KeyboardInterrupt(signal.Signals(signum).name)
