"""An .npz file with x and y (and optionally x_test, y_test): data/arrays.py reads it.

Whether it holds images or a table is known only from x's shape, so `data_kind` is None: a study
on an array file checks its model against the data once it is loaded (search.spec.fits_data). Its
held-out part is inside the file, so it reads none of the other options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anncnn_tune.data.sources.base import SourceType

if TYPE_CHECKING:
    from anncnn_tune.data.source import DataSource


def inspect(source: DataSource):
    from anncnn_tune.data import arrays

    return arrays.inspect(source)


def load(source: DataSource, **options):
    from anncnn_tune.data import arrays

    return arrays.load(source, **options)


def fingerprint(source: DataSource) -> str:
    from anncnn_tune.data import arrays

    return arrays.fingerprint(source)


SOURCE = SourceType(
    name="arrays", noun="arrays", plural="array files", data_kind=None,
    inspect=inspect, load=load, fingerprint=fingerprint,
    suffixes=(".npz",),
)  # fmt: skip
