"""The in-memory shape every dataset loader returns, and the split helpers they share."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from anncnn_tune.data.pipeline import numeric_positions
from anncnn_tune.errors import UserError

TARGET_TRANSFORMS = ("standardize", "log", "none")  # a regression target's way to the model (TargetScaling)

TASKS = ("multiclass", "binary", "regression")
HOLDOUT = 0.15  # a seeded split of one file or folder: validation and test each take 15%
VAL_FRACTION = 0.1  # of the training part when a test split is given (as the built-in image datasets)
KINDS = ("image", "tabular")
LOG_SKEW = 1.0  # init proposes `log` for a positive target whose training-row skewness exceeds this
LOG_LIMIT = 80.0  # exp() input cap in to_user: a wild output of an untrained model stays finite in float32


@dataclass(frozen=True)
class TargetScaling:
    """How a regression target goes from the user's units to the model's and back: the one home.

    The model is trained on `to_model(y)` and its outputs are read with `to_user(out)`: every
    metric, plot, prediction and ONNX output is in the user's units. `standardize` is
    (y - mean) / std; `log` is the same on log(y) (for a skewed positive target); `none` leaves
    y as it is (classification, and studies made before targets were scaled). mean and std are
    measured on the training rows only (`fit`), and a study records them (`to_dict`) so retrain
    rebuilds exactly what the trials trained on.
    """

    transform: str = "none"
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, y_train: np.ndarray, transform: str = "standardize") -> TargetScaling:
        """Statistics of the training targets (float64) for `transform`."""
        if transform not in TARGET_TRANSFORMS:
            raise UserError(f"target_transform must be one of {', '.join(TARGET_TRANSFORMS)}, got {transform!r}")
        if transform == "none":
            return cls()
        values = np.asarray(y_train, dtype=np.float64).reshape(-1)
        if transform == "log":
            low = float(values.min()) if len(values) else 0.0
            if low <= 0:
                raise UserError(f"target_transform: log needs positive targets, but the training rows hold {low:g}; "
                                "use target_transform: standardize")
            values = np.log(values)
        std = float(values.std()) if len(values) else 1.0
        return cls(transform, float(values.mean()) if len(values) else 0.0, std if std > 0 else 1.0)

    @classmethod
    def from_dict(cls, d: dict | None) -> TargetScaling:
        """What a study or run file recorded; None (studies made before targets were scaled): identity."""
        if d is None:
            return cls()
        if not isinstance(d, dict) or d.get("transform") not in TARGET_TRANSFORMS:
            raise UserError(f"recorded target scaling {d!r} is not one anncnn-tune writes; export the run file again")
        return cls(d["transform"], float(d.get("mean", 0.0)), float(d.get("std", 1.0)))

    def to_dict(self) -> dict:
        return {"transform": self.transform, "mean": self.mean, "std": self.std}

    @property
    def identity(self) -> bool:
        return self.transform == "none"

    @property
    def loss_scale(self) -> float | None:
        """Factor from a squared error on the model's scale to one in the user's units, where one exists
        (an affine scaling); None for `log`."""
        if self.transform == "log":
            return None
        return self.std**2

    def to_model(self, y: np.ndarray) -> np.ndarray:
        """User-unit targets (numpy) as the model learns them, float32."""
        if self.identity:
            return y
        values = np.asarray(y, dtype=np.float64)
        if self.transform == "log":
            values = np.log(values)
        return ((values - self.mean) / self.std).astype(np.float32)

    def to_user(self, out):
        """Model outputs (a torch tensor or a numpy array) in the user's units; traceable for ONNX."""
        if self.identity:
            return out
        value = out * self.std + self.mean
        if self.transform != "log":
            return value
        if hasattr(value, "clamp"):  # a torch tensor (data/ does not import torch)
            return value.clamp(max=LOG_LIMIT).exp()
        return np.exp(np.minimum(value, LOG_LIMIT))


