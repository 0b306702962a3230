"""The launcher checks a request once; a worker runs what it is handed and checks nothing again."""

from __future__ import annotations

import dataclasses
import pickle
import signal
import subprocess
import sys

import optuna
import pytest

from anncnn_tune.errors import UserError
from anncnn_tune.search.launcher import OptimizeRequest, for_worker, optimize
from anncnn_tune.search.spec import builtin_dir, load_spec
from anncnn_tune.search.worker import Assignment, Job, run_trials


def test_what_only_a_worker_needs_is_not_in_the_users_request():
    request_fields = {f.name for f in dataclasses.fields(OptimizeRequest)}
    assert {f.name for f in dataclasses.fields(Assignment)} == {"device", "share", "label", "index"}
    assert not request_fields & {"label", "share", "index"}
    assignment = for_worker(OptimizeRequest(study="digits-ann", storage_url="sqlite://", n_trials=1, workers=3,
                                            device="cpu"), 2)
    assert assignment == Assignment(device="cpu", share=3, label="[worker 3] ", index=2)


def test_the_worker_module_does_not_import_the_launcher():
    code = ("import sys, anncnn_tune.search.worker; "
            "print('anncnn_tune.search.launcher' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("change, fragment", [
    ({"n_trials": 0}, "n_trials (--n-trials) must be a whole number of at least 1, got 0"),
    ({"workers": 1.5}, "workers (--workers)"),
    ({"epochs": True}, "epochs (--epochs)"),
    ({"timeout": -3}, "timeout (--timeout) must be a positive number"),
    ({"subset": "half"}, "subset (--subset) must be a positive number, got 'half'"),
    ({"seed": "7"}, "seed (--seed) must be an integer"),
])
def test_bad_numbers_are_refused_before_the_storage_exists(tmp_path, change, fragment):
    db = tmp_path / "x.db"
    request = OptimizeRequest(study="digits-ann", storage_url=f"sqlite:///{db}", n_trials=2,
                              artifacts=str(tmp_path / "art"))
    with pytest.raises(UserError) as caught:
        optimize(dataclasses.replace(request, **change))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert not db.exists() and not (tmp_path / "art").exists()


def test_a_worker_runs_the_spec_it_is_handed_and_restores_the_signal_handlers(tmp_path):
    """The study file is gone by the time the worker runs: it must not read it again."""
    study_file = tmp_path / "tiny-ann.yaml"
    study_file.write_text((builtin_dir() / "digits-ann.yaml").read_text())
    spec = load_spec(str(study_file)).with_overrides(epochs=1)
    study_file.unlink()
    (tmp_path / "art").mkdir()
    job = Job(spec=spec, storage_url=f"sqlite:///{tmp_path / 'x.db'}", artifacts=tmp_path / "art", n_trials=1,
              threads=1, quiet=True)
    assert pickle.loads(pickle.dumps(job)) == job  # what a spawned worker receives
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    study, result = run_trials(job, Assignment(device="cpu"))
    assert {s: signal.getsignal(s) for s in before} == before
    assert result.ran == 1 and not result.interrupted
    stored = optuna.load_study(study_name="tiny-ann", storage=job.storage_url)
    assert [t.state.name for t in stored.trials] in (["COMPLETE"], ["PRUNED"]) and study.study_name == "tiny-ann"


def test_a_launch_reports_its_wall_time_and_only_the_trials_it_finished(tmp_path):
    request = OptimizeRequest(study="digits-ann", storage_url=f"sqlite:///{tmp_path / 'x.db'}", n_trials=1,
                              epochs=1, threads=1, quiet=True, artifacts=str(tmp_path / "art"))
    first = optimize(request)
    again = optimize(dataclasses.replace(request, n_trials=2))  # the study's first trial is no longer this launch's
    assert (first.finished_here, again.finished_here) == (1, 1) and sum(again.states.values()) == 2
    assert first.wall_seconds > 0 and again.wall_seconds > 0
