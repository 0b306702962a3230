"""What a worker prints while it runs: a live line per epoch on a terminal, a line per trial always.

Into a log (not a terminal: a container, `nohup`, `--workers`' piped output) a rewritten line cannot
show, and a line per epoch would flood it on small datasets; there an epoch line appears only when
the trial has printed nothing for LOG_EVERY seconds, so a CNN trial of minutes on a CPU still shows
that it is alive and how it is doing.
"""

from __future__ import annotations

import sys
import time

import optuna

from anncnn_tune.service.records import TrialRecord, study_best_trial

LOG_EVERY = 30.0  # seconds of silence in a log before a running trial prints an epoch line


class Progress:
    def __init__(self, study_name: str, metric: str, epochs: int, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() and not quiet
        self.quiet = quiet
        self.study_name = study_name
        self.metric = metric
        self.epochs = epochs
        self._started: dict[int, float] = {}
        self._last_line: dict[int, float] = {}  # per running trial, when it last printed (logs only)

    def _line(self, text: str, *, final: bool) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        elif final:
            self.stream.write(text + "\n")
        self.stream.flush()

    def trial_started(self, number: int, label: str = "") -> None:
        self._started[number] = self._last_line[number] = time.perf_counter()
        if self.live:
            self._line(f"trial {number:>3} {label}starting", final=False)

    def epoch(self, number: int, epoch: int, value: float, epochs: int | None = None) -> None:
        text = f"trial {number:>3} epoch {epoch:>3}/{epochs or self.epochs} {self.metric}={value:.4f}"
        if self.live:
            self._line(text, final=False)
        elif not self.quiet:
            now = time.perf_counter()
            if now - self._last_line.setdefault(number, now) >= LOG_EVERY:
                self._last_line[number] = now
                self._line(f"{text}  running {now - self._started.get(number, now):.0f}s", final=True)

    def message(self, text: str) -> None:
        if not self.quiet:
            self._line(text, final=True)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.quiet:
            return
        seconds = time.perf_counter() - self._started.pop(trial.number, time.perf_counter())
        self._last_line.pop(trial.number, None)
        record = TrialRecord.read(trial)
        epochs = record.epochs_run if record.epochs_run is not None else len(trial.intermediate_values)
        state = trial.state.name.lower()
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None)
        shown = f"{self.metric}={value:.4f}" if value is not None else ""
        top = study_best_trial(study)
        best = f"best {top.value:.4f} (#{top.number})" if top is not None else "no complete trial yet"
        reason = record.reason
        baseline = f" [{record.baseline}]" if record.baseline else ""
        self._line(f"trial {trial.number:>3} {state:<8} epoch {epochs:>3}/{self.epochs} {shown:<22} "
                   f"{seconds:6.1f}s  {best}{baseline}{'  ' + reason if reason else ''}", final=True)
