"""A user's own dataset as a study file describes it: a table, a folder of images or an array file.

`parse_source` checks the description (shape, keys, values, that the paths exist) without
reading the data, so a study file with a typo fails in milliseconds. A source's kind is one module
under `sources/` declaring a `SourceType` (sources/base.py), and `SOURCE_TYPES` below is the one
table of kinds: recognising a path, refusing an option a kind would ignore, `inspect`, `load_source`
and `current_fingerprint` all read the kind's declaration. Declarations import their readers
(table.py, folder.py, arrays.py) lazily, so validating a spec never pulls in pandas or Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from anncnn_tune.data.base import TARGET_TRANSFORMS
from anncnn_tune.data.sources import arrays, images, table
from anncnn_tune.data.sources.base import OPTIONS, SourceType
from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.data.base import Splits
    from anncnn_tune.data.schema import Schema

# The source kinds, one line each: a path is recognised by the first kind that claims it.
SOURCE_TYPES: dict[str, SourceType] = {
    "table": table.SOURCE,
    "images": images.SOURCE,
    "arrays": arrays.SOURCE,
}
SOURCE_TASKS = ("auto", "binary", "multiclass", "regression")
BAD_FILE_POLICIES = ("error", "skip")
# path and task, the kinds' OPTIONS, and target_transform (any kind's regression target)
KEYS = ("path", "target", "task", "drop", "test", "image_size", "on_bad_file", "target_transform", "columns")
STORED_KEYS = ("kind",) + KEYS


@dataclass(frozen=True)
class DataSource:
    """A user's own dataset, described in a study file; paths are absolute and resolved."""

    path: str
    kind: str  # a key of SOURCE_TYPES: table | images | arrays
    target: str | None = None  # tables: the column to predict
    task: str = "auto"  # auto | binary | multiclass | regression
    drop: tuple[str, ...] = ()
    test: str | None = None  # a held-out file or folder of the same kind; None: a seeded split
    image_size: tuple[int, int] | None = None  # (height, width), as Keras' image_size
    on_bad_file: str = "error"  # error | skip
    # Regression only: standardize | log | none (see base.TargetScaling); None: standardize. `init`
    # writes its choice here, so a user changes it in the study file.
    target_transform: str | None = None
    # Tables: ((column, treatment), ...) from `dataset.columns` (data/columns.py); unlisted columns are
    # decided by its rules. None (no `columns:`): the rules studies were made with before it existed.
    columns: tuple[tuple[str, str], ...] | None = None

    @property
    def key(self) -> str:
        """A readable name: the file's stem or the folder's name."""
        path = Path(self.path)
        return path.name if source_type(self.kind).folder else path.stem

    def to_dict(self) -> dict:
        """Plain types, as a study stores it; `source_from_dict(to_dict())` gives this source back."""
        return {
            "path": self.path,
            "kind": self.kind,
            "target": self.target,
            "task": self.task,
            "drop": list(self.drop),
            "test": self.test,
            "image_size": list(self.image_size) if self.image_size else None,
            "on_bad_file": self.on_bad_file,
            # only where set: sources stored before the option existed read back equal
            **({"target_transform": self.target_transform} if self.target_transform is not None else {}),
            **({"columns": dict(self.columns)} if self.columns is not None else {}),
        }


def source_type(kind: str) -> SourceType:
    """The declaration of a source kind; an unknown kind is refused, never read as another."""
    try:
        return SOURCE_TYPES[kind]
    except (KeyError, TypeError):
        raise UserError(f"unknown data source kind {kind!r}; known kinds: {', '.join(SOURCE_TYPES)}") from None


def kind_of(path: Path) -> str | None:
    """The source kind a path names by itself (a folder, or a file by its suffix), or None."""
    for name, kind in SOURCE_TYPES.items():
        if kind.recognises(path):
            return name
    return None


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


def _resolve(value, *, base_dir: Path, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where} must be a path (a string), got {value!r}")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path  # relative to the study file, not to the current directory
    return path.resolve()


