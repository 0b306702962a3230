"""A snapshot of a running search, and the two ways of showing it: a live area on a terminal, lines in a log.

One model serves one worker and N. `Search` holds the study's trials as last read from the storage
(plus the epochs this process reported since, so that one worker need not read the storage once
per epoch); `Search.snapshot()` turns them into a `Snapshot`: counts by state, the best trial, the
durations of the finished trials, the running trials with their last epoch and value. A worker
(progress.py) reads its study when a trial starts or ends; the launcher of N workers (watch.py)
polls the storage. Both hand their snapshots to the same views:

- `TerminalView`: a live area at the bottom of the terminal (rich), redrawn a few times a second,
  with each finished trial's line printed above it, so that the scrollback keeps the history;
- `LogView`: plain lines without control characters, for a log, a pipe or a container: the lines
  it is given, and a status line every STATUS_EVERY seconds and at every tenth of the budget.
"""

from __future__ import annotations

import heapq
import logging
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from anncnn_tune.search.study import FINISHED
from anncnn_tune.service.records import TrialRecord, best_trial, is_maximize

STATUS_EVERY = 60.0  # seconds between a log's status lines (also one per tenth of the budget)
MAX_ROWS = 12  # running trials listed in the live area; more are counted in one row


@dataclass(frozen=True)
class RunningTrial:
    number: int
    epoch: float | None  # the last epoch it reported (0.333: a third of the first); None before any
    epochs: int  # its epoch budget (a baseline may set its own)
    value: float | None  # the value it reported at that epoch
    seconds: float  # how long it has been running
    baseline: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The search as it stands: what every view shows, whoever read it (one worker or the launcher)."""

    n_trials: int | None  # the study's budget of finished trials, all runs and workers (None: not known)
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # failed for good: an interrupted trial is not among them
    interrupted: int = 0  # stopped by a signal and re-queued: it resumes on the next run
    best_value: float | None = None
    best_trial: int | None = None  # records.best_trial's choice: ties go to the earlier trial
    running: tuple[RunningTrial, ...] = ()
    durations: tuple[float, ...] = ()  # seconds from start to end of each finished (complete or pruned) trial
    elapsed: float = 0.0  # seconds since this launch's view started
    workers: int = 1  # worker processes of this launch
    time_left: float | None = None  # seconds until --timeout stops starting trials (None: no timeout)

    @property
    def done(self) -> int:
        return self.complete + self.pruned

    def eta(self) -> float | None:
        """Seconds until the study holds n_trials finished trials; None while nothing says how long a trial takes.

        A trial is expected to take the mean duration of the finished ones, pruned and complete alike
        (the mix so far is the best guess of the mix to come); before any has finished, the mean pace
        of the running ones (seconds so far per epoch times their budget, an upper bound as pruning may
        end them early). A running trial has that mean less the time it has run left; one that has
        outlived the mean (pruning let it through) has its own pace times its epochs left, as it will
        likely run its whole budget (the mean alone said "ETA 0s" with a 60-epoch trial at epoch 38).
        The trials still to start go one at a time to whichever worker is free first: each running
        trial holds a worker until it ends (more running trials than workers of this launch: workers
        elsewhere on the same storage) and an idle worker starts one now. The estimate is the time
        at which the last of the trials still needed ends, or, with a timeout, the time at which the
        last trial started before it ends, if that comes first (no trial starts after the timeout).
        """
        if self.n_trials is None:
            return None
        needed = self.n_trials - self.done
        if needed <= 0:
            return 0.0
        samples = self.durations or tuple(r.seconds * r.epochs / r.epoch for r in self.running if r.epoch)
        if not samples:
            return None
        mean = statistics.fmean(samples)
        ends = sorted(_time_left(r, mean) for r in self.running)
        free = list(ends) + [0.0] * max(self.workers - len(ends), 0)  # when each worker can start a trial
        heapq.heapify(free)
        for _ in range(needed - len(ends)):
            start = heapq.heappop(free)
            if self.time_left is not None and start >= self.time_left:
                return max(ends, default=0.0)
            heapq.heappush(free, start + mean)
            ends.append(start + mean)
        return sorted(ends)[needed - 1]


def _time_left(trial: RunningTrial, mean: float) -> float:
    """Seconds a running trial has left: the mean trial's rest, or once past it, its own pace's."""
    if trial.seconds < mean:
        return mean - trial.seconds
    if not trial.epoch:
        return 0.0  # no pace yet: due now
    return max(trial.seconds / trial.epoch * (trial.epochs - trial.epoch), 0.0)


def take_snapshot(trials: Iterable[FrozenTrial], *, maximize: bool, n_trials: int | None, spec_epochs: int,
                  workers: int = 1, elapsed: float = 0.0, time_left: float | None = None, now: datetime | None = None,
                  reported: Mapping[int, tuple[float, float]] | None = None, steps_per_epoch: int = 1) -> Snapshot:
    """The snapshot of `trials` (a study's, as the storage holds them) at `now` (local time, as Optuna's).

    reported: trial number -> (epoch, value) reported by this process since the trials were read;
    it wins over the stored intermediate values of a running trial. steps_per_epoch: the study's
    Optuna steps per epoch (spec.steps_per_epoch: more than one where the pruner's first rungs are
    parts of an epoch)."""
    trials = list(trials)
    now = now or datetime.now()
    states = [t.state for t in trials]
    best = best_trial(trials, maximize)
    durations = tuple((t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                      if t.state in FINISHED and t.datetime_start and t.datetime_complete)
    running = tuple(_running(t, spec_epochs, now, (reported or {}).get(t.number) or _last_reported(t, steps_per_epoch))
                    for t in trials if t.state == TrialState.RUNNING)
    interrupted = sum(1 for t in trials if t.state == TrialState.FAIL and TrialRecord.read(t).interrupted)
    return Snapshot(n_trials=n_trials, complete=states.count(TrialState.COMPLETE),
                    pruned=states.count(TrialState.PRUNED), failed=states.count(TrialState.FAIL) - interrupted,
                    interrupted=interrupted,
                    best_value=best.value if best else None, best_trial=best.number if best else None,
                    running=running, durations=durations, elapsed=elapsed, workers=workers, time_left=time_left)


def _running(trial: FrozenTrial, spec_epochs: int, now: datetime, reported: tuple[float | None, float | None]):
    record = TrialRecord.read(trial)
    epoch, value = reported
    seconds = max((now - trial.datetime_start).total_seconds(), 0.0) if trial.datetime_start else 0.0
    return RunningTrial(number=trial.number, epoch=epoch, epochs=record.epoch_budget(spec_epochs), value=value,
                        seconds=seconds, baseline=record.baseline)


def _last_reported(trial: FrozenTrial, steps_per_epoch: int) -> tuple[float | None, float | None]:
    """The last stored (epoch, value) of a trial: Optuna's step is 1/steps_per_epoch of an epoch."""
    if not trial.intermediate_values:
        return None, None
    step = max(trial.intermediate_values)
    return step / steps_per_epoch, trial.intermediate_values[step]


