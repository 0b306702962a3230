"""`anncnn-tune init PATH`: inspect a user's data and write the study files that fit it.

Everything that can fail does so before the first byte is written: the source is parsed and
inspected, the files are generated, each one is loaded back through the study-file validator, and
existing files are refused unless `force`. Only then are the files written (each atomically), so
an error leaves the output folder as it was, neither file of a pair written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from anncnn_tune.atomic import write_atomically
from anncnn_tune.data.source import inspect, kind_of, parse_source, source_type
from anncnn_tune.errors import UserError
from anncnn_tune.search.generate import generate, to_yaml
from anncnn_tune.search.names import check_study_name, sanitize
from anncnn_tune.search.spec import spec_from_dict

TASKS = ("auto", "binary", "multiclass", "regression")  # as cli/init.py offers them


@dataclass(frozen=True)
class InitRequest:
    path: str
    target: str | None = None
    name: str | None = None
    task: str = "auto"
    drop: tuple[str, ...] = ()
    test: str | None = None
    image_size: tuple[int, int] | None = None
    on_bad_file: str = "error"  # error | skip: an unreadable image stops init, or is left out (and recorded)
    out_dir: str | None = None  # None: the current directory
    force: bool = False


@dataclass(frozen=True)
class InitResult:
    name: str
    schema: object  # data.schema.Schema
    files: tuple[Path, ...]


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """`--image-size 64x48` (height x width) or `64` (square)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(1 <= v <= 4096 for v in values):
        raise UserError(f"--image-size {text!r} is not HxW; give e.g. 64x64 (height x width) or 64")
    return (values[0], values[-1])


def _written_path(path: str | None, out_dir: Path) -> str | None:
    """A path as the study file holds it: relative to the file's folder when the data lies inside
    it (the folder can then move as a whole), else absolute (the file can then move alone)."""
    if path is None:
        return None
    resolved = Path(path).resolve()
    try:
        return Path(os.path.relpath(resolved, out_dir)).as_posix() if resolved.is_relative_to(out_dir) else str(resolved)
    except ValueError:  # another drive
        return str(resolved)


def dataset_mapping(source, schema, out_dir: Path) -> dict:
    """The `dataset:` mapping of the generated files: the source, its task resolved, defaults left out."""
    mapping = {"path": _written_path(source.path, out_dir)}
    if source.target is not None:
        mapping["target"] = source.target
    mapping["task"] = schema.task  # written resolved: the metric is then checked at load time
    if source.drop:
        mapping["drop"] = list(source.drop)
    if source.test is not None:
        mapping["test"] = _written_path(source.test, out_dir)
    if source.image_size is not None:
        mapping["image_size"] = list(source.image_size)
    if source.on_bad_file != "error":
        mapping["on_bad_file"] = source.on_bad_file
    if schema.target_transform:  # written out, so the user sees the choice and can change it
        mapping["target_transform"] = source.target_transform or schema.target_transform[0]
    if schema.treatments is not None:  # each column's treatment, written out for the same reason
        mapping["columns"] = {name: treatment for name, (treatment, _) in schema.treatments.items()}
    return mapping


def _init_check(request: InitRequest) -> None:
    """The kind's own check before inspecting (a table without --target lists its columns)."""
    path = Path(request.path).expanduser()
    kind = kind_of(path)
    if kind is not None and source_type(kind).init_check is not None:
        source_type(kind).init_check(path, {"target": request.target})


def _out_dir(flag: str | None) -> Path:
    out = Path(flag).expanduser() if flag else Path.cwd()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out-dir {out} is a file, not a folder; choose a folder for the study files")
    return out.resolve()


def init(request: InitRequest) -> InitResult:
    if request.task not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}, got {request.task!r}")
    out_dir = _out_dir(request.out_dir)
    if request.name is not None:
        check_study_name(request.name, "--name")
    _init_check(request)
    raw = {"path": request.path, "task": request.task}
    for key, value in (("target", request.target), ("test", request.test)):
        if value is not None:
            raw[key] = value
    if request.drop:
        raw["drop"] = list(request.drop)
    if request.image_size is not None:
        raw["image_size"] = list(request.image_size)
    if request.on_bad_file != "error":  # parse_source checks the value and refuses it for a table
        raw["on_bad_file"] = request.on_bad_file
    if kind_of(Path(request.path).expanduser()) == "table":
        raw["columns"] = {}  # every column by data/columns.py's rules (dataset_mapping writes them out)
    # Paths given on the command line are relative to where the command runs.
    source = parse_source(raw, base_dir=Path.cwd(), where="dataset")
    schema = inspect(source)
    name = request.name or sanitize(source.key)
    mapping = dataset_mapping(source, schema, out_dir)
    texts = {}
    for family, (study, header) in generate(schema, mapping, name=name).items():
        file = out_dir / f"{name}-{family}.yaml"
        text = to_yaml(study, header)
        # The generated file must load as written, or it is a bug here, not the user's mistake.
        spec_from_dict(yaml.safe_load(text), source=str(file), name=file.stem, base_dir=out_dir)
        texts[file] = text
    existing = [f for f in texts if f.exists()]
    if existing and not request.force:
        raise UserError(f"{existing[0]} already exists; pass --force to overwrite it, or --name / --out-dir to "
                        "write elsewhere (nothing written)")
    out_dir.mkdir(parents=True, exist_ok=True)
    for file, text in texts.items():
        write_atomically(file, lambda f, text=text: f.write(text.encode()))
    return InitResult(name=name, schema=schema, files=tuple(texts))
