"""What anncnn-tune stores on a study and on its trials: the one schema of their attributes.

Optuna keeps free-form attributes (JSON values under string keys) on studies and trials;
anncnn-tune keeps its whole record there, so a storage alone is enough to list, compare, export
and retrain. This module is the only one that knows those keys and their shapes: the rest of the
package reads a `StudyRecord` / `TrialRecord` (frozen, typed, like Optuna's FrozenTrial) and
writes through the functions below.

The study record, in one of two layouts (StudyRecord.read reads both into equal records):

- compact (every study created since): the user attributes, which `optuna studies` prints in full
  and optuna-dashboard shows, hold one short readable row:
      created_by     "anncnn-tune"
      summary        what the study is, in one line: "cnn on digits, val_accuracy, 20 epochs"
  and the record itself lives in the study's system attributes:
      anncnn-tune:spec                 the study file as a dict
      anncnn-tune:data                 the data description: dataset, task, fingerprint, split_seed, sizes...
      anncnn-tune:test_metrics         {str(trial number): retrain's summary, with "per_seed_values" and
                                       "correct": each seed's test correctness, packed bits in base64}
      anncnn-tune:test_scorings        how many retrains scored the test split
      anncnn-tune:classical_reference  `anncnn-tune reference`: model, setting, validation, test per seed, search budget
- flat (studies created before the compact layout): spec, data, created_by, test_metrics,
  test_scorings and classical_reference, all user attributes under those plain names. A study
  with a `spec` user attribute is flat.

Why these keys: system attributes are shared with Optuna (`study:metric_names`) and
optuna-dashboard (`dashboard:note...`), each under an "owner:" prefix; ours take "anncnn-tune:"
(the CREATOR string), followed by the flat layout's name, so a value has one name in both layouts.
`created_by` keeps its name and place, so a listing tells our studies apart as it always has.
`summary` is written once, from the spec, for people; nothing reads it back (StudyRecord.summary
derives the same line from the spec, for flat studies too).

A study keeps the layout it was created with: writers add to a flat study's user attributes.
Optuna cannot delete an attribute, so moving a flat record would leave its old copy showing in
`optuna studies` anyway, and anncnn-tune versions from before the compact layout keep reading a
flat study whole. Those versions do not see a compact study's spec (to them it is some other
tool's study), so workers of an older version must not run against a storage with compact studies.
Trials keep every attribute in their user attributes, as they always have.

Trial attributes:   baseline (name) and epochs (the baseline's epoch budget), set when enqueued;
                    n_params, device, seed, worker at the start; epochs_run, epochs_trained (a float:
                    epochs_run plus the part of a first epoch a pruned trial trained), train_seconds,
                    samples_per_second, compile_seconds (timing); partial_epochs (the validations
                    inside the first epoch of a pruner whose first rungs are parts of an epoch: rows
                    of {"epoch": fraction, "samples", "train_loss", "val_...": ...}); best_epoch,
                    stopped, history (rows of {"epoch", "train_loss", "val_...": ...}) when complete;
                    pruned_reason / fail_reason; interrupted (the signal's name) on a trial a signal
                    stopped and the worker re-queued; resumed_from_trial, resumed_from_epoch on a retry
                    that continued a checkpoint.

It also holds the two facts several commands must agree on: the seed of a trial and which
trial of a study is the best one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, fields

import optuna
from optuna.study import StudySummary
from optuna.trial import FrozenTrial, TrialState

from anncnn_tune.service import optuna_private

CREATOR = "anncnn-tune"
# The compact layout (see the module's docstring): the study record in system attributes under
# SYSTEM_PREFIX + its flat name; in user attributes only created_by and the one-line summary.
SYSTEM_PREFIX = f"{CREATOR}:"
RECORD_KEYS = ("spec", "data", "test_metrics", "test_scorings", "classical_reference")
SUMMARY_DATASET_CHARS = 40  # a long file or folder name is cut, so the summary stays one short line
# What must match for an ANN-vs-CNN comparison to be fair (DESIGN.md, "Fair comparison").
FAIR_KEYS = ("metric", "fingerprint", "split_seed", "subset", "epochs", "sampler", "pruner")
SEED_STRIDE = 100_003  # trial seeds of two studies with adjacent spec seeds do not collide


# -- the seed and the best trial -------------------------------------------------------------------


def trial_seed(spec_seed: int, original_number: int) -> int:
    """The seed a trial trains with. A retry passes its chain's original trial number, so that it
    repeats the original even without a checkpoint. Reduced modulo 2**32, the range every seed is
    checked against (numpy and scikit-learn refuse larger ones); below study seed 42,949 that
    changes nothing, so stored seeds stay what they were."""
    return (spec_seed * SEED_STRIDE + original_number) % 2**32


def best_trial(trials: Iterable[FrozenTrial], maximize: bool) -> FrozenTrial | None:
    """The complete trial with the best value; on a tie the earlier trial (lowest number).

    This, not `study.best_trial`, is the rule everywhere (compare, export, the worker's lines):
    Optuna's RDB storage leaves the order of tied values to the database, so two commands asking
    the same storage could name different trials.
    """
    scored = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not scored:
        return None
    if maximize:
        return max(scored, key=lambda t: (t.value, -t.number))
    return min(scored, key=lambda t: (t.value, t.number))


def is_maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def study_best_trial(study: optuna.Study) -> FrozenTrial | None:
    """best_trial() over the study's trials (None before the first complete one)."""
    return best_trial(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), is_maximize(study))


