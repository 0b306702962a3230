"""Create or resume a study, enqueue its baselines, and run one worker against a global budget."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from anncnn_tune.errors import UserError
from anncnn_tune.search.samplers import make_pruner, make_sampler
from anncnn_tune.search.spec import Spec, spec_from_dict
from anncnn_tune.service import outage, records, signals
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.optuna_private import (
    heartbeat_enabled,
    mark_failed,
    retry_history,
    retry_system_attrs,
)
from anncnn_tune.service.records import StudyRecord
from anncnn_tune.service.storage import MAX_RETRY, check_storage_file

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Spec keys a command-line flag overrides (Spec.with_overrides): a stored study that differs there was
# started with the flag, or without it. --seed also sets the sampler's seed.
FLAGS = {"epochs": "--epochs", "seed": "--seed", "sampler.seed": "--seed", "subset": "--subset"}


def stored_spec(study: optuna.Study) -> Spec:
    """The spec a study was created with (studies carry it, so no YAML file is needed later)."""
    record = StudyRecord.read(study)
    if not record.is_ours:
        raise UserError(f"study {study.study_name!r} was not created by anncnn-tune (it has no stored spec); read "
                        "it with Optuna itself (`optuna trials --study-name NAME`), or run it as an anncnn-tune "
                        "study with `anncnn-tune optimize --study FILE --study-name NEW`")
    return spec_from_dict(record.spec, source=f"study {study.study_name}", name=study.study_name)


def _first_difference(a: dict, b: dict, prefix: str = "") -> str | None:
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a.get(key) != b.get(key):
            return f"{prefix}{key}"
    return None


def open_study(spec: Spec, storage, data_description: dict, lock: StudyLock, worker: int = 0) -> optuna.Study:
    """Create the study (its record: spec and data, see service/records.py; baselines enqueued) or
    resume it, with the sampler of worker number `worker` of this launch (samplers.make_sampler).

    Resuming with a different spec would mix incomparable trials, so that is refused.
    """
    with lock:
        study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction,
                                    sampler=make_sampler(spec, worker), pruner=make_pruner(spec),
                                    load_if_exists=True)
        record = StudyRecord.read(study)
        if not record.is_ours:
            study.set_metric_names([spec.metric])
            records.write_study_created(study, spec.to_dict(), data_description)
            _save_note(study, spec.to_dict(), data_description)
            for baseline in spec.baselines:
                study.enqueue_trial(baseline["params"],
                                    user_attrs=records.baseline_attrs(baseline["name"], baseline.get("epochs")))
        else:
            differs = _first_difference(record.spec, spec.to_dict())
            if differs:
                was, now = record.spec, spec.to_dict()
                for key in differs.split("."):  # the dotted key's stored and new values, for the message
                    was, now = (x.get(key) if isinstance(x, dict) else None for x in (was, now))
                flag = FLAGS.get(differs)
                if flag is not None:  # a command-line override: the way back is the same flag
                    _flag_changed(spec.name, flag, record.spec.get(flag[2:]), spec.to_dict().get(flag[2:]))
                raise UserError(f"study {spec.name!r} already exists in this storage with a different {differs} (stored "
                                f"{was!r}, now {now!r}); pass --study-name NAME to keep both side by side")
            if record.fingerprint != data_description.get("fingerprint"):
                raise UserError(f"study {spec.name!r} was created on different data files (fingerprint mismatch); "
                                "use another --storage or the original files")
    return study


def _flag_changed(name: str, flag: str, was, now) -> None:
    started = f"with `{flag} {was}`" if was is not None else f"without {flag}"
    asked = f"`{flag} {now}`" if now is not None else f"no {flag}"
    back = f"repeat `{flag} {was}`" if was is not None else f"leave out {flag}"
    raise UserError(f"study {name!r} in this storage was started {started}, this run has {asked}; {back} to "
                    "resume, or pass --study-name NAME for a new study")


def _save_note(study: optuna.Study, spec_dict: dict, data_description: dict) -> None:
    # optuna-dashboard shows this Markdown on the study's page; it lives in the study's system
    # attributes, so the dashboard needs nothing but the storage.
    import optuna_dashboard  # imported here: only a study's creation needs it

    from anncnn_tune.service.dashboard import study_note

    optuna_dashboard.save_note(study, study_note(spec_dict, data_description))


@dataclass
class WorkerResult:
    ran: int
    interrupted: bool
    timed_out: bool


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state; a trial a signal stopped and re-queued counts as "interrupted", not "fail"
    (its retry is among the waiting, or further on)."""
    result = {s.name.lower(): 0 for s in TrialState}
    result["interrupted"] = 0
    for trial in study.get_trials(deepcopy=False):
        paused = trial.state == TrialState.FAIL and records.TrialRecord.read(trial).interrupted
        result["interrupted" if paused else trial.state.name.lower()] += 1
    return result


def requeue_interrupted(study: optuna.Study, number: int) -> None:
    """Enqueue a retry of trial `number`, which a signal stopped (it is FAIL with its reason by now).

    The retry is built the way Optuna's RetryHeartbeatStaleTrialCallback builds one for a dead
    worker's trial: same params, its reported values, and `failed_trial` naming the chain's first
    trial, so it resumes from that chain's checkpoint and a baseline stays a baseline. There is no
    retry limit: a user's stop is no failure of the trial.
    """
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=records.retry_user_attrs(trial.user_attrs), system_attrs=retry_system_attrs(trial),
        intermediate_values=trial.intermediate_values))


