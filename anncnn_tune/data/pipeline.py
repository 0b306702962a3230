"""From a user's raw input to a model's input, as plain recorded numbers (retrain's preprocess.json).

Tables: the `ColumnTransformer` that data/table.py fits on the training rows is recorded as its
fitted parameters, column by column (the imputed value; the scaler's mean and scale; the one-hot
categories), and `encode_table` applies them with numpy in float64, as scikit-learn does, so a
prediction needs neither the training file nor a pickle: a JSON file any language can read.
Images: decoding (Pillow, mode L or RGB), the size and resampling, and the per-channel mean/std
in pixel units. Nothing here imports torch; scikit-learn is only read, in `describe_table`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    import pandas as pd


class Columns(Protocol):
    """What describe_table reads of data/table.py's Columns (a Protocol: table.py imports this module)."""

    flag: list[str]
    numeric: list[str]
    categorical: list[str]
    dropped: list[str]
    date_formats: dict[str, str]

FORMAT = "anncnn-tune-preprocess/1"
ROLES = ("flag", "numeric", "categorical")
TRUE_WORDS = {"true": 1.0, "false": 0.0}
# A date column becomes these numbers (`derive` of a recorded column): calendar parts, and days
# since 1970-01-01 (a fixed origin: the scaler fitted on the training rows centres it anyway).
DATE_PARTS = ("year", "month", "weekday", "days")
MISSING = "missing"  # `derive` of a 0/1 feature that says the column's value was missing
# The date formats a column may hold: ISO 8601 (with or without a time), or day and month with
# slashes, month first (the US habit, pandas' default) unless a first number above 12 says otherwise.
DATE_FORMATS = ("ISO8601", "%m/%d/%Y", "%d/%m/%Y")


# ---------------------------------------------------------------- tables


def _plain(value):
    """A numpy scalar as a JSON value."""
    return value.item() if hasattr(value, "item") else value


def describe_table(fitted, cols: Columns, width: int, derived: dict | None = None,
                   pooled: dict | None = None) -> dict | None:
    """The fitted transformer of data/table.py as plain parameters, in its output order (flags,
    numbers, categories); None where they do not account for every encoded feature (`width`),
    e.g. a column entirely missing from the training rows, which SimpleImputer drops.

    `derived`: {encoded column: (raw column, derive)} for features computed from a raw column (a
    date's parts, a missing indicator); `pooled`: {categorical column: the level rare ones became}."""
    derived, pooled = derived or {}, pooled or {}

    def entry(name: str, role: str, **values) -> dict:
        if name in derived:
            source, derive = derived[name]
            values = {"derive": derive, **values}
            if derive != MISSING:
                values["date_format"] = cols.date_formats[source]
            name = source
        return {"name": name, "role": role, **values}

    columns = []
    if cols.flag:
        fills = fitted.named_transformers_["flag"].statistics_
        columns += [entry(c, "flag", fill=float(f)) for c, f in zip(cols.flag, fills)]
    if cols.numeric:
        steps = fitted.named_transformers_["numeric"].named_steps
        fills, scaler = steps["impute"].statistics_, steps["scale"]
        columns += [entry(c, "numeric", fill=float(f), mean=float(m), scale=float(s))
                    for c, f, m, s in zip(cols.numeric, fills, scaler.mean_, scaler.scale_)]
    if cols.categorical:
        steps = fitted.named_transformers_["categorical"].named_steps
        fills, categories = steps["impute"].statistics_, steps["onehot"].categories_
        for c, f, values in zip(cols.categorical, fills, categories):
            column = {"name": c, "role": "categorical", "fill": str(_plain(f)),
                      "categories": [str(_plain(v)) for v in values]}
            if c in pooled:
                column["other"] = pooled[c]  # a level outside `categories` counts as this one
            columns.append(column)
    described = {"columns": columns, "dropped": list(cols.dropped)}
    if table_width(described) != width or any(not np.isfinite(c["fill"]) for c in columns
                                                if c["role"] != "categorical"):
        return None
    return described