def choose_transform(y_train: np.ndarray) -> tuple[str, str]:
    """(transform, why) that `init` writes for a regression target, decided on the training rows only."""
    values = np.asarray(y_train, dtype=np.float64).reshape(-1)
    std = values.std()
    skew = float(((values - values.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
    if skew > LOG_SKEW and values.min() > 0:
        return "log", f"skewness {skew:.2f} > {LOG_SKEW:g} and all values positive on the training rows"
    why = f"skewness {skew:.2f}" + ("" if values.min() > 0 else ", values not all positive")
    return "standardize", f"{why} on the training rows"


@dataclass
class Splits:
    """Train / validation / test arrays of one dataset, ready to go to a device.

    Images are uint8 (N, C, H, W) and are normalised on the device with `mean`/`std`
    (per channel, measured on the training split); tabular features are float32 (N, F),
    already scaled by transformers fitted on the training split only. Labels are int64
    class indices (multiclass, binary) or float32 targets (regression).
    """

    key: str
    task: str
    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] | None
    fingerprint: str
    split_seed: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    source: dict | None = None  # a user's DataSource.to_dict(); None for registry datasets
    schema: dict | None = None  # Schema.summary() of a user's source
    target_scaling: TargetScaling | None = None  # regression: fitted on y_train by the loader; None: identity
    preprocess: dict | None = None  # tables: the fitted column transformer's parameters (data/pipeline.py)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def numeric_columns(self) -> tuple[int, ...] | None:
        """Positions of a table's numeric columns among the features (models.build's `numeric`);
        None where no column roles were recorded (images, loader arrays): every input is numeric."""
        if self.kind != "tabular" or self.preprocess is None:
            return None
        return numeric_positions(self.preprocess)

    @property
    def target(self) -> TargetScaling:
        """The target's scaling: identity for classification and where none was fitted."""
        if self.task != "regression" or self.target_scaling is None:
            return TargetScaling()
        return self.target_scaling

    def scale_target(self, transform: str | None = None) -> None:
        """Fit the regression target's scaling on the training rows only (a no-op for classes)."""
        if self.task == "regression":
            self.target_scaling = TargetScaling.fit(self.y_train, transform or "standardize")

    @property
    def out_dim(self) -> int:
        return len(self.classes) if self.task == "multiclass" else 1

    def describe(self) -> dict:
        """What a study records about its data: enough to tell whether two runs saw the same splits."""
        return {
            "dataset": self.key,
            "task": self.task,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "classes": list(self.classes) if self.classes else None,
            "fingerprint": self.fingerprint,
            "split_seed": self.split_seed,
            **({"source": self.source, "schema": self.schema} if self.source is not None else {}),
            **({"target_scaling": self.target.to_dict()} if self.task == "regression" else {}),
        }


def fingerprint_files(paths: list[Path]) -> str:
    """sha256 over the names and bytes of the source files, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def split_off(x, y, size, seed, stratify=True):
    """Seeded (stratified) split of (x, y) into (rest, held-out) parts."""
    return train_test_split(x, y, test_size=size, random_state=seed, stratify=y if stratify else None)


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in (N, C, H, W), in [0, 255] units.

    Exact integer sums over chunks: a float64 copy of CIFAR-10 would take 1.2 GB and ~3 s.
    """
    channels = images.shape[1]
    total = np.zeros(channels, dtype=np.int64)
    squares = np.zeros(channels, dtype=np.int64)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].astype(np.int64)
        total += part.sum(axis=(0, 2, 3))
        squares += (part * part).sum(axis=(0, 2, 3))
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(v) if v > 0 else 1.0 for v in std)


