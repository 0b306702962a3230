"""Study files: load, validate eagerly, and turn an Optuna trial into a full parameter dict.

A study file names a dataset, a model family, a metric, an epoch budget, the sampler and pruner,
the search space in Optuna's vocabulary, and named baseline configurations. Every mistake is
reported at load time as one line naming the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

from anncnn_tune.data import DATASETS
from anncnn_tune.errors import UserError
from anncnn_tune.training import fit as train
from anncnn_tune.training import metrics, models

TOP_KEYS = {"dataset", "model", "metric", "epochs", "sampler", "pruner", "params", "baselines", "subset",
            "description", "seed"}
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices"}
SAMPLERS = {"tpe": {"seed", "n_startup_trials", "multivariate", "group", "constant_liar"},
            "random": {"seed"}, "cmaes": {"seed", "n_startup_trials"}, "gp": {"seed", "n_startup_trials"}}
PRUNERS = {"hyperband": {"min_resource", "reduction_factor"},
           "median": {"n_startup_trials", "n_warmup_steps"},
           "successive_halving": {"min_resource", "reduction_factor"},
           "none": set()}
BOOL_PARAMS = {"batch_norm", "residual", "nesterov"}
DEFAULT_SAMPLER = {"type": "tpe", "multivariate": True, "group": True, "seed": 0}
DEFAULT_PRUNER = {"type": "hyperband", "min_resource": 1, "reduction_factor": 3}


def builtin_dir() -> Path:
    """The study files shipped inside the package, found from any working directory."""
    return Path(str(resources.files("anncnn_tune") / "studies"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


@dataclass(frozen=True)
class ParamSpace:
    name: str
    type: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def contains(self, value) -> bool:
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low <= value <= self.high and (self.type == "float" or float(value).is_integer())

    def as_dict(self) -> dict:
        d = {"type": self.type}
        if self.type == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
            if self.step is not None:
                d["step"] = self.step
        return d


@dataclass(frozen=True)
class Spec:
    name: str
    source: str
    dataset: str
    model: str
    metric: str
    epochs: int
    sampler: dict
    pruner: dict
    space: dict[str, ParamSpace]
    fixed: dict
    baselines: list[dict] = field(default_factory=list)
    subset: float | int | None = None
    seed: int = 0
    description: str = ""
    # A user dataset (`dataset:` a mapping): the resolved DataSource; `dataset` is then its key.
    data_source: object | None = None

    @property
    def direction(self) -> str:
        return metrics.direction(self.metric)

    def with_overrides(self, *, epochs: int | None = None, seed: int | None = None, subset=None) -> Spec:
        changed = {}
        if subset is not None:
            if subset <= 0 or (subset > 1 and not float(subset).is_integer()):
                raise UserError(f"--subset must be a fraction in (0, 1] or a whole count, got {subset}")
            changed["subset"] = int(subset) if subset > 1 else float(subset)
        if epochs is not None:
            changed["epochs"] = epochs
        if seed is not None:
            changed["seed"] = seed
            changed["sampler"] = {**self.sampler, "seed": seed}
        return replace(self, **changed)

    def to_dict(self) -> dict:
        """The study-file form (what the study stores in its user attributes)."""
        params = {name: s.as_dict() for name, s in self.space.items()}
        params.update(self.fixed)
        d = {
            "dataset": self.data_source.to_dict() if self.data_source is not None else self.dataset,
            "model": self.model,
            "metric": self.metric,
            "epochs": self.epochs,
            "seed": self.seed,
            "sampler": dict(self.sampler),
            "pruner": dict(self.pruner),
            "params": params,
            "baselines": [dict(b) for b in self.baselines],
        }
        if self.subset is not None:
            d["subset"] = self.subset
        if self.description:
            d["description"] = self.description
        return d


def suggest(spec: Spec, trial) -> dict:
    """Full parameter dict for one trial: suggested values over fixed ones over defaults."""
    params = {**train.TRAIN_DEFAULTS, **models.PARAMS[spec.model], **spec.fixed}
    for name, s in spec.space.items():
        if s.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(s.choices))
        elif s.type == "int":
            params[name] = trial.suggest_int(name, int(s.low), int(s.high), step=int(s.step or 1), log=s.log)
        else:
            params[name] = trial.suggest_float(name, s.low, s.high, step=s.step, log=s.log)
    return params


# -- loading and validation -------------------------------------------------------------------------


def resolve_path(study: str) -> Path:
    """`--study` is a built-in study name or a path to a YAML file."""
    if study.endswith((".yaml", ".yml")) or "/" in study or Path(study).is_file():
        path = Path(study)
        if not path.is_file():
            raise UserError(f"study file {study} does not exist; pass a built-in study name "
                            f"({', '.join(builtin_names())}) or a path to a YAML file")
        return path
    path = builtin_dir() / f"{study}.yaml"
    if not path.is_file():
        raise UserError(f"unknown study {study!r}; built-in studies: {', '.join(builtin_names())} "
                        "(or pass a path to a YAML file)")
    return path


def load_spec(study: str) -> Spec:
    path = resolve_path(study)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    # A relative dataset path in the file is relative to the file's folder, wherever we run from.
    return spec_from_dict(raw, source=str(path), name=path.stem, base_dir=path.resolve().parent)


def _number(value, where: str, *, integer: bool = False) -> float:
    """A YAML number; strings such as '1e-4' (PyYAML's reading of 1e-4) are cast."""
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{where} must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value!r}")
    if integer:
        if not float(value).is_integer():
            raise UserError(f"{where} must be an integer, got {value!r}")
        return int(value)
    return value


