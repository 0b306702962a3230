"""The one table path: a user's CSV/TSV/Parquet and the built-in California and churn tables.

Reading (pandas; pyarrow for Parquet) and deciding what each column is happen here (a study file
with `dataset.columns` by data/columns.py's rules and the user's choices, an older one by
`column_roles`), then one `ColumnTransformer` (median imputation + scaling for numbers and a
date's parts, most-frequent imputation for 0/1 flags and missing indicators, most-frequent
imputation + one-hot for categories, their rare levels pooled) is fitted on the training rows only.
The split is a seeded 70/15/15 over row indices, stratified for classes, with the same calls the
built-in loaders always made, so their arrays are what they were before this module existed. Under
`dataset.columns` the rows first go into an order set by their content (data/canonical.py), so the
file's row order, column order, units and class names do not decide the split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from anncnn_tune.data import canonical
from anncnn_tune.data import columns as C
from anncnn_tune.data.base import Splits, choose_transform, fingerprint_files, split_rows
from anncnn_tune.data.memory import check_fits
from anncnn_tune.data.pipeline import DATE_PARTS, MISSING, date_part, describe_table, parse_dates
from anncnn_tune.data.schema import Schema
from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.data.source import DataSource

MULTICLASS_UPPER_LIMIT = 1000  # AutoGluon's: more distinct integer labels than this is regression
ROLES = ("flag", "numeric", "categorical")


@dataclass
class Columns:
    """What each feature column is, decided once from the whole file (never from the split)."""

    flag: list[str] = field(default_factory=list)  # numeric 0/1 (or bool): imputed, not scaled
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    date: list[str] = field(default_factory=list)  # each becomes DATE_PARTS, as numbers
    date_formats: dict[str, str] = field(default_factory=dict)  # date column -> pipeline.DATE_FORMATS entry
    indicators: list[str] = field(default_factory=list)  # columns that also get a 0/1 missing indicator
    max_levels: int | None = None  # categorical levels kept (rarer ones pooled); None: all (older studies)
    # dataset.columns' rules: the encoded features in the order of their names within each role, so
    # a moved column changes nothing (data/canonical.py); older studies keep the file's order
    by_name: bool = False

    @property
    def features(self) -> list[str]:
        return self.flag + self.numeric + self.categorical + self.date

    def encoded(self) -> tuple[Columns, dict[str, tuple[str, str]]]:
        """(the columns the transformer reads, {derived column: (raw column, pipeline derive)}):
        a date's parts join the numbers, missing indicators the flags; names say where they come from."""
        derived = {f"{c}[{part}]": (c, part) for c in self.date for part in DATE_PARTS}
        derived.update({f"{c}[{MISSING}]": (c, MISSING) for c in self.indicators})
        order = sorted if self.by_name else list
        return Columns(flag=order(self.flag + [f"{c}[{MISSING}]" for c in self.indicators]),
                       numeric=order(self.numeric + [f"{c}[{p}]" for c in self.date for p in DATE_PARTS]),
                       categorical=order(self.categorical), dropped=list(self.dropped),
                       date_formats=dict(self.date_formats)), derived


# ---------------------------------------------------------------- reading


