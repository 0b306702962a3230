"""The hyperparameter vocabulary: one declaration per parameter, and everything derived from it.

Each `Param` says which family reads it (ann, cnn, or train for the training loop every family
shares), its type, default, valid range and choices, and a line of help. From this table come
the builders' and fit()'s defaults, the study-file validation (fixed values, both ends of a
searched range, categorical choices), the README's parameter list, and what `suggest` fills in.
Adding a hyperparameter is one entry here plus the code that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from anncnn_tune.errors import UserError

FAMILIES = ("ann", "cnn")
# size: an int count or a float fraction in (0, 1]; resource: whole epochs, or a fraction 1/K of one
KINDS = ("int", "float", "bool", "choice", "size", "resource")
# Every integer a user gives ends up in torch/numpy int64 arithmetic (shapes, seeds, counts).
INT_LIMIT = 2**63 - 1
SEED_MAX = 2**32 - 1  # numpy and scikit-learn seeds are unsigned 32-bit


@dataclass(frozen=True)
class Param:
    name: str
    family: str  # ann | cnn | train
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
                raise UserError(f"{where} must be one of {_listing(options)}, got {value!r}")
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


def _listing(options) -> str:
    return "[" + ", ".join(str(o).lower() if isinstance(o, bool) else str(o) for o in options) + "]"


ACTIVATION_CHOICES = ("relu", "gelu", "silu", "tanh")
FRACTION = {"low": 0.0, "high": 1.0, "high_open": True}
POSITIVE = {"low": 0.0, "low_open": True}

TABLE: tuple[Param, ...] = (
    # -- ANN (multi-layer perceptron) --
    Param("layers", "ann", "int", 2, "hidden layers", low=1),
    Param("width", "ann", "int", 128, "units of the first hidden layer", low=1),
    Param("shrink", "ann", "float", 0.5, "width of hidden layer i = width * shrink**i", **POSITIVE),
    Param("activation", "ann", "choice", "relu", "activation function", choices=ACTIVATION_CHOICES),
    Param("dropout", "ann", "float", 0.0, "dropout after each hidden layer", **FRACTION),
    Param("batch_norm", "ann", "bool", False, "batch normalisation after each hidden layer"),
    # -- CNN --
    Param("blocks", "cnn", "int", 2, "convolution blocks, each ending in 2x2 pooling", low=1),
    Param("filters", "cnn", "int", 32, "filters of the first block", low=1),
    Param("growth", "cnn", "float", 2.0, "filters of block i = filters * growth**i", **POSITIVE),
    Param("convs", "cnn", "int", 1, "convolutions per block", low=1),
    Param("kernel", "cnn", "int", 3, "kernel size (odd)", low=1, odd=True),
    Param("activation", "cnn", "choice", "relu", "activation function", choices=ACTIVATION_CHOICES),
    Param("batch_norm", "cnn", "bool", False, "batch normalisation after each convolution"),
    Param("dropout", "cnn", "float", 0.0, "spatial dropout after each block", **FRACTION),
    Param("pooling", "cnn", "choice", "max", "pooling at the end of each block", choices=("max", "avg")),
    Param("residual", "cnn", "bool", False, "a (1x1-projected) shortcut around each block"),
    Param("head_layers", "cnn", "int", 1, "dense layers after the blocks", low=0),
    Param("head_width", "cnn", "int", 64, "units of each dense head layer", low=1),
    Param("head_dropout", "cnn", "float", 0.0, "dropout in the dense head", **FRACTION),
    # -- training (every family) --
    Param("optimizer", "train", "choice", "adam", "optimizer", choices=("sgd", "adam", "adamw")),
    Param("lr", "train", "float", 1.0e-3, "learning rate", **POSITIVE),
    Param("momentum", "train", "float", 0.9, "momentum (sgd only)", **FRACTION),
    Param("nesterov", "train", "bool", False, "Nesterov momentum (sgd only)"),
    Param("weight_decay", "train", "float", 0.0, "weight decay", low=0.0),
    Param("label_smoothing", "train", "float", 0.0, "label smoothing (multiclass only)", **FRACTION),
    Param("schedule", "train", "choice", "none", "learning-rate schedule", choices=("none", "cosine", "onecycle")),
    Param("batch_size", "train", "size", 128,
          "an int is a count; a float in (0, 1] is a fraction of the training split"),
    Param("patience", "train", "int", 0, "epochs without improvement before stopping; 0 turns early stopping off",
          low=0),
    Param("augment", "train", "choice", "none", "on-device augmentation (image data)",
          choices=("none", "flip", "translate", "crop_flip"), image_only=True),
    Param("class_weight", "train", "choice", "none", "loss weights per class",
          choices=("none", "balanced")),
)


def declared(family: str) -> dict[str, Param]:
    """The parameters of one table family ('ann', 'cnn' or 'train'), by name, in table order."""
    return {p.name: p for p in TABLE if p.family == family}


def for_model(model: str) -> dict[str, Param]:
    """Every parameter a study of this model family may set: the training loop's and the builder's."""
    return {**declared("train"), **declared(model)}


def defaults(family: str) -> dict:
    return {name: p.default for name, p in declared(family).items()}


def all_defaults(model: str) -> dict:
    """The full parameter dict of a model family before a study changes anything."""
    return {name: p.default for name, p in for_model(model).items()}


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
        raise UserError(f"{where} must be a number, got {_short(value)}")
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
        raise UserError(f"{where} must be a positive count or a fraction in (0, 1], got {_short(value)}")
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


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- documentation --------------------------------------------------------------------------------

README_BEGIN = "<!-- params:begin (generated by anncnn_tune.training.params.markdown; do not edit) -->"
README_END = "<!-- params:end -->"


def _describe(p: Param) -> str:
    if p.options is not None:
        allowed = "true | false" if p.kind == "bool" else " | ".join(p.choices)
    elif p.kind == "size":
        allowed = "count or fraction in (0, 1]"
    elif p.kind == "resource":
        allowed = "epochs, or a fraction 1/K of one"
    else:
        allowed = f"{p.kind} {p.range_text()}" + (", odd" if p.odd else "")
    default = str(p.default).lower() if isinstance(p.default, bool) else p.default
    return f"`{p.name}` ({allowed}; default {default}): {p.help}"


def markdown() -> str:
    """The README's parameter list, generated from TABLE."""
    titles = {"ann": "ANN", "cnn": "CNN", "train": "Training (every family)"}
    lines = []
    for family in ("ann", "cnn", "train"):
        lines.append(f"{titles[family]}:")
        lines.append("")
        lines += [f"- {_describe(p)}" for p in TABLE if p.family == family]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_readme(path) -> bool:
    """Rewrite the generated list between the markers of a README; True when it changed."""
    from pathlib import Path

    file = Path(path)
    text = file.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise UserError(f"{file} has no {README_BEGIN} ... {README_END} markers to write the parameter list between")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_BEGIN}\n{markdown()}{README_END}{tail}"
    if new == text:
        return False
    file.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":  # python -m anncnn_tune.training.params README.md
    import sys

    if len(sys.argv) > 1:
        print("updated" if write_readme(sys.argv[1]) else "already current", sys.argv[1])
    else:
        print(markdown(), end="")
