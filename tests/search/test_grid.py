"""`sampler: {type: grid}`: Optuna's GridSampler over the categorical and stepped parameters."""

from __future__ import annotations

import optuna
import pytest
from helpers import run_cli

from anncnn_tune.errors import UserError
from anncnn_tune.search.samplers import grid_size, grid_space
from anncnn_tune.search.spec import load_spec

GRID = """dataset: digits
model: ann
metric: val_accuracy
epochs: 1
subset: 200
sampler: {type: grid}
pruner: none
params:
  layers: {type: int, low: 1, high: 2}
  activation: {type: categorical, choices: [relu, tanh]}
"""


def spec_of(tmp_path, text):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return load_spec(str(path))


def test_the_grid_lists_every_value_of_stepped_and_categorical_parameters(tmp_path):
    spec = spec_of(tmp_path, GRID + "  dropout: {type: float, low: 0.0, high: 0.5, step: 0.25}\n"
                   "  width: {type: int, low: 32, high: 96, step: 32}\n")
    space = grid_space(spec)
    assert space == {"layers": [1, 2], "activation": ["relu", "tanh"], "dropout": [0.0, 0.25, 0.5],
                     "width": [32, 64, 96]}
    assert grid_size(spec) == 2 * 2 * 3 * 3


@pytest.mark.parametrize("line,fragment", [("  lr: {type: float, low: 0.001, high: 0.1, log: true}", "search.lr is a log"),
                                           ("  dropout: {type: float, low: 0.0, high: 0.5}", "continuous")])
def test_a_range_without_a_grid_is_refused_in_one_line(tmp_path, line, fragment):
    with pytest.raises(UserError, match=fragment):
        grid_space(spec_of(tmp_path, GRID + line + "\n"))


def test_n_trials_defaults_to_the_grid_size_and_visits_each_point_once(tmp_path):
    (tmp_path / "grid.yaml").write_text(GRID)
    result = run_cli("optimize", "--study", "grid.yaml", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "grid sampler: 4 combinations of layers, activation" in result.stderr + result.stdout
    study = optuna.load_study(study_name="grid", storage=f"sqlite:///{tmp_path / 'anncnn-tune.db'}")
    assert sorted((t.params["layers"], t.params["activation"]) for t in study.trials) == [
        (1, "relu"), (1, "tanh"), (2, "relu"), (2, "tanh")]