class Search:
    """What a view knows of the search between two reads of the storage."""

    def __init__(self, n_trials: int | None, spec_epochs: int, workers: int = 1,
                 clock: Callable[[], float] | None = None, steps_per_epoch: int = 1, timeout: float | None = None):
        self.n_trials, self.spec_epochs, self.workers = n_trials, spec_epochs, workers
        self.timeout = timeout  # --timeout: no trial starts after it (counted from this view's start)
        self.steps_per_epoch = steps_per_epoch
        self._clock = clock or time.perf_counter
        self.started = self._clock()
        # Replaced whole, never changed in place: a terminal view renders from another thread.
        self._trials: tuple[FrozenTrial, ...] = ()
        self._maximize = True
        self._reported: dict[int, tuple[float, float]] = {}
        self._seen: frozenset[int] = frozenset()

    def read(self, study: optuna.Study) -> list[FrozenTrial]:
        """Take the study's trials as the storage holds them now; return those that ended since the last read
        (at the first read: every trial that has ended)."""
        trials = tuple(study.get_trials(deepcopy=False))
        ended = [t for t in trials if t.state.is_finished() and t.number not in self._seen]
        running = {t.number for t in trials if t.state == TrialState.RUNNING}
        self._seen = self._seen | {t.number for t in ended}
        self._maximize = is_maximize(study)
        self._trials = trials
        self._reported = {n: r for n, r in self._reported.items() if n in running}
        return ended

    def report(self, number: int, epoch: float, value: float) -> None:
        """A running trial's epoch, reported in this process (the storage holds it too, but is not read again)."""
        self._reported = {**self._reported, number: (epoch, value)}

    def snapshot(self) -> Snapshot:
        elapsed = self._clock() - self.started
        return take_snapshot(self._trials, maximize=self._maximize, n_trials=self.n_trials,
                             spec_epochs=self.spec_epochs, workers=self.workers, elapsed=elapsed,
                             time_left=None if self.timeout is None else self.timeout - elapsed,
                             reported=self._reported, steps_per_epoch=self.steps_per_epoch)


