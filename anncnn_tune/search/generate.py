"""Search spaces generated to fit a dataset: from an inspected Schema to an ANN (and a CNN) study.

`init` calls `generate` with what `data.source.inspect` found and writes the result with `to_yaml`.
Every number below is a rule of thumb stated where it is applied; each rule that fired is also
returned as a sentence (`Plan.reasons`), so the study file's header says why its space looks so.

The two files of a pair share everything compare checks for fairness (data, seed and hence
splits, epoch budget, sampler, pruner, metric), and the searchable training parameters, so the
only difference between them is the model family.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import yaml

from anncnn_tune.data.base import HOLDOUT, VAL_FRACTION
from anncnn_tune.training import families
from anncnn_tune.training import params as P

# A binary target whose minority class is under this share of the rows is "imbalanced": accuracy
# would reward predicting the majority (Telco churn, 26.5% positive, is scored by ROC AUC).
IMBALANCED_BINARY = 0.35
# A multiclass target whose smallest class has under this fraction of the largest's rows gets the
# balanced class-weight choice.
IMBALANCED_MULTICLASS = 0.5
# Augmentation is offered only to images at least this wide and sets at least this large: on 8x8
# images a 2-pixel translation is a quarter of the picture, and a few hundred images are too few
# for the search to tell an augmentation's effect from noise within the budget.
MIN_AUGMENT_SIDE = 16
MIN_AUGMENT_SAMPLES = 500


@dataclass
class Plan:
    """The choices both studies of a pair share, and why they were made."""

    task: str
    metric: str
    epochs: int
    n_train: int
    batch_sizes: list[int]
    augment: list[str]
    class_weight: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def baseline_batch(self) -> int:
        """The choice nearest to 64 (the references' usual batch), so a baseline always fits the space."""
        return min(self.batch_sizes, key=lambda b: (abs(math.log2(b) - 6), b))


def _pow2_floor(n: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(n, 1))))


def _minority_share(counts: dict | None) -> float | None:
    if not counts:
        return None
    values = [int(v) for v in counts.values()]
    return min(values) / sum(values) if sum(values) else None


def _training_rows(schema) -> int:
    """How many rows the training split will hold, by the data layer's own split rules."""
    given = schema.splits or {}
    if "val" in given:  # train/ and val/ folders: used as they are
        return int(given["train"])
    if "test" in given:  # a held-out test set: validation is a fraction of the training part
        return round(given["train"] * (1 - VAL_FRACTION))
    return round(int(schema.n_samples) * (1 - 2 * HOLDOUT))  # the seeded 70/15/15 split


