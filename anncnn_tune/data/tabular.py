"""Tabular datasets in their official formats: California Housing (cal_housing.tgz) and IBM Telco churn (CSV).

Readers take paths and return raw columns; loaders verify the files (`fetch.ensure_files`) and
hand the columns to the generic table path (table.encoded_splits), which splits 70/15/15 with a
seed (stratified for churn) and fits every imputer, scaler and encoder on the training split only.
"""

from __future__ import annotations

import csv
import tarfile
import zlib
from pathlib import Path

import numpy as np

from anncnn_tune.data import fetch
from anncnn_tune.data.base import Splits, fingerprint_files
from anncnn_tune.errors import UserError

# ---------------------------------------------------------------- California Housing

CAL_MEMBER = "CaliforniaHousing/cal_housing.data"
CAL_FEATURES = (
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
)


def read_cal_housing(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(features float64 (N, 8) in CAL_FEATURES order, target in units of 100,000 dollars).

    Follows scikit-learn's `fetch_california_housing` step for step, so the numbers are the
    ones every tutorial reports. The raw file's columns are longitude, latitude,
    housingMedianAge, totalRooms, totalBedrooms, population, households, medianIncome,
    medianHouseValue.
    """
    path = Path(path)
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            member = tar.extractfile(CAL_MEMBER)
            if member is None:
                raise KeyError(CAL_MEMBER)
            raw = np.loadtxt(member, delimiter=",", ndmin=2)
    except KeyError:
        raise UserError(
            f"{path} has no {CAL_MEMBER}; it is not StatLib's cal_housing.tgz, fetch it again"
        ) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        message = " ".join(str(exc).split())[:200]
        raise UserError(f"{path} cannot be read ({message}); delete it and fetch it again") from None
    if raw.shape[1] != 9:
        raise UserError(f"{path}: {CAL_MEMBER} has {raw.shape[1]} columns, expected 9; fetch it again")
    # to: value, income, age, rooms, bedrooms, population, households, latitude, longitude
    cal = raw[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]]
    target, data = cal[:, 0], cal[:, 1:].copy()
    data[:, 2] /= data[:, 5]  # rooms per household
    data[:, 3] /= data[:, 5]  # bedrooms per household
    data[:, 5] = data[:, 4] / data[:, 5]  # occupants per household
    return data, target / 100000.0


def load_california_housing(*, data_dir=None, seed: int = 0, subset=None) -> Splits:
    """Regression on the 8 scikit-learn features, through the generic table path (all numeric:
    imputed, which changes nothing here as no value is missing, and standardised on training rows)."""
    import pandas as pd  # here, not at the top: commands that never load a table skip the import

    from anncnn_tune.data import table

    (path,) = fetch.ensure_files("california-housing", data_dir)
    x, y = read_cal_housing(path)
    frame = pd.DataFrame(x, columns=list(CAL_FEATURES))
    cols = table.Columns(numeric=list(CAL_FEATURES))
    return table.encoded_splits("california-housing", frame, y.astype(np.float32), cols, task="regression",
                                classes=None, seed=seed, subset=subset, fingerprint=fingerprint_files([path]))


# ---------------------------------------------------------------- Telco Customer Churn

TELCO_NUMERIC = ("tenure", "MonthlyCharges", "TotalCharges")  # standardised
TELCO_FLAGS = ("SeniorCitizen",)  # already 0/1: passed through like the one-hot columns
TELCO_CATEGORICAL = (
    "gender", "Partner", "Dependents", "PhoneService", "MultipleLines", "InternetService",
    "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
    "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod",
)  # fmt: skip
TELCO_TARGET = "Churn"
TELCO_CLASSES = ("No", "Yes")


def read_telco(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numeric float64 (N, 4): SeniorCitizen + TELCO_NUMERIC, categorical str (N, 15), churn int64 0/1).

    customerID is ignored (an identifier, not a feature). The 11 blank TotalCharges are set to
    0: every one of them belongs to a customer with tenure 0 who has not been billed yet, so 0
    is the true value, and no imputer has to be fitted.
    """
    path = Path(path)
    numeric_cols = TELCO_FLAGS + TELCO_NUMERIC
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            for column in numeric_cols + TELCO_CATEGORICAL + (TELCO_TARGET,):
                if column not in header:
                    raise UserError(
                        f"{path} has no column {column!r}; it is not the IBM Telco Customer Churn CSV, "
                        "fetch it again"
                    )
            numeric, categorical, target = [], [], []
            for row in reader:
                line = reader.line_num
                try:
                    numeric.append([_number(row[c]) for c in numeric_cols])
                except (ValueError, TypeError):
                    bad = next(c for c in numeric_cols if not _is_number(row[c]))
                    raise UserError(
                        f"{path} line {line}: {bad} is {row[bad]!r}, not a number; fetch it again"
                    ) from None
                categorical.append([row[c] if row[c] is not None else "" for c in TELCO_CATEGORICAL])
                if row[TELCO_TARGET] not in TELCO_CLASSES:
                    raise UserError(
                        f"{path} line {line}: Churn is {row[TELCO_TARGET]!r}, expected Yes or No; fetch it again"
                    )
                target.append(row[TELCO_TARGET] == "Yes")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason}); fetch it again") from None
    if not target:
        raise UserError(f"{path} has no data rows; fetch it again")
    return (
        np.array(numeric, dtype=np.float64),
        np.array(categorical, dtype=object),
        np.array(target, dtype=np.int64),
    )


def _number(text: str | None) -> float:
    text = text.strip() if text is not None else None
    return 0.0 if text == "" else float(text)  # blank TotalCharges: see read_telco


def _is_number(text) -> bool:
    try:
        _number(text)
    except (ValueError, TypeError):
        return False
    return True


def load_churn(*, data_dir=None, seed: int = 0, subset=None) -> Splits:
    """Binary churn (Yes = 1) through the generic table path: SeniorCitizen a 0/1 flag, the three
    numbers standardised, the 15 categories one-hot encoded, all fitted on training rows;
    stratified 70/15/15. The reader's checks and its blank TotalCharges = 0 (see read_telco) are
    what the plain-CSV route lacks, hence the built-in entry."""
    import pandas as pd

    from anncnn_tune.data import table

    (path,) = fetch.ensure_files("churn", data_dir)
    numeric, categorical, y = read_telco(path)
    frame = pd.DataFrame(numeric, columns=list(TELCO_FLAGS + TELCO_NUMERIC))
    for i, column in enumerate(TELCO_CATEGORICAL):
        frame[column] = pd.Series(categorical[:, i], dtype=object)
    cols = table.Columns(flag=list(TELCO_FLAGS), numeric=list(TELCO_NUMERIC), categorical=list(TELCO_CATEGORICAL))
    return table.encoded_splits("churn", frame, y, cols, task="binary", classes=TELCO_CLASSES, seed=seed,
                                subset=subset, fingerprint=fingerprint_files([path]))
