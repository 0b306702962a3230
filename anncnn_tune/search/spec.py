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
from anncnn_tune.search import samplers
from anncnn_tune.training import families, metrics
from anncnn_tune.training import params as P

TOP_KEYS = {"dataset", "model", "metric", "epochs", "sampler", "pruner", "params", "baselines", "subset",
            "description", "seed"}
REQUIRED = ("dataset", "model", "metric", "epochs", "params")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when"}
BASELINE_KEYS = {"name", "params", "epochs", "note", "model"}
SAMPLERS = {name: set(kind.options) for name, kind in samplers.SAMPLERS.items()}
PRUNERS = {name: set(kind.options) for name, kind in samplers.PRUNERS.items()}
DEFAULT_SAMPLER = samplers.DEFAULT_SAMPLER
DEFAULT_PRUNER = samplers.DEFAULT_PRUNER
_number = P.number  # the one number check (NaN, infinity, int64 overflow); also used by run files


def builtin_dir() -> Path:
    """The built-in study files, found from any working directory.

    They live in `studies/` at the top of the repository; a wheel ships them as the package data
    `anncnn_tune/studies` (pyproject.toml maps the folder there). An editable install does not
    apply that mapping, so a source checkout finds them beside the package instead.
    """
    packaged = Path(str(resources.files("anncnn_tune"))) / "studies"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "studies"


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
    when: tuple[P.Condition, ...] = ()  # the study file's own conditions (the declaration's come on top)

    def contains(self, value) -> bool:
        if self.type == "categorical":
            return any(P.same_value(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return self.low <= value <= self.high and (self.type == "float" or value == int(value))

    def as_dict(self) -> dict:
        d = {"type": self.type}
        if self.type == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
            if self.step is not None:
                d["step"] = self.step
        if self.when:
            d["when"] = {c.name: c.as_dict() for c in self.when}
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
    def family(self) -> families.Family:
        return families.get(self.model)

    def conditions(self, name: str, model: str | None = None) -> tuple[P.Condition, ...]:
        """When a searched parameter applies: its declaration's conditions and the study file's own."""
        declared = families.get(model or self.model).declared().get(name)
        return (*(declared.when if declared else ()), *self.space[name].when)

    def baseline_model(self, baseline: str | None) -> str:
        """The family of a trial: the study's, or a named baseline's own (a notebook CNN in a fastcnn study)."""
        for b in self.baselines:
            if b["name"] == baseline:
                return b.get("model", self.model)
        return self.model

    @property
    def direction(self) -> str:
        return metrics.direction(self.metric)

    @property
    def steps_per_epoch(self) -> int:
        """Optuna steps per epoch: 1, or K where the pruner's first rung is 1/K of an epoch."""
        return samplers.steps_per_epoch(self.pruner)

    @property
    def partial_epochs(self) -> tuple[float, ...]:
        """Fractions of the first epoch at which trials are validated for the pruner's first rungs."""
        return samplers.partial_epochs(self.pruner)

    @property
    def rungs_on_images(self) -> bool:
        """Whether partial_epochs are parts of the training images trained for the whole schedule."""
        return samplers.rungs_on_images(self.pruner)

    @property
    def first_rung_side(self) -> int | None:
        """The image side the first rung on images trains at (the pruner's first_rung_side), or None: the
        images' own."""
        return self.pruner.get("first_rung_side") or None

    def with_overrides(self, *, epochs: int | None = None, seed: int | None = None, subset=None) -> Spec:
        """The spec with command-line overrides, each checked by the same rule as in a study file."""
        changed = {}
        if subset is not None:
            changed["subset"] = P.check_size(subset, "--subset")
        if epochs is not None:
            changed["epochs"] = _at_least_one(epochs, "--epochs")
        if seed is not None:
            seed = P.check_seed(seed, "--seed")
            changed["seed"] = seed
            changed["sampler"] = {**self.sampler, "seed": seed}
        return replace(self, **changed)

    def on_dataset(self, path: str) -> Spec:
        """The same study (space, baselines, budget, pruner, metric) on the user's copy of its data: a
        file or folder of the same kind (a folder of 32x32 colour images for cifar10-cnn), stored under
        NAME-on-FOLDER so it never mixes with the study of the built-in data."""
        from anncnn_tune.data.source import parse_source, source_type
        from anncnn_tune.search.names import sanitize

        src = parse_source({"path": path}, base_dir=Path.cwd(), where="--dataset")
        kind = source_type(src.kind).data_kind
        if kind is not None:
            _family_takes(self.family, kind, path, "--dataset")
            wanted = DATASETS[self.dataset].kind if self.data_source is None else None
            if wanted is not None and wanted != kind:
                raise UserError(f"--dataset {path} holds {kind} data, study {self.name} searches {wanted} data; "
                                "pass a dataset of the same kind or another study")
        name = f"{self.name}-on-{sanitize(Path(path).resolve().name)}"[:100]
        return replace(self, name=name, dataset=src.key, data_source=src)

    def to_dict(self) -> dict:
        """The study-file form (what the study stores as its spec, service/records.py)."""
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


def suggest(spec: Spec, trial, baseline: str | None = None) -> dict:
    """Full parameter dict for one trial: suggested values over fixed ones over the declarations' defaults.

    Only active parameters are suggested (define-by-run: `when` conditions are checked against the
    values decided so far, in the space's dependency order), so a trial stores no parameter that did
    nothing; inactive ones keep their defaults. baseline: the name of the trial's baseline; one of
    another family is trained as it is written (its own recipe, nothing suggested: it lies outside
    the space the sampler models)."""
    if spec.baseline_model(baseline) != spec.model:
        other = next(b for b in spec.baselines if b["name"] == baseline)
        return {**families.get(other["model"]).defaults(), **other["params"]}
    params = {**spec.family.defaults(), **spec.fixed}
    skipped: set[str] = set()
    for name, s in spec.space.items():
        if not _applies(spec.conditions(name), params, skipped):
            skipped.add(name)
            continue
        if s.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(s.choices))
        elif s.type == "int":
            params[name] = trial.suggest_int(name, int(s.low), int(s.high), step=int(s.step or 1), log=s.log)
        else:
            params[name] = trial.suggest_float(name, s.low, s.high, step=s.step, log=s.log)
    return params


def _applies(conditions: tuple[P.Condition, ...], params: dict, skipped: set) -> bool:
    """Conditions hold on the values decided so far, and none reads a searched parameter that was
    skipped (its default would otherwise switch its dependants on: a chain stops where a link is off)."""
    return all(c.name not in skipped for c in conditions) and P.active(conditions, params)


# -- reading YAML ----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not 'the later wins'."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # merge keys (<<) first: an override of a merged key is fine
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                            key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, *, what: str, hint: str):
    """The parsed YAML of a user's file, or one UserError: a directory, unreadable, not UTF-8, bad YAML.

    what: 'study file' or 'run file'; hint: what to do about a syntax error.
    """
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; pass the YAML file inside it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise UserError(f"{path}:{where} is not valid YAML ({problem}); {hint}") from None
    except RecursionError:
        raise UserError(f"{path}: the YAML is nested too deeply to be a {what}; {hint}") from None