def plan(schema) -> Plan:
    """Metric, epochs, batch sizes, augmentation and class weights for the schema's data."""
    reasons: list[str] = []
    task = schema.task
    n = int(schema.n_samples)
    n_train = max(1, _training_rows(schema))
    counts = dict(schema.class_counts or {})

    class_weight = False
    if task == "regression":
        metric = "val_mse"
        reasons.append("regression target: the objective is validation MSE")
    elif task == "binary":
        share = _minority_share(counts)
        if share is not None and share < IMBALANCED_BINARY:
            metric, class_weight = "val_roc_auc", True
            reasons.append(f"binary target with a minority class of {share:.1%} (< {IMBALANCED_BINARY:.0%}): "
                           "the objective is validation ROC AUC, class weights are searchable")
        else:
            metric = "val_accuracy"
            reasons.append("balanced binary target: the objective is validation accuracy")
    else:
        metric = "val_accuracy"
        values = [int(v) for v in counts.values()]
        if values and min(values) < IMBALANCED_MULTICLASS * max(values):
            metric, class_weight = "val_balanced_accuracy", True
            reasons.append(f"{len(values)} classes, the smallest with {min(values)} rows against {max(values)}: "
                           "the objective is validation balanced accuracy (the mean recall per class, which "
                           "predicting the largest class cannot game), class weights are searchable")
        else:
            reasons.append(f"{len(values) or 'several'} classes: the objective is validation accuracy")

    # Small sets take few steps per epoch, so they get more epochs; large ones fewer (CPU budget).
    epochs = 40 if n_train < 1_000 else 30 if n_train < 10_000 else 20 if n_train < 100_000 else 15
    reasons.append(f"about {n_train} training rows: {epochs} epochs")

    # Batches of at most an eighth of the training split (so an epoch has at least eight steps),
    # at most 512, from an eighth of that upwards: four powers of two at most.
    high = max(8, min(512, _pow2_floor(n_train / 8)))
    batch_sizes = [b for b in (high >> 3, high >> 2, high >> 1, high) if b >= 8]
    reasons.append(f"batch sizes {batch_sizes} (at most 1/8 of the training rows, at most 512)")

    augment = ["none"]
    if schema.kind == "image":
        channels, height, width = schema.input_shape
        side = min(height, width)
        if side < MIN_AUGMENT_SIDE or n < MIN_AUGMENT_SAMPLES:
            reasons.append(f"no augmentation: images under {MIN_AUGMENT_SIDE} px or fewer than "
                           f"{MIN_AUGMENT_SAMPLES} of them")
        elif channels >= 3:
            augment = ["none", "flip", "crop_flip"]
            reasons.append("colour images: augmentation none | flip | crop_flip (natural photos)")
        else:
            augment = ["none", "translate"]
            reasons.append("grey images: augmentation none | translate (a mirrored glyph is another glyph)")
    return Plan(task=task, metric=metric, epochs=epochs, n_train=n_train, batch_sizes=batch_sizes,
                augment=augment, class_weight=class_weight, reasons=reasons)


