"""Every sampler a study file may name runs: cmaes and gp need packages of their own (cmaes; greenlet for
gp's batched optimiser), which the package's dependencies bring, so no trial fails on a missing module and
no Optuna traceback or fallback warning reaches the terminal."""

from __future__ import annotations

import logging

import optuna
import pytest

from anncnn_tune.search.launcher import OptimizeRequest, optimize


@pytest.mark.parametrize("sampler", ["cmaes", "gp"])
def test_a_model_based_sampler_runs_its_trials(tmp_path, capfd, caplog, sampler):
    study = tmp_path / f"tiny-{sampler}.yaml"
    study.write_text(f"""
dataset: digits
model: ann
metric: val_accuracy
epochs: 1
sampler: {{type: {sampler}, n_startup_trials: 1}}
pruner: none
params:
  lr: {{type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
  width: {{type: int, low: 16, high: 64}}
  activation: {{type: categorical, choices: [relu, gelu]}}
  layers: 1
""")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    optimize(OptimizeRequest(study=str(study), storage_url=url, n_trials=3, threads=1, quiet=True,
                             device="cpu", artifacts=str(tmp_path / "art")))
    err = capfd.readouterr().err
    trials = optuna.load_study(study_name=f"tiny-{sampler}", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, err
    # The model sampled trials 1 and 2 with nothing to warn about, not even the categorical parameter it
    # leaves to random sampling (read from the log records: Optuna's
    # own handler keeps the stderr of the test that first logged, so capfd may not see its lines).
    noise = [r.getMessage() for r in caplog.records if r.name.startswith("optuna") and r.levelno >= logging.WARNING]
    assert noise == [] and "Traceback" not in err, (noise, err)
