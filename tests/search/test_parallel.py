"""`--workers auto`: the measured rule for how many worker processes a search starts."""

from __future__ import annotations

import optuna
import pytest
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.search import parallel
from anncnn_tune.search.parallel import plan_workers, typical_params
from anncnn_tune.search.samplers import make_sampler
from anncnn_tune.search.spec import load_spec, spec_from_dict

CPU = (torch.device("cpu"),)
PLENTY = 64 * 2**30  # bytes: memory is no limit


@pytest.fixture(scope="module")
def digits():
    return load_spec("digits-ann"), load_dataset("digits")


def test_small_models_get_one_single_threaded_worker_per_core(digits):
    spec, splits = digits
    plan = plan_workers(spec, splits, CPU, n_trials=30, cores=4, memory=PLENTY)
    assert (plan.workers, plan.threads) == (4, 1)
    assert "4 core(s)" in plan.reason and "too little to keep a second thread busy" in plan.reason


def test_a_model_whose_step_keeps_threads_busy_gets_them(digits, monkeypatch):
    spec, splits = digits
    monkeypatch.setattr(parallel, "STEP_FLOPS_PER_THREAD", 1e3)  # as if threads paid already at 1 kFLOP
    plan = plan_workers(spec, splits, CPU, n_trials=30, cores=4, memory=PLENTY)
    assert (plan.workers, plan.threads) == (1, 4) and "enough for 4 threads" in plan.reason


def test_memory_and_the_trial_count_cap_the_workers(digits):
    spec, splits = digits
    per_worker = sum(a.nbytes for a in (splits.x_train, splits.y_train, splits.x_val, splits.y_val))
    tight = plan_workers(spec, splits, CPU, n_trials=30, cores=8, memory=int(per_worker * 40))
    assert 1 <= tight.workers < 8 and "memory for" in tight.reason
    assert tight.threads == 8 // tight.workers  # the cores left over go to each worker's threads
    few = plan_workers(spec, splits, CPU, n_trials=2, cores=8, memory=PLENTY)
    assert (few.workers, few.threads) == (2, 4) and "only 2 trial(s)" in few.reason


def test_on_cuda_it_is_one_worker_per_device(digits):
    spec, splits = digits
    plan = plan_workers(spec, splits, (torch.device("cuda", 0), torch.device("cuda", 1)), n_trials=30, cores=16)
    assert plan.workers == 2 and "one worker per device" in plan.reason


def test_the_typical_model_sits_in_the_middle_of_the_space():
    spec = spec_from_dict({"dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 2,
                           "params": {"width": {"type": "int", "low": 16, "high": 1024, "log": True},
                                      "dropout": {"type": "float", "low": 0.0, "high": 0.5},
                                      "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
                                      "layers": 3}}, source="t", name="t")
    params = typical_params(spec)
    assert params["width"] == 128 and params["dropout"] == 0.25 and params["batch_size"] == 64
    assert params["layers"] == 3 and params["activation"] == "relu"  # fixed, and the table's default


def test_each_worker_draws_its_own_random_configurations():
    spec = load_spec("digits-ann")

    def first_params(worker):
        study = optuna.create_study(sampler=make_sampler(spec, worker))
        return study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params

    assert first_params(0) == first_params(0)  # one worker: the study's seed, reproducible
    assert first_params(1) != first_params(0) and first_params(1) != first_params(2)


def test_workers_auto_prints_its_plan_and_runs(cli, tmp_path):
    result = cli("optimize", "--study", "digits-ann", "--workers", "auto", "--n-trials", "1", "--epochs", "1",
                 "--storage", f"sqlite:///{tmp_path / 's.db'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--workers auto: 1 worker(s) x" in result.stderr and "only 1 trial(s) asked for" in result.stderr
    assert "1 complete" in result.stdout or "1 pruned" in result.stdout


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "autox"])
def test_a_bad_workers_value_is_one_line_and_writes_nothing(cli, tmp_path, value):
    result = cli("optimize", "--study", "digits-ann", "--workers", value, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and "'auto'" in result.stderr
    assert list(tmp_path.iterdir()) == []
