"""An .npz file with x and y (and optionally x_test, y_test): data/arrays.py reads it.

Whether it holds images or a table is known only from x's shape, so `data_kind` is None: a study
on an array file checks its model against the data once it is loaded (search.spec.fits_data). Its
held-out part is inside the file, so it reads none of the other options.
"""

from __future__ import annotations

from anncnn_tune.data.sources.base import SourceType, reader

READER = "anncnn_tune.data.arrays"

SOURCE = SourceType(
    name="arrays", noun="arrays", plural="array files", data_kind=None,
    inspect=reader(READER, "inspect"), load=reader(READER, "load"), fingerprint=reader(READER, "fingerprint"),
    suffixes=(".npz",),
)  # fmt: skip