def _training_params(p: Plan) -> tuple[dict, dict]:
    """The training part of the space (shared by every family) and its baseline values: the ranges
    the declarations give `init` (params.TABLE's init_space), and the batch sizes, augmentation and
    class weights this data calls for."""
    declared = P.declared()
    searched = ("optimizer", "lr", "weight_decay", "schedule") + (("label_smoothing",) if p.task == "multiclass"
                                                                   else ())
    params = {name: dict(declared[name].init_space) for name in searched}
    params["batch_size"] = P.choice(p.batch_sizes)
    # The baseline: the Keras tutorials' Adam at 1e-3, no schedule; the weight decay at the floor of its
    # log range (no decay is not on a log scale).
    base = {"optimizer": "adam", "lr": 1.0e-3, "weight_decay": params["weight_decay"]["low"], "schedule": "none",
            "batch_size": p.baseline_batch}
    if p.task == "multiclass":
        base["label_smoothing"] = 0.0
    if len(p.augment) > 1:
        params["augment"] = P.choice(p.augment)
        base["augment"] = "none"
    elif p.augment != ["none"]:
        params["augment"] = p.augment[0]
    if p.class_weight:
        params["class_weight"] = P.choice(["none", "balanced"])
        base["class_weight"] = "none"
    params["patience"] = max(3, p.epochs // 5)
    # Fixed values go into the baseline too only where searchable; drop them from `base` otherwise.
    base = {k: v for k, v in base.items() if isinstance(params.get(k), dict)}
    return params, base


def generate(schema, dataset, *, name: str) -> dict[str, tuple[dict, list[str]]]:
    """{family name: (study dict, header lines)} for every family that takes the data (an MLP for
    tables; for images the CNN families too), each from its family's own `space`.

    `dataset` is what goes under `dataset:` (the source mapping, or a registry key); `name` labels
    the description. The header lines say what was inferred and which rules shaped the space.
    """
    p = plan(schema)
    shared = {"dataset": dataset, "metric": p.metric, "epochs": p.epochs, "seed": 0,
              "sampler": {"type": "tpe", "multivariate": True, "group": True, "n_startup_trials": 10},
              "pruner": {"type": "hyperband", "min_resource": max(1, p.epochs // 10), "reduction_factor": 3}}
    what = f"{schema.task} {schema.kind} data {name!r}"
    offered = [f for f in families.for_data(schema.kind) if f.space is not None]
    out = {}
    for family in offered:
        train, base_train = _training_params(p)
        params, baselines, reasons = family.space(schema, p, train, base_train)
        study = {"description": f"{family.title} on {what} (generated by anncnn-tune init).", **shared,
                 "model": family.name, "params": params, "baselines": baselines}
        others = [f.title for f in offered if f is not family]
        pair = (f" (the {', '.join(others)} studies beside it share data, splits, budget, sampler and pruner)"
                if others else "")
        header = [f"Generated by `anncnn-tune init` for {name}: {family.title} study{pair}."]
        header += [f"inspected: {line.strip()}" for line in schema.lines() if line.strip()]
        header += [f"rule: {r}" for r in (*p.reasons, *reasons)]
        out[family.name] = (study, header)
    return out


# -- writing ----------------------------------------------------------------------------------------

TOP_ORDER = ("description", "dataset", "model", "metric", "epochs", "seed", "subset", "sampler", "pruner")


def scalar(value) -> str:
    """One YAML scalar that PyYAML reads back as the same value (1.0e-4, not 1e-4, which is a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        if value != 0 and abs(value) < 1.0e-2:
            mantissa, exponent = f"{value:e}".split("e")
            mantissa = mantissa.rstrip("0")
            mantissa += "0" if mantissa.endswith(".") else ""
            return f"{mantissa}e{int(exponent):+d}"  # PyYAML needs the dot and the sign
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    text = str(value)
    dumped = yaml.safe_dump(text, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("\n...").removesuffix(" ...").strip()


def flow(value) -> str:
    """A mapping or list on one line, in YAML flow style, with scalar() numbers."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


WIDTH = 108


def _comment(lines: list[str]) -> list[str]:
    return [f"# {part}".rstrip() for text in lines for line in text.splitlines()
            for part in textwrap.wrap(line, WIDTH - 2, subsequent_indent="    ") or [""]]


def _wrapped_flow(prefix: str, value: dict) -> list[str]:
    """`prefix{a: 1, b: 2, ...}` over as many lines as WIDTH needs, continuation lines under the brace."""
    items = [f"{scalar(k)}: {flow(v)}" for k, v in value.items()]
    indent = " " * (len(prefix) + 1)
    lines, line = [], prefix + "{"
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "}")
        if len(line) + len(piece) + 1 > WIDTH and not line.endswith("{"):
            lines.append(line.rstrip())
            line = indent
        line += piece if line.endswith(("{", " ")) else " " + piece
    lines.append(line)
    return lines


def to_yaml(study: dict, header: list[str]) -> str:
    """The study file: header comment, then the keys in the built-in files' order, one parameter a line."""
    out = _comment(header)
    for key in TOP_ORDER:
        if key not in study:
            continue
        value = study[key]
        if key == "dataset" and isinstance(value, dict):
            out.append("dataset:")
            for k, v in value.items():
                if isinstance(v, dict) and v:  # dataset.columns: one column a line, easy to edit
                    out.append(f"  {k}:")
                    out += [f"    {scalar(name)}: {flow(item)}" for name, item in v.items()]
                else:
                    out.append(f"  {k}: {flow(v)}")
        else:
            out.append(f"{key}: {flow(value)}")
    out.append("params:")
    width = max(len(k) for k in study["params"]) + 2
    out += [f"  {(k + ':').ljust(width)} {flow(v)}" for k, v in study["params"].items()]
    if study.get("baselines"):
        out.append("baselines:")
        for base in study["baselines"]:
            out.append(f"  - name: {scalar(base['name'])}")
            if base.get("note"):
                out.append(f"    note: {scalar(base['note'])}")
            if "epochs" in base:
                out.append(f"    epochs: {scalar(base['epochs'])}")
            out += _wrapped_flow("    params: ", base["params"])
    return "\n".join(out) + "\n"