# -- text --------------------------------------------------------------------------------------------


def epoch_text(epoch: float | None) -> str:
    """4 for a whole epoch, 0.33 for a third of one."""
    if epoch is None:
        return "-"
    return f"{epoch:.0f}" if float(epoch).is_integer() else f"{epoch:.2f}"


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _parts(s: Snapshot, metric: str) -> tuple[str, str, str]:
    """(finished, best, time) as both views word them."""
    finished = f"{s.done}/{s.n_trials}" if s.n_trials is not None else f"{s.done}"
    best = (f"best {metric} {s.best_value:.4f} (trial {s.best_trial})" if s.best_trial is not None
            else "no complete trial yet")
    eta = s.eta()
    timing = f"elapsed {duration_text(s.elapsed)}, ETA {duration_text(eta) if eta is not None else 'unknown'}"
    return f"{finished} trials finished", best, timing


def status_line(s: Snapshot, metric: str) -> str:
    finished, best, timing = _parts(s, metric)
    return (f"status: {finished} ({s.pruned} pruned, {s.failed} failed{_interrupted(s)}), {len(s.running)} running, "
            f"{best}, {timing}")


def _interrupted(s: Snapshot) -> str:
    return f", {s.interrupted} interrupted and re-queued" if s.interrupted else ""


def trial_line(trial: FrozenTrial, metric: str, spec_epochs: int, seconds: float, best_value: float | None,
               best_number: int | None, steps_per_epoch: int = 1) -> str:
    """A finished trial's one line (the scrollback's and the log's history of the search)."""
    record = TrialRecord.read(trial)
    last_epoch, last_value = _last_reported(trial, steps_per_epoch)
    recorded = record.epochs_trained if record.epochs_trained is not None else record.epochs_run
    epochs = recorded if recorded is not None else (last_epoch or 0)
    value = trial.value if trial.value is not None else last_value
    shown = f"{metric}={value:.4f}" if value is not None else ""
    best = f"best {best_value:.4f} (#{best_number})" if best_number is not None else "no complete trial yet"
    baseline = f" [{record.baseline}]" if record.baseline else ""
    reason = f"  {record.reason}" if record.reason else ""
    state = trial.state.name.lower()
    if trial.state == TrialState.FAIL and record.interrupted:
        state, reason = "interrupted", f"{reason}; re-queued, it resumes from its checkpoint on the next run"
    rungs = [row for row in record.partial_epochs or () if "images" in row]  # rungs on parts of the images
    if rungs and not record.epochs_run:
        side = rungs[-1].get("side")
        where = f"rung {epoch_text(rungs[-1]['epoch'])} of images" + (f" at {side}x{side}" if side else "")
    else:
        where = f"epoch {epoch_text(record.epochs_run if rungs else epochs):>3}/{record.epoch_budget(spec_epochs)}"
    return (f"trial {trial.number:>3} {state:<8} {where} "
            f"{shown:<22} {seconds:6.1f}s  {best}{baseline}{reason}")


