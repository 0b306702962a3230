"""What each column of a user's table becomes, decided as a careful data scientist would (issue 23).

One decision per feature column, written by `init` into the study file's `dataset.columns` so
that a user can read and change it:

- `numeric`: median-imputed and standardised; `flag`: a 0/1 column, imputed, not scaled;
- `categorical`: one-hot, at most MAX_LEVELS levels kept (the most frequent on the training
  rows), the rarer ones pooled into one "other" level so a 5,000-level column stays narrow;
- `date`: its parts (year, month, weekday, days since 1970), each then a number;
- `drop`: left out (ID-like columns and free text are dropped this way, with a note);
- any but `drop` may end in `+missing`: a 0/1 feature saying the value was missing, which `init`
  adds where at least MISSING_SHARE of the rows lack a value.

Columns that cannot be read honestly stop `init` with one line naming them: entirely missing,
constant, numbers mixed with text, a date column with a value that is not a date. A study file
without `columns:` keeps the rules its study was made with (data/table.py's `column_roles`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from anncnn_tune.data import pipeline
from anncnn_tune.data.sources.table import TREATMENTS, WITH_MISSING
from anncnn_tune.errors import UserError

MAX_LEVELS = 32  # categorical levels kept (the last one is "other" where rarer levels exist)
MISSING_SHARE = 0.10  # a column missing in at least this share of the rows gets a missing indicator
DATE_SHARE = 0.9  # a text column whose values look like dates in at least this share is a date column
TEXT_WORDS = 3.0  # free text: at least this many words per value on average ...
TEXT_DISTINCT = 0.5  # ... and distinct values in at least this share of the rows
MIXED_SHARE = 0.5  # numbers in at least this share of a column's values, but not all: mixed types ...
_ISO = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")
_SLASHED = re.compile(r"^(\d{1,2})/\d{1,2}/\d{4}$")


def is_text(series: pd.Series) -> bool:
    """Text columns: object dtype, or pandas 3's own string dtype (`str`)."""
    return series.dtype == object or isinstance(series.dtype, pd.StringDtype)


def blank_to_missing(series: pd.Series) -> pd.Series:
    if is_text(series):
        return series.mask(series.astype(str).str.strip() == "")
    return series


def label(value) -> str:
    """A category or class as text: 3.0 -> "3", as the one-hot names and predict read them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Decision:
    """One column's treatment, why, and what reading it needs."""

    treatment: str  # one of TREATMENTS, maybe with WITH_MISSING
    why: str
    date_format: str | None = None

    @property
    def base(self) -> str:
        return self.treatment.removesuffix(WITH_MISSING)

    @property
    def indicator(self) -> bool:
        return self.treatment.endswith(WITH_MISSING)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _date_format(present: pd.Series) -> str | None:
    """The DATE_FORMATS entry that the values look like, or None where under DATE_SHARE of them do."""
    text = present.astype(str).str.strip()
    iso = text.str.match(_ISO).mean()
    slashed = text.str.extract(_SLASHED, expand=False)
    if iso >= DATE_SHARE:
        return "ISO8601"
    if slashed.notna().mean() >= DATE_SHARE:
        return "%d/%m/%Y" if (pd.to_numeric(slashed, errors="coerce") > 12).any() else "%m/%d/%Y"
    return None


def _dates(name: str, series: pd.Series, date_format: str, n: int) -> None:
    """Every present value parses as a date, or one line naming the first that does not."""
    _, bad = pipeline.parse_dates(series, date_format)
    if bad.any():
        i = _first(bad)
        raise UserError(f"column {name!r} holds dates ({date_format}) but row {i} has {series.iloc[i]!r}, which does "
                        f"not parse as one; fix or blank it, or treat the column otherwise in dataset.columns "
                        f"(e.g. {name}: categorical)")


def _numbers(name: str, series: pd.Series, given: str) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    bad = (numbers.isna() & series.notna()).to_numpy()
    if bad.any():
        i = _first(bad)
        raise UserError(f"dataset.columns sets {name}: {given}, but row {i} has {series.iloc[i]!r}, not a number; "
                        "fix the value or treat the column as categorical")
    return numbers