def _allowed_choices(name: str):
    if name in BOOL_PARAMS:
        return (True, False)
    return train.CHOICES.get(name) or models.CHOICES.get(name)


# Numeric ranges the builders and the training loop need; checked for fixed values and for both ends
# of a searched range, so a bad value fails at load time rather than at trial 37.
AT_LEAST_ONE = {"layers", "width", "blocks", "filters", "convs", "kernel", "head_width"}
NON_NEGATIVE_INT = {"head_layers", "patience"}
FRACTIONS = {"dropout", "head_dropout", "label_smoothing", "momentum"}  # in [0, 1)
POSITIVE = {"lr", "shrink", "growth"}


def _check_range(name: str, value, where: str):
    if name in AT_LEAST_ONE or name in NON_NEGATIVE_INT:
        value = _number(value, where, integer=True)
        if value < (1 if name in AT_LEAST_ONE else 0):
            raise UserError(f"{where} must be at least {1 if name in AT_LEAST_ONE else 0}, got {value!r}")
        if name == "kernel" and value % 2 == 0:
            raise UserError(f"{where} must be odd (same padding keeps the image size), got {value!r}")
        return value
    value = _number(value, where)
    if name in FRACTIONS and not 0 <= value < 1:
        raise UserError(f"{where} must be in [0, 1), got {value!r}")
    if name in POSITIVE and value <= 0:
        raise UserError(f"{where} must be positive, got {value!r}")
    if value < 0:
        raise UserError(f"{where} must not be negative, got {value!r}")
    return value


def _fixed_value(name: str, value, where: str):
    allowed = _allowed_choices(name)
    if allowed is not None:
        if value not in allowed:
            raise UserError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if name == "batch_size":
        v = _number(value, where)
        if isinstance(v, float) and not float(v).is_integer():
            if not 0 < v <= 1:
                raise UserError(f"{where}: a fractional batch size must be in (0, 1], got {value!r}")
            return v
        if v < 1:
            raise UserError(f"{where} must be a positive count or a fraction in (0, 1], got {value!r}")
        return int(v) if not isinstance(value, float) or v > 1 else v
    return _check_range(name, value, where)


def _param_space(name: str, raw: dict, where: str) -> ParamSpace:
    unknown = set(raw) - PARAM_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key {min(unknown)!r}; allowed: {', '.join(sorted(PARAM_KEYS))}")
    kind = raw.get("type")
    if kind not in ("int", "float", "categorical"):
        raise UserError(f"{where}.type must be int, float or categorical, got {kind!r}")
    if kind == "categorical":
        extra = set(raw) - {"type", "choices"}
        if extra:
            raise UserError(f"{where}: {min(extra)!r} does not apply to a categorical parameter")
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise UserError(f"{where}.choices must be a non-empty list")
        choices = tuple(_fixed_value(name, c, f"{where}.choices") for c in choices)
        return ParamSpace(name, "categorical", choices=choices)
    if "choices" in raw:
        raise UserError(f"{where}: 'choices' applies only to type categorical")
    for key in ("low", "high"):
        if key not in raw:
            raise UserError(f"{where}.{key} is required for type {kind}")
    integer = kind == "int"
    low = _number(raw["low"], f"{where}.low", integer=integer)
    high = _number(raw["high"], f"{where}.high", integer=integer)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}.log must be true or false, got {log!r}")
    step = raw.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", integer=integer)
        if step <= 0:
            raise UserError(f"{where}.step must be positive, got {step!r}")
        if log:
            raise UserError(f"{where}: step and log cannot be combined (Optuna does not support it)")
    if low > high:
        raise UserError(f"{where}: low ({low}) is greater than high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: log scale needs low > 0, got {low}")
    if name != "batch_size":
        _check_range(name, low, f"{where}.low")
        _check_range(name, high, f"{where}.high")
    if low < 0:
        raise UserError(f"{where}.low must not be negative, got {low}")
    if name == "batch_size" and kind == "int" and low < 1:
        raise UserError(f"{where}.low must be at least 1 for an int batch size")
    return ParamSpace(name, kind, float(low) if kind == "float" else low, float(high) if kind == "float" else high,
                      log, step)


