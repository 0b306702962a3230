"""A folder of images, one subfolder per class (optionally under train/ val/ test/): data/folder.py reads it."""

from __future__ import annotations

from anncnn_tune.data.sources.base import SourceType, reader

READER = "anncnn_tune.data.folder"

SOURCE = SourceType(
    name="images", noun="images", plural="images", data_kind="image",
    inspect=reader(READER, "inspect"), load=reader(READER, "load"), fingerprint=reader(READER, "fingerprint"),
    folder=True, options=("test", "image_size", "on_bad_file"),
)  # fmt: skip
