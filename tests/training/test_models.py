"""Contract tests: every study file, at the lows and the highs of its space, builds a model that
runs forward and backward with finite outputs of the right shape (timm-style, parametrized)."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from anncnn_tune.data import DATASETS
from anncnn_tune.search import spec as spec_mod
from anncnn_tune.training import families, models
from anncnn_tune.training import params as P
from anncnn_tune.training.families.cnn import ConvBlock
from anncnn_tune.training.fit import DeviceData, fit

# Input shapes without loading the data (large datasets may be absent on a test machine).
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
TABULAR_FEATURES = 12


def corner_params(spec: spec_mod.Spec, corner: str) -> dict:
    values = {}
    for name, s in spec.space.items():
        if s.type == "categorical":
            values[name] = s.choices[0 if corner == "low" else -1]
        else:
            values[name] = s.low if corner == "low" else s.high
    return values


def input_shape(dataset: str) -> tuple[int, ...]:
    return IMAGE_SHAPES.get(dataset, (TABULAR_FEATURES,))


def out_dim(dataset: str) -> int:
    return 10 if DATASETS[dataset].task == "multiclass" else 1


@pytest.mark.parametrize("corner", ["low", "high"])
@pytest.mark.parametrize("study", spec_mod.builtin_names())
def test_every_study_builds_and_trains_at_its_corners(study, corner):
    spec = spec_mod.load_spec(study)
    params = spec_mod.suggest(spec, optuna.trial.FixedTrial(corner_params(spec, corner)))
    shape = input_shape(spec.dataset)
    torch.manual_seed(0)
    model = models.build(spec.model, params, shape, out_dim(spec.dataset))
    assert models.count_params(model) > 0
    x = torch.randn(4, *shape)
    out = model(x)
    if params.get("ensemble", 1) > 1:  # in training, every member's outputs (fit's loss takes each)
        assert out.shape == (4, params["ensemble"], out_dim(spec.dataset))
        out = out.mean(1)
    assert out.shape == (4, out_dim(spec.dataset))
    assert torch.isfinite(out).all()
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # (frozen: the fast CNN's stem, BN scales)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("study", spec_mod.builtin_names())
def test_every_baseline_is_in_its_study_space(study):
    spec = spec_mod.load_spec(study)
    for baseline in spec.baselines:
        # FixedTrial only warns when a value lies outside its range, so the range is checked here.
        params = spec_mod.suggest(spec, optuna.trial.FixedTrial(baseline["params"]), baseline=baseline["name"])
        # (a value the baseline gives a parameter that does not apply to it is not suggested)
        active = {n for n in baseline["params"] if n not in spec.space
                  or P.active(spec.conditions(n, spec.baseline_model(baseline["name"])), params)}
        assert all(params[name] == value for name, value in baseline["params"].items() if name in active)
        if spec.baseline_model(baseline["name"]) == spec.model:  # (another family's: its own recipe)
            assert all(space.contains(params[name]) for name, space in spec.space.items())
        model = models.build(spec.baseline_model(baseline["name"]), params, input_shape(spec.dataset),
                             out_dim(spec.dataset))
        assert models.count_params(model) > 0


@pytest.mark.parametrize("family", sorted(families.FAMILIES))
@pytest.mark.parametrize("task, dim", [("multiclass", 5), ("binary", 1), ("regression", 1)])
def test_each_family_learns_each_kind_of_head(family, task, dim):
    """A few epochs on a learnable toy problem must lower the training loss for every head."""
    torch.manual_seed(0)
    n = 256
    x = torch.randint(0, 255, (n, 1, 8, 8), dtype=torch.uint8)
    signal = x.float().mean(dim=(1, 2, 3))
    if task == "multiclass":
        y = torch.bucketize(signal, torch.quantile(signal, torch.tensor([0.2, 0.4, 0.6, 0.8])))
    elif task == "binary":
        y = (signal > signal.median()).long()
    else:
        y = (signal - signal.mean()) / signal.std()
    data = DeviceData(task, "image", x, y, x, y, torch.tensor([[[[127.0]]]]), torch.tensor([[[[74.0]]]]),
                      torch.device("cpu"))
    model = models.build(family, {"blocks": 1, "filters": 8, "width": 32, "layers": 1}, (1, 8, 8), dim)
    result = fit(model, data, {"lr": 3e-3, "batch_size": 32}, epochs=8, metric="val_loss")
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert math.isfinite(last) and last < first


def test_ann_widths_follow_shrink():
    model = models.build("ann", {"layers": 3, "width": 400, "shrink": 0.5}, (1, 28, 28), 10)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [400, 200, 100, 10]
    assert linear[0].in_features == 784


def test_cnn_filters_grow_per_block_and_residual_adds_a_shortcut():
    model = models.build("cnn", {"blocks": 3, "filters": 16, "growth": 2.0, "residual": True, "convs": 2},
                         (3, 32, 32), 10)
    blocks = [m for m in model if isinstance(m, ConvBlock)]
    assert [b.body[0].out_channels for b in blocks] == [16, 32, 64]
    assert all(b.shortcut is not None for b in blocks)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cnn_stops_pooling_at_one_pixel():
    model = models.build("cnn", {"blocks": 5, "filters": 4, "growth": 1.0}, (1, 8, 8), 10)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