def _existing(path: Path, where: str) -> Path:
    if not path.exists():
        raise UserError(f"{where}: {path} does not exist; fix the path (relative paths are relative to the study file)")
    return path


def _kind(path: Path, where: str) -> str:
    kind = kind_of(path)
    if kind is None:
        folders = [f"a folder of {t.plural}" for t in SOURCE_TYPES.values() if t.folder]
        files = [f"a {_or([s for t in SOURCE_TYPES.values() for s in t.suffixes])} file"]
        raise UserError(f"{where}: {path} is neither {' nor '.join(folders + files)}; convert it to one of those")
    return kind


def _image_size(value, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in value)
    ):
        raise UserError(f"{where} must be [height, width], two whole numbers in 1..4096, got {value!r}")
    return int(value[0]), int(value[1])


def _drop(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where} must be a list of column names, got {value!r}")
    return tuple(value)


def _columns(value, where: str) -> tuple[tuple[str, str], ...] | None:
    """`dataset.columns`: {column name: treatment}; the kind checks the treatments (sources/table.py),
    its reader the names against the file."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping of column name to treatment (numeric, categorical, ...), "
                        f"got {type(value).__name__}")
    out = []
    for name, treatment in value.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"{where} keys must be column names, got {name!r}")
        out.append((name, treatment))
    return tuple(out)


def _choice(value, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise UserError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
    return value


_DEFAULTS = {f.name: f.default for f in fields(DataSource)}


def _check_fields(source: DataSource, test_kind: str | None, where: str) -> None:
    """An option the source's kind does not read is refused, not silently ignored; then the kind's own rules."""
    kind = source_type(source.kind)
    name = Path(source.path).name
    for option in OPTIONS:
        if option not in kind.options and getattr(source, option) != _DEFAULTS[option]:
            readers = _or([t.plural for t in SOURCE_TYPES.values() if option in t.options])
            raise UserError(f"{where}.{option} applies to {readers} only; {name} is {kind.noun}: remove it")
    if test_kind is not None and test_kind != source.kind:
        raise UserError(f"{where}.test must be the same kind of data as {where}.path ({source.kind}), got {test_kind}")
    if kind.check is not None:
        kind.check(source, where)


def parse_source(raw, *, base_dir: Path, where: str) -> DataSource:
    """A DataSource from a study file's `dataset:` value (a mapping, or just a path string).

    Checks keys, types and values and that the paths exist; does not read the data.
    """
    if isinstance(raw, str):
        raw = {"path": raw}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a dataset key or a mapping with a path, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KEYS), key=str)  # YAML keys may be ints or None as well as text
    if unknown:
        name = unknown[0] if isinstance(unknown[0], str) and unknown[0] else repr(unknown[0])
        raise UserError(f"{where}.{name} is not a dataset option; known options: {', '.join(KEYS)}")
    if "path" not in raw:
        raise UserError(f"{where}.path is missing: give the file or folder holding the data")
    path = _existing(_resolve(raw["path"], base_dir=base_dir, where=f"{where}.path"), f"{where}.path")
    kind = _kind(path, f"{where}.path")
    target = raw.get("target")
    if target is not None and (not isinstance(target, str) or not target):
        raise UserError(f"{where}.target must be a column name, got {target!r}")
    task = _choice(raw.get("task", "auto"), SOURCE_TASKS, f"{where}.task")
    drop = _drop(raw.get("drop"), f"{where}.drop")
    image_size = _image_size(raw.get("image_size"), f"{where}.image_size")
    on_bad_file = _choice(raw.get("on_bad_file", "error"), BAD_FILE_POLICIES, f"{where}.on_bad_file")
    test = None
    test_kind = None
    if raw.get("test") is not None:
        test_path = _existing(_resolve(raw["test"], base_dir=base_dir, where=f"{where}.test"), f"{where}.test")
        test_kind = _kind(test_path, f"{where}.test")
        if test_path == path:
            raise UserError(f"{where}.test is the same as {where}.path; give a separate held-out file or folder")
        test = str(test_path)
    transform = raw.get("target_transform")
    if transform is not None:
        _choice(transform, TARGET_TRANSFORMS, f"{where}.target_transform")
        if source_type(kind).data_kind == "image" or task in ("binary", "multiclass"):
            raise UserError(f"{where}.target_transform applies to regression targets only; remove it")
    columns = _columns(raw.get("columns"), f"{where}.columns")
    source = DataSource(path=str(path), kind=kind, target=target, task=task, drop=drop, test=test,
                        image_size=image_size, on_bad_file=on_bad_file, target_transform=transform, columns=columns)
    _check_fields(source, test_kind, where)
    return source


def source_from_dict(d: dict) -> DataSource:
    """The DataSource a study stored (`DataSource.to_dict`); paths are not checked (they may be gone)."""
    if not isinstance(d, dict) or "path" not in d or "kind" not in d:
        raise UserError(f"stored dataset source {d!r} has no path and kind; the study was not written by anncnn-tune")
    unknown = sorted(set(d) - set(STORED_KEYS))
    if unknown:
        raise UserError(f"stored dataset source has unknown field {unknown[0]!r}; upgrade anncnn-tune to read it")
    where = "stored dataset source"
    kind = _choice(d["kind"], tuple(SOURCE_TYPES), f"{where}.kind")
    size = d.get("image_size")
    return DataSource(
        path=str(d["path"]),
        kind=kind,
        target=d.get("target"),
        task=_choice(d.get("task", "auto"), SOURCE_TASKS, f"{where}.task"),
        drop=tuple(d.get("drop") or ()),
        test=d.get("test"),
        image_size=_image_size(size, f"{where}.image_size"),
        on_bad_file=_choice(d.get("on_bad_file", "error"), BAD_FILE_POLICIES, f"{where}.on_bad_file"),
        target_transform=(None if d.get("target_transform") is None
                          else _choice(d["target_transform"], TARGET_TRANSFORMS, f"{where}.target_transform")),
        columns=_columns(d.get("columns"), f"{where}.columns"),
    )


def _require(source: DataSource) -> None:
    for label, value in (("path", source.path), ("test", source.test)):
        if value is not None and not Path(value).exists():
            raise UserError(f"dataset {label} {value} does not exist any more; restore it, or point the study at "
                            "the data's new place with `anncnn-tune relocate STUDY PATH`")


def inspect(source: DataSource) -> Schema:
    """What the data holds (kind, task, shapes, classes, notes), reading no more than it must."""
    _require(source)
    return source_type(source.kind).inspect(source)


def load_source(source: DataSource, *, seed: int = 0, subset=None, data_dir=None) -> Splits:
    """The source's train/validation/test `Splits`, as every built-in loader returns them, a
    regression target's scaling fitted on the training rows (`target_transform`)."""
    _require(source)
    splits = source_type(source.kind).load(source, seed=seed, subset=subset, data_dir=data_dir)
    if source.target_transform is not None and splits.task != "regression":
        raise UserError(f"target_transform applies to regression targets only; {Path(source.path).name} is "
                        f"{splits.task}: remove it from the dataset mapping")
    splits.scale_target(source.target_transform)
    return splits


def current_fingerprint(source: DataSource) -> str:
    """sha256 of the data as it is now (files and, for folders, their names), to detect a change."""
    _require(source)
    return source_type(source.kind).fingerprint(source)


def check_unchanged(source: DataSource, recorded: str) -> None:
    """Refuse (one line) a source whose content is no longer what the study began with."""
    now = current_fingerprint(source)
    if now != recorded:
        raise UserError(
            f"{source.path} has changed since the study began (fingerprint {now[:12]}..., recorded "
            f"{recorded[:12]}...); restore the original data, or start a new study on the new data"
        )
