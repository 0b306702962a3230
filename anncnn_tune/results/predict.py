"""`anncnn-tune predict RUN_DIR INPUT`: a retrained model on a user's raw rows or image files.

RUN_DIR is what `retrain` wrote: model.pt (the weights and what rebuilds the model) and
preprocess.json (data/pipeline.py: the fitted imputation, scaling and one-hot encoding of a
table; the decoding, size and mean/std of images; the class names; the target's scaling).
INPUT is a CSV/TSV/Parquet table with the training columns (others are ignored, the target
among them), an image file or a folder of images. The input is read and predicted in batches,
so memory stays bounded whatever its length; each batch becomes rows of one CSV: `row` (tables,
0-based data row) or `file` (images), then `prediction` (a class name, or the value in the
target's units) and, for classes, `prob_<class>` per class.

Every check (run folder, input columns, output path) happens before the first batch; a file
output is written beside its target and renamed at the end, so an error midway leaves nothing.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anncnn_tune.atomic import file_mode
from anncnn_tune.data import pipeline
from anncnn_tune.data.base import TargetScaling
from anncnn_tune.errors import UserError

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
TABLE_BATCH = 4096  # rows
IMAGE_BATCH = 256  # files
PROGRESS_AFTER = 1  # batches: say how far it got from the second batch on


@dataclass
class PredictResult:
    out: str | None  # the CSV written; None: standard output
    rows: int
    columns: list[str]
    skipped: list[str] = field(default_factory=list)  # unreadable images skipped (skip_bad)


@dataclass
class _Model:
    model: object
    record: dict
    mean: object  # torch tensors (images), or None
    std: object
    target: TargetScaling

    @property
    def classes(self) -> list[str] | None:
        return self.record["classes"]


def load_run_dir(run_dir) -> _Model:
    """model.pt and preprocess.json of a retrain folder; one line for a folder that is not one."""
    import torch

    from anncnn_tune.results.weights import load_weights

    folder = Path(run_dir)
    weights, record_path = folder / "model.pt", folder / "preprocess.json"
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; give the folder `anncnn-tune retrain` wrote (--out)")
    if not weights.is_file():
        raise UserError(f"{folder} has no model.pt; give the folder `anncnn-tune retrain` wrote (--out)")
    if not record_path.is_file():
        raise UserError(f"{folder} has no preprocess.json (retrained by an older anncnn-tune); run "
                        f"`anncnn-tune retrain {folder / 'run.yaml'} --out NEW_DIR` again")
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{record_path} cannot be read ({exc}); run retrain again") from None
    if record.get("format") != pipeline.FORMAT:
        raise UserError(f"{record_path} is format {record.get('format')!r}, not {pipeline.FORMAT}; run retrain again")
    model, _saved = load_weights(str(weights))
    mean = std = None
    if record["image"] is not None:
        mean = torch.tensor(record["image"]["mean"], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(record["image"]["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return _Model(model, record, mean, std, TargetScaling.from_dict(record["target"]["scaling"]))


def _outputs(m: _Model, x: np.ndarray) -> np.ndarray:
    """The model's outputs on a batch of model inputs (encoded table rows or uint8 images), in the
    user's units for a regression target: fit.predict's path (normalise, forward, to_user)."""
    import torch

    batch = torch.from_numpy(np.ascontiguousarray(x))
    if m.mean is not None:
        batch = batch.to(torch.float32).sub_(m.mean).div_(m.std)
    with torch.inference_mode():
        out = m.model(batch).float()
    return m.target.to_user(out).numpy().reshape(len(x), -1).astype(np.float64)


def _frame(m: _Model, key: str, keys: list, out: np.ndarray):
    """One batch of the output CSV: the row or file, the prediction, and per-class probabilities."""
    import pandas as pd

    task, classes = m.record["task"], m.classes
    frame = pd.DataFrame({key: keys})
    if task == "regression":
        frame["prediction"] = out[:, 0]
        return frame
    if task == "binary":
        p1 = 1.0 / (1.0 + np.exp(-out[:, 0]))
        probs = np.stack([1.0 - p1, p1], axis=1)
        chosen = (p1 > m.record["decision"]["threshold"]).astype(np.int64)
    else:
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        chosen = out.argmax(axis=1)
    names = classes or [str(i) for i in range(probs.shape[1])]
    frame["prediction"] = [names[i] for i in chosen]
    for i, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, i]
    return frame


# ---------------------------------------------------------------- tables


def _table_columns(path: Path) -> list[str]:
    import pandas as pd

    from anncnn_tune.data.table import read_frame

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.ParquetFile(path).schema_arrow.names]
        return [str(c) for c in pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",",
                                            encoding="utf-8-sig", nrows=0).columns]
    except Exception:  # noqa: BLE001 - read_frame says what is wrong with the file, in one line
        read_frame(path)
        raise UserError(f"{path} cannot be read as a table; fix the file") from None


def _table_batches(path: Path, table: dict, size: int) -> Iterator[tuple[int, object]]:
    """(first row, DataFrame of the feature columns) per batch of rows."""
    import pandas as pd

    wanted = pipeline.feature_columns(table)
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        start = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=size, columns=wanted):
            frame = batch.to_pandas()
            yield start, frame
            start += len(frame)
        return
    # category columns as text, as training read them, so "3" stays the category "3"
    text = {name: str for name in pipeline.categorical_columns(table)}
    reader = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", encoding="utf-8-sig",
                         usecols=wanted, dtype=text, chunksize=size)
    start = 0
    try:
        for frame in reader:
            yield start, frame
            start += len(frame)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} does not parse after row {start} ({' '.join(str(exc).split())[:200]}); "
                        "fix the file") from None


def _predict_table(m: _Model, path: Path, size: int, log) -> Iterator:
    table = m.record["table"]
    for first, frame in _table_batches(path, table, size):
        x = pipeline.encode_table(frame, table, where=path.name, first_row=first)
        yield _frame(m, "row", list(range(first, first + len(frame))), _outputs(m, x)), len(frame), []


def _check_table(m: _Model, path: Path) -> None:
    table = m.record["table"]
    if table is None and m.record["image"] is not None:
        raise UserError("this model was trained on images, not on a table; give an image file or a folder of images")
    if table is None:
        raise UserError("this run recorded no preprocessing of its table (a column missing from every training "
                        "row); predict cannot rebuild its inputs: feed model.onnx the encoded features")
    have = set(_table_columns(path))
    missing = [name for name in pipeline.feature_columns(table) if name not in have]
    if missing:
        raise UserError(f"{path.name} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)} of the "
                        "training table; add them (blank cells are imputed)")


# ---------------------------------------------------------------- images


def _image_files(path: Path) -> tuple[list[str], list[str]]:
    """(paths, names): one image file, or every image file under a folder (recursive, sorted, hidden
    files skipped), named relative to the folder."""
    from anncnn_tune.data.folder import IMAGE_SUFFIXES

    if path.is_file():
        return [str(path)], [path.name]
    found = []
    for here, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(here, n) for n in sorted(files)
                  if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES]
    if not found:
        raise UserError(f"{path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); give images")
    return found, [os.path.relpath(f, path) for f in found]


def _predict_images(m: _Model, files: list[str], names: list[str], size: int, skip_bad: bool, log) -> Iterator:
    image = m.record["image"]
    for start in range(0, len(files), size):
        x, errors = pipeline.decode_images(files[start : start + size], image)
        skipped = []
        for i, reason in sorted(errors.items()):
            if not skip_bad:
                raise UserError(f"{files[start + i]} is not a readable image ({reason}); fix or remove it, "
                                "or pass --skip-bad")
            skipped.append(names[start + i])
            log(f"skipped {names[start + i]}: not a readable image ({reason})")
        keep = np.array([i not in errors for i in range(len(x))], dtype=bool)
        keys = [n for n, k in zip(names[start : start + size], keep) if k]
        out = _outputs(m, x[keep]) if keep.any() else np.zeros((0, 1))
        yield _frame(m, "file", keys, out), len(x), skipped


# ---------------------------------------------------------------- the command


def _batches(m: _Model, source: Path, batch_size: int | None, skip_bad: bool, log) -> Iterator:
    """Checks everything that can be checked before the first batch, then yields batches."""
    if not source.exists():
        raise UserError(f"{source} does not exist; give a table, an image file or a folder of images")
    suffix = source.suffix.lower()
    if source.is_file() and suffix in TABLE_SUFFIXES:
        _check_table(m, source)
        return _predict_table(m, source, batch_size or TABLE_BATCH, log)
    from anncnn_tune.data.folder import IMAGE_SUFFIXES

    if source.is_dir() or suffix in IMAGE_SUFFIXES:
        if m.record["image"] is None:
            raise UserError("this model was trained on a table, not on images; give a "
                            f"{'/'.join(s.lstrip('.') for s in TABLE_SUFFIXES)} table with its columns")
        files, names = _image_files(source)
        return _predict_images(m, files, names, batch_size or IMAGE_BATCH, skip_bad, log)
    raise UserError(f"{source.name}: not a table ({', '.join(TABLE_SUFFIXES)}), an image "
                    f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a folder; give one of those")


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise UserError(f"-o {out} is a folder; give a file name such as {out / 'predictions.csv'}")
    if not out.parent.is_dir():
        raise UserError(f"-o {out}: folder {out.parent} does not exist; create it or choose another path")


def predict(run_dir, source, out=None, *, batch_size: int | None = None, skip_bad: bool = False,
            log: Callable[[str], None] = print, stdout=None):
    """Predict `source` with the model in `run_dir`.

    out: a CSV path (written whole or not at all), "-" (CSV to `stdout` batch by batch), or None
    (a pandas DataFrame returned). Otherwise returns a PredictResult.
    """
    import pandas as pd

    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    m = load_run_dir(run_dir)
    source = Path(source)
    batches = _batches(m, source, batch_size, skip_bad, log)
    target = None if out in (None, "-") else Path(out)
    if target is not None:
        _check_out(target)

    frames, rows, columns, skipped, read = [], 0, [], [], 0

    def each():
        nonlocal rows, read, columns
        for n, (frame, n_read, bad) in enumerate(batches):
            rows, read = rows + len(frame), read + n_read
            columns = list(frame.columns)
            skipped.extend(bad)
            if n >= PROGRESS_AFTER:
                log(f"predict: {read} {'rows' if m.record['table'] else 'images'} done")
            yield frame

    if out is None:
        frames = list(each())
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if target is None:
        stream = stdout or sys.stdout
        for n, frame in enumerate(each()):
            frame.to_csv(stream, index=False, header=n == 0)
        return PredictResult(None, rows, columns, skipped)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", newline="") as fh:
            for n, frame in enumerate(each()):
                frame.to_csv(fh, index=False, header=n == 0)
        os.chmod(temporary, file_mode())  # mkstemp's 0600 -> what an ordinary open() gives
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return PredictResult(str(target), rows, columns, skipped)


__all__ = ["PredictResult", "load_run_dir", "predict"]
