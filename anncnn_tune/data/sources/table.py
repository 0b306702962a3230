"""A CSV, TSV or Parquet table with a target column: data/table.py reads it (the one table path)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from anncnn_tune.data.sources.base import SourceType, reader
from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.data.sources.base import DataSource


# What `dataset.columns` may set a column to (data/columns.py applies them); any but drop may end
# in WITH_MISSING, which adds a 0/1 feature saying the value was missing.
TREATMENTS = ("numeric", "flag", "categorical", "date", "drop")
WITH_MISSING = "+missing"


def check_treatment(value, where: str) -> str:
    """A treatment as the study file writes it (`numeric`, `categorical+missing`, ...), or one line."""
    base = value.removesuffix(WITH_MISSING) if isinstance(value, str) else None
    if base not in TREATMENTS or value == "drop" + WITH_MISSING:
        raise UserError(f"{where} must be one of {', '.join(TREATMENTS)} (any but drop may end in {WITH_MISSING}), "
                        f"got {value!r}")
    return value


def check(source: DataSource, where: str) -> None:
    if source.target is None:
        raise UserError(f"{where}.target is missing: name the column of {Path(source.path).name} to predict")
    if source.target in source.drop:
        raise UserError(f"{where}.drop lists the target {source.target!r}; remove it from drop")
    for name, treatment in source.columns or ():
        check_treatment(treatment, f"{where}.columns.{name}")
        if name == source.target:
            raise UserError(f"{where}.columns lists the target {name!r}; remove it (the target is not a feature)")
        if name in source.drop and treatment != "drop":
            raise UserError(f"{where}.columns.{name} is {treatment} but {where}.drop lists {name}; remove one of them")


def header(path: Path) -> list[str]:
    """A table's column names, read from its header alone (for the message of a missing --target)."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        import pandas as pd

        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8-sig").columns]
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the reader, with its reason
        return []


def init_check(path: Path, options: dict) -> None:
    """`init` on a table without --target: say which columns there are, before reading the rows."""
    if options.get("target") is not None or not path.is_file():
        return
    columns = header(path)
    listed = f"; its columns are: {', '.join(columns[:30])}" + (" ..." if len(columns) > 30 else "") \
        if columns else ""
    raise UserError(f"{path.name} is a table: pass --target COL, the column to predict{listed}")


READER = "anncnn_tune.data.table"

SOURCE = SourceType(
    name="table", noun="a table", plural="tables", data_kind="tabular",
    inspect=reader(READER, "inspect"), load=reader(READER, "load"), fingerprint=reader(READER, "fingerprint"),
    suffixes=(".csv", ".tsv", ".parquet"), aliases=(".pq",),
    options=("target", "drop", "test", "columns"), check=check, init_check=init_check,
)  # fmt: skip