# -- loading and validation -------------------------------------------------------------------------


class UnknownStudy(UserError):
    """--study is neither a path, a built-in study name nor NAME.yaml in the working folder (the
    launcher then looks for a stored study of that name before it says so)."""


def resolve_path(study: str, note=None) -> Path:
    """`--study` is a built-in study name, a path to a YAML file, or NAME where NAME.yaml (or .yml) is
    in the working folder; note(line) is told when it is the last (a bare name the user gave
    expecting their own file, which a built-in study of that name would take first)."""
    try:
        return _resolve_path(study, note)
    except OSError as exc:  # a name the file system refuses (too long, say)
        raise UserError(f"cannot use --study {P.short(study)}: {exc.strerror or exc}; pass a built-in study "
                        "name or a path to a YAML file") from None


def _resolve_path(study: str, note=None) -> Path:
    if "\x00" in study or len(study) > 4096:
        raise UserError(f"--study {P.short(study)} is neither a built-in study name nor a usable path")
    if study.endswith((".yaml", ".yml")) or "/" in study or Path(study).exists():
        path = Path(study)
        if path.is_dir():
            raise UserError(f"study file {study} is a directory; pass a YAML file (or a built-in study name)")
        if not path.is_file():
            raise UserError(f"study file {study} does not exist; pass a built-in study name "
                            f"({', '.join(builtin_names())}) or a path to a YAML file")
        return path
    path = builtin_dir() / f"{study}.yaml"
    if path.is_file():
        return path
    for here in (Path(f"{study}.yaml"), Path(f"{study}.yml")):
        if here.is_file():
            if note is not None:
                note(f"--study {study}: using the study file ./{here} (no built-in study has that name)")
            return here
    raise UnknownStudy(f"unknown study {study!r}; built-in studies: {', '.join(builtin_names())} "
                       "(or pass a path to a YAML file, or the name of a study in the storage)")


