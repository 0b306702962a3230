"""An .npz file with `x` and `y` (optionally `x_test`, `y_test`): images when `x` has 3 or 4 dimensions.

Images are (N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3 or 4 (a 4th channel, alpha, is
dropped), as uint8 or as floats in [0, 1]; anything else with 2 dimensions is a table of
numbers and goes through the table path (imputed, scaled on the training rows). Labels are
class values (ints, text, bools) or, for regression, numbers; the task is inferred as for a
table's target.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anncnn_tune.data.base import (
    PART_TEST,
    PART_TRAIN,
    VAL_FRACTION,
    Splits,
    channel_stats,
    choose_transform,
    fingerprint_files,
    split_parts,
)
from anncnn_tune.data.memory import check_fits
from anncnn_tune.data.schema import Schema
from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.data.source import DataSource



def _read(path: Path) -> dict[str, np.ndarray]:
    check_fits(2 * path.stat().st_size, f"reading {path.name}", "save fewer or smaller arrays")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = set(npz.files)
            missing = [k for k in ("x", "y") if k not in names]
            if missing:
                raise UserError(f"{path} has no array {missing[0]!r} (it holds: {', '.join(sorted(names)) or 'nothing'}); "
                                "save the features as x and the labels as y")
            if ("x_test" in names) != ("y_test" in names):
                raise UserError(f"{path} has only one of x_test and y_test; save both or neither")
            return {k: npz[k] for k in ("x", "y", "x_test", "y_test") if k in names}
    except UserError:
        raise
    except ValueError as exc:  # object arrays need pickles, which are never loaded
        raise UserError(f"{path} cannot be read without pickles ({' '.join(str(exc).split())[:150]}); "
                        "save plain numeric or text arrays") from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise UserError(f"{path} is not a readable .npz file ({' '.join(str(exc).split())[:150]}); save it with numpy.savez") from None


def _images(x: np.ndarray, name: str, path: Path) -> np.ndarray:
    """uint8 (N, C, H, W) from the accepted layouts and types."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # channels last, as Keras and PIL give them
    elif x.shape[1] not in (1, 3, 4):
        raise UserError(f"{path}: {name} has shape {x.shape}; images need 1, 3 or 4 channels, first or last")
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating) and x.size and 0.0 <= float(x.min()) and float(x.max()) <= 1.0:
        return np.ascontiguousarray(np.round(x * 255).astype(np.uint8))
    if np.issubdtype(x.dtype, np.integer) and x.size and 0 <= int(x.min()) and int(x.max()) <= 255:
        return np.ascontiguousarray(x.astype(np.uint8))
    raise UserError(f"{path}: {name} is {x.dtype} with values outside 0..255 (or 0..1 for floats); "
                    "save images as uint8 or as floats in [0, 1]")


def _check(arrays: dict, path: Path) -> None:
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if xs not in arrays:
            continue
        x, y = arrays[xs], arrays[ys]
        if y.ndim != 1 or len(y) != len(x):
            raise UserError(f"{path}: {ys} has shape {y.shape}, expected one label per row of {xs} ({len(x)})")
        if x.ndim not in (2, 3, 4):
            raise UserError(f"{path}: {xs} has {x.ndim} dimensions; give 2 (a table) or 3-4 (images)")
    if "x_test" in arrays and arrays["x_test"].shape[1:] != arrays["x"].shape[1:]:
        raise UserError(f"{path}: x_test has shape {arrays['x_test'].shape[1:]} per row, x has {arrays['x'].shape[1:]}")


def _labels(source: DataSource, y: np.ndarray, y_test: np.ndarray | None):
    """(task, why, encoded y, encoded y_test, classes), the task inferred as for a table's target."""
    import pandas as pd

    from anncnn_tune.data import table

    series = pd.Series(y, name="y")
    if series.nunique() < 2:
        raise UserError(f"{source.path}: y has a single value; nothing to predict")
    task, why = table.infer_task(series) if source.task == "auto" else (source.task, "set in the study")
    encoded, classes = table.encode_target(series, task, "y")
    encoded_test = None
    if y_test is not None:
        if task == "regression":
            encoded_test, _ = table.encode_target(pd.Series(y_test, name="y_test"), task, "y_test")
        else:
            index = {c: i for i, c in enumerate(classes)}
            names = [table.class_label(v) for v in y_test.tolist()]
            unknown = sorted(set(names) - set(index))
            if unknown:
                raise UserError(f"{source.path}: y_test has label {unknown[0]!r}, absent from y; every test class must appear in training")
            encoded_test = np.array([index[n] for n in names], dtype=np.int64)
    return task, why, encoded, encoded_test, classes


