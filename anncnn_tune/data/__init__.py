"""Dataset registry: key -> loader. Each loader returns a `Splits`; nothing is loaded at import.

Source and licence of the downloadable datasets live next to their files and checksums in
`fetch.REGISTRY`, so there is one place to update when a mirror or a hash changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from anncnn_tune.data import digits, images, tabular
from anncnn_tune.data.base import Splits
from anncnn_tune.data.fetch import REGISTRY as _FILES
from anncnn_tune.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    key: str
    kind: str  # image | tabular
    task: str  # multiclass | binary | regression
    load: Callable[..., Splits]
    source: str
    license: str


def _remote(key: str, kind: str, task: str, load: Callable[..., Splits]) -> DatasetInfo:
    return DatasetInfo(key, kind, task, load, _FILES[key].source, _FILES[key].license)


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "image", "multiclass", digits.load, digits.SOURCE, digits.LICENSE),
    "mnist": _remote("mnist", "image", "multiclass", images.load_mnist),
    "fashion-mnist": _remote("fashion-mnist", "image", "multiclass", images.load_fashion_mnist),
    "cifar10": _remote("cifar10", "image", "multiclass", images.load_cifar10),
    "california-housing": _remote(
        "california-housing", "tabular", "regression", tabular.load_california_housing
    ),
    "churn": _remote("churn", "tabular", "binary", tabular.load_churn),
}


def get(key: str) -> DatasetInfo:
    try:
        return DATASETS[key]
    except KeyError:
        raise UserError(f"unknown dataset {key!r}; known datasets: {', '.join(DATASETS)}") from None


def load_dataset(key: str, *, data_dir=None, seed: int = 0, subset=None) -> Splits:
    return get(key).load(data_dir=data_dir, seed=seed, subset=subset)
