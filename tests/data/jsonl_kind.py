"""A source kind that exists only for the tests: a JSON-lines table (one JSON object a line) with a target.

It is the whole of a new kind, as docs/architecture.md ("Adding a data source type") shows: this
module, and one line in `data.source.SOURCE_TYPES` (the tests put that line in with monkeypatch).
It encodes its rows through the one table path (data/table.py), as a real table format would, and
imports pandas and the readers inside its functions, so declaring it costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from anncnn_tune.data.schema import Schema
from anncnn_tune.data.sources.base import SourceType
from anncnn_tune.errors import UserError

if TYPE_CHECKING:  # data.source imports every kind: a kind imports it only for type checking
    from anncnn_tune.data.base import Splits
    from anncnn_tune.data.source import DataSource


def _read(source: DataSource):
    import pandas as pd

    from anncnn_tune.data import table

    path = Path(source.path)
    try:
        frame = pd.read_json(path, lines=True)
    except ValueError as exc:
        raise UserError(f"{path} is not JSON lines ({' '.join(str(exc).split())[:120]}); fix the file") from None
    if source.target not in frame.columns:
        raise UserError(f"{path.name} has no key {source.target!r}; its keys are: {', '.join(map(str, frame.columns))}")
    y_raw = frame[source.target]
    task = table.infer_task(y_raw)[0] if source.task == "auto" else source.task
    y, classes = table.encode_target(y_raw, task, source.target)
    notes: list[str] = []
    frame, cols = table.column_roles(frame, [c for c in frame.columns if c != source.target], notes)
    return frame, y, cols, task, classes, notes


def _encoded(source: DataSource, seed: int, subset) -> tuple[Splits, Schema]:
    import numpy as np

    from anncnn_tune.data import table

    frame, y, cols, task, classes, notes = _read(source)
    splits = table.encoded_splits(source.key, frame, y, cols, task=task, classes=classes, seed=seed,
                                  subset=subset, fingerprint=fingerprint(source))
    counts = dict(zip(classes, np.bincount(y, minlength=len(classes)).tolist())) if classes else None
    schema = Schema(kind="tabular", task=task, input_shape=splits.input_shape, n_samples=len(y), classes=classes,
                    class_counts=counts, notes=notes, target=source.target,
                    columns={"numeric": cols.numeric, "flag": cols.flag, "categorical": cols.categorical,
                             "dropped": cols.dropped})
    return splits, schema


def inspect(source: DataSource) -> Schema:
    return _encoded(source, 0, None)[1]


def load(source: DataSource, *, seed: int = 0, subset=None, data_dir=None) -> Splits:
    splits, schema = _encoded(source, seed, subset)
    splits.source, splits.schema = source.to_dict(), schema.summary()
    return splits


def fingerprint(source: DataSource) -> str:
    from anncnn_tune.data.base import fingerprint_files

    return fingerprint_files([Path(source.path)])


def check(source: DataSource, where: str) -> None:
    if source.target is None:
        raise UserError(f"{where}.target is missing: name the key of {Path(source.path).name} to predict")


SOURCE = SourceType(
    name="jsonl", noun="a JSON-lines table", plural="JSON-lines tables", data_kind="tabular",
    inspect=inspect, load=load, fingerprint=fingerprint,
    suffixes=(".jsonl",), options=("target",), check=check,
)  # fmt: skip