# -- the study record ------------------------------------------------------------------------------


def _is_flat(user_attrs: dict) -> bool:
    """A study written in the flat layout (its whole record in user attributes)."""
    return "spec" in user_attrs


def _record_values(user_attrs: dict, system_attrs: dict) -> dict:
    """The study record's raw values under their flat names, from whichever layout the study has."""
    if _is_flat(user_attrs):
        return user_attrs
    stored = {key: system_attrs[SYSTEM_PREFIX + key] for key in RECORD_KEYS if SYSTEM_PREFIX + key in system_attrs}
    return {**stored, "created_by": user_attrs.get("created_by")}


def _stored_values(study: optuna.Study) -> dict:
    user_attrs = study.user_attrs
    return _record_values(user_attrs, {} if _is_flat(user_attrs) else optuna_private.study_system_attrs(study))


def _set(study: optuna.Study, key: str, value) -> None:
    """One value of the study record, written where this study keeps its record (its layout)."""
    if _is_flat(study.user_attrs):
        study.set_user_attr(key, value)
    else:
        optuna_private.set_study_system_attr(study, SYSTEM_PREFIX + key, value)


def summary_line(spec: dict, data: dict) -> str:
    """What a study is, in one short line: "cnn on digits, val_accuracy, 20 epochs"."""
    dataset = data.get("dataset") or spec.get("dataset")
    if isinstance(dataset, dict):  # a user's source without a recorded key: its file or folder name
        dataset = str(dataset.get("path", "?")).rstrip("/").rsplit("/", 1)[-1]
    dataset = str(dataset)
    if len(dataset) > SUMMARY_DATASET_CHARS:
        dataset = dataset[:SUMMARY_DATASET_CHARS - 1] + "…"
    epochs = spec.get("epochs")
    line = f"{spec.get('model')} on {dataset}, {spec.get('metric')}, {epochs} epoch{'' if epochs == 1 else 's'}"
    return line + (f", subset {spec['subset']}" if spec.get("subset") is not None else "")


