"""Create or resume a study, enqueue its baselines, and run one worker against a global budget."""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from anncnn_tune.errors import UserError
from anncnn_tune.search.samplers import make_pruner, make_sampler
from anncnn_tune.search.spec import Spec, spec_from_dict
from anncnn_tune.service import records
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.optuna_private import heartbeat_enabled
from anncnn_tune.service.records import StudyRecord

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


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


def open_study(spec: Spec, storage, data_description: dict, lock: StudyLock) -> optuna.Study:
    """Create the study (spec and data in its user attributes, baselines enqueued) or resume it.

    Resuming with a different spec would mix incomparable trials, so that is refused.
    """
    with lock:
        study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction,
                                    sampler=make_sampler(spec), pruner=make_pruner(spec), load_if_exists=True)
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
                raise UserError(f"study {spec.name!r} already exists in this storage with a different {differs} (stored "
                                f"{was!r}, now {now!r}); pass --study-name NAME to keep both side by side")
            if record.fingerprint != data_description.get("fingerprint"):
                raise UserError(f"study {spec.name!r} was created on different data files (fingerprint mismatch); "
                                "use another --storage or the original files")
    return study


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
    result = {s.name.lower(): 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        result[trial.state.name.lower()] += 1
    return result


def run_worker(study: optuna.Study, objective, lock: StudyLock, *, n_trials: int, timeout: float | None = None,
               poll_seconds: float = 2.0, progress=None, catch=()) -> WorkerResult:
    """Run trials until the study holds n_trials finished (complete or pruned) trials in total.

    Finished trials of earlier runs and other workers count. Trials that other live workers are
    running count too, except when they stop beating and are failed (then they are retried).
    SIGINT/SIGTERM (as KeyboardInterrupt) ends the loop wherever it lands: a running trial has been
    marked failed with its reason by then (objective and study.optimize), and the lock is released.
    """
    deadline = time.monotonic() + timeout if timeout else None
    objective.on_start = lock.release
    callbacks = [progress.trial_finished] if progress else []
    ran = 0
    waited = False
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return WorkerResult(ran, False, True)
            lock.acquire()
            if heartbeat_enabled(study):
                # Fails the trials of dead workers; the storage's retry callback enqueues them again.
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
            finished = sum(t.state in FINISHED for t in trials)
            running = len(trials) - finished
            if finished >= n_trials:
                return WorkerResult(ran, False, False)
            if finished + running >= n_trials:
                # The budget is spoken for by running trials; wait in case their worker dies.
                lock.release()
                if progress and not waited:
                    progress.message(f"waiting for {running} running trial(s) of other workers to finish")
                    waited = True
                time.sleep(poll_seconds)
                continue
            study.optimize(objective, n_trials=1, callbacks=callbacks, catch=catch)
            lock.release()  # if the trial never reached the objective
            ran += 1
    except KeyboardInterrupt:
        return WorkerResult(ran, True, False)
    finally:
        lock.release()