def load_spec(study: str, note=None) -> Spec:
    path = resolve_path(study, note)
    raw = read_yaml(path, what="study file", hint="fix the syntax")
    return spec_from_dict(raw, source=str(path), name=path.stem, base_dir=path.parent)


# Shape checks: run before any value is looked at, so no structure reaches code that assumes another.


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", type(None): "empty"}.get(
        type(value), type(value).__name__)


def mapping(value, where: str, what: str = "a mapping") -> dict:
    """A mapping whose keys are all text, or a UserError naming `where`."""
    if not isinstance(value, dict):
        raise UserError(f"{where} must be {what}, got {_kind(value)}")
    odd = [k for k in value if not isinstance(k, str)]
    if odd:
        raise UserError(f"{where}: key {odd[0]!r} must be a name (text), got {_kind(odd[0])}")
    return value


def text(value, where: str, what: str = "text") -> str:
    if not isinstance(value, str):
        raise UserError(f"{where} must be {what}, got {_kind(value)} {P.short(value)}")
    return value


def _unknown(keys, allowed, where: str, noun: str = "key") -> None:
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise UserError(f"{where}: unknown {noun} {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")


def _at_least_one(value, where: str) -> int:
    n = P.number(value, where, integer=True)
    if n < 1:
        raise UserError(f"{where} must be at least 1, got {n}")
    return n


def _fixed_value(param: P.Param, value, where: str):
    if isinstance(value, list):
        raise UserError(f"{where} must be a single value, or a mapping {{type: ..., ...}} to search it; "
                        f"got a list (a categorical search is {{type: categorical, choices: [...]}})")
    return param.check(value, where)


def _param_space(param: P.Param, raw: dict, where: str) -> ParamSpace:
    """A searched parameter's `{type: ...}` mapping, checked against its declaration."""
    _unknown(raw, PARAM_KEYS, where)
    kind = raw.get("type")
    if kind not in ("int", "float", "categorical"):
        raise UserError(f"{where}.type must be int, float or categorical, got {P.short(kind)}")
    if kind == "categorical":
        return _categorical_space(param, raw, where)
    return _range_space(param, raw, kind, where)


def _categorical_space(param: P.Param, raw: dict, where: str) -> ParamSpace:
    """`{type: categorical, choices: [...]}`: a non-empty list of distinct values the parameter takes."""
    extra = sorted(set(raw) - {"type", "choices"})
    if extra:
        raise UserError(f"{where}: {extra[0]!r} does not apply to a categorical parameter")
    choices = raw.get("choices")
    if not isinstance(choices, list) or not choices:
        raise UserError(f"{where}.choices must be a non-empty list")
    checked = []
    for i, c in enumerate(choices):
        value = _fixed_value(param, c, f"{where}.choices[{i}]")
        if any(P.same_value(value, seen) for seen in checked):
            raise UserError(f"{where}.choices lists {value!r} twice; list each choice once")
        checked.append(value)
    return ParamSpace(param.name, "categorical", choices=tuple(checked))