def read_frame(path: Path) -> pd.DataFrame:
    """The file as a DataFrame; anything pandas cannot parse is one line naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    check_fits(_estimate_bytes(path), f"reading {path.name}", "drop columns or rows from the file")
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8-sig",
                                skipinitialspace=False, low_memory=False)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty; give a table with a header row and data rows") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} does not parse as a {suffix.lstrip('.')} table ({message}); fix the file") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own types for a damaged Parquet file
        message = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} cannot be read ({type(exc).__name__}: {message}); fix the file") from None
    if frame.empty:
        raise UserError(f"{path} has no data rows; give a table with a header row and data rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _estimate_bytes(path: Path) -> int:
    """Memory pandas will need, guessed before reading: text tables grow ~8x as objects."""
    size = path.stat().st_size
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            return meta.num_rows * meta.num_columns * 8 * 4
        except Exception:  # noqa: BLE001 - a damaged file: read_parquet says what is wrong
            return size * 8
    return size * 8


# ---------------------------------------------------------------- columns and task


_is_text, _blank_to_missing = C.is_text, C.blank_to_missing
class_label = C.label  # a class's or category's name (data/arrays.py names classes with it too)


def column_roles(frame: pd.DataFrame, features: list[str], notes: list[str]) -> tuple[pd.DataFrame, Columns]:
    """(frame with numeric-looking text columns converted, the role of every feature column): the
    rules of studies made before `dataset.columns` (and of array files), kept as they were."""
    frame = frame.copy()
    cols = Columns()
    n = len(frame)
    for name in features:
        series = _blank_to_missing(frame[name])
        present = series.dropna()
        if series.dtype == bool:
            series = series.astype(np.float64)
        elif _is_text(series) and len(present):
            numbers = pd.to_numeric(present, errors="coerce")
            if numbers.notna().all():
                blanks = int(series.isna().sum() - frame[name].isna().sum())
                series = pd.to_numeric(series, errors="coerce")
                if blanks:
                    notes.append(f"{name}: {blanks} blank values read as missing numbers (imputed with the median)")
        frame[name] = series
        present = series.dropna()
        distinct = present.nunique()
        if distinct <= 1:
            cols.dropped.append(name)
            notes.append(f"dropped constant column {name}")
        elif pd.api.types.is_numeric_dtype(series):
            if set(np.unique(present.to_numpy())) <= {0, 1}:
                cols.flag.append(name)
            else:
                cols.numeric.append(name)
        elif distinct == n and len(present) == n:
            cols.dropped.append(name)
            notes.append(f"dropped ID-like column {name} ({n} distinct values, one per row)")
        else:
            frame[name] = series.astype(object).where(series.notna(), np.nan)
            cols.categorical.append(name)
    return frame, cols


def column_decisions(frame: pd.DataFrame, features: list[str], given: dict[str, str],
                     notes: list[str]) -> tuple[pd.DataFrame, Columns, dict[str, C.Decision]]:
    """(frame with each column as the encoder reads it, the roles, each column's Decision): the
    rules of data/columns.py, the study file's `dataset.columns` taking precedence."""
    frame = frame.copy()
    cols = Columns(max_levels=C.MAX_LEVELS, by_name=True)
    decisions = {}
    for name in features:
        series, decision = C.decide(name, frame[name], given.get(name), notes)
        frame[name] = series
        decisions[name] = decision
        if decision.base == "drop":
            cols.dropped.append(name)
            continue
        getattr(cols, decision.base).append(name)
        if decision.base == "date":
            cols.date_formats[name] = decision.date_format
        if decision.indicator:
            cols.indicators.append(name)
    return frame, cols, decisions


def infer_task(y: pd.Series) -> tuple[str, str]:
    """AutoGluon's rule (infer_problem_type): (task, why)."""
    distinct = y.nunique()
    ratio_limit = 0.05 if len(y) > 1000 else 0.1
    if distinct == 2:
        return "binary", "2 distinct values"
    if _is_text(y) or isinstance(y.dtype, pd.CategoricalDtype):
        return "multiclass", f"{distinct} distinct text values"
    few = distinct / len(y) <= ratio_limit and distinct <= MULTICLASS_UPPER_LIMIT
    if pd.api.types.is_float_dtype(y):
        if few and np.array_equal(y.to_numpy(), np.round(y.to_numpy())):
            return "multiclass", f"{distinct} distinct whole-number values"
        return "regression", f"{distinct} distinct numeric values"
    if pd.api.types.is_integer_dtype(y) or y.dtype == bool:
        if few:
            return "multiclass", f"{distinct} distinct integer values"
        return "regression", f"{distinct} distinct integer values"
    raise UserError(f"target {y.name!r} has type {y.dtype}, neither numbers nor text; convert it")


def encode_target(y: pd.Series, task: str, target: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """(labels: int64 class indices or float32 values, class names sorted as ImageFolder sorts them)."""
    if task == "regression":
        numbers = pd.to_numeric(y, errors="coerce")
        if numbers.isna().any():
            bad = y[numbers.isna()].iloc[0]
            raise UserError(f"task regression needs a numeric target, but {target} holds {bad!r}; use task: multiclass")
        return numbers.to_numpy(dtype=np.float32), None
    values = np.array(sorted(y.unique(), key=lambda v: (str(type(v)), v)), dtype=object)
    if task == "binary" and len(values) != 2:
        raise UserError(f"task binary needs 2 target values, but {target} has {len(values)}; use task: multiclass")
    labels = pd.Series(range(len(values)), index=pd.Index(values)).reindex(y.to_numpy()).to_numpy(np.int64)
    return labels, tuple(class_label(v) for v in values)


# ---------------------------------------------------------------- split and encode (shared with the built-ins)


def transformer(cols: Columns) -> ColumnTransformer:
    """Imputation, scaling and one-hot encoding; unseen categories (a small subset) become zeros."""
    parts = []
    if cols.flag:
        parts.append(("flag", SimpleImputer(strategy="most_frequent"), cols.flag))
    if cols.numeric:
        parts.append(("numeric", Pipeline([("impute", SimpleImputer(strategy="median")),
                                           ("scale", StandardScaler())]), cols.numeric))
    if cols.categorical:
        parts.append(("categorical", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), cols.categorical))
    if not parts:
        raise UserError("the table has no feature columns left (all dropped); keep at least one column besides the target")
    return ColumnTransformer(parts)


def feature_names(fitted: ColumnTransformer, cols: Columns) -> tuple[str, ...]:
    names = list(cols.flag) + list(cols.numeric)
    if cols.categorical:
        categories = fitted.named_transformers_["categorical"].named_steps["onehot"].categories_
        names += [f"{c}={class_label(v)}" for c, values in zip(cols.categorical, categories) for v in values]
    return tuple(names)


def encoded_splits(key: str, frame: pd.DataFrame, y: np.ndarray, cols: Columns, *, task: str, classes,
                   seed: int, subset, fingerprint: str, test_frame: pd.DataFrame | None = None,
                   y_test: np.ndarray | None = None, strata: np.ndarray | None = None) -> Splits:
    """Split the rows, fit the transformer on the training rows only, and encode all three parts.

    `strata`: the labels the split stratifies by, where not the class indices (data/canonical.py's)."""
    stratify = task != "regression"
    if stratify:
        _check_stratifiable(y, classes, need=2 if test_frame is not None else 3)
    try:
        train, val, test = split_rows(y if strata is None else strata, seed, subset, stratify,
                                      has_test=test_frame is not None)
    except ValueError as exc:  # scikit-learn's own refusal, for whatever the checks above missed
        raise UserError(f"cannot split the rows ({' '.join(str(exc).split())}); add rows or use a held-out test file") from None
    enc, derived = cols.encoded()
    pooled = _pooling(frame.iloc[train], cols)
    features = enc.features

    def expand(part: pd.DataFrame) -> pd.DataFrame:
        """The raw rows with the derived columns added and rare levels pooled (as fitted on training rows)."""
        if not derived and not pooled:
            return part[features]
        out = part[[c for c in features if c not in derived]].copy()
        for name, (source, derive) in derived.items():
            out[name] = (part[source].isna().to_numpy().astype(np.float64) if derive == MISSING
                         else date_part(parse_dates(part[source], cols.date_formats[source])[0], derive))
        for name, (kept, other) in pooled.items():
            out[name] = out[name].where(out[name].isna() | out[name].isin(kept), other)
        return out[features]

    fitted = transformer(enc).fit(expand(frame.iloc[train]))

    def encode(part: pd.DataFrame) -> np.ndarray:
        return fitted.transform(expand(part)).astype(np.float32)

    if test_frame is None:
        x_test, y_test = encode(frame.iloc[test]), y[test]
    else:
        x_test = encode(test_frame)
    x_train = encode(frame.iloc[train])
    return Splits(
        key=key, task=task, kind="tabular",
        x_train=x_train, y_train=y[train],
        x_val=encode(frame.iloc[val]), y_val=y[val],
        x_test=x_test, y_test=y_test,
        classes=tuple(classes) if classes else None, fingerprint=fingerprint, split_seed=seed,
        feature_names=feature_names(fitted, enc),
        preprocess=describe_table(fitted, enc, x_train.shape[1], derived,
                                  {name: other for name, (_, other) in pooled.items()}),
    )  # fmt: skip


def _pooling(train: pd.DataFrame, cols: Columns) -> dict[str, tuple[list, str]]:
    """{categorical column: (levels kept, pooled level)} for those over `max_levels` on the training rows."""
    if cols.max_levels is None:
        return {}
    pooled = {name: C.pool_levels(train[name], cols.max_levels) for name in cols.categorical}
    return {name: p for name, p in pooled.items() if p is not None}


def _check_stratifiable(y: np.ndarray, classes, need: int) -> None:
    counts = np.bincount(y, minlength=len(classes))
    small = int(np.argmin(counts))
    if counts[small] < need:
        raise UserError(
            f"class {classes[small]!r} has only {counts[small]} rows; a stratified train/validation/test "
            f"split needs at least {need} per class: add rows, or merge or drop that class"
        )


# ---------------------------------------------------------------- a user's table


@dataclass
class _Prepared:
    frame: pd.DataFrame
    y: np.ndarray
    cols: Columns
    task: str
    classes: tuple[str, ...] | None
    notes: list[str]
    missing: dict[str, int]
    test_frame: pd.DataFrame | None
    y_test: np.ndarray | None
    decisions: dict[str, C.Decision] | None = None  # dataset.columns' rules; None: an older study's
    strata: np.ndarray | None = None  # what the split stratifies by, where not y (data/canonical.py)


def _check_given(source: DataSource, frame: pd.DataFrame, path: Path) -> dict[str, str]:
    """dataset.columns against the file (sources/table.py checked the treatments and the target)."""
    given = dict(source.columns or ())
    for name in given:
        if name not in frame.columns:
            raise UserError(f"dataset.columns names {name!r}, which {path.name} lacks; its columns are: {_list(frame)}")
    return given


def _prepare(source: DataSource) -> _Prepared:
    path = Path(source.path)
    frame = read_frame(path)
    target = source.target
    if not target:
        raise UserError(f"{path.name}: no target given; name the column to predict with target: (columns: {_list(frame)})")
    if target not in frame.columns:
        raise UserError(f"{path.name} has no column {target!r}; its columns are: {_list(frame)}")
    for name in source.drop:
        if name not in frame.columns:
            raise UserError(f"dataset.drop names {name!r}, which {path.name} lacks; its columns are: {_list(frame)}")
    notes: list[str] = []
    missing_target = int(_blank_to_missing(frame[target]).isna().sum())
    if missing_target:
        frame = frame[_blank_to_missing(frame[target]).notna()].reset_index(drop=True)
        notes.append(f"dropped {missing_target} rows with no {target} value")
    y_raw = frame[target]
    if y_raw.nunique() < 2:
        raise UserError(f"target {target!r} has a single value ({class_label(y_raw.iloc[0])!s}) in {path.name}; nothing to predict, choose another column")
    if source.task == "auto":
        task, why = infer_task(y_raw)
        notes.insert(0, f"task inferred: {task} ({why}); set task: to override")
    else:
        task = source.task
    y, classes = encode_target(y_raw, task, target)
    features = [c for c in frame.columns if c != target and c not in source.drop]
    missing = {c: int(n) for c, n in frame[features].apply(lambda s: _blank_to_missing(s).isna().sum()).items() if n}
    decisions = strata = None
    if source.columns is None:
        frame, cols = column_roles(frame, features, notes)
    else:
        frame, cols, decisions = column_decisions(frame, features, _check_given(source, frame, path), notes)
        order, strata = canonical.row_order(frame, cols.features, y, len(classes) if classes else None)
        frame, y = frame.iloc[order].reset_index(drop=True), y[order]
    cols.dropped = list(source.drop) + cols.dropped
    test_frame = y_test = None
    if source.test:
        test_frame, y_test = _prepare_test(Path(source.test), frame, target, task, classes, cols)
    return _Prepared(frame, y, cols, task, classes, notes, missing, test_frame, y_test, decisions, strata)


def _prepare_test(path: Path, frame: pd.DataFrame, target: str, task: str, classes, cols: Columns):
    test = read_frame(path)
    absent = [c for c in cols.features + [target] if c not in test.columns]
    if absent:
        raise UserError(f"held-out {path.name} lacks column {absent[0]!r} of the training table; give it the same columns")
    test = test[_blank_to_missing(test[target]).notna()].reset_index(drop=True)
    for name in cols.numeric + cols.flag:
        test[name] = pd.to_numeric(_blank_to_missing(test[name]), errors="coerce")
    for name in cols.categorical:
        series = _blank_to_missing(test[name])
        if cols.max_levels is not None:  # dataset.columns' rules: levels as text, as in training
            series = series.map(class_label, na_action="ignore")
        test[name] = series.astype(object).where(series.notna(), np.nan)
    for name in cols.date:
        series = _blank_to_missing(test[name])
        bad = parse_dates(series, cols.date_formats[name])[1]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"held-out {path.name} row {i} has {series.iloc[i]!r} in date column {name!r}, which "
                            "does not parse as a date; fix or blank it")
        test[name] = series
    if task == "regression":
        y_test, _ = encode_target(test[target], task, target)
    else:
        known = {label: i for i, label in enumerate(classes)}
        labels = [class_label(v) for v in test[target]]
        unknown = sorted(set(labels) - set(known))
        if unknown:
            raise UserError(f"held-out {path.name} has {target} value {unknown[0]!r}, absent from the training table; "
                            "every test class must appear in training")
        y_test = np.array([known[v] for v in labels], dtype=np.int64)
    return test, y_test