def run_worker(study: optuna.Study, objective, lock: StudyLock, *, n_trials: int, timeout: float | None = None,
               poll_seconds: float = 2.0, progress=None, catch=()) -> WorkerResult:
    """Run trials until the study holds n_trials finished (complete or pruned) trials in total.

    Finished trials of earlier runs and other workers count. Trials that other live workers are
    running count too, except when they stop beating and are failed (then they are retried).
    SIGINT/SIGTERM (signals.request_stop) end the loop at the next safe point: between trials, while
    waiting, or after the running trial's epoch and checkpoint, where that trial is failed with its
    reason and re-queued (it resumes from its checkpoint on the next run). The lock is released.
    The objective may offer `trial_stored(study, frozen_trial)`, called once a trial's final state
    is committed (it removes the trial's checkpoint then, not before).
    """
    deadline = time.monotonic() + timeout if timeout else None
    objective.on_start = lock.release
    objective.deadline = deadline
    callbacks = [progress.trial_finished] if progress else []
    if getattr(objective, "trial_stored", None) is not None:
        callbacks.append(objective.trial_stored)
    loop = _WorkerLoop(study, objective, lock, n_trials=n_trials, deadline=deadline, poll_seconds=poll_seconds,
                       progress=progress, callbacks=callbacks, catch=catch)
    say = progress.message if progress else None
    try:
        with outage.quiet_heartbeat_threads(say):
            while True:
                try:
                    ended = loop.step()
                except Exception as exc:
                    # A SQLite file deleted under the run fails its next commit as an outage would: that
                    # is StorageLost (one line, exit 1), not two minutes of retries.
                    check_storage_file(study)
                    error = outage.storage_error(exc)
                    loop.outages += 1
                    # An error that comes back every time the storage answers is no outage: a bug.
                    if error is None or loop.outages > MAX_RETRY:
                        raise
                    _ride_out_outage(study, objective, lock, error, say)
                    continue
                if ended is not None:
                    return WorkerResult(loop.ran, False, ended == "timed_out")
    except signals.StopRequested as exc:
        lock.release()
        if exc.trial_number is not None:
            requeue_interrupted(study, exc.trial_number)
            if progress is not None:
                progress.trial_interrupted(study, exc.trial_number)
        signals.clear()
        return WorkerResult(loop.ran, True, False)
    except KeyboardInterrupt:  # a second signal: the user insists, stop wherever this is
        return WorkerResult(loop.ran, True, False)
    finally:
        with contextlib.suppress(Exception):  # the storage may be gone: its session ends with the process
            lock.release()


class _WorkerLoop:
    """The worker loop's settings and counters, so that one turn of it (step) needs no long argument list.

    ran counts the trials this worker ran, waited whether it said once that it waits for other workers'
    trials, outages the storage errors in a row since the last trial that ran (run_worker counts them).
    """

    def __init__(self, study: optuna.Study, objective, lock: StudyLock, *, n_trials: int, deadline: float | None,
                 poll_seconds: float, progress, callbacks: list, catch):
        self.study, self.objective, self.lock = study, objective, lock
        self.n_trials, self.deadline, self.poll_seconds = n_trials, deadline, poll_seconds
        self.progress, self.callbacks, self.catch = progress, callbacks, catch
        self.ran, self.waited, self.outages = 0, False, 0

    def step(self) -> str | None:
        """One turn of the worker loop: None to go on, "done" or "timed_out" to return."""
        study, objective, lock = self.study, self.objective, self.lock
        signals.check_stop()
        check_storage_file(study)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "timed_out"
        lock.acquire()
        if heartbeat_enabled(study):
            # Fails the trials of dead workers; the storage's retry callback enqueues them again.
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        finished = sum(t.state in FINISHED for t in trials)
        running = len(trials) - finished
        if finished >= self.n_trials:
            return "done"
        if finished + running >= self.n_trials:
            # The budget is spoken for by running trials; wait in case their worker dies.
            lock.release()
            if self.progress and not self.waited:
                self.progress.message(f"waiting for {running} running trial(s) of other workers to finish")
                self.waited = True
            _sleep_unless_stopped(self.poll_seconds)
            return None
        objective.current_trial = None  # the objective sets it: the trial an outage may leave behind
        study.optimize(objective, n_trials=1, callbacks=self.callbacks, catch=self.catch)
        lock.release()  # if the trial never reached the objective
        self.ran += 1
        self.outages = 0
        if getattr(objective, "out_of_time", False):
            # The sampled trial could not finish before --timeout: neither would the next ones, on
            # average, and sampling them only to refuse them fills the study with empty trials.
            return "timed_out"
        return None


def _ride_out_outage(study, objective, lock, error, say) -> None:
    """Wait for the storage (or stop with StorageUnreachable), then make this worker's interrupted
    trial resumable: failed with the reason and re-queued, so its checkpoint is picked up again."""
    with contextlib.suppress(Exception):
        lock.release()
    outage.wait_for_storage(lambda: study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)), error,
                            where=study.study_name, message=say, check_stop=signals.check_stop)
    check_storage_file(study)
    number = getattr(objective, "current_trial", None)
    if number is None:
        return
    objective.current_trial = None
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state in FINISHED or trial.state == TrialState.WAITING:
        return
    if len(retry_history(trial)) >= MAX_RETRY:
        return  # an error that outlives every retry is no outage: the trial stays failed
    if trial.state == TrialState.RUNNING:  # the worker that ran it is this one, and it no longer does
        mark_failed(study, trial, "storage unreachable during the trial")
    elif any(number in retry_history(t) for t in study.get_trials(deepcopy=False)):
        return  # already retried (by the stale-trial check of a worker)
    requeue_interrupted(study, number)


def _sleep_unless_stopped(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        signals.check_stop()
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))
