"""`anncnn-tune delete NAME`: a study out of the storage and its files out of the artifact directory.

Optuna's `delete-study` removes the rows only. A study also owns files under the artifact
directory (service/artifacts.py): the per-trial learning curves and model summaries the dashboard
shows, stored under the artifact ids its trials' system attributes name, and its checkpoints in
checkpoints/NAME-ID/ (service/checkpoints.py). Those ids are read *before* the rows go, as they
are the only record of which files are the study's.

Two steps, so the CLI can say what will go before anything does: `plan_delete` reads only,
`delete` acts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import get_all_artifact_meta

from anncnn_tune.service.checkpoints import SUBDIR as CHECKPOINTS
from anncnn_tune.service.checkpoints import study_folder
from anncnn_tune.service.storage import load_existing_study, mask, open_storage


@dataclass(frozen=True)
class DeletePlan:
    url: str
    name: str
    n_trials: int
    artifact_root: Path
    artifact_files: tuple[Path, ...]  # those that exist now
    checkpoint_dir: Path | None  # None when the study never checkpointed here

    def describe(self) -> str:
        """What deleting removes, in one line (the confirmation question quotes it)."""
        return (f"study {self.name} ({self.n_trials} trial(s)) from {mask(self.url)}, {len(self.artifact_files)} "
                "artifact file(s)" + (" and its checkpoints" if self.checkpoint_dir else "")
                + f" under {self.artifact_root}")


def plan_delete(url: str, name: str, artifact_root: Path) -> DeletePlan:
    """What deleting study `name` removes; a one-line UserError (and nothing opened for writing
    beyond what open_storage does to an existing storage) when there is no such study."""
    study = load_existing_study(url, name)
    storage = open_storage(url, must_exist=True)  # the same opened storage (storage.py caches them)
    root = Path(artifact_root)
    files = []
    trials = study.get_trials(deepcopy=False)
    for owner in (study, *trials):
        for meta in get_all_artifact_meta(owner, storage=storage):
            file = root / meta.artifact_id
            # Artifact ids are uuids Optuna made; a foreign attribute must not point us outside the root.
            if file.parent == root and file.is_file():
                files.append(file)
    checkpoints = study_folder(root, study)
    # A study made elsewhere may be named '../../x': rmtree must never aim outside the root.
    inside = (root / CHECKPOINTS).resolve() in checkpoints.resolve().parents
    return DeletePlan(url=url, name=name, n_trials=len(trials), artifact_root=root, artifact_files=tuple(files),
                      checkpoint_dir=checkpoints if inside and checkpoints.is_dir() else None)


def delete(plan: DeletePlan) -> dict:
    """Remove the study's rows, then its files (rows first: a study whose files went but whose rows
    stayed would look intact and fail later; files left by a crash in between are only disk space)."""
    optuna.delete_study(study_name=plan.name, storage=open_storage(plan.url, must_exist=True))
    removed = 0
    for file in plan.artifact_files:
        try:
            file.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    if plan.checkpoint_dir is not None:
        shutil.rmtree(plan.checkpoint_dir, ignore_errors=True)
    return {"study": plan.name, "trials": plan.n_trials, "artifact_files": removed,
            "checkpoints": str(plan.checkpoint_dir) if plan.checkpoint_dir else None}
