"""The launcher's view of its N workers: one view of the whole study, read from the storage.

The launcher only waits on its children, so it polls: every POLL_SECONDS it reads the study's
trials through a read-only storage (service/readonly.py: no schema, no lock file, no write) into
the same live.Search a worker keeps, and shows it in the same views.

On a terminal the workers print no trial lines (their Progress has trials=False), and their stderr
comes through a pipe, the relay: the launcher prints what they write there (a message, an error, a
traceback) above the live area, where a direct write would be overwritten by the next redraw. The
finished trials' lines it prints itself, from the storage. In a log the workers' prefixed lines go
straight to stderr, as they always did, and the launcher adds the periodic status line.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection, wait

import optuna
from optuna.trial import FrozenTrial

from anncnn_tune.errors import UserError
from anncnn_tune.search.live import LogView, Search, TerminalView, trial_line
from anncnn_tune.search.progress import start_line
from anncnn_tune.search.spec import Spec
from anncnn_tune.service import outage
from anncnn_tune.service.readonly import open_storage_readonly

POLL_SECONDS = 1.0
DRAIN_SECONDS = 2.0  # how long the relay may stay silent, once the workers have exited, before it is closed


class StudyWatch:
    def __init__(self, spec: Spec, storage_url: str, n_trials: int, workers: int,
                 view: LogView | TerminalView | None, timeout: float | None = None):
        self.spec, self.storage_url, self.view = spec, storage_url, view
        self.search = Search(n_trials, spec.epochs, workers=workers, steps_per_epoch=spec.steps_per_epoch,
                             timeout=timeout)
        self._study: optuna.Study | None = None
        self._pending = b""  # a relayed line not yet ended

    def poll(self) -> list[FrozenTrial]:
        """Read the study; the trials that ended since the last read (nothing before a worker creates it)."""
        try:
            if self._study is None:
                self._study = optuna.load_study(study_name=self.spec.name,
                                                storage=open_storage_readonly(self.storage_url))
            return self.search.read(self._study)
        except KeyError:  # no worker has created the study yet
            return []
        except UserError:  # not readable yet (open_storage_readonly's one-line errors)
            return []
        except Exception as exc:
            # The storage is away: the workers ride the outage out (or stop) on their own, and the
            # view shows the last read meanwhile. Anything else is a bug, and raised.
            if outage.storage_error(exc) is None:
                raise
            return []

    @property
    def relays(self) -> bool:
        """Whether the workers' stderr should come through a relay (a live area on the terminal)."""
        return self.view is not None and self.view.live

    def start(self, where: str, artifacts) -> None:
        """The first read, before the workers start, and the view; on a terminal, the run's start line
        (in a log each worker prints its own)."""
        self.poll()
        if self.view is None:
            return
        if self.view.live:
            self.view.line(start_line(self.spec.name, self.storage_url, self.search.snapshot().done,
                                      self.search.n_trials, where, artifacts))
        self.view.start(self.search.snapshot)

    def wait(self, processes, relay: Connection | None = None) -> None:
        """Show the search until every process has exited, printing what they write to the relay."""
        next_poll = time.monotonic()
        # One reading of who runs per round: reading exitcode reaps a process, so a second reading could
        # find the last one gone and leave nothing to wait on, and wait([]) without a timeout never returns.
        while running := [p for p in processes if p.exitcode is None]:
            if self.view is not None and time.monotonic() >= next_poll:
                self._show(self.poll())
                next_poll = time.monotonic() + POLL_SECONDS
            handles = [p.sentinel for p in running] + ([relay] if relay else [])
            if relay in wait(handles, timeout=POLL_SECONDS if self.view is not None else None):
                relay = self._relay(relay)
        while relay is not None and wait([relay], timeout=DRAIN_SECONDS):  # what they wrote before exiting
            relay = self._relay(relay)
        if self._pending:
            self.view.line(self._pending.decode(errors="replace"))
            self._pending = b""

    def close(self) -> None:
        """The final read and view (the view stays on the screen, or the log gets its last status line)."""
        if self.view is not None:
            self._show(self.poll())
            self.view.close()

    def _show(self, ended: list[FrozenTrial]) -> None:
        if self.view.live:  # in a log the workers print these lines themselves
            s = self.search.snapshot()
            for trial in ended:
                seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
                    if trial.datetime_start and trial.datetime_complete else 0.0
                self.view.line(trial_line(trial, self.spec.metric, self.spec.epochs, seconds, s.best_value,
                                          s.best_trial, self.spec.steps_per_epoch))
        self.view.update()

    def _relay(self, relay: Connection) -> Connection | None:
        """Print the relay's complete lines; None once every writer has closed it."""
        chunk = os.read(relay.fileno(), 65536)
        if not chunk:
            relay.close()
            return None
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self.view.line(line.decode(errors="replace"))
        return relay
