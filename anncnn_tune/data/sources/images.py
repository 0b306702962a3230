"""A folder of images, one subfolder per class (optionally under train/ val/ test/): data/folder.py reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anncnn_tune.data.sources.base import SourceType

if TYPE_CHECKING:
    from anncnn_tune.data.source import DataSource


def inspect(source: DataSource):
    from anncnn_tune.data import folder

    return folder.inspect(source)


def load(source: DataSource, **options):
    from anncnn_tune.data import folder

    return folder.load(source, **options)


def fingerprint(source: DataSource) -> str:
    from anncnn_tune.data import folder

    return folder.fingerprint(source)


SOURCE = SourceType(
    name="images", noun="images", plural="images", data_kind="image",
    inspect=inspect, load=load, fingerprint=fingerprint,
    folder=True, options=("test", "image_size", "on_bad_file"),
)  # fmt: skip
