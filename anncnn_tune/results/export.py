"""Run files: one trial's configuration written out (export) and read back validated (retrain).

A run file holds everything `retrain` needs without the study: dataset, family, the trial's
full parameter dict (what `spec.suggest` produced), the epochs to train, the seed, the data
fingerprint and split seed, plus where it came from and the package versions. Loading one
validates it like a study file (spec.spec_from_dict does the work), because a hand-edited run
file must fail at load time with the file and key named, not halfway through training.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import optuna
import yaml
from optuna.trial import FixedTrial, TrialState

from anncnn_tune.data.base import TARGET_TRANSFORMS
from anncnn_tune.data.source import check_unchanged, source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.search.spec import mapping, read_yaml, spec_from_dict, suggest, text
from anncnn_tune.search.study import stored_spec
from anncnn_tune.service.readonly import open_storage_readonly
from anncnn_tune.service.records import StudyRecord, TrialRecord, study_best_trial
from anncnn_tune.service.storage import mask, sqlite_path
from anncnn_tune.training import params as P

FORMAT = "anncnn-tune-run/1"
TOP_KEYS = {"format", "dataset", "model", "metric", "epochs", "seed", "subset", "params", "data", "source",
            "versions"}
REQUIRED = ("dataset", "model", "metric", "epochs", "seed", "params", "data")
PACKAGES = ("anncnn-tune", "torch", "optuna", "numpy", "scikit-learn", "onnx", "onnxruntime")



@dataclass(frozen=True)
class Run:
    """A validated run file."""

    path: str
    dataset: str
    model: str
    metric: str
    epochs: int
    seed: int
    params: dict
    fingerprint: str
    split_seed: int
    subset: float | int | None = None
    source: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    data_source: object | None = None  # a user dataset's DataSource (`dataset` is then its key)
    # a regression target's recorded scaling (TargetScaling.to_dict()); None: identity (run files of
    # studies made before targets were scaled, and classification)
    target_scaling: dict | None = None

    @property
    def label(self) -> str:
        if self.source.get("study") is not None and self.source.get("trial") is not None:
            return f"{self.source['study']}-trial{self.source['trial']}"
        return Path(self.path).stem

    def as_dict(self) -> dict:
        """The run file's content as plain types (also stored inside the weights file)."""
        dataset = self.data_source.to_dict() if self.data_source is not None else self.dataset
        d = {"format": FORMAT, "dataset": dataset, "model": self.model, "metric": self.metric,
             "epochs": self.epochs, "seed": self.seed, "params": dict(self.params),
             "data": {"fingerprint": self.fingerprint, "split_seed": self.split_seed,
                      **({"target_scaling": dict(self.target_scaling)} if self.target_scaling is not None else {})}}
        if self.subset is not None:
            d["subset"] = self.subset
        if self.source:
            d["source"] = dict(self.source)
        if self.versions:
            d["versions"] = dict(self.versions)
        return d


# -- reading a study -------------------------------------------------------------------------------


def load_stored_study(url: str, name: str, *, writable: bool = False) -> optuna.Study:
    """A study of the storage, or a one-line error listing the ones that are there (writable: retrain
    records its test metrics; the schema is never created either way)."""
    storage = open_storage_readonly(url, read_only=not writable)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise UserError(f"no study {name!r} in {mask(url)} (studies there: {known}); check --study and --storage")
    return optuna.load_study(study_name=name, storage=storage)


def pick_trial(study: optuna.Study, number: int | None) -> optuna.trial.FrozenTrial:
    """The requested trial, else the best one; only complete trials have a score worth retraining."""
    trials = study.get_trials(deepcopy=False)
    if number is None:
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete:
            raise UserError(f"study {study.study_name!r} has no complete trial yet ({len(trials)} trial(s)); "
                            "run `anncnn-tune optimize` until one completes")
        return study_best_trial(study)  # the leaderboard's best: ties go to the earlier trial
    found = [t for t in trials if t.number == number]
    if not found:
        span = f"0..{len(trials) - 1}" if trials else "none"
        raise UserError(f"study {study.study_name!r} has no trial {number} (trials: {span}); pick one with "
                        f"`anncnn-tune compare` or leave --trial out for the best")
    if found[0].state != TrialState.COMPLETE:
        raise UserError(f"trial {number} of study {study.study_name!r} is {found[0].state.name.lower()}, "
                        "not complete; export a complete trial (leave --trial out for the best)")
    return found[0]