def table_width(table: dict) -> int:
    """Encoded features: one per flag or numeric column, one per category of a categorical column."""
    return sum(len(c["categories"]) if c["role"] == "categorical" else 1 for c in table["columns"])


def numeric_positions(table: dict) -> tuple[int, ...]:
    """The encoded positions of the numeric columns (the ones a model may transform or embed; flags
    and one-hot indicators are 0/1 and pass through)."""
    positions, j = [], 0
    for column in table["columns"]:
        if column["role"] == "numeric":
            positions.append(j)
        j += len(column["categories"]) if column["role"] == "categorical" else 1
    return tuple(positions)


def feature_columns(table: dict) -> list[str]:
    """The raw columns the encoding reads, each once (a date feeds several features)."""
    return list(dict.fromkeys(c["name"] for c in table["columns"]))


def categorical_columns(table: dict) -> list[str]:
    return [c["name"] for c in table["columns"] if c["role"] == "categorical"]


def parse_dates(series: pd.Series, date_format: str):
    """(the values as UTC timestamps without zone, mask of present values that are not dates)."""
    import pandas as pd

    text = _blank(series)
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = pd.to_datetime(series, utc=True)
    else:
        stamps = pd.to_datetime(text.astype(object).where(text.notna(), None), errors="coerce",
                                format=date_format, utc=True)
    stamps = stamps.dt.tz_localize(None)
    return stamps, (stamps.isna() & text.notna()).to_numpy()


def date_part(stamps, part: str) -> np.ndarray:
    """One of DATE_PARTS as float64, NaN where the date is missing."""
    if part == "days":
        origin = np.datetime64("1970-01-01", "s")
        seconds = (stamps.to_numpy(dtype="datetime64[s]") - origin).astype("timedelta64[s]").astype(np.float64)
        return np.where(stamps.isna().to_numpy(), np.nan, seconds / 86400.0)
    values = {"year": stamps.dt.year, "month": stamps.dt.month, "weekday": stamps.dt.day_of_week}[part]
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _derived(series: pd.Series, column: dict, where: str, first_row: int) -> np.ndarray:
    """A feature computed from a raw column: a missing indicator, or a part of a date."""
    if column["derive"] == MISSING:
        return _blank(series).isna().to_numpy().astype(np.float64)
    stamps, bad = parse_dates(series, column["date_format"])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{where} row {first_row + i} has {series.iloc[i]!r} in column {column['name']!r}, which "
                        f"the model reads as a date ({column['date_format']}); fix the value (a blank cell is imputed)")
    return date_part(stamps, column["derive"])


def _blank(series: pd.Series) -> pd.Series:
    """Blank or whitespace-only text is missing, as data/table.py reads it."""
    if series.dtype == object or str(series.dtype) in ("str", "string"):
        return series.mask(series.astype(str).str.strip() == "")
    return series


def _numbers(series: pd.Series, name: str, where: str, first_row: int) -> np.ndarray:
    import pandas as pd

    if series.dtype == bool:
        return series.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64)
    text = _blank(series)
    values = pd.to_numeric(text, errors="coerce")
    words = text.astype(str).str.strip().str.lower().map(TRUE_WORDS)
    values = values.where(values.notna(), words)  # True/False, as a 0/1 flag column holds them
    bad = values.isna() & text.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{where} row {first_row + i} has {text.iloc[i]!r} in column {name!r}, which the model "
                        "reads as a number; fix the value (a blank cell is imputed)")
    return values.to_numpy(dtype=np.float64)


