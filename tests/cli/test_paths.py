"""Every output path built from file or storage content stays under the folder the user chose."""

from __future__ import annotations

import optuna
import pytest
import yaml
from helpers import run_cli

from anncnn_tune.search.names import path_component
from anncnn_tune.service.cleanup import plan_delete
from anncnn_tune.service.readonly import close_readonly
from anncnn_tune.service.storage import close_all


@pytest.mark.parametrize("text", ["../../../escaped", "..", ".", "/etc/passwd", "a/../../b", "", "~root", "x\x00y"])
def test_path_component_is_one_safe_component(text):
    name = path_component(text)
    assert name and "/" not in name and name not in (".", "..") and "\x00" not in name
    assert not name.startswith(".")


def test_retrain_of_a_run_file_naming_an_escaping_study_writes_under_runs(tmp_path):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    optimized = run_cli("optimize", "--study", "digits-ann", "--n-trials", "1", "--epochs", "1", "--quiet", cwd=work)
    assert optimized.returncode == 0, optimized.stderr
    exported = run_cli("export", "--study", "digits-ann", "-o", "run.yaml", cwd=work)
    assert exported.returncode == 0, exported.stderr
    run = yaml.safe_load((work / "run.yaml").read_text())
    run["source"]["study"] = "../../../escaped"
    (work / "run.yaml").write_text(yaml.safe_dump(run))
    result = run_cli("retrain", "run.yaml", "--seeds", "1", "--cv", "0", "--no-record", cwd=work)
    close_all()
    close_readonly()
    assert result.returncode == 0, result.stderr
    escaped = list(tmp_path.rglob("escaped*"))
    assert escaped and all(work / "runs" in p.parents for p in escaped)  # nothing above the working folder
    written = list((work / "runs").iterdir())
    assert [p.name for p in written] == ["escaped-trial0"] and any(written[0].iterdir())


def test_delete_never_aims_at_checkpoints_outside_the_artifact_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    study = optuna.create_study(study_name="../../victim", storage=url)
    root = tmp_path / "artifacts" / "inner"
    victim = root / "checkpoints" / f"../../victim-{study._study_id}"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("not the study's")
    plan = plan_delete(url, "../../victim", root)
    close_all()
    close_readonly()
    assert plan.checkpoint_dir is None
