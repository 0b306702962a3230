"""A storage that stops answering (a database restart, a network blip) is waited for, not crashed on.

Before, a sub-second `pg_ctl restart` crashed every worker within seconds with hundreds of lines of
tracebacks (StorageInternalError, then Optuna's UnboundLocalError from its own error handling). Now
the worker recognises a storage error anywhere in an exception's chain, prints one line, retries
with backoff for up to OUTAGE_SECONDS, and then stops with one line (exit 2); the trials it was
running stay resumable, their checkpoints kept.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time

import optuna
import sqlalchemy.exc

from anncnn_tune.errors import UserError
from anncnn_tune.service.optuna_private import failed_trial_logger

OUTAGE_SECONDS = 120  # how long a worker waits for its storage before giving up (exit 2)
_BACKOFF = (0.5, 1, 2, 4, 8)  # seconds between tries; the last repeats

_STORAGE_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError,
                   sqlalchemy.exc.InternalError, optuna.exceptions.StorageInternalError)


class StorageUnreachable(UserError):
    """The storage stayed unreachable for the whole retry window (exit 2, one line)."""


def storage_error(exc: BaseException | None) -> BaseException | None:
    """The storage error behind `exc` (itself, its cause or its context), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, _STORAGE_ERRORS):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def wait_for_storage(probe, first_error: BaseException, *, where: str, message=None,
                     seconds: float | None = None, check_stop=None) -> None:
    """Call probe() until it succeeds; StorageUnreachable once `seconds` have passed.

    message(text) prints the one line said while waiting; check_stop() may raise to stop waiting
    (a signal).
    """
    seconds = OUTAGE_SECONDS if seconds is None else seconds
    say = message or (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"storage unreachable ({_reason(first_error)}), retrying for up to {seconds:.0f} s")
    deadline = time.monotonic() + seconds
    for attempt in range(10**9):
        pause = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
        if time.monotonic() + pause > deadline:
            break
        end = time.monotonic() + pause
        while time.monotonic() < end:
            if check_stop is not None:
                check_stop()
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
        try:
            probe()
        except Exception as exc:
            if storage_error(exc) is None:
                raise
            continue
        say("storage reachable again; going on")
        return
    raise StorageUnreachable(f"storage {where} unreachable for {seconds:.0f} s; the running trials stay resumable "
                             "(their checkpoints are kept): run the same command once the storage is back")


@contextlib.contextmanager
def quiet_heartbeat_threads(message=None):
    """While a worker runs, a storage error in Optuna's heartbeat thread is one line, not a traceback
    (the worker loop notices the outage itself; a missed beat only delays the stale check), and
    Optuna's log of a trial failed by a storage error drops its traceback."""
    previous = threading.excepthook
    said = []

    def hook(args):
        if storage_error(args.exc_value) is not None:
            if not said:
                (message or (lambda text: print(text, file=sys.stderr, flush=True)))(
                    f"heartbeat not recorded: storage unreachable ({_reason(args.exc_value)})")
                said.append(True)
            return
        previous(args)

    threading.excepthook = hook
    logger = failed_trial_logger()
    quiet = _QuietStorageFailures()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        threading.excepthook = previous
        logger.removeFilter(quiet)


class _QuietStorageFailures(logging.Filter):
    """Optuna logs a trial that failed on a storage error with its traceback; the worker says
    "storage unreachable ..." in one line instead and re-queues the trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and storage_error(record.exc_info[1]) is not None)