def encode_table(frame: pd.DataFrame, table: dict, where: str = "input", first_row: int = 0) -> np.ndarray:
    """Raw rows -> the model's float32 features: what the fitted ColumnTransformer computes.

    Flags: missing -> the training rows' most frequent value. Numbers: missing -> the training
    median, then (x - mean) / scale. Categories: missing -> the most frequent category, then one-hot
    over the training categories, an unseen category all zeros (handle_unknown="ignore"), or the
    pooled level's indicator where rare levels were pooled. Derived features (`derive`): a date's
    part, then as a number; a missing indicator, 1 where the raw value is missing.
    `first_row` numbers the rows in error messages (0-based data rows of the whole input).
    """
    out = np.zeros((len(frame), table_width(table)), dtype=np.float64)
    j = 0
    for column in table["columns"]:
        name, role = column["name"], column["role"]
        if role == "categorical":
            categories = column["categories"]
            series = _blank(frame[name])
            present = series.notna().to_numpy()
            text = np.where(present, series.astype(str).to_numpy(dtype=object), column["fill"])
            index = {c: k for k, c in enumerate(categories)}
            if "other" in column:  # levels pooled in training (rare or unseen) share one indicator
                text = np.where(present & ~np.isin(text, categories), column["other"], text)
            codes = np.array([index.get(v, -1) for v in text], dtype=np.int64)
            known = codes >= 0
            out[np.flatnonzero(known), j + codes[known]] = 1.0
            j += len(categories)
            continue
        values = (_derived(frame[name], column, where, first_row) if "derive" in column
                  else _numbers(frame[name], name, where, first_row))
        values = np.where(np.isnan(values), column["fill"], values)
        if role == "numeric":
            values = (values - column["mean"]) / column["scale"]
        out[:, j] = values
        j += 1
    return out.astype(np.float32)


def onnx_table_prep(table: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fill, center, scale) per encoded feature, for the ops the ONNX graph runs first:
    x = where(isnan(x), fill, x); (x - center) / scale. A categorical column's features are its
    one-hot indicators; NaN in all of them means missing and fills the most frequent category's."""
    fill, center, scale = [], [], []
    for column in table["columns"]:
        if column["role"] == "categorical":
            fill += [1.0 if c == column["fill"] else 0.0 for c in column["categories"]]
            center += [0.0] * len(column["categories"])
            scale += [1.0] * len(column["categories"])
        else:
            fill.append(column["fill"])
            center.append(column.get("mean", 0.0))
            scale.append(column.get("scale", 1.0))
    return (np.array(fill, np.float64), np.array(center, np.float64), np.array(scale, np.float64))


def onnx_table_input(table: dict) -> list[str]:
    """What each encoded feature holds, in order: the report's list of what the ONNX graph computes
    from the raw columns before the model (results/onnx_table.py)."""
    lines = []
    for column in table["columns"]:
        name = column["name"]
        if column["role"] == "categorical":
            lines += [f"`{name}` == {c!r} (1 or 0; a missing `{name}` is {column['fill']!r})"
                      + (" (any level pooled as rare in training)" if c == column.get("other") else "")
                      for c in column["categories"]]
        elif column.get("derive") == MISSING:
            lines.append(f"`{name}` is missing (1 or 0; `anncnn-tune predict` computes it)")
        elif "derive" in column:
            lines.append(f"`{name}` {column['derive']} (number from the date, {column['date_format']}; "
                         f"`anncnn-tune predict` computes it; NaN: missing, imputed with {column['fill']:g})")
        else:
            what = "0/1 flag" if column["role"] == "flag" else "number, raw units"
            lines.append(f"`{name}` ({what}; NaN: missing, imputed with {column['fill']:g})")
    return lines


# ---------------------------------------------------------------- images


def describe_images(input_shape, mean, std) -> dict:
    channels, height, width = (int(v) for v in input_shape)
    return {"channels": channels, "mode": "L" if channels == 1 else "RGB", "size": [height, width],
            "resample": "bilinear", "pixels": "uint8 0-255, (N, C, H, W)",
            "mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def decode_images(paths: list[str], image: dict) -> tuple[np.ndarray, dict[int, str]]:
    """(uint8 (N, C, H, W), {position: error text}): the decoding training used (data/folder.py)."""
    from anncnn_tune.data.folder import decode_files

    return decode_files(paths, image["channels"], tuple(image["size"]))


__all__ = ["DATE_FORMATS", "DATE_PARTS", "FORMAT", "MISSING", "categorical_columns", "date_part", "decode_images", "describe_images", "describe_table", "encode_table",
           "feature_columns", "onnx_table_input", "onnx_table_prep", "parse_dates", "table_width"]
