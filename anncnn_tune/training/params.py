"""The hyperparameter vocabulary: the `Param` declaration, its conditions, and the training loop's table.

Each `Param` says who reads it (a model family's name, or train for the training loop every
family shares), its type, default, valid range and choices, a line of help, and when it applies
(`when`: conditions on other parameters; an inactive parameter is not sampled, not stored on the
trial, and takes its default). The training loop's parameters are TABLE below; each model family
declares its own in its module (training/families/). From these declarations come fit()'s and the
builders' defaults, the study-file validation, the README's parameter list, and what `suggest`
samples. Adding a hyperparameter is one entry here (or in its family's module) plus the code that
reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anncnn_tune.errors import UserError

# size: an int count or a float fraction in (0, 1]; resource: whole epochs, or a fraction 1/K of one
KINDS = ("int", "float", "bool", "choice", "size", "resource")
# Every integer a user gives ends up in torch/numpy int64 arithmetic (shapes, seeds, counts).
INT_LIMIT = 2**63 - 1
SEED_MAX = 2**32 - 1  # numpy and scikit-learn seeds are unsigned 32-bit


@dataclass(frozen=True)
class Condition:
    """`name`'s value is one of `values`, or (for numbers) within [low, high]: one clause of a `when`."""

    name: str
    values: tuple | None = None
    low: float | None = None
    high: float | None = None

    def holds(self, params: dict) -> bool:
        value = params.get(self.name)
        if self.values is not None:
            return any(same_value(value, v) for v in self.values)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def text(self) -> str:
        if self.values is not None:
            shown = [str(v).lower() if isinstance(v, bool) else str(v) for v in self.values]
            return f"{self.name} = {shown[0]}" if len(shown) == 1 else f"{self.name} in {listing(self.values)}"
        if self.high is None:
            return f"{self.name} >= {_num(self.low)}"
        if self.low is None:
            return f"{self.name} <= {_num(self.high)}"
        return f"{self.name} in [{_num(self.low)}, {_num(self.high)}]"

    def as_dict(self):
        """The study-file form: a value, a list of values, or {low, high}."""
        if self.values is not None:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        return {k: v for k, v in (("low", self.low), ("high", self.high)) if v is not None}


def when(**clauses) -> tuple[Condition, ...]:
    """Conditions for a declaration: when(optimizer="sgd"), when(schedule=("cosine", "onecycle")),
    when(head_layers=at_least(1))."""
    out = []
    for name, value in clauses.items():
        if isinstance(value, Condition):
            out.append(Condition(name, value.values, value.low, value.high))
        else:
            out.append(Condition(name, tuple(value) if isinstance(value, (tuple, list)) else (value,)))
    return tuple(out)


def at_least(low: float) -> Condition:
    return Condition("", low=low)


def active(conditions: tuple[Condition, ...], params: dict) -> bool:
    return all(c.holds(params) for c in conditions)


@dataclass(frozen=True)
class Param:
    name: str
    family: str  # the model family that reads it, or train
    kind: str  # one of KINDS
    default: object
    help: str
    low: float | None = None  # None: unbounded below
    high: float | None = None  # None: unbounded above
    low_open: bool = False  # True: low itself is excluded
    high_open: bool = False
    odd: bool = False  # odd integers only (kernel sizes keep 'same' padding exact)
    choices: tuple | None = None  # for kind choice
    image_only: bool = False  # applies only to image datasets
    tasks: tuple[str, ...] | None = None  # applies only to these tasks (None: every task)
    when: tuple[Condition, ...] = ()  # applies only where all of these hold (else: not sampled, default)
    # What `init` searches where it searches this parameter on any dataset (the study-file form: a
    # {type, low, high} or {type: categorical, choices}); None: init leaves it out or sizes it to the data.
    init_space: dict | None = None

    @property
    def options(self) -> tuple | None:
        """The values a fixed value must be one of (None: a numeric range applies)."""
        if self.kind == "bool":
            return (True, False)
        return self.choices

    def range_text(self) -> str:
        """The valid range as a phrase that completes 'must be ...'."""
        if self.kind == "size":
            return "a positive count or a fraction in (0, 1]"
        if self.kind == "resource":
            return "a whole number of epochs, or a fraction 1/K of one (0.5, 0.25, 0.111)"
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"
        if self.low is not None:
            if self.low == 0 and self.kind == "float":
                return "positive" if self.low_open else "non-negative"
            return f"{'greater than' if self.low_open else 'at least'} {_num(self.low)}"
        return "a number"

    def check(self, value, where: str):
        """The value, normalised (YAML strings such as '1e-4' cast), or a one-line UserError."""
        options = self.options
        if options is not None:
            if not any(same_value(value, o) for o in options):
                raise UserError(f"{where} must be one of {listing(options)}, got {value!r}")
            return value
        if self.kind == "size":
            return check_size(value, where)
        if self.kind == "resource":
            return check_resource(value, where)
        value = number(value, where, integer=self.kind == "int")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            phrase = self.range_text()
            if phrase == "non-negative":
                raise UserError(f"{where} must not be negative, got {value!r}")
            raise UserError(f"{where} must be {phrase}, got {value!r}")
        if self.odd and value % 2 == 0:
            raise UserError(f"{where} must be odd (same padding keeps the image size), got {value!r}")
        return value