@dataclass(frozen=True)
class StudyRecord:
    """A study's anncnn-tune record: `read` takes a Study, `read_summary` a StudySummary and its storage."""

    name: str
    spec: dict | None  # None: a study some other tool made
    data: dict
    created_by: str | None
    test_metrics: dict[int, dict]  # retrain's summary per trial number
    test_scorings: int = 0  # how many retrains scored the test split (test_scorings attribute)
    reference: dict | None = None  # the classical reference (results/reference.py), where fitted

    @classmethod
    def read(cls, study: optuna.Study) -> StudyRecord:
        if isinstance(study, StudySummary):  # its user attributes alone would read a compact study as foreign
            raise TypeError("a StudySummary carries no system attributes: use StudyRecord.read_summary(summary, "
                            "storage)")
        return cls._from_values(study.study_name, _stored_values(study))

    @classmethod
    def read_summary(cls, summary: StudySummary, storage: optuna.storages.BaseStorage) -> StudyRecord:
        """The record of a listed study (optuna.get_all_study_summaries on `storage`); reads only."""
        user_attrs = summary.user_attrs
        system_attrs = {} if _is_flat(user_attrs) else optuna_private.summary_system_attrs(storage, summary)
        return cls._from_values(summary.study_name, _record_values(user_attrs, system_attrs))

    @classmethod
    def _from_values(cls, name: str, attrs: dict) -> StudyRecord:
        tests = attrs.get("test_metrics") or {}
        return cls(name=name, spec=attrs.get("spec"), data=attrs.get("data") or {},
                   created_by=attrs.get("created_by"),
                   test_metrics={int(number): entry for number, entry in tests.items()},
                   test_scorings=int(attrs.get("test_scorings") or 0), reference=attrs.get("classical_reference"))

    @property
    def is_ours(self) -> bool:
        """Created by anncnn-tune (it has a stored spec, the one thing every command needs)."""
        return self.spec is not None

    @property
    def summary(self) -> str | None:
        """The one-line summary a compact study shows in `optuna studies` (derived, for either layout)."""
        return summary_line(self.spec, self.data) if self.spec is not None else None

    @property
    def fingerprint(self) -> str | None:
        return self.data.get("fingerprint")

    def split_seed(self, default: int | None = None) -> int | None:
        return self.data.get("split_seed", default)

    @property
    def target_scaling(self) -> dict | None:
        """A regression target's scaling (data.base.TargetScaling.to_dict()) the trials trained with;
        None for classes and for studies made before targets were scaled (they trained on raw values)."""
        return self.data.get("target_scaling")

    def fairness(self) -> dict:
        """The settings that must match between studies compared with each other (FAIR_KEYS)."""
        spec = self.spec or {}
        return {"metric": spec.get("metric"), "fingerprint": self.fingerprint, "split_seed": self.split_seed(),
                "subset": spec.get("subset"), "epochs": spec.get("epochs"), "sampler": spec.get("sampler"),
                "pruner": spec.get("pruner")}


def write_study_created(study: optuna.Study, spec: dict, data: dict) -> None:
    """A new study's record, in the compact layout: the readable row in its user attributes first,
    then data, and the spec last, so a study that has a spec has the rest of its record too."""
    study.set_user_attr("created_by", CREATOR)
    study.set_user_attr("summary", summary_line(spec, data))
    optuna_private.set_study_system_attr(study, SYSTEM_PREFIX + "data", data)
    optuna_private.set_study_system_attr(study, SYSTEM_PREFIX + "spec", spec)


def write_relocated(study: optuna.Study, spec: dict, data: dict) -> None:
    """A study's data moved (`anncnn-tune relocate`, fingerprint checked): its spec and data description
    with the new paths, in the layout the study has; data first, as at creation."""
    _set(study, "data", data)
    _set(study, "spec", spec)


def write_test_metrics(study: optuna.Study, trial_number: int, entry: dict) -> None:
    """Retrain's summary of one trial (metric, mean, std, seeds, ..., retrained_at), beside earlier ones."""
    recorded = dict(_stored_values(study).get("test_metrics") or {})
    recorded[str(trial_number)] = entry
    _set(study, "test_metrics", recorded)


