"""The cost of a model: FLOPs counted, ONNX latency measured, the Pareto front and the cheapest near-best."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anncnn_tune.results import cost as C


def test_flops_of_a_linear_and_a_conv_layer_are_two_per_multiply_add():
    assert C.flops_per_sample(torch.nn.Linear(64, 10), torch.zeros(5, 64)) == 2 * 64 * 10
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)  # 8x8 out, 4 channels, 9 taps each
    assert C.flops_per_sample(conv, torch.zeros(3, 1, 8, 8)) == 2 * 8 * 8 * 4 * 9


def test_the_pareto_front_and_the_cheapest_model_within_the_tolerance():
    points = [{"trial": 0, "cost": 100, "value": 0.90}, {"trial": 1, "cost": 50, "value": 0.95},
              {"trial": 2, "cost": 4000, "value": 0.981}, {"trial": 3, "cost": 120, "value": 0.977},
              {"trial": 4, "cost": 3000, "value": 0.96}]
    front = C.pareto_front(points, maximize=True)
    assert [p["trial"] for p in front] == [1, 3, 2]  # 0 and 4 are beaten by a cheaper, better trial
    cheap = C.cheapest_near_best(points, maximize=True, points_scale=True)
    assert cheap["trial"] == 3 and cheap["gap"] == pytest.approx(0.4) and cheap["cost_ratio"] == pytest.approx(4000 / 120)
    losses = [{"trial": 0, "cost": 10, "value": 0.30}, {"trial": 1, "cost": 5, "value": 0.50}]
    assert [p["trial"] for p in C.pareto_front(losses, maximize=False)] == [1, 0]
    assert C.cheapest_near_best(losses, maximize=False, points_scale=False)["trial"] == 0
    assert C.cheapest_near_best([], maximize=True, points_scale=True) is None


def test_the_most_confused_pairs_are_counted_per_true_class():
    from anncnn_tune.results.report import confused_pairs

    confusion = {"classes": ["cat", "dog", "fox"], "matrix": [[8, 2, 0], [5, 15, 0], [0, 1, 9]]}
    assert confused_pairs(confusion) == [("dog", "cat", 5, 0.25), ("cat", "dog", 2, 0.2), ("fox", "dog", 1, 0.1)]


def test_the_binary_and_regression_test_figures_render(tmp_path):
    from anncnn_tune.results import plots

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    scores = truth + rng.normal(0, 0.8, 200)
    for fig in (plots.roc_pr(truth, scores, title="t"), plots.roc_pr(np.zeros(5, dtype=int), np.zeros(5)),
                plots.regression_fit(scores, scores + rng.normal(0, 0.1, 200), title="r")):
        assert plots.png_bytes(fig).startswith(b"\x89PNG")
    assert len(plots.roc_pr(truth, scores).axes) == 2