def _range_space(param: P.Param, raw: dict, kind: str, where: str) -> ParamSpace:
    """`{type: int|float, low, high, log, step}`: a range Optuna can sample whose values the parameter takes."""
    _range_applies(param, raw, kind, where)
    integer = kind == "int"
    low, high = (P.number(raw[key], f"{where}.{key}", integer=integer) for key in ("low", "high"))
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}.log must be true or false, got {P.short(log)}")
    step = _step(raw.get("step"), log, integer, where)
    _check_range(low, high, log, step, where)
    # Both ends of the range must be valid fixed values; the batch size as a float range is a fraction.
    _fixed_value(param, low, f"{where}.low")
    _fixed_value(param, high, f"{where}.high")
    if param.odd and low != high and (step is None or step % 2):
        raise UserError(f"{where}: {param.name} takes odd values only; search it with step: 2 from an odd low "
                        "(or with categorical choices)")
    if kind == "float":
        low, high = float(low), float(high)
    return ParamSpace(param.name, kind, low, high, log, step)


def _range_applies(param: P.Param, raw: dict, kind: str, where: str) -> None:
    """A range fits the declaration (no options list, integers searched as int) and has both ends."""
    if "choices" in raw:
        raise UserError(f"{where}: 'choices' applies only to type categorical")
    if param.options is not None:
        raise UserError(f"{where}: {param.name} takes one of {P.listing(param.options)}; search it with "
                        "type: categorical and choices: [...]")
    if param.kind == "int" and kind == "float":
        raise UserError(f"{where}: {param.name} takes integers; search it with type: int")
    for key in ("low", "high"):
        if key not in raw:
            raise UserError(f"{where}.{key} is required for type {kind}")


def _step(step, log: bool, integer: bool, where: str):
    """A range's `step:`: None, or a positive number (an integer for an int range); never with log."""
    if step is None:
        return None
    step = P.number(step, f"{where}.step", integer=integer)
    if step <= 0:
        raise UserError(f"{where}.step must be positive, got {step!r}")
    if log:
        raise UserError(f"{where}: step and log cannot be combined (Optuna does not support it)")
    return step


def _check_range(low, high, log: bool, step, where: str) -> None:
    """The ends in order, a log range above 0, and a step that fits the range a whole number of times."""
    if low > high:
        raise UserError(f"{where}: low ({low}) is greater than high ({high})")
    if log and low <= 0:
        raise UserError(f"{where}: log scale needs low > 0, got {low}")
    if step is not None and not math.isfinite((high - low) / step):
        raise UserError(f"{where}.step {step} is too small for the range {low}..{high}; use a larger step")
    if step is not None and not _divides(step, low, high):
        raise UserError(f"{where}: step {step} does not divide the range {low}..{high}; make high - low a "
                        f"multiple of step (high: {_last_on_grid(low, high, step)}, say)")


def _divides(step, low, high) -> bool:
    if isinstance(step, int):
        return (high - low) % step == 0
    ratio = (high - low) / step
    return math.isfinite(ratio) and abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


def _last_on_grid(low, high, step):
    last = low + math.floor((high - low) / step + 1e-9) * step
    return last if isinstance(step, int) else float(f"{last:.12g}")


def _dataset(value, where: str, base_dir: Path | None):
    """(key, kind, task, DataSource or None) of the dataset entry: a built-in name, or a mapping
    describing the user's own file. kind (image | tabular) and task are None where only loading
    tells them (an array file's kind, an `auto` task): optimize checks those with fits_data."""
    if isinstance(value, dict):
        from anncnn_tune.data.source import parse_source, source_from_dict, source_type  # user data only

        # A stored spec holds the resolved source (with its kind), whose files may have moved since:
        # compare and export read it as stored; a study file's mapping is checked against the disk.
        if "kind" in value:
            src = source_from_dict(value)
        else:
            src = parse_source(value, base_dir=base_dir or Path.cwd(), where=f"{where}.dataset")
        kind = source_type(src.kind).data_kind
        return src.key, kind, None if src.task == "auto" else src.task, src
    if not isinstance(value, str) or value not in DATASETS:
        raise UserError(f"{where}.dataset: unknown dataset {P.short(value)}; known: {', '.join(DATASETS)}")
    info = DATASETS[value]
    return value, info.kind, info.task, None