def _section(raw, key: str, defaults: dict, allowed: dict, where: str) -> dict:
    value = raw.get(key, defaults)
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise UserError(f"{where}.{key} must be a mapping with a 'type' key")
    kind = value.get("type", defaults["type"])
    if kind not in allowed:
        raise UserError(f"{where}.{key}.type must be one of {', '.join(allowed)}, got {kind!r}")
    options = {k: v for k, v in value.items() if k != "type"}
    unknown = set(options) - allowed[kind]
    if unknown:
        raise UserError(f"{where}.{key}: unknown option {min(unknown)!r} for {kind}; "
                        f"allowed: {', '.join(sorted(allowed[kind])) or 'none'}")
    merged = {**({k: v for k, v in defaults.items() if k in allowed[kind]} if kind == defaults["type"] else {}),
              **options, "type": kind}
    for option, v in merged.items():
        if option in ("multivariate", "group", "constant_liar"):
            if not isinstance(v, bool):
                raise UserError(f"{where}.{key}.{option} must be true or false, got {v!r}")
        elif option != "type":
            n = _number(v, f"{where}.{key}.{option}", integer=True)
            if n < 0 or (option == "reduction_factor" and n < 2) or (option == "min_resource" and n < 1):
                raise UserError(f"{where}.{key}.{option} is out of range: {v!r}")
            merged[option] = n
    return merged


def fits_data(spec: Spec, kind: str, task: str, where: str | None = None) -> None:
    """The checks that need the data's kind (image | tabular) and task: run at load time where the
    study file says them, and by optimize once a user dataset is loaded (an array file's kind and an
    `auto` task are known only then)."""
    where = where or spec.source
    label = spec.dataset
    if spec.model == "cnn" and kind != "image":
        raise UserError(f"{where}.model: cnn needs an image dataset, {label!r} is {kind}; use model: ann")
    if task not in metrics.METRICS[spec.metric][1]:
        raise UserError(f"{where}.metric: {spec.metric} does not apply to {task} dataset {label!r}")
    if ("augment" in spec.space or spec.fixed.get("augment", "none") != "none") and kind != "image":
        raise UserError(f"{where}.params.augment applies only to image datasets, {label!r} is {kind}")


def _dataset(raw, where: str, base_dir: Path | None):
    """(key, kind or None, task or None, DataSource or None) of the study's `dataset:` value."""
    dataset = raw["dataset"]
    if isinstance(dataset, dict):
        from anncnn_tune.data.source import parse_source, source_from_dict  # only user datasets need these

        # A stored spec holds the resolved source (with its kind), whose files may have moved since:
        # compare and export read it as stored; a study file's mapping is checked against the disk.
        if "kind" in dataset:
            src = source_from_dict(dataset)
        else:
            src = parse_source(dataset, base_dir=base_dir or Path.cwd(), where=f"{where}.dataset")
        kind = {"images": "image", "table": "tabular"}.get(src.kind)  # arrays: known once loaded
        return src.key, kind, None if src.task == "auto" else src.task, src
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise UserError(f"{where}.dataset: unknown dataset {dataset!r}; known: {', '.join(DATASETS)} "
                        "(or a mapping with path: and, for tables, target:)")
    info = DATASETS[dataset]
    return dataset, info.kind, info.task, None


