"""Samplers and pruners: one table from a study file's name to its options and its Optuna constructor.

The study-file validator (spec.py) checks a `sampler:` or `pruner:` section against the same
table that builds the object, so an option is either accepted and passed on, or refused at load
time; there is no third place that knows what `hyperband` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import optuna

from anncnn_tune.errors import UserError
from anncnn_tune.training.params import SEED_MAX, Param


class Spec(Protocol):
    """What the constructors read of a study's spec (search/spec.py's Spec; a Protocol here, so that
    this table, which spec.py reads, does not import spec.py back)."""

    source: str
    epochs: int
    sampler: dict
    pruner: dict
    space: dict


@dataclass(frozen=True)
class Kind:
    """One sampler or pruner: its options (as parameter declarations) and how to build it."""

    options: dict[str, Param]
    build: Callable[[dict, int], object]  # (options, the study's budget in steps) -> sampler or pruner


def _opts(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in params}


SEED = Param("seed", "sampler", "int", 0, "sampler seed", low=0, high=SEED_MAX)
N_STARTUP = Param("n_startup_trials", "sampler", "int", 10, "random trials before the model starts", low=0)


def _flag(name: str, text: str) -> Param:
    return Param(name, "sampler", "bool", False, text)


SAMPLERS: dict[str, Kind] = {
    "tpe": Kind(_opts(SEED, N_STARTUP, _flag("multivariate", "joint TPE"), _flag("group", "group conditional params"),
                      _flag("constant_liar", "spread parallel workers")),
                lambda o, _steps: optuna.samplers.TPESampler(**o)),
    "random": Kind(_opts(SEED), lambda o, _steps: optuna.samplers.RandomSampler(**o)),
    # CMA-ES and the GP model continuous parameters only: a categorical one (optimizer, activation) is drawn
    # at random, as documented, instead of a warning line per parameter per trial in the user's terminal.
    "cmaes": Kind(_opts(SEED, N_STARTUP),
                  lambda o, _steps: optuna.samplers.CmaEsSampler(**o, warn_independent_sampling=False)),
    "gp": Kind(_opts(SEED, N_STARTUP),
               lambda o, _steps: optuna.samplers.GPSampler(**o, warn_independent_sampling=False)),
    # Needs the search space as well: make_sampler builds it from grid_space(spec).
    "grid": Kind(_opts(SEED), lambda o, _steps: None),
}
GRID_MAX = 100_000  # more combinations than any search here could visit: a mistake in the space

MIN_RESOURCE = Param("min_resource", "pruner", "resource", 1,
                     "epochs before the first rung; 1/K of an epoch (0.5, 0.111) puts the first rungs inside the "
                     "first epoch, after a seeded part of the training split")
REDUCTION = Param("reduction_factor", "pruner", "int", 3, "keep 1/reduction_factor per rung", low=2)
BOOTSTRAP = Param("bootstrap_count", "pruner", "int", 0, "trials that must reach a rung before any is promoted",
                  low=0)
RESOURCE = Param("resource", "pruner", "choice", "epochs",
                 "what the rungs below one epoch cut: epochs (validate after a seeded part of the first epoch) "
                 "or images (train the whole schedule on a seeded, stratified part of the training images, "
                 "then on more; the full run is not pruned)", choices=("epochs", "images"))

FIRST_RUNG_SIDE = Param("first_rung_side", "pruner", "int", 0,
                        "with resource: images, train the first rung on the images downsampled to this side "
                        "(16 for 32x32 images: about 0.3x the rung's convolutions); 0 keeps their own size",
                        low=0)

PRUNERS: dict[str, Kind] = {
    # Hyperband's largest bracket spans the whole budget; the resources arrive in steps (make_pruner).
    "hyperband": Kind(_opts(MIN_RESOURCE, REDUCTION, BOOTSTRAP),
                      lambda o, steps: optuna.pruners.HyperbandPruner(max_resource=steps, **o)),
    "median": Kind(_opts(Param("n_startup_trials", "pruner", "int", 5, "trials before pruning starts", low=0),
                         Param("n_warmup_steps", "pruner", "int", 0, "epochs before a trial can be pruned", low=0)),
                   lambda o, _steps: optuna.pruners.MedianPruner(**o)),
    # Rungs on parts of the images only here: a Hyperband bracket that judges late would still train
    # its trials on every part below its first rung, for nothing.
    "successive_halving": Kind(_opts(MIN_RESOURCE, REDUCTION, BOOTSTRAP, RESOURCE, FIRST_RUNG_SIDE),
                               lambda o, _steps: optuna.pruners.SuccessiveHalvingPruner(**o)),
    "none": Kind({}, lambda o, _steps: optuna.pruners.NopPruner()),
}

DEFAULT_SAMPLER = {"type": "tpe", "multivariate": True, "group": True, "seed": 0}
DEFAULT_PRUNER = {"type": "hyperband", "min_resource": 1, "reduction_factor": 3}
SECTIONS = {"sampler": (SAMPLERS, DEFAULT_SAMPLER), "pruner": (PRUNERS, DEFAULT_PRUNER)}


def parse_section(value, key: str, where: str, *, defaults: dict | None = None) -> dict:
    """A validated `sampler:` or `pruner:` section (a mapping with 'type', or just the type's name).

    The default options fill in only when the type is the default type: `{type: random}` gets
    none of TPE's. `defaults` overrides the table's (the study's seed goes into the sampler's).
    """
    table, table_defaults = SECTIONS[key]
    defaults = defaults or table_defaults
    if value is None:
        value = dict(defaults)
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise UserError(f"{where}.{key} must be a mapping with a 'type' key (or a type name), got "
                        f"{type(value).__name__}")
    kind = value.get("type", defaults["type"])
    if not isinstance(kind, str) or kind not in table:
        raise UserError(f"{where}.{key}.type must be one of {', '.join(table)}, got {kind!r}")
    allowed = table[kind].options
    options = {k: v for k, v in value.items() if k != "type"}
    unknown = sorted(map(str, set(options) - set(allowed)))
    if unknown:
        raise UserError(f"{where}.{key}: unknown option {unknown[0]!r} for {kind}; "
                        f"allowed: {', '.join(sorted(allowed)) or 'none'}")
    base = {k: v for k, v in defaults.items() if k in allowed} if kind == defaults["type"] else {}
    merged = {**base, **options}
    checked = {name: allowed[name].check(v, f"{where}.{key}.{name}") for name, v in merged.items()}
    if checked.get("resource") == "images" and checked.get("min_resource", 1) >= 1:
        raise UserError(f"{where}.{key}.resource: images cuts the training images below one epoch's worth, so "
                        "min_resource must be a fraction 1/K (0.111, 0.333); give one, or use resource: epochs")
    if checked.get("first_rung_side") and checked.get("resource") != "images":
        raise UserError(f"{where}.{key}.first_rung_side downsamples the images of the first rung on part of the "
                        "training images; add resource: images, or drop first_rung_side")
    return {**checked, "type": kind}


def grid_space(spec: Spec) -> dict[str, list]:
    """Every value of every searched parameter, for Optuna's GridSampler: categorical choices, and int or
    float ranges with a step (an int range without one steps by 1). A continuous or log range has no
    grid: a UserError that names it."""
    space = {}
    for name, s in spec.space.items():
        if s.type == "categorical":
            space[name] = list(s.choices)
        elif s.log or (s.type == "float" and s.step is None):
            raise UserError(f"{spec.source}: sampler grid needs a finite set of values, but search.{name} is a "
                            f"{'log' if s.log else 'continuous'} range; give it a step (not log), choices, or "
                            "fix it")
        else:
            step = s.step or 1
            count = round((s.high - s.low) / step) + 1
            values = [s.low + i * step for i in range(count) if s.low + i * step <= s.high + 1e-12]
            space[name] = [int(v) for v in values] if s.type == "int" else [round(v, 12) for v in values]
    size = grid_size_of(space)
    if size > GRID_MAX:
        raise UserError(f"{spec.source}: the grid has {size:,} combinations (more than {GRID_MAX:,}); use larger "
                        "steps, fewer choices or another sampler")
    return space


def grid_size_of(space: dict[str, list]) -> int:
    size = 1
    for values in space.values():
        size *= len(values)
    return size


def grid_size(spec: Spec) -> int | None:
    """The number of grid combinations of a grid-sampled study (None for any other sampler)."""
    return grid_size_of(grid_space(spec)) if spec.sampler["type"] == "grid" else None


def make_sampler(spec: Spec, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler, as worker number `worker` (0-based) of a launch runs it. Each worker draws
    from its own stream (the seed plus its number): N workers with one seed would propose the same
    random configurations during the startup trials, and run each of them N times."""
    options = {k: v for k, v in spec.sampler.items() if k != "type"}
    if worker and "seed" in options:
        options["seed"] = (options["seed"] + worker) % (SEED_MAX + 1)
    if spec.sampler["type"] == "grid":
        return optuna.samplers.GridSampler(grid_space(spec), **options)
    return SAMPLERS[spec.sampler["type"]].build(options, spec.epochs)


def make_pruner(spec: Spec) -> optuna.pruners.BasePruner:
    options = {k: v for k, v in spec.pruner.items() if k not in ("type", "resource", "first_rung_side")}
    per_epoch = steps_per_epoch(spec.pruner)
    if "min_resource" in options:  # in steps: 1/K of an epoch is one step of a K-step epoch
        options["min_resource"] = round(options["min_resource"] * per_epoch)
    return PRUNERS[spec.pruner["type"]].build(options, spec.epochs * per_epoch)


# -- rungs inside the first epoch ------------------------------------------------------------------
# A pruner whose min_resource is 1/K of an epoch judges trials after parts of the first epoch: the
# first 1/K of the trial's (seeded) shuffled training split, then reduction_factor times as much, and
# so on up to the whole epoch. Optuna counts a trial's steps in whole numbers, so such a study's
# step is 1/K of an epoch (epoch e is step e*K), and every trial reports at the same steps: a rung
# compares values after the same amount of training (the pruner compares like with like).


def steps_per_epoch(pruner: dict) -> int:
    """Optuna steps per epoch for a study with this pruner: K where min_resource is 1/K, else 1."""
    amount = pruner.get("min_resource", 1)
    return 1 if amount >= 1 else round(1 / amount)


def rungs_on_images(pruner: dict) -> bool:
    """Whether the rungs below one epoch are parts of the training images (resource: images): each such
    rung trains the trial's whole schedule on min_resource * reduction**j of the images (seeded and
    stratified, the smaller part inside the larger), so every rung compares finished schedules; then the
    full run trains on all images, unpruned. A triangular or one-cycle schedule only pays at its end, and
    a rung inside its first epoch would favour whatever learns fastest early (the notebook CNNs' Adam)."""
    return pruner.get("resource", "epochs") == "images" and steps_per_epoch(pruner) > 1


def partial_epochs(pruner: dict) -> tuple[float, ...]:
    """The fractions where this pruner's rungs below one epoch fall (min_resource * reduction**j < 1): of
    the first epoch, or of the training images where rungs_on_images."""
    per_epoch = steps_per_epoch(pruner)
    reduction = int(pruner.get("reduction_factor", REDUCTION.default))
    fractions, step = [], 1
    while per_epoch > 1 and step < per_epoch:
        fractions.append(step / per_epoch)
        step *= reduction
    return tuple(fractions)