def fits_data(spec: Spec, kind: str, task: str) -> None:
    """The checks that need the data's kind and task, for a user dataset once it is loaded."""
    where, dataset = spec.source, spec.dataset
    _family_takes(spec.family, kind, dataset, where)
    _metric_takes(spec.metric, task, dataset, where)
    _image_only_fits(spec.family, kind, dataset, spec.space, spec.fixed, where)
    _task_only(spec.family.declared(), spec.space, spec.fixed, task, dataset, where)
    _first_rung_fits(spec.pruner, kind, dataset, where)


def _first_rung_fits(pruner: dict, kind: str, dataset: str, where: str) -> None:
    if pruner.get("first_rung_side") and kind != "image":
        raise UserError(f"{where}.pruner.first_rung_side downsamples images, {dataset!r} is {kind}: drop it")


def fits_shape(spec: Spec, input_shape: tuple[int, ...]) -> None:
    """The checks that need the images' size, once the data is loaded: a first rung at a lower resolution
    must be lower than the images' own."""
    side = spec.first_rung_side
    if side and side >= min(input_shape[1:]):
        raise UserError(f"{spec.source}.pruner.first_rung_side: {side} is not below the images' own side "
                        f"({input_shape[1]}x{input_shape[2]} in {spec.dataset}); give a smaller side, or 0 to train "
                        "every rung at their own size")


def _task_only(known: dict, space, fixed: dict, task: str | None, dataset, where: str) -> None:
    """A parameter declared for some tasks only (Param.tasks) is refused elsewhere, not silently ignored."""
    for pname, param in known.items():
        if (param.tasks is not None and task is not None and task not in param.tasks
                and (pname in space or fixed.get(pname, param.default) != param.default)):
            raise UserError(f"{where}.params.{pname} applies only to {' and '.join(param.tasks)} tasks, "
                            f"{dataset!r} is {task}: remove it")


def spec_from_dict(raw, *, source: str, name: str, base_dir: Path | None = None) -> Spec:
    """A validated Spec: shapes first (mappings, lists, text), then values; one UserError naming the key.

    base_dir: the folder relative paths in the file are read from (the study file's folder).
    Each key is checked in the order a reader meets it, so the first mistake in the file is the one told.
    """
    where = source
    _check_top_level(raw, where)
    dataset, kind, task, data_source = _dataset(raw["dataset"], where, base_dir)
    family = _model(raw["model"], kind, dataset, where)
    metric = _metric(raw["metric"], task, dataset, where)
    epochs = _at_least_one(raw["epochs"], f"{where}.epochs")
    seed = P.check_seed(raw.get("seed", 0), f"{where}.seed")
    sampler = samplers.parse_section(raw.get("sampler"), "sampler", where,
                                     defaults={**DEFAULT_SAMPLER, "seed": seed})
    pruner = samplers.parse_section(raw.get("pruner"), "pruner", where)
    space, fixed = _params(raw["params"], family, where)
    if kind is not None:  # a user's array file tells its kind only once loaded: fits_data checks it then
        _image_only_fits(families.get(family), kind, dataset, space, fixed, where)
        _first_rung_fits(pruner, kind, dataset, where)
    _task_only(families.get(family).declared(), space, fixed, task, dataset, where)  # task None: fits_data
    subset = raw.get("subset")
    if subset is not None:
        subset = P.check_size(subset, f"{where}.subset")
    baselines = _baselines(raw.get("baselines"), family, space, fixed, where)
    description = _description(raw.get("description", ""), where)
    return Spec(name=name, source=source, dataset=dataset, model=family, metric=metric, epochs=epochs,
                sampler=sampler, pruner=pruner, space=space, fixed=fixed, baselines=baselines, subset=subset,
                seed=seed, description=description, data_source=data_source)