def spec_from_dict(raw, *, source: str, name: str, base_dir: Path | None = None) -> Spec:
    where = source
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a study file must be a YAML mapping with dataset, model, metric, epochs, params")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key {min(unknown)!r}; allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("dataset", "model", "metric", "epochs", "params"):
        if key not in raw:
            raise UserError(f"{where}: missing required key {key!r}")
    dataset, kind, task, data_source = _dataset(raw, where, base_dir)
    family = raw["model"]
    if family not in models.MODELS:
        raise UserError(f"{where}.model: unknown model family {family!r}; use one of {', '.join(models.MODELS)}")
    if family == "cnn" and kind not in (None, "image"):
        raise UserError(f"{where}.model: cnn needs an image dataset, {dataset!r} is {kind}; use model: ann")
    metric = raw["metric"]
    if metric not in metrics.METRICS:
        raise UserError(f"{where}.metric: unknown metric {metric!r}; use one of {', '.join(metrics.METRICS)}")
    if task is not None and task not in metrics.METRICS[metric][1]:
        raise UserError(f"{where}.metric: {metric} does not apply to {task} dataset {dataset!r}")
    epochs = _number(raw["epochs"], f"{where}.epochs", integer=True)
    if epochs < 1:
        raise UserError(f"{where}.epochs must be at least 1, got {epochs}")
    seed = _number(raw.get("seed", 0), f"{where}.seed", integer=True)
    sampler = _section(raw, "sampler", {**DEFAULT_SAMPLER, "seed": seed}, SAMPLERS, where)
    pruner = _section(raw, "pruner", DEFAULT_PRUNER, PRUNERS, where)

    params_raw = raw["params"]
    if not isinstance(params_raw, dict) or not params_raw:
        raise UserError(f"{where}.params must be a non-empty mapping of parameter names")
    known = {**train.TRAIN_DEFAULTS, **models.PARAMS[family]}
    space: dict[str, ParamSpace] = {}
    fixed: dict = {}
    for pname, pvalue in params_raw.items():
        pwhere = f"{where}.params.{pname}"
        if pname not in known:
            raise UserError(f"{pwhere}: unknown parameter for model {family}; known: {', '.join(sorted(known))}")
        if isinstance(pvalue, dict):
            space[pname] = _param_space(pname, pvalue, pwhere)
        else:
            fixed[pname] = _fixed_value(pname, pvalue, pwhere)
    if ("augment" in space or fixed.get("augment", "none") != "none") and kind not in (None, "image"):
        raise UserError(f"{where}.params.augment applies only to image datasets, {dataset!r} is {kind}")

    subset = raw.get("subset")
    if subset is not None:
        subset = _fixed_value("batch_size", subset, f"{where}.subset")

    baselines = []
    for i, base in enumerate(raw.get("baselines") or []):
        bwhere = f"{where}.baselines[{i}]"
        if not isinstance(base, dict) or set(base) - {"name", "params", "epochs", "note"} or "params" not in base:
            raise UserError(f"{bwhere} must be a mapping with name, params (and optionally epochs, note)")
        bname = str(base.get("name") or f"baseline-{i}")
        bparams = base["params"] or {}
        for pname, value in bparams.items():
            if pname in fixed:
                if value != fixed[pname]:
                    raise UserError(f"{bwhere}.params.{pname}: {value!r} differs from the study's fixed value "
                                    f"{fixed[pname]!r}; make it searchable or drop it from the baseline")
            elif pname in space:
                if not space[pname].contains(value):
                    raise UserError(f"{bwhere}.params.{pname}: {value!r} is outside the search space "
                                    f"{space[pname].as_dict()}; widen the space or change the baseline")
            else:
                raise UserError(f"{bwhere}.params.{pname} is not a parameter of this study")
        missing = set(space) - set(bparams)
        if missing:
            raise UserError(f"{bwhere}.params is missing searchable parameter {min(missing)!r}; "
                            "a baseline fixes every searchable parameter")
        entry = {"name": bname, "params": dict(bparams)}
        if base.get("note"):
            entry["note"] = str(base["note"])
        if "epochs" in base:
            entry["epochs"] = _number(base["epochs"], f"{bwhere}.epochs", integer=True)
        baselines.append(entry)
    description = raw.get("description", "")
    return Spec(name=name, source=source, dataset=dataset, model=family, metric=metric, epochs=epochs,
                sampler=sampler, pruner=pruner, space=space, fixed=fixed, baselines=baselines, subset=subset,
                seed=seed, description=str(description).strip(), data_source=data_source)