def decide(name: str, raw: pd.Series, given: str | None, notes: list[str]) -> tuple[pd.Series, Decision]:
    """(the column as the encoder reads it, its Decision): `given` (the study file's) or inferred."""
    n = len(raw)
    series = blank_to_missing(raw)
    present = series.dropna()
    if given == "drop":
        return series, Decision("drop", "set in dataset.columns")
    if not len(present):
        raise UserError(f"column {name!r} is empty (all {n} values missing); drop it with --drop {name!r} "
                        "(or dataset.drop)")
    missing = n - len(present)
    many_missing = missing >= MISSING_SHARE * n
    suffix = WITH_MISSING if (given.endswith(WITH_MISSING) if given else many_missing) else ""
    indicator_why = f"; {missing} missing ({missing / n:.0%}): a missing indicator added" if suffix else ""
    base = given.removesuffix(WITH_MISSING) if given else None
    date_format = None

    if series.dtype == bool:
        series = series.astype(np.float64)
    if base is None:
        base, why, series, date_format = _infer(name, series, present, n)
        if base == "drop":
            notes.append(f"dropped {name}: {why}")
            return series, Decision("drop", why)
    elif base in ("numeric", "flag"):
        series, why = _numbers(name, series, given), "set in dataset.columns"
    elif base == "date":
        date_format = _date_format(present) or "ISO8601"
        _dates(name, series, date_format, n)
        why = "set in dataset.columns"
    else:
        why = "set in dataset.columns"
    if base == "categorical":
        series = series.map(label, na_action="ignore").astype(object).where(series.notna(), np.nan)
        levels = series.nunique()
        if levels > MAX_LEVELS:
            why += f"; over {MAX_LEVELS}: the {MAX_LEVELS - 1} most frequent in training kept, the rest pooled as one"
    distinct = (pipeline.parse_dates(series, date_format)[0] if base == "date" else series).dropna().nunique()
    if distinct <= 1:
        value = label(present.iloc[0])
        raise UserError(f"column {name!r} is constant (every present value is {value!r}); it tells the rows apart "
                        f"in nothing: drop it with --drop {name!r} (or dataset.drop)")
    return series, Decision(base + suffix, why + indicator_why, date_format)


def _row_numbers(values: np.ndarray) -> bool:
    """Whole numbers, each row its own, with no gap: a row number or a sequential ID, not a measurement."""
    return (len(values) > 2 and bool(np.all(values == np.round(values)))
            and len(np.unique(values)) == len(values) and values.max() - values.min() + 1 == len(values))


def _infer(name: str, series: pd.Series, present: pd.Series, n: int):
    """(treatment, why, the column converted, date format) from the values alone."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return "date", "date values: year, month, weekday, days", series, "ISO8601"
    if pd.api.types.is_numeric_dtype(series):
        values = present.to_numpy(dtype=np.float64)
        if set(np.unique(values)) <= {0, 1}:
            return "flag", "0/1 values", series, None
        if len(present) == n and _row_numbers(values):
            return "drop", f"ID-like (whole numbers {values.min():g}..{values.max():g}, one per row)", series, None
        return "numeric", f"{present.nunique()} distinct numbers", series, None
    if not is_text(series):
        raise UserError(f"column {name!r} has type {series.dtype}, neither numbers, dates nor text; convert it, or "
                        f"drop it with --drop {name!r}")
    text = present.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    share = float(numbers.notna().mean())
    if share == 1.0:
        return _infer(name, pd.to_numeric(series.astype(object).where(series.notna(), None), errors="coerce"),
                      numbers, n)
    date_format = _date_format(present)
    if date_format is not None:
        _dates(name, series, date_format, n)
        return "date", f"dates ({date_format}): year, month, weekday, days since 1970", series, date_format
    distinct = text.nunique()
    if share >= MIXED_SHARE and distinct > MAX_LEVELS:
        i = _first((pd.to_numeric(series, errors="coerce").isna() & series.notna()).to_numpy())
        raise UserError(f"column {name!r} mixes numbers and text (row {i} has {series.iloc[i]!r}, "
                        f"{share:.0%} of its values are numbers); fix or blank the text values, or set "
                        f"dataset.columns {name}: categorical or drop")
    words = float(text.str.split().str.len().mean())
    if words >= TEXT_WORDS and distinct >= TEXT_DISTINCT * n:
        return "drop", f"free text ({words:.1f} words a value, {distinct} distinct): not used", series, None
    if distinct == n and len(present) == n:
        return "drop", f"ID-like ({n} distinct values, one per row)", series, None
    return "categorical", f"{distinct} text levels", series, None


def pool_levels(train: pd.Series, cap: int = MAX_LEVELS) -> tuple[list, str] | None:
    """(levels kept, the name of the pooled level) from the training rows, or None: all fit under `cap`."""
    counts = train.dropna().value_counts()
    if len(counts) <= cap:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))  # ties by name: deterministic
    kept = [level for level, _ in ranked[: cap - 1]]
    other = "(other)"
    while other in counts.index:  # never a real level's name
        other = f"({other})"
    return kept, other


__all__ = ["MAX_LEVELS", "MISSING_SHARE", "TREATMENTS", "WITH_MISSING", "Decision", "blank_to_missing",
           "decide", "is_text", "label", "pool_levels"]
