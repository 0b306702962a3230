"""What a source kind declares, so that nothing outside its module names it.

A kind is one module holding one `SOURCE = SourceType(...)`: the name a study stores, the paths it
recognises, the dataset options it reads and its own rules on them, what `init` checks before
inspecting, and the three readers (`inspect` for the `Schema`, `load` for the `Splits`,
`fingerprint` to detect a change). `data.source` does the rest (parsing, paths, refusing an option
a kind would ignore) from these declarations, and `SOURCE_TYPES` there is the one table of kinds.
Declarations stay light: a kind imports its heavy reader (pandas, Pillow) inside its functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from anncnn_tune.data.base import Splits
    from anncnn_tune.data.schema import Schema


class DataSource(Protocol):
    """What a kind's functions read of a user's dataset description (data/source.py's DataSource: a
    Protocol here, because that module imports this one; the import goes one way)."""

    path: str
    kind: str
    target: str | None
    task: str
    drop: tuple[str, ...]
    test: str | None
    image_size: tuple[int, int] | None
    on_bad_file: str
    columns: tuple[tuple[str, str], ...] | None

# The dataset options only some kinds read (every kind reads `path` and `task`); a kind lists
# those it reads in `options`, and `parse_source` refuses the others rather than ignore them.
OPTIONS = ("target", "drop", "test", "image_size", "on_bad_file", "columns")


@dataclass(frozen=True)
class SourceType:
    name: str  # the `kind` a DataSource holds and a study stores: never rename one
    noun: str  # in messages, "data.csv is a table"
    plural: str  # in messages, "target applies to tables only"
    data_kind: str | None  # image | tabular (data.base.KINDS); None: only the file tells (array files)
    inspect: Callable[[DataSource], Schema]  # what the data holds, reading no more than it must
    load: Callable[..., Splits]  # load(source, *, seed, subset, data_dir) -> train/val/test Splits
    fingerprint: Callable[[DataSource], str]  # sha256 of the data as it is now
    suffixes: tuple[str, ...] = ()  # files it recognises (lower case), named in messages
    aliases: tuple[str, ...] = ()  # more suffixes it recognises, not named in messages
    folder: bool = False  # it recognises a folder
    options: tuple[str, ...] = ()  # which of OPTIONS it reads
    check: Callable[[DataSource, str], None] | None = None  # its own rules: check(source, where)
    init_check: Callable[[Path, dict], None] | None = None  # init's check before inspecting: (path, options given)

    def recognises(self, path: Path) -> bool:
        if path.is_dir():
            return self.folder
        return path.suffix.lower() in self.suffixes + self.aliases


def reader(module: str, name: str) -> Callable:
    """The function `name` of the reader `module`, imported at its first call: declaring a kind
    imports neither pandas nor Pillow, so validating a study file stays fast."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call