def _check_top_level(raw, where: str) -> None:
    """A mapping of known keys with every required one."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a study file must be a YAML mapping with dataset, model, metric, epochs, params")
    mapping(raw, where)
    _unknown(raw, TOP_KEYS, where)
    for key in REQUIRED:
        if key not in raw:
            raise UserError(f"{where}: missing required key {key!r}")


def _model(family, kind: str | None, dataset: str, where: str) -> str:
    """The `model:` entry: a registered family that takes the data's kind (where it is known yet)."""
    if not isinstance(family, str) or family not in families.FAMILIES:
        raise UserError(f"{where}.model: unknown model family {P.short(family)}; "
                        f"use one of {', '.join(families.FAMILIES)}")
    if kind is not None:
        _family_takes(families.get(family), kind, dataset, where)
    return family


def _metric(metric, task: str | None, dataset: str, where: str) -> str:
    """The `metric:` entry: a known metric that applies to the data's task (where it is known yet)."""
    if not isinstance(metric, str) or metric not in metrics.METRICS:
        raise UserError(f"{where}.metric: unknown metric {P.short(metric)}; "
                        f"use one of {', '.join(metrics.METRICS)}")
    if task is not None:
        _metric_takes(metric, task, dataset, where)
    return metric


def _metric_takes(metric: str, task: str, dataset: str, where: str) -> None:
    if task not in metrics.METRICS[metric][1]:
        usable = [m for m, (_, tasks) in metrics.METRICS.items() if task in tasks]
        raise UserError(f"{where}.metric: {metric} does not apply to {task} dataset {dataset!r}; "
                        f"use one of {', '.join(usable)}")


def _image_only_fits(family: families.Family, kind: str, dataset: str, space: dict, fixed: dict, where: str) -> None:
    """An image-only parameter (augmentation, say) is neither searched nor moved off its default on other data."""
    for pname, param in family.declared().items():
        if param.image_only and kind != "image" and (pname in space or fixed.get(pname, param.default) != param.default):
            raise UserError(f"{where}.params.{pname} applies only to image datasets, {dataset!r} is {kind}")


def _params(params_raw, family: str, where: str) -> tuple[dict[str, ParamSpace], dict]:
    """(space, fixed) of the `params:` mapping: a mapping entry is searched, a value is fixed. The
    space comes in dependency order (a parameter after those its `when` reads)."""
    mapping(params_raw, f"{where}.params", "a mapping of parameter names")
    if not params_raw:
        raise UserError(f"{where}.params must be a non-empty mapping of parameter names")
    known = families.get(family).declared()
    space: dict[str, ParamSpace] = {}
    fixed: dict = {}
    own_when: dict[str, object] = {}
    for pname, pvalue in params_raw.items():
        pwhere = f"{where}.params.{pname}"
        if pname not in known:
            raise UserError(f"{pwhere}: unknown parameter for model {family}; known: {', '.join(sorted(known))}")
        if isinstance(pvalue, dict):
            pvalue = dict(mapping(pvalue, pwhere))
            if "when" in pvalue:  # read once every parameter is known: a condition may name a later one
                own_when[pname] = pvalue.pop("when")
            space[pname] = _param_space(known[pname], pvalue, pwhere)
        else:
            fixed[pname] = _fixed_value(known[pname], pvalue, pwhere)
    for pname, raw_when in own_when.items():
        space[pname] = replace(space[pname], when=_conditions(raw_when, f"{where}.params.{pname}.when", pname,
                                                              known, space, fixed))
    return _dependency_order(space, known, f"{where}.params"), fixed


