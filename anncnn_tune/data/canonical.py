"""A user's table in an order set by its content, not by the file: the rows, and the class order
the split stratifies by.

Why: a user who sorts their CSV, moves a column, converts a feature's unit (metres to kilometres,
a shift of a temperature's zero), changes the target's unit or renames the classes has not changed
their data, and should get the same split and the same model up to floating-point noise (issue 23's
invariance). The split (data/base.split_rows) is a seeded draw over row positions, stratified by
class index, and the training batches are a seeded permutation of the training rows: each would
follow the file's row order and the classes' names. So before splitting, the rows are put in an
order computed from what the rows hold, by something every one of those changes leaves alone:

- a feature enters through the ranks of its values (a positive rescaling or a shift keeps them);
  the columns in the order of their names (a moved column changes nothing);
- each row's ranks are hashed (splitmix64), so that the order looks random: the first rows of the
  training split are a fair sample (fit() fits the numeric inputs' quantiles on them);
- rows with equal features are ordered by the target: its rank (regression) or its class's place
  among the classes ordered by size, then by the smallest hash among each class's rows; that order
  is also what the split stratifies by, so renamed classes are split alike.

A feature rescaled by a negative factor reverses its ranks and is a different table here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on each element (uint64 arithmetic wraps, as intended)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ranks(series: pd.Series) -> np.ndarray:
    """Each value's rank among the column's distinct values, 1-based; 0 for a missing value."""
    values = series
    if values.dtype == object:  # text categories, dates as written, the odd number among them
        values = values.map(str, na_action="ignore")
    codes, _ = pd.factorize(values, sort=True, use_na_sentinel=True)
    return codes.astype(np.int64) + 1


def row_hashes(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """One uint64 per row from the ranks of its features, the columns taken in the order of their names."""
    h = np.zeros(len(frame), dtype=np.uint64)
    for name in sorted(features):
        h = _mix(h ^ (ranks(frame[name]).astype(np.uint64) + _GOLDEN))
    return h


def class_order(y: np.ndarray, hashes: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class index's place when the classes are ordered by size (largest first), then by the
    smallest row hash among their rows: an order the classes' names play no part in."""
    sizes = np.bincount(y, minlength=n_classes)
    first = np.full(n_classes, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(first, y, hashes)
    ordered = np.lexsort((first, -sizes))
    place = np.empty(n_classes, dtype=np.int64)
    place[ordered] = np.arange(n_classes)
    return place


def row_order(frame: pd.DataFrame, features: list[str], y: np.ndarray, n_classes: int | None):
    """(row positions in content order, the stratification label of each row in that order).

    `y`: class indices (n_classes given) or regression values (n_classes None: no strata, None)."""
    hashes = row_hashes(frame, features)
    if n_classes is None:
        return np.lexsort((ranks(pd.Series(y)), hashes)), None
    strata = class_order(y, hashes, n_classes)[y]
    order = np.lexsort((strata, hashes))
    return order, strata[order]


__all__ = ["class_order", "ranks", "row_hashes", "row_order"]