def render(s: Snapshot, title: str, metric: str) -> RenderableType:
    """The live area: progress of the budget, counts, time, best trial, and a row per running trial."""
    finished, best, timing = _parts(s, metric)
    head = Table.grid(padding=(0, 1))
    head.add_row(Text(title, style="bold"), ProgressBar(total=s.n_trials, completed=s.done, width=30),
                 Text.assemble(finished, " (", (f"{s.pruned} pruned", "yellow" if s.pruned else ""), ", ",
                               (f"{s.failed} failed", "red" if s.failed else ""), (f", {s.interrupted} interrupted" if s.interrupted else "", "yellow"),
                               f"), {len(s.running)} running"))
    lines: list[RenderableType] = [head, Text(f"{timing}   {best}")]
    if s.running:
        table = Table(box=None, pad_edge=False, header_style="dim", show_edge=False)
        for name, justify in (("trial", "right"), ("epoch", "right"), (metric, "right"), ("running", "right"),
                              ("", "left")):
            table.add_column(name, justify=justify)
        shown = sorted(s.running, key=lambda r: r.number)
        for r in shown[:MAX_ROWS]:
            cells = (f"#{r.number}", f"{epoch_text(r.epoch)}/{r.epochs}", "-" if r.value is None else f"{r.value:.4f}",
                     duration_text(r.seconds), f"[{r.baseline}]" if r.baseline else "")
            table.add_row(*map(Text, cells))  # Text, not str: rich would read "[name]" as markup
        if len(shown) > MAX_ROWS:
            table.add_row(*map(Text, ("", "", "", "", f"and {len(shown) - MAX_ROWS} more running")))
        lines.append(table)
    return Group(*lines)


# -- views -------------------------------------------------------------------------------------------


class LogView:
    """Plain lines for a log; with `status`, a status line every STATUS_EVERY seconds and at every tenth
    of the budget (every trial of a budget under ten), and one at the end where the last one is stale."""

    live = False

    def __init__(self, stream, metric: str, status: bool = True):
        self.stream, self.metric, self.status = stream, metric, status
        self._source: Callable[[], Snapshot] | None = None
        self._last: tuple[float, int, int] = (0.0, 0, 0)  # (elapsed, done, failed) at the last status line

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, source: Callable[[], Snapshot]) -> None:
        self._source = source
        s = source()
        self._last = (s.elapsed, s.done, s.failed)

    def update(self) -> None:
        if not self.status or self._source is None:
            return
        s = self._source()
        step = max(1, math.ceil(s.n_trials / 10)) if s.n_trials else None
        since, done, _ = self._last
        if s.elapsed - since >= STATUS_EVERY or (step is not None and s.done // step > done // step):
            self._status(s)

    def close(self) -> None:
        if self.status and self._source is not None:
            s = self._source()
            if (s.done, s.failed) != self._last[1:]:
                self._status(s)
        self._source = None

    def _status(self, s: Snapshot) -> None:
        self._last = (s.elapsed, s.done, s.failed)
        self.line(status_line(s, self.metric))


class TerminalView:
    """A live area at the bottom of a terminal, redrawn four times a second from `source`; lines go above it."""

    live = True

    def __init__(self, stream, title: str, metric: str):
        self.console = Console(file=stream)
        self.title, self.metric = title, metric
        self._source: Callable[[], Snapshot] | None = None
        self._live: Live | None = None
        self._handlers: list[tuple[logging.StreamHandler, object]] = []

    def __rich_console__(self, console, options):
        # Rendered from the source whenever rich draws the area: on its timer, and again below
        # each printed line (a renderable fixed at the last redraw would show the trial that line
        # reports as still running).
        yield render(self._source(), self.title, self.metric)

    def start(self, source: Callable[[], Snapshot]) -> None:
        self._source = source
        self._live = Live(self, console=self.console, refresh_per_second=4)
        self._live.start()  # from here sys.stdout and sys.stderr print above the area
        # Optuna's log handler holds the stderr it found when it was made: its warnings (a failed
        # trial's traceback) would be overwritten by the next redraw unless they go above the area too.
        if sys.stderr is not self.console.file:  # rich's proxy is in place
            for handler in logging.getLogger("optuna").handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is self.console.file:
                    self._handlers.append((handler, handler.setStream(sys.stderr)))

    def line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def update(self) -> None:
        """Nothing to do: the area redraws itself from the source."""

    def close(self) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers = []
        if self._live is not None:
            self._live.stop()  # a last redraw: the final state stays on the screen
            self._live = None


def make_view(stream, *, quiet: bool, title: str, metric: str, live: bool = True,
              status: bool = True) -> LogView | TerminalView | None:
    """None for --quiet; a live area on a terminal (unless `live` is off); plain lines anywhere else."""
    if quiet:
        return None
    if live and stream.isatty():
        return TerminalView(stream, title, metric)
    return LogView(stream, metric, status=status)