def _list(frame: pd.DataFrame, limit: int = 30) -> str:
    names = list(frame.columns)
    return ", ".join(names[:limit]) + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def fingerprint(source: DataSource) -> str:
    return fingerprint_files([Path(p) for p in (source.path, source.test) if p])


def load(source: DataSource, *, seed: int = 0, subset=None, data_dir=None) -> Splits:
    prepared = _prepare(source)
    splits = encoded_splits(
        source.key, prepared.frame, prepared.y, prepared.cols, task=prepared.task, classes=prepared.classes,
        seed=seed, subset=subset, fingerprint=fingerprint(source), test_frame=prepared.test_frame,
        y_test=prepared.y_test, strata=prepared.strata,
    )
    splits.source = source.to_dict()
    splits.schema = _schema(source, prepared, splits).summary()
    return splits


def inspect(source: DataSource) -> Schema:
    """The schema, from a seed-0 encoding of the table (cheap for anything that fits in memory)."""
    prepared = _prepare(source)
    splits = encoded_splits(
        source.key, prepared.frame, prepared.y, prepared.cols, task=prepared.task, classes=prepared.classes,
        seed=0, subset=None, fingerprint="", test_frame=prepared.test_frame, y_test=prepared.y_test,
        strata=prepared.strata,
    )
    schema = _schema(source, prepared, splits)
    if splits.task == "regression":
        schema.target_transform = choose_transform(splits.y_train)
    return schema


def _schema(source: DataSource, prepared: _Prepared, splits: Splits) -> Schema:
    counts = None
    y_all = prepared.y if prepared.y_test is None else np.concatenate([prepared.y, prepared.y_test])
    if prepared.classes:
        tally = np.bincount(y_all, minlength=len(prepared.classes))
        counts = {c: int(n) for c, n in zip(prepared.classes, tally)}
    cols = prepared.cols
    return Schema(
        kind="tabular", task=prepared.task, input_shape=splits.input_shape, n_samples=len(y_all),
        classes=prepared.classes, class_counts=counts, notes=list(prepared.notes),
        columns={"numeric": cols.numeric, "flag": cols.flag, "categorical": cols.categorical, "date": cols.date,
                 "dropped": cols.dropped},
        treatments=None if prepared.decisions is None else {
            name: (d.treatment, d.why) for name, d in prepared.decisions.items()},
        missing=prepared.missing, target=source.target,
        splits={"train": len(splits.y_train), "val": len(splits.y_val), "test": len(splits.y_test)},
    )  # fmt: skip