def _baselines(baselines_raw, family: str, space: dict, fixed: dict, where: str) -> list[dict]:
    if baselines_raw is None:
        return []
    if not isinstance(baselines_raw, list):
        raise UserError(f"{where}.baselines must be a list of mappings (name, params), got {_kind(baselines_raw)}")
    return [_baseline(base, f"{where}.baselines[{i}]", i, family, space, fixed) for i, base in enumerate(baselines_raw)]


def _description(description, where: str) -> str:
    if description is None:
        return ""
    return text(description, f"{where}.description").strip()


def _family_takes(family: families.Family, kind: str, dataset: str, where: str) -> None:
    if not family.takes(kind):
        usable = ", ".join(f.name for f in families.for_data(kind))
        needs = " or ".join({"image": "an image dataset", "tabular": "a table"}[k] for k in family.inputs)
        raise UserError(f"{where}.model: {family.name} needs {needs}, {dataset!r} is {kind}; use model: {usable}")


def _conditions(raw, where: str, name: str, known: dict, space: dict, fixed: dict) -> tuple[P.Condition, ...]:
    """A study file's `when:` on a searched parameter: {other: value | [values] | {low, high}}, every
    clause checked against the other parameter's declaration."""
    mapping(raw, where, "a mapping {parameter: value, [values] or {low: ..., high: ...}}")
    if not raw:
        raise UserError(f"{where} must name at least one parameter")
    out = []
    for other, value in raw.items():
        cwhere = f"{where}.{other}"
        if other == name:
            raise UserError(f"{cwhere}: a parameter cannot depend on itself")
        if other not in known:
            raise UserError(f"{cwhere}: unknown parameter; known: {', '.join(sorted(known))}")
        if other not in space and other not in fixed:
            raise UserError(f"{cwhere}: {other} is neither searched nor set by this study, so the condition "
                            "could never change; drop it or set the parameter")
        param = known[other]
        if isinstance(value, dict):
            _unknown(value, {"low", "high"}, cwhere)
            if not value or param.kind not in ("int", "float"):
                raise UserError(f"{cwhere}: a range {{low, high}} needs a numeric parameter and at least one end")
            ends = {k: P.number(v, f"{cwhere}.{k}") for k, v in value.items()}
            out.append(P.Condition(other, low=ends.get("low"), high=ends.get("high")))
        else:
            values = value if isinstance(value, list) else [value]
            if not values:
                raise UserError(f"{cwhere} must list at least one value")
            out.append(P.Condition(other, tuple(param.check(v, cwhere) for v in values)))
        if not _can_hold(out[-1], space, fixed):
            s = space.get(other)
            held = (f"fixed at {P.short(fixed[other])}" if s is None else f"searched over {list(s.choices)}"
                    if s.type == "categorical" else f"searched over {s.low}..{s.high}")
            raise UserError(f"{cwhere}: {out[-1].text()} never holds ({other} is {held}), so {name} would never "
                            "be searched; change the condition or the parameter")
    return tuple(out)


def _can_hold(condition: P.Condition, space: dict, fixed: dict) -> bool:
    """Whether some value the study gives the parent meets the condition."""
    name = condition.name
    if name in fixed:
        return condition.holds(fixed)
    s = space[name]
    if s.type == "categorical":
        return any(condition.holds({name: c}) for c in s.choices)
    if condition.values is not None:
        return any(s.contains(v) for v in condition.values)
    return ((condition.low is None or condition.low <= s.high) and (condition.high is None or condition.high >= s.low)
            and (condition.low is None or condition.high is None or condition.low <= condition.high))


def _dependency_order(space: dict, known: dict, where: str) -> dict:
    """The space ordered so that each parameter comes after the searched ones its conditions read
    (suggest decides them in this order); a cycle is an error."""
    def parents(name):
        declared = known[name].when
        return {c.name for c in (*declared, *space[name].when) if c.name in space}

    ordered: dict = {}
    pending = list(space)
    while pending:
        ready = [n for n in pending if parents(n) <= set(ordered)]
        if not ready:
            raise UserError(f"{where}: the `when` conditions of {', '.join(pending)} depend on each other in a "
                            "cycle; make one of them unconditional")
        for n in ready:
            ordered[n] = space[n]
        pending = [n for n in pending if n not in ordered]
    return ordered


