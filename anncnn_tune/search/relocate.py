"""`anncnn-tune relocate NAME PATH`: point a stored study at its data's new place.

A study of a user's own files records their absolute paths and fingerprint. When the files move
(a renamed folder, another disk, another machine), every command that reads the study finds the
path gone. The same files at a new place keep their fingerprint, so relocation checks exactly that
before it writes: a PATH whose data differs from what the study searched is refused, storage
unchanged, since its scores would then stand for other data.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from anncnn_tune.data.source import current_fingerprint, kind_of, source_from_dict, source_type
from anncnn_tune.errors import UserError
from anncnn_tune.service import records
from anncnn_tune.service.records import StudyRecord
from anncnn_tune.service.storage import load_existing_study


def _new_path(value: str, flag: str, kind: str) -> str:
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise UserError(f"{flag} {value} does not exist; give the file or folder the data now lives in")
    found = kind_of(path)
    if found != kind:
        want = source_type(kind).noun
        raise UserError(f"{flag} {value} is not {want}, as the study's data is; give the moved file or folder")
    return str(path)


def relocate(url: str, name: str, path: str, test: str | None = None) -> dict:
    """Point study `name` at `path` (and its held-out `test`, where it has one) once the data there has
    the fingerprint the study recorded. Returns {"study", "old", "new", "test", "fingerprint"}."""
    study = load_existing_study(url, name)
    record = StudyRecord.read(study)
    if not record.is_ours:
        raise UserError(f"study {name!r} was not created by anncnn-tune; there is no data path to relocate")
    dataset = record.spec.get("dataset")
    if not isinstance(dataset, dict):
        raise UserError(f"study {name!r} uses the built-in dataset {dataset!r}, which anncnn-tune finds itself; "
                        "only a study of your own files can be relocated")
    old = source_from_dict(dataset)
    new = replace(old, path=_new_path(path, "PATH", old.kind))
    if test is not None:
        if old.test is None:
            raise UserError(f"study {name!r} has no held-out test data (a seeded split); leave --test out")
        new = replace(new, test=_new_path(test, "--test", kind_of(Path(old.test)) or old.kind))
    elif old.test is not None and not Path(old.test).exists():
        raise UserError(f"study {name!r}'s held-out test data {old.test} is gone too; pass --test PATH with its new place")
    now, recorded = current_fingerprint(new), record.fingerprint or ""
    if now != recorded:
        raise UserError(f"{new.path} is not the data study {name!r} searched (fingerprint {now[:12]}..., recorded "
                        f"{recorded[:12]}...); point it at an unchanged copy, or start a new study on this data")
    spec = {**record.spec, "dataset": new.to_dict()}
    data = dict(record.data)
    if isinstance(data.get("source"), dict):
        data["source"] = new.to_dict()
    records.write_relocated(study, spec, data)
    return {"study": name, "old": old.path, "new": new.path, "test": new.test, "fingerprint": recorded}
