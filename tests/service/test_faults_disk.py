"""Issue 12: a checkpoint that cannot be written (full or read-only disk) is a warning and the trial
goes on without checkpoints; it used to crash in torch.save and fail the trial for good."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import optuna
import pytest
from helpers import run_cli

from anncnn_tune.search.objective import TrialObserver


class _FullDisk:
    def __init__(self, path: Path):
        self.path = path
        self.saves = 0

    def save(self, state):
        self.saves += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_that_cannot_be_written_is_a_warning(tmp_path, caplog):
    study = optuna.create_study()
    trial = study.ask()
    checkpoint = _FullDisk(tmp_path / "checkpoints" / "trial-0.pt")
    observer = TrialObserver(trial, 5, 1, None, checkpoint, None)
    with caplog.at_level("WARNING", logger="anncnn_tune"):
        observer.save_checkpoint({"history": []})  # no exception: training goes on
    assert not observer.saves_checkpoints and checkpoint.saves == 1
    assert "cannot write its checkpoint" in caplog.text and "No space left" in caplog.text and "free" in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_full_artifacts_filesystem_does_not_fail_trials(tmp_path):
    artifacts = tmp_path / "small"
    artifacts.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(artifacts)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        (artifacts / "filler").write_bytes(b"\0" * 190 * 1024)  # nearly full from the start
        result = run_cli("optimize", "--study", "digits-ann", "--epochs", 3, "--subset", 200, "--n-trials", 2,
                         "--artifacts", artifacts, cwd=tmp_path, subprocess_=True, timeout=140)
    finally:
        subprocess.run(["umount", str(artifacts)], check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "2 complete" in result.stdout, result.stdout + result.stderr
