"""What a worker shows while it runs: a live view of the search on a terminal, plain lines in a log.

The view itself (the snapshot of the search and how a terminal or a log shows it) is live.py's,
shared with the launcher of N workers. Here is what one worker feeds it: the study's trials, read
when a trial starts and when it ends, the epochs its trial reports in between, its messages, and
a line per finished trial.

Into a log (not a terminal: a container, `nohup`, `--workers`' piped output) a line per epoch would
flood it on small datasets; there an epoch line appears only when the trial has printed nothing for
LOG_EVERY seconds, so a CNN trial of minutes on a CPU still shows that it is alive and how it does.
"""

from __future__ import annotations

import contextlib
import sys
import time

import optuna

from anncnn_tune.search.live import Search, epoch_text, make_view, trial_line
from anncnn_tune.service.storage import mask

LOG_EVERY = 30.0  # seconds of silence in a log before a running trial prints an epoch line


def start_line(study_name: str, storage_url: str, finished: int, n_trials: int, where: str, artifacts) -> str:
    """The first line of a run, a worker's or the launcher's."""
    return (f"study {study_name} on {mask(storage_url)}: {finished} of {n_trials} trials finished; "
            f"training on {where}; artifacts in {artifacts}")


class Progress:
    """One worker's output. Under the launcher of several workers, which shows the study's view (its
    live area, or its status lines in a log), a worker has view=False; on a terminal it has
    trials=False too, and prints only its messages (watch.py)."""

    def __init__(self, study_name: str, metric: str, epochs: int, stream=None, quiet: bool = False, *,
                 n_trials: int | None = None, view: bool = True, trials: bool = True, steps_per_epoch: int = 1,
                 timeout: float | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.trials = trials
        self.study_name = study_name
        self.metric = metric
        self.epochs = epochs
        self.view = make_view(self.stream, quiet=quiet, title=study_name, metric=metric, live=view, status=view)
        self.own_view = view and self.view is not None
        self.search = Search(n_trials, epochs, steps_per_epoch=steps_per_epoch, timeout=timeout)
        self._study: optuna.Study | None = None
        self._started: dict[int, float] = {}
        self._last_line: dict[int, float] = {}  # per running trial, when it last printed (logs only)

    @contextlib.contextmanager
    def showing(self, study: optuna.Study):
        """Show the search of `study` for the time of the block; a live area is taken down however it ends."""
        self._study = study
        self.search.read(study)
        if self.view is not None:
            self.view.start(self.search.snapshot)
        try:
            yield self
        finally:
            if self.view is not None:
                # The last drawing shows how the study ended (an interrupted trial is no longer running);
                # the storage may be what failed, and its error must not hide the one on its way out.
                with contextlib.suppress(Exception):
                    self.search.read(study)
                self.view.close()
            self._study = None

    def _show(self) -> None:
        if self.view is not None:
            self.view.update()

    def trial_started(self, number: int) -> None:
        self._started[number] = self._last_line[number] = time.perf_counter()
        if self._study is not None and self.own_view:  # the running trials, this one among them
            self.search.read(self._study)

    def epoch(self, number: int, epoch: float, value: float, epochs: int | None = None) -> None:
        self.search.report(number, epoch, value)
        if self.view is None or not self.trials:
            return
        if not self.view.live:
            now = time.perf_counter()
            if now - self._last_line.setdefault(number, now) >= LOG_EVERY:
                self._last_line[number] = now
                self.view.line(f"trial {number:>3} epoch {epoch_text(epoch):>3}/{epochs or self.epochs} "
                               f"{self.metric}={value:.4f}  running {now - self._started.get(number, now):.0f}s")
        self._show()

    def message(self, text: str) -> None:
        if self.view is not None:
            self.view.line(text)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.view is None or not self.trials:
            return
        seconds = time.perf_counter() - self._started.pop(trial.number, time.perf_counter())
        self._last_line.pop(trial.number, None)
        self.search.read(study)
        s = self.search.snapshot()
        self.view.line(trial_line(trial, self.metric, self.epochs, seconds, s.best_value, s.best_trial,
                                  self.search.steps_per_epoch))
        self._show()

    def trial_interrupted(self, study: optuna.Study, number: int) -> None:
        """The line of a trial a signal stopped at a safe point, once it is re-queued."""
        if self.view is None or not self.trials:
            return
        trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
        if trial is None:
            return
        seconds = time.perf_counter() - self._started.pop(number, time.perf_counter())
        self._last_line.pop(number, None)
        self.search.read(study)
        s = self.search.snapshot()
        self.view.line(trial_line(trial, self.metric, self.epochs, seconds, s.best_value, s.best_trial,
                                  self.search.steps_per_epoch))
        self._show()
