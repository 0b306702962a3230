"""A search space whose largest model cannot fit is refused before anything is written; a model
that does not fit at trial time fails that trial and the worker goes on."""

from __future__ import annotations

import optuna
import pytest
import torch
from helpers import run_cli

from anncnn_tune.errors import UserError
from anncnn_tune.search.spec import builtin_dir, load_spec
from anncnn_tune.training import size_check
from anncnn_tune.training.size_check import check_space_fits, estimate, is_out_of_memory


def test_the_estimate_counts_the_parameters_exactly():
    from anncnn_tune.training import models

    params = {"layers": 2, "width": 64, "shrink": 0.5}
    e = estimate("ann", params, (64,), 10, 32)
    assert e.n_params == models.count_params(models.build("ann", params, (64,), 10))
    assert e.bytes > e.n_params * 4


def test_a_huge_width_is_refused_before_the_study_is_written(tmp_path):
    text = (builtin_dir() / "digits-ann.yaml").read_text()
    text = text.replace("width:        {type: int, low: 32, high: 1024, log: true}",
                        "width:        {type: int, low: 32, high: 1000000000, log: true}")
    assert "1000000000" in text
    (tmp_path / "big.yaml").write_text(text)
    result = run_cli("optimize", "--study", "big.yaml", "--n-trials", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1
    assert "parameters" in result.stderr and "`width`" in result.stderr and "GiB" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]  # no storage, no artifacts


@pytest.mark.parametrize("name", ["digits-ann", "digits-cnn"])
def test_the_built_in_spaces_fit(name):
    spec = load_spec(name)
    shape = (64,) if spec.model == "ann" else (1, 8, 8)
    worst = check_space_fits(spec.model, spec.space, spec.fixed, spec.baselines, shape, 10, 1257,
                             torch.device("cpu"))
    assert worst.n_params > 0


def test_the_limit_is_the_devices_memory(monkeypatch):
    spec = load_spec("digits-ann")
    monkeypatch.setattr(size_check, "available_memory", lambda device: (10_000, "a tiny test memory"))
    with pytest.raises(UserError, match="more than a tiny test memory; lower the high of"):
        check_space_fits(spec.model, spec.space, spec.fixed, spec.baselines, (64,), 10, 1257, torch.device("cpu"))


def test_a_cpu_allocation_failure_counts_as_out_of_memory():
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as exc:
        assert is_out_of_memory(exc)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_a_trial_that_does_not_fit_fails_and_the_worker_goes_on(tmp_path, monkeypatch):
    from anncnn_tune.training import models

    real_build, calls = models.build, []

    def build(*args, **kwargs):  # the first trial's model cannot be allocated; the next ones can
        if torch.get_default_device().type == "meta":  # the size check before the study: not a trial
            return real_build(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build", build)
    result = run_cli("optimize", "--study", "digits-ann", "--n-trials", "2", "--epochs", "1", "--quiet",
                     "--storage", "sqlite:///s.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{tmp_path / 's.db'}")
    states = [t.state for t in study.trials]
    assert states[0] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.COMPLETE in states[1:]
    assert "out of memory" in str(study.trials[0].system_attrs) + str(study.trials[0].user_attrs)