def take_subset(x: np.ndarray, y: np.ndarray, subset: float | None, seed: int, stratify: bool):
    """A seeded part of the training split for quick looks: a fraction in (0, 1] or a count."""
    if subset is None:
        return x, y
    n = len(y)
    count = round(subset * n) if isinstance(subset, float) and subset <= 1.0 else int(subset)
    if count >= n:
        return x, y
    # Only here is the training-split size known: a subset too small to split is refused with the
    # smallest one that works (stratified needs one sample per class, else one sample).
    needed = len(np.unique(y)) if stratify else 1
    if count < needed or (stratify and n - count < needed):
        if count < needed:
            smallest = math.ceil(needed / n * 10_000) / 10_000
            raise UserError(f"subset {subset} keeps {count} of the {n} training samples; it needs at least "
                            f"{needed}{' (one per class)' if stratify else ''}: use a count of {needed} or more, "
                            f"or a fraction of at least {smallest:g}")
        raise UserError(f"subset {subset} leaves fewer than {needed} of the {n} training samples out, too few for "
                        f"a stratified split; use a count of at most {n - needed}, or 1.0 for the whole split")
    kept, _, y_kept, _ = train_test_split(
        x, y, train_size=count, random_state=seed, stratify=y if stratify else None
    )
    return kept, y_kept


def image_splits(key, x_train, y_train, x_test, y_test, classes, *, fingerprint, seed, subset,
                 val_fraction: float) -> Splits:
    """A multiclass image dataset's splits: the test split as given; a seeded stratified
    `val_fraction` of the training split for validation.

    `subset` (a fraction in (0, 1] or a count) thins the training split only, for quick looks on
    a CPU; validation and test stay whole so scores remain comparable.
    """
    x_tr, x_val, y_tr, y_val = split_off(x_train, y_train, val_fraction, seed)
    x_tr, y_tr = take_subset(x_tr, y_tr, subset, seed, stratify=True)
    mean, std = channel_stats(x_tr)
    return Splits(key=key, task="multiclass", kind="image", x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
                  x_test=x_test, y_test=y_test, classes=tuple(classes), fingerprint=fingerprint, split_seed=seed,
                  mean=mean, std=std)


def split_rows(y: np.ndarray, seed: int, subset, stratify: bool, *, has_test: bool = False):
    """Row indices (train, val, test): seeded 70/15/15; `subset` thins training only.

    The same split_off/take_subset calls the built-in table loaders made on their arrays: the
    index permutation depends only on the labels and the seed, so indices reproduce their splits.
    With a held-out test set elsewhere (`has_test`) the rows are split into train and validation.
    """
    rows = np.arange(len(y))
    if has_test:
        test = np.array([], dtype=np.int64)
        rest, y_rest = rows, y
    else:
        rest, test, y_rest, _ = split_off(rows, y, HOLDOUT, seed, stratify=stratify)
    train, val, y_train, _ = split_off(rest, y_rest, HOLDOUT / (1 - HOLDOUT), seed, stratify=stratify)
    train, _ = take_subset(train, y_train, subset, seed, stratify=stratify)
    return train, val, test


PART_TRAIN, PART_VAL, PART_TEST = 0, 1, 2


def split_parts(y: np.ndarray, parts: np.ndarray, seed: int, subset, *, val_fraction: float,
                stratify: bool = True):
    """Indices (train, val, test) of samples some of which arrive labelled val or test.

    Whatever the data names as test or validation stays so; what is missing is split off the
    training samples, seeded and stratified: test 15%, then validation `val_fraction` of the
    rest when a test set was given (as the built-in image datasets), else 15% of the whole.
    """
    pool = np.flatnonzero(parts == PART_TRAIN)
    test = np.flatnonzero(parts == PART_TEST)
    val = np.flatnonzero(parts == PART_VAL)
    fraction = val_fraction
    if not len(test):
        pool, test, _, _ = split_off(pool, y[pool], HOLDOUT, seed, stratify=stratify)
        fraction = HOLDOUT / (1 - HOLDOUT)
    if not len(val):
        pool, val, _, _ = split_off(pool, y[pool], fraction, seed, stratify=stratify)
    train, _ = take_subset(pool, y[pool], subset, seed, stratify=stratify)
    return train, val, test