def _absolute_sqlite(url: str) -> str:
    """sqlite:///anncnn-tune.db means 'in the working directory': record where that was."""
    path = sqlite_path(url)
    return f"sqlite:///{path.resolve()}" if path is not None and not path.is_absolute() else url


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def data_change(study: optuna.Study) -> str | None:
    """Why the study's user data is not what it searched any more (one line), or None: a registry
    dataset, or files whose fingerprint is still the recorded one. Read from the record as stored,
    so a study whose files moved is described, not refused by the study-file check of its paths."""
    record = StudyRecord.read(study)
    dataset = (record.spec or {}).get("dataset")
    if not isinstance(dataset, dict):
        return None
    try:
        check_unchanged(source_from_dict(dataset), record.fingerprint or "")
    except UserError as exc:
        return str(exc).replace("relocate STUDY ", f"relocate {study.study_name} ")
    return None


def unchanged_spec(study: optuna.Study):
    """The study's stored spec; for a user's own data, only while its files are the ones searched.

    A study's scores stand for the data it searched: leaderboards, run files and retrains of a
    file that has changed since would mix two datasets under one name.
    """
    reason = data_change(study)
    if reason is not None:
        raise UserError(f"study {study.study_name!r}: {reason}")
    return stored_spec(study)


def run_from_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial, url: str) -> dict:
    """The run-file dict of one complete trial."""
    spec = unchanged_spec(study)
    record, study_record = TrialRecord.read(trial), StudyRecord.read(study)
    # fixed + trial params + defaults, as the objective saw them (a baseline of another family: its own)
    params = suggest(spec, FixedTrial(trial.params), baseline=record.baseline)
    raw = {
        "format": FORMAT,
        "dataset": spec.to_dict()["dataset"],  # a user dataset's source mapping, or the registry key
        "model": spec.baseline_model(record.baseline),
        "metric": spec.metric,
        "epochs": record.epochs_to_retrain(spec.epochs),
        "seed": record.seed_or_default(spec.seed),
        "params": params,
        "data": {"fingerprint": study_record.fingerprint, "split_seed": int(study_record.split_seed(spec.seed)),
                 # what the trials trained on, so retrain rebuilds it (absent: a study made before targets were scaled)
                 **({"target_scaling": study_record.target_scaling} if study_record.target_scaling is not None else {})},
        "source": {
            "study": study.study_name,
            "trial": trial.number,
            "storage": mask(_absolute_sqlite(url)),
            "value": trial.value,
            "baseline": record.baseline,
            "epochs_run": record.epochs_run,
            "n_params": record.n_params,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "versions": versions(),
    }
    if spec.subset is not None:
        raw["subset"] = spec.subset
    validate_run(raw, source=f"study {study.study_name} trial {trial.number}")
    return raw


def to_yaml(raw: dict) -> str:
    header = ("# anncnn-tune run file: one trial's configuration. Retrain it on train+validation and score\n"
              "# the test split once with `anncnn-tune retrain THIS_FILE`. Edits are validated on load.\n")
    return header + yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)


def export_run(url: str, study_name: str, trial_number: int | None, out: str | None) -> tuple[dict, str]:
    """Write (or return, when out is None) the run file of a study's best or chosen trial."""
    study = load_stored_study(url, study_name)
    trial = pick_trial(study, trial_number)
    raw = run_from_trial(study, trial, url)
    text = to_yaml(raw)
    if out is not None:
        try:
            Path(out).write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror or exc}; choose another -o") from None
    return raw, text


# -- reading a run file ----------------------------------------------------------------------------


def validate_run(raw, *, source: str) -> Run:
    """A Run from a run-file dict; UserError naming `source` and the key on the first problem.

    Shapes first (every mapping a mapping, every value a single value), then values; the study-file
    validator checks dataset, family, metric against task, epochs and every parameter value.
    """
    _check_run_keys(raw, source)
    params = _run_params(raw["params"], source)
    fingerprint, split_seed, target_scaling = _run_data(raw["data"], source)
    seed = P.check_seed(raw["seed"], f"{source}.seed")
    origin = _run_origin(raw, source)
    spec = spec_from_dict({"dataset": raw["dataset"], "model": raw["model"], "metric": raw["metric"],
                           "epochs": raw["epochs"], "seed": split_seed, "params": params,
                           **({"subset": raw["subset"]} if raw.get("subset") is not None else {})},
                          source=source, name=Path(source).stem, base_dir=Path(source).parent)
    return Run(path=source, dataset=spec.dataset, model=spec.model, metric=spec.metric, epochs=spec.epochs,
               seed=seed, params=spec.family.full(spec.fixed),
               fingerprint=fingerprint, split_seed=split_seed, subset=spec.subset,
               source=origin, versions=dict(raw.get("versions") or {}), data_source=spec.data_source,
               target_scaling=dict(target_scaling) if target_scaling is not None else None)


