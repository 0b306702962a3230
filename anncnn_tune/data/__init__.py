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
from anncnn_tune.data.schema import Schema
from anncnn_tune.data.source import DataSource, inspect, load_source, parse_source, source_from_dict
from anncnn_tune.errors import UserError

__all__ = [
    "DATASETS", "DataSource", "DatasetInfo", "Schema", "Splits", "get", "inspect", "kind_and_task",
    "load_dataset", "load_source", "parse_source", "source_from_dict",
]  # fmt: skip


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


def load_dataset(dataset: str | DataSource, *, data_dir=None, seed: int = 0, subset=None) -> Splits:
    """The Splits of a registry key or of a user's DataSource (see data/source.py); a regression
    target's scaling (`Splits.target_scaling`) is fitted on the training rows here."""
    if isinstance(dataset, DataSource):
        return load_source(dataset, seed=seed, subset=subset, data_dir=data_dir)
    splits = get(dataset).load(data_dir=data_dir, seed=seed, subset=subset)
    splits.scale_target()  # a built-in regression target is standardised on its training rows
    return splits


def kind_and_task(dataset: str | DataSource) -> tuple[str, str]:
    """(kind, task) of a registry key (from its DatasetInfo) or a DataSource (from `inspect`),
    kind being "image" or "tabular": what spec validation needs for "cnn needs images" and for
    checking the metric against the task."""
    if isinstance(dataset, DataSource):
        schema = inspect(dataset)
        return schema.kind, schema.task
    info = get(dataset)
    return info.kind, info.task