def _baseline(base, bwhere: str, i: int, family: str, space: dict, fixed: dict) -> dict:
    """A baseline: every active searchable parameter fixed inside the space. `model:` may name another
    family of the same side (the notebooks' CNN in a fast-CNN study): such a baseline is a reference
    trained by its own recipe, so its parameters are checked against its family's declarations only
    (the ones it leaves out take their defaults), not against the study's space."""
    if not isinstance(base, dict) or "params" not in base:
        raise UserError(f"{bwhere} must be a mapping with name, params (and optionally epochs, note, model)")
    mapping(base, bwhere)
    _unknown(base, BASELINE_KEYS, bwhere)
    model = _baseline_model(base.get("model", family), family, bwhere)
    bname = base.get("name")
    bname = f"baseline-{i}" if bname in (None, "") else text(bname, f"{bwhere}.name")
    bparams = base["params"] if base["params"] is not None else {}
    mapping(bparams, f"{bwhere}.params", "a mapping of parameter values")
    if model != family:
        checked = _own_recipe(bparams, model, bwhere)
    else:
        checked = _inside_space(bparams, family, space, fixed, bwhere)
    entry = {"name": bname, "params": checked}
    if model != family:
        entry["model"] = model
    note = base.get("note")
    if note not in (None, ""):
        entry["note"] = text(note, f"{bwhere}.note")
    if "epochs" in base:
        entry["epochs"] = _at_least_one(base["epochs"], f"{bwhere}.epochs")
    return entry


def _baseline_model(model, family: str, bwhere: str) -> str:
    """A baseline's family: the study's, or another on the same side (image or table models)."""
    if model not in families.FAMILIES or families.side(model) != families.side(family):
        same = [f for f in families.FAMILIES if families.side(f) == families.side(family)]
        raise UserError(f"{bwhere}.model must be a family on the study's side ({', '.join(same)}), "
                        f"got {P.short(model)}")
    return model


def _own_recipe(bparams: dict, model: str, bwhere: str) -> dict:
    """A baseline of another family: each value checked against that family's declarations."""
    known = families.get(model).declared()
    checked = {}
    for pname, value in bparams.items():
        pwhere = f"{bwhere}.params.{pname}"
        if pname not in known:
            raise UserError(f"{pwhere} is not a parameter of model {model}; known: {', '.join(sorted(known))}")
        checked[pname] = _fixed_value(known[pname], value, pwhere)
    return checked


def _inside_space(bparams: dict, family: str, space: dict, fixed: dict, bwhere: str) -> dict:
    """A baseline of the study's family: each value equal to the study's fixed one or inside the space,
    and every searched parameter that applies to it (under its own values) given."""
    known = families.get(family).declared()
    checked = {}
    for pname, value in bparams.items():
        pwhere = f"{bwhere}.params.{pname}"
        if pname not in fixed and pname not in space:
            raise UserError(f"{pwhere} is not a parameter of this study")
        value = _fixed_value(known[pname], value, pwhere)
        if pname in fixed:
            if not P.same_value(value, fixed[pname]):
                raise UserError(f"{pwhere}: {value!r} differs from the study's fixed value "
                                f"{fixed[pname]!r}; make it searchable or drop it from the baseline")
        elif not space[pname].contains(value):
            raise UserError(f"{pwhere}: {value!r} is outside the search space "
                            f"{space[pname].as_dict()}; widen the space or change the baseline")
        checked[pname] = value
    decided = {**families.get(family).defaults(), **fixed, **checked}
    skipped = set()
    for n, s in space.items():  # in dependency order, as suggest decides them
        if not _applies((*known[n].when, *s.when), decided, skipped):
            skipped.add(n)
        elif n not in checked:
            raise UserError(f"{bwhere}.params is missing searchable parameter {n!r}; "
                            "a baseline fixes every searchable parameter that applies to it")
    return checked