def write_test_scored(study: optuna.Study) -> int:
    """One more retrain scored this study's test split; returns the new count."""
    count = int(_stored_values(study).get("test_scorings") or 0) + 1
    _set(study, "test_scorings", count)
    return count


def write_reference(study: optuna.Study, entry: dict) -> None:
    """The classical reference fitted on this study's splits (replaces an earlier one)."""
    _set(study, "classical_reference", entry)


def compact_record(storage: optuna.storages.BaseStorage, study_id: int) -> dict:
    """A compact study's record as stored (its anncnn-tune system attributes; empty for a flat or a
    foreign study), to be carried onto a copy of the study with restore_compact_record."""
    return {key: value for key, value in optuna_private.system_attrs_by_id(storage, study_id).items()
            if key.startswith(SYSTEM_PREFIX)}


def restore_compact_record(study: optuna.Study, stored: dict) -> None:
    """Write a record read by compact_record onto `study`. optuna-dashboard renames a study by copying
    its trials, user attributes and notes into a new study, not its other system attributes."""
    for key, value in stored.items():
        optuna_private.set_study_system_attr(study, key, value)


def encode_correct(correct) -> dict:
    """(seeds, n_test) 0/1 correctness as packed bits in base64: 10,000 test examples are 1.7 kB a seed."""
    import base64

    import numpy as np

    bits = np.atleast_2d(np.asarray(correct, dtype=bool))
    return {"n": int(bits.shape[1]), "seeds": [base64.b64encode(np.packbits(row).tobytes()).decode() for row in bits]}


def decode_correct(stored: dict | None):
    """encode_correct's inverse: a (seeds, n_test) uint8 array, or None when nothing was stored."""
    import base64

    import numpy as np

    if not stored or not stored.get("seeds"):
        return None
    n = int(stored["n"])
    return np.stack([np.unpackbits(np.frombuffer(base64.b64decode(row), dtype=np.uint8))[:n] for row in stored["seeds"]])