def fingerprint(source: DataSource) -> str:
    return fingerprint_files([Path(source.path)])


def _prepare(source: DataSource):
    path = Path(source.path)
    arrays = _read(path)
    _check(arrays, path)
    task, why, y, y_test, classes = _labels(source, arrays["y"], arrays.get("y_test"))
    notes = [f"task inferred: {task} ({why})" if source.task == "auto" else f"task: {task}"]
    return path, arrays, task, y, y_test, classes, notes


def load(source: DataSource, *, seed: int = 0, subset=None, data_dir=None) -> Splits:
    return _load(source, seed, subset)[0]


def _load(source: DataSource, seed: int, subset) -> tuple[Splits, Schema]:
    _, arrays, task, y, y_test, classes, notes = _prepare(source)
    fp = fingerprint(source)
    if arrays["x"].ndim == 2:
        splits = _table(source, arrays, task, y, y_test, classes, notes, seed, subset, fp)
    else:
        splits = _image(source, arrays, task, y, y_test, classes, seed, subset, fp)
    schema = _schema_of(splits, task, classes, notes, y, y_test)
    splits.source = source.to_dict()
    splits.schema = schema.summary()
    return splits, schema


def _table(source, arrays, task, y, y_test, classes, notes, seed, subset, fp) -> Splits:
    import pandas as pd

    from anncnn_tune.data import table

    x = arrays["x"]
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise UserError(f"{source.path}: x is {x.dtype}; a 2-D x must hold numbers (use a CSV for text columns)")
    columns = [f"x{i}" for i in range(x.shape[1])]
    frame, cols = table.column_roles(pd.DataFrame(x, columns=columns), columns, notes)
    test_frame = pd.DataFrame(arrays["x_test"], columns=columns) if "x_test" in arrays else None
    return table.encoded_splits(source.key, frame, y, cols, task=task, classes=classes, seed=seed, subset=subset,
                                fingerprint=fp, test_frame=test_frame, y_test=y_test)


def _image(source, arrays, task, y, y_test, classes, seed, subset, fp) -> Splits:
    path = Path(source.path)
    x = _images(arrays["x"], "x", path)
    parts = np.full(len(x), PART_TRAIN, np.int8)
    if "x_test" in arrays:
        x = np.concatenate([x, _images(arrays["x_test"], "x_test", path)])
        y = np.concatenate([y, y_test])
        parts = np.concatenate([parts, np.full(len(y_test), PART_TEST, np.int8)])
    if task != "regression":
        pool = y[parts == PART_TRAIN]
        counts = np.bincount(pool, minlength=len(classes))
        need = 2 if "x_test" in arrays else 3
        small = int(np.argmin(counts))
        if counts[small] < need:
            raise UserError(f"class {classes[small]!r} has only {counts[small]} samples in y; a stratified split needs "
                            f"at least {need} per class: add samples, or merge or drop that class")
    try:
        train, val, test = split_parts(y, parts, seed, subset, val_fraction=VAL_FRACTION,
                                       stratify=task != "regression")
    except ValueError as exc:
        raise UserError(f"cannot split {path.name} ({' '.join(str(exc).split())}); add samples") from None
    mean, std = channel_stats(x[train])
    return Splits(key=source.key, task=task, kind="image", x_train=x[train], y_train=y[train], x_val=x[val],
                  y_val=y[val], x_test=x[test], y_test=y[test], classes=classes, fingerprint=fp, split_seed=seed,
                  mean=mean, std=std)


def _schema_of(splits: Splits, task, classes, notes, y, y_test) -> Schema:
    y_all = y if y_test is None else np.concatenate([y, y_test])
    counts = None
    if classes:
        counts = {c: int(n) for c, n in zip(classes, np.bincount(y_all, minlength=len(classes)))}
    return Schema(kind=splits.kind, task=task, input_shape=splits.input_shape, n_samples=len(y_all),
                  classes=classes, class_counts=counts, notes=list(notes),
                  channels=splits.input_shape[0] if splits.kind == "image" else None,
                  target="y" if splits.kind == "tabular" else None,
                  splits={"train": len(splits.y_train), "val": len(splits.y_val), "test": len(splits.y_test)})


def inspect(source: DataSource) -> Schema:
    """An .npz is read whole either way (it has no header worth parsing on its own): seed 0."""
    splits, schema = _load(source, 0, None)
    if splits.task == "regression":
        schema.target_transform = choose_transform(splits.y_train)
    return schema
