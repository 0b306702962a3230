"""The artifact directory beside a storage: per-trial files the dashboard shows, and checkpoints.

Resolution order, like the storage URL's: the --artifacts flag, then $ANNCNN_TUNE_ARTIFACTS, then
a directory next to the SQLite file (`anncnn-tune.db` -> `anncnn-tune-artifacts/`), or for a
server database `anncnn-tune-artifacts/` in the working directory. Workers on several machines
must share it (a network volume) for retried trials to resume and for the dashboard to show every
trial's files; without it they still run, a retry then starts from epoch 1.

Each finished trial gets two artifacts, uploaded with optuna.artifacts.upload_artifact so that
optuna-dashboard lists them on the trial's page: `learning-curve.png` (figures.learning_curves,
the plot the reports draw) and `model.txt` (the models.describe summary).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from anncnn_tune.atomic import write_atomically
from anncnn_tune.errors import UserError
from anncnn_tune.service.optuna_private import artifact_path
from anncnn_tune.service.storage import sqlite_path

ENV_VAR = "ANNCNN_TUNE_ARTIFACTS"
DEFAULT_NAME = "anncnn-tune-artifacts"


def resolve_dir(flag: str | None, storage_url: str) -> Path:
    explicit = flag or os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit)
    path = sqlite_path(storage_url)
    if path is not None:
        return path.with_name(f"{path.stem}-artifacts")
    return Path(DEFAULT_NAME)


class AtomicArtifactStore(FileSystemArtifactStore):
    """FileSystemArtifactStore whose writes never leave half a file (atomic.write_atomically)."""

    def __init__(self, base_path: Path):
        super().__init__(base_path)
        self.root = Path(base_path)  # where the trial checkpoints live too

    def write(self, artifact_id: str, content_body) -> None:
        write_atomically(artifact_path(self, artifact_id), lambda f: shutil.copyfileobj(content_body, f, 1 << 20))


def check_store_dir(root: Path) -> Path:
    """What open_store will create, checked without creating it: optimize makes no folder until
    every input (data, --subset, --seed, sizes) has been checked."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"the artifact directory {root} is a file; pass --artifacts DIR or set $ANNCNN_TUNE_ARTIFACTS")
    existing = next((p for p in (root, *root.absolute().parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot create the artifact directory {root} ({existing} is not a writable folder); "
                        "pass --artifacts DIR or set $ANNCNN_TUNE_ARTIFACTS")
    return root


def open_store(root: Path) -> AtomicArtifactStore:
    """The store for optimize: created here, so an unusable directory is one line before any work."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the artifact directory {root} ({exc.strerror}); "
                        "pass --artifacts DIR or set $ANNCNN_TUNE_ARTIFACTS") from None
    return AtomicArtifactStore(root)


def upload_trial_files(store: AtomicArtifactStore, trial: optuna.Trial, *, rows: list[dict], metric: str,
                       summary: str) -> None:
    """Attach the learning curve and the model summary to the trial (best effort: a full disk
    must not fail a trial that trained fine, so OSError is reported and swallowed)."""
    # Imported here: matplotlib takes a while to import, and only a finished trial needs it.
    from anncnn_tune.service.figures import learning_curves, save_png

    try:
        with tempfile.TemporaryDirectory(prefix="anncnn-artifacts-") as tmp:
            files = []
            if rows:
                png = Path(tmp) / "learning-curve.png"
                figure = learning_curves([{"label": f"trial {trial.number}", "history": rows}], metric,
                                         title=f"{trial.study.study_name} trial {trial.number}")
                save_png(figure, png)
                files.append(png)
            text = Path(tmp) / "model.txt"
            text.write_text(summary + "\n")
            files.append(text)
            for path in files:
                upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
    except OSError as exc:
        optuna.logging.get_logger("anncnn_tune").warning(f"trial {trial.number}: artifacts not saved ({exc})")