def _check_run_keys(raw, source: str) -> None:
    """A mapping of known keys, every required one among them, in this format's version."""
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a run file must be a YAML mapping (write one with `anncnn-tune export`)")
    mapping(raw, source)
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise UserError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in REQUIRED:
        if key not in raw:
            raise UserError(f"{source}: missing required key {key!r}")
    if raw.get("format", FORMAT) != FORMAT:
        raise UserError(f"{source}.format: {raw['format']!r} is not {FORMAT!r}; export the run file again")


def _run_params(params, source: str) -> dict:
    """The trained parameters: single values (spec_from_dict then checks each against its declaration)."""
    params = mapping(params, f"{source}.params", "a mapping of parameter values")
    if not params:
        raise UserError(f"{source}.params must be a non-empty mapping of parameter values")
    nested = sorted(k for k, v in params.items() if isinstance(v, (dict, list)))
    if nested:
        raise UserError(f"{source}.params.{nested[0]} must be a single value in a run file, not a search space")
    return params


def _run_data(data, source: str) -> tuple[str, int, dict | None]:
    """(fingerprint, split_seed, target_scaling) of the run file's `data:`: what retrain checks the data against."""
    data = mapping(data, f"{source}.data", "a mapping with fingerprint and split_seed")
    extra = sorted(set(data) - {"fingerprint", "split_seed", "target_scaling"})
    if extra:
        raise UserError(f"{source}.data: unknown key {extra[0]!r}; a run file's data has fingerprint, split_seed "
                        "and (regression) target_scaling")
    target_scaling = data.get("target_scaling")
    if target_scaling is not None:
        _check_target_scaling(target_scaling, f"{source}.data.target_scaling")
    fingerprint = data.get("fingerprint")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise UserError(f"{source}.data.fingerprint must be the data fingerprint string the study recorded")
    # Seeds are checked here, where they enter, before anything is loaded or written.
    return fingerprint, P.check_seed(data.get("split_seed"), f"{source}.data.split_seed"), target_scaling


def _run_origin(raw: dict, source: str) -> dict:
    """The `source:` (study and trial the run came from) and `versions:` mappings; the origin, checked."""
    for key in ("source", "versions"):
        if key in raw and raw[key] is not None:
            mapping(raw[key], f"{source}.{key}")
    origin = dict(raw.get("source") or {})
    if origin.get("study") is not None:
        text(origin["study"], f"{source}.source.study", "the study's name (text)")
    if origin.get("trial") is not None:
        trial = P.number(origin["trial"], f"{source}.source.trial", integer=True)
        if trial < 0:
            raise UserError(f"{source}.source.trial must be a trial number (0 or more), got {trial}")
    return origin


def _check_target_scaling(value, where: str) -> None:
    """A run file's target scaling: transform and finite mean and (positive) std, as export writes them."""
    mapping(value, where, "a mapping with transform, mean and std")
    unknown = sorted(set(value) - {"transform", "mean", "std"})
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; it has transform, mean and std")
    if value.get("transform") not in TARGET_TRANSFORMS:
        raise UserError(f"{where}.transform must be one of {', '.join(TARGET_TRANSFORMS)}, got {value.get('transform')!r}")
    for key in ("mean", "std"):
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise UserError(f"{where}.{key} must be a finite number, got {number!r}")
    if value["std"] <= 0:
        raise UserError(f"{where}.std must be positive, got {value['std']!r}")


def load_run(path: str) -> Run:
    file = Path(path)
    if not file.exists():
        raise UserError(f"run file {path} does not exist; write one with `anncnn-tune export --study NAME -o FILE`")
    raw = read_yaml(file, what="run file", hint="fix the syntax or export the run file again")
    return validate_run(raw, source=str(path))