def same_value(a, b) -> bool:
    """Equal, and both bools or neither: in Python `True == 1`, which a choice list must not blur."""
    return isinstance(a, bool) == isinstance(b, bool) and type(a) in (bool, int, float, str) and a == b


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def listing(options) -> str:
    """Options as a study file writes them: [a, b], booleans as true/false."""
    return "[" + ", ".join(str(o).lower() if isinstance(o, bool) else str(o) for o in options) + "]"


FRACTION = {"low": 0.0, "high": 1.0, "high_open": True}
POSITIVE = {"low": 0.0, "low_open": True}

TABLE: tuple[Param, ...] = (  # the training loop's; each model family declares its own (training/families/)
    # -- training (every family) --
    Param("optimizer", "train", "choice", "adam", "optimizer", choices=("sgd", "adam", "adamw"),
          init_space={"type": "categorical", "choices": ["adam", "adamw", "sgd"]}),
    Param("lr", "train", "float", 1.0e-3, "learning rate",
          init_space={"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True}, **POSITIVE),
    Param("momentum", "train", "float", 0.9, "momentum (sgd only)", when=when(optimizer="sgd"), **FRACTION),
    Param("nesterov", "train", "bool", False, "Nesterov momentum (sgd only)", when=when(optimizer="sgd")),
    Param("weight_decay", "train", "float", 0.0, "weight decay", low=0.0,
          init_space={"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True}),
    Param("label_smoothing", "train", "float", 0.0, "label smoothing (multiclass only)",
          init_space={"type": "float", "low": 0.0, "high": 0.2}, **FRACTION),
    Param("schedule", "train", "choice", "none", "learning-rate schedule (triangle: linear up, then down to 0)",
          choices=("none", "cosine", "onecycle", "triangle"),
          init_space={"type": "categorical", "choices": ["none", "cosine", "onecycle"]}),
    Param("warmup", "train", "float", 0.2, "fraction of the steps spent rising to the peak learning rate",
          when=when(schedule="triangle"), **FRACTION),
    Param("batch_size", "train", "size", 128,
          "an int is a count; a float in (0, 1] is a fraction of the training split"),
    Param("lr_scale", "train", "choice", "none",
          "scale lr with the batch: lr * (batch/256) (linear) or lr * sqrt(batch/256); none: lr as given",
          choices=("none", "linear", "sqrt")),
    Param("averaging", "train", "choice", "none",
          "weight averaging evaluated in place of the trained weights: an EMA every step, or lookahead every "
          "5 steps", choices=("none", "ema", "lookahead")),
    Param("average_decay", "train", "float", 0.95, "decay of the averaged weights per averaging step",
          when=when(averaging=("ema", "lookahead")), **FRACTION),
    Param("patience", "train", "int", 0, "epochs without improvement before stopping; 0 turns early stopping off",
          low=0),
    Param("augment", "train", "choice", "none",
          "on-device augmentation (image data); translate_*: shifts of 1/16 of the side, then a random "
          "flip, or one that alternates by epoch (altflip: each image is seen both ways every two epochs)",
          choices=("none", "flip", "translate", "crop_flip", "translate_flip", "translate_altflip"),
          image_only=True),
    Param("class_weight", "train", "choice", "none",
          "loss weights per class: balanced weighs each class by the inverse of its share of the training rows "
          "(init searches it where the smallest class is rare)", choices=("none", "balanced"),
          tasks=("binary", "multiclass")),
)


def declared(family: str = "train") -> dict[str, Param]:
    """The training loop's parameters, by name, in table order (a family's own: families.get(name).params)."""
    return {p.name: p for p in TABLE if p.family == family}


def defaults(family: str = "train") -> dict:
    return {name: p.default for name, p in declared(family).items()}


# -- numbers --------------------------------------------------------------------------------------


def number(value, where: str, *, integer: bool = False):
    """A finite YAML/CLI number; strings such as '1e-4' (PyYAML's reading of 1e-4) are cast.

    NaN and infinity are refused everywhere, and so are integers past int64 (they would
    overflow a float or a tensor later, far from the file that held them).
    """
    if isinstance(value, bool):
        raise UserError(f"{where} must be a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if integer and text.lstrip("+-").isdigit() else float(text)
        except (ValueError, OverflowError):
            raise UserError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, int):
        if abs(value) > INT_LIMIT:
            raise UserError(f"{where} is too large ({str(value)[:12]}..., more than 2**63); use a smaller number")
        return value if integer else float(value)
    if not isinstance(value, float):
        raise UserError(f"{where} must be a number, got {short(value)}")
    if not math.isfinite(value):
        raise UserError(f"{where} must be a finite number, got {value!r}")
    if integer:
        if not value.is_integer():
            raise UserError(f"{where} must be an integer, got {value!r}")
        if abs(value) > INT_LIMIT:
            raise UserError(f"{where} is too large ({value:g}, more than 2**63); use a smaller number")
        return int(value)
    return value


def check_size(value, where: str):
    """A count (int >= 1) or a fraction (float in (0, 1]): batch_size and subset.

    A float above 1 is refused even when whole: `2.0` is more likely a typo for 0.2 than a count.
    """
    if isinstance(value, str):
        value = number(value, where, integer=value.strip().lstrip("+-").isdigit())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a positive count or a fraction in (0, 1], got {short(value)}")
    if isinstance(value, int):
        value = number(value, where, integer=True)
        if value < 1:
            raise UserError(f"{where} must be a positive count or a fraction in (0, 1], got {value!r}")
        return value
    value = number(value, where)
    if not 0 < value <= 1:
        hint = (" (a count is written as an integer, e.g. 2; a fraction as e.g. 0.2)"
                if value > 1 and value.is_integer() else "")
        raise UserError(f"{where} must be a positive count or a fraction in (0, 1], got {value!r}{hint}")
    return value


RESOURCE_MAX_PARTS = 1000  # an epoch in more parts than this is a typo, and validating that often costs


def check_resource(value, where: str):
    """An amount of training in epochs: a whole number (>= 1), or 1/K of one epoch for a whole K in
    2..1000 (written to about two digits: 0.33 and 0.333 both mean 1/3). Fractions that are not
    1/K are refused: the rungs after a fractional first rung must land on the same steps for every
    trial, and Optuna counts steps in whole numbers of the study's unit (1/K of an epoch)."""
    amount = number(value, where)
    if amount >= 1:
        if not float(amount).is_integer():
            raise UserError(f"{where} must be a whole number of epochs or a fraction 1/K of one, got {value!r}")
        return int(amount)
    parts = round(1 / amount) if amount > 0 else 0
    if not 2 <= parts <= RESOURCE_MAX_PARTS or abs(amount * parts - 1) > 0.02:
        raise UserError(f"{where} must be a whole number of epochs or a fraction 1/K of one (such as 0.5, 0.25, "
                        f"0.111 for 1/9), got {value!r}")
    return amount


def check_seed(value, where: str) -> int:
    """A seed, checked once where it enters (study file, run file, --seed): 0 .. 2**32-1."""
    seed = number(value, where, integer=True)
    if not 0 <= seed <= SEED_MAX:
        raise UserError(f"{where} must be in [0, {SEED_MAX}] (2**32-1), got {seed}")
    return seed


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the study-file form of a searched parameter (what `init` writes) -------------------------------


def int_range(low: int, high: int, log: bool = False) -> dict:
    d = {"type": "int", "low": int(low), "high": int(high)}
    if log:
        d["log"] = True
    return d


def float_range(low: float, high: float, log: bool = False) -> dict:
    d = {"type": "float", "low": float(low), "high": float(high)}
    if log:
        d["log"] = True
    return d


def choice(values) -> object:
    """A categorical parameter; a single choice is written as a fixed value instead."""
    values = list(values)
    return values[0] if len(values) == 1 else {"type": "categorical", "choices": values}