# -- the trial record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """A trial's anncnn-tune attributes (None where not written: a trial still running, or failed early)."""

    number: int
    baseline: str | None = None  # the reference baseline's name; None for a sampled trial
    epochs: int | None = None  # the baseline's own epoch budget, where it sets one
    n_params: int | None = None
    device: str | None = None
    seed: int | None = None
    worker: str | None = None  # host:pid
    epochs_run: int | None = None
    epochs_trained: float | None = None  # epochs_run plus the part of a first epoch a pruned trial trained
    train_seconds: float | None = None
    samples_per_second: float | None = None
    compile_seconds: float | None = None
    best_epoch: int | None = None
    stopped: str | None = None  # "budget" or "early_stopping"
    history: list | None = None
    partial_epochs: list | None = None  # rows validated inside the first epoch, with their "samples"
    pruned_reason: str | None = None
    fail_reason: str | None = None
    interrupted: str | None = None  # the signal that stopped it at a safe point; it was re-queued
    resumed_from_trial: int | None = None
    resumed_from_epoch: int | None = None

    @classmethod
    def read(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        attrs = trial.user_attrs
        return cls(number=trial.number, **{f.name: attrs.get(f.name) for f in fields(cls) if f.name != "number"})

    @property
    def reason(self) -> str:
        """Why the trial did not complete ("" when it did or nobody said)."""
        return self.fail_reason or self.pruned_reason or ""

    def seed_or_default(self, spec_seed: int) -> int:
        """The recorded seed; trials that predate its recording trained with trial_seed(number)."""
        return int(self.seed) if self.seed is not None else trial_seed(spec_seed, self.number)

    @property
    def epochs_spent(self) -> float:
        """The training this trial cost, in epochs (trials recorded before epochs_trained: epochs_run)."""
        return float(self.epochs_trained if self.epochs_trained is not None else self.epochs_run or 0)

    def epochs_to_retrain(self, spec_epochs: int) -> int:
        """Epochs a retrain of this trial trains: its best epoch, else what it ran, else the budget."""
        return int(self.best_epoch or self.epochs_run or spec_epochs)

    def epoch_budget(self, spec_epochs: int) -> int:
        """The trial's epochs: a baseline's own budget where it sets one, never more than the study's."""
        return min(int(self.epochs if self.epochs is not None else spec_epochs), spec_epochs)


def baseline_attrs(name: str, epochs: int | None = None) -> dict:
    """The user attributes of an enqueued baseline trial (study.enqueue_trial(..., user_attrs=...))."""
    attrs = {"baseline": name}
    if epochs is not None:
        attrs["epochs"] = epochs
    return attrs


def worker_id(pid: int) -> str:
    """The `worker` a trial records: host:pid of the process that trained it."""
    return f"{socket.gethostname()}:{pid}"


def write_setup(trial: optuna.Trial, *, n_params: int, device: str, seed: int, worker: str) -> None:
    trial.set_user_attr("n_params", n_params)
    trial.set_user_attr("device", device)
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("worker", worker)


def write_timing(trial: optuna.Trial, *, epochs_run: int, train_seconds: float, compile_seconds: float,
                 n_train: int, epochs_trained: float | None = None) -> None:
    """Time and training spent so far; written whenever a trial ends, complete or pruned."""
    trial.set_user_attr("epochs_run", epochs_run)
    trial.set_user_attr("epochs_trained", round(epochs_run if epochs_trained is None else epochs_trained, 6))
    trial.set_user_attr("train_seconds", round(train_seconds, 4))
    trial.set_user_attr("samples_per_second",
                        round(n_train * epochs_run / train_seconds, 1) if train_seconds else 0.0)
    trial.set_user_attr("compile_seconds", round(compile_seconds, 4))


def write_result(trial: optuna.Trial, *, best_epoch: int, stopped: str, history: list[dict]) -> None:
    trial.set_user_attr("best_epoch", best_epoch)
    trial.set_user_attr("stopped", stopped)
    trial.set_user_attr("history", [{k: round(v, 6) for k, v in row.items()} for row in history])


def write_partial_epochs(trial: optuna.Trial, rows: list[dict]) -> None:
    """The validations inside the first epoch (a pruner's rungs below one epoch): each row's "epoch" is
    the fraction and "samples" the training samples it had seen, the resource that rung used."""
    trial.set_user_attr("partial_epochs", [{k: round(v, 6) for k, v in row.items()} for row in rows])


def write_pruned_reason(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("pruned_reason", reason)


def write_fail_reason(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("fail_reason", reason)


def write_interrupted(trial: optuna.Trial, signal_name: str, reason: str) -> None:
    """A signal stopped the trial at a safe point: it ends FAIL with the reason, and this mark says that
    it is no failure but a pause (the worker re-queues it; the retry resumes from its checkpoint)."""
    trial.set_user_attr("fail_reason", reason)
    trial.set_user_attr("interrupted", signal_name)


def write_resumed(trial: optuna.Trial, *, from_trial: int, from_epoch: int) -> None:
    """A retry that continues its chain's checkpoint. Set on every retry: the user attributes were
    copied from the stale trial, which may itself have resumed from a different epoch."""
    trial.set_user_attr("resumed_from_trial", from_trial)
    trial.set_user_attr("resumed_from_epoch", from_epoch)


# What a retry does not inherit from the trial it retries: why that one ended, and its per-run setup
# and results (the retry writes its own).
_NOT_INHERITED = ("fail_reason", "interrupted", "pruned_reason", "best_epoch", "stopped", "history", "partial_epochs")


def retry_user_attrs(attrs: dict) -> dict:
    """The user attributes a re-queued retry starts with (a baseline's name and epochs stay)."""
    return {k: v for k, v in attrs.items() if k not in _NOT_INHERITED}
