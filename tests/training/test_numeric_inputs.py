"""The MLP's numeric-feature transforms and embeddings (training/families/numeric.py): fitted on the
training rows only, the right shapes, flag and one-hot columns untouched, conditions respected, the
defaults the plain MLP of before, and the same numbers from ONNX as from PyTorch."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import norm

from anncnn_tune.search import spec as spec_mod
from anncnn_tune.training import models
from anncnn_tune.training.families.numeric import (
    QUANTILE_KNOTS,
    ROBUST_CLIP,
    NumericInput,
    PiecewiseLinearEmbedding,
    QuantileNormal,
    RobustScale,
)
from anncnn_tune.training.fit import DeviceData, fit

NUMERIC = (1, 2, 4)  # a table of 6 features: a flag, two numbers, a one-hot pair, a number


def table(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 6)
    x[:, 0] = (torch.rand(n, generator=g) < 0.3).float()
    x[:, 1] = torch.randn(n, generator=g)
    x[:, 2] = torch.randn(n, generator=g).exp()  # skewed
    hot = torch.randint(0, 2, (n,), generator=g)
    x[torch.arange(n), 3 + 2 * hot] = 1.0  # columns 3 and 5: a one-hot pair
    x[:, 4] = torch.randint(0, 4, (n,), generator=g).float()  # a discrete number
    return x


# -- the transforms -------------------------------------------------------------------------------

columns = hnp.arrays(np.float64, st.tuples(st.integers(20, 300), st.integers(1, 3)),
                     elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=columns)
def test_quantile_transform_is_monotone_and_maps_training_quantiles_to_the_normals(x):
    train = torch.from_numpy(x).float()
    qt = QuantileNormal(x.shape[1])
    qt.fit(train)
    levels = qt.levels.double().numpy()
    knots = np.quantile(train.double().numpy(), levels, axis=0, method="lower")  # numpy's quantiles at training values
    for f in range(x.shape[1]):
        probe = torch.from_numpy(np.sort(np.concatenate([x[:, f], knots[:, f], [-2e4, 2e4]]))).float()
        out = qt(probe.unsqueeze(1).expand(-1, x.shape[1]))[:, f].double().numpy()
        assert np.all(np.diff(out) >= -1e-4), "not monotone"
        assert np.all(np.abs(out) <= norm.ppf(1 - 1e-7) + 1e-3)
        # At every knot that is not repeated, the normal's quantile of the same level.
        distinct = np.flatnonzero(np.diff(knots[:, f]) > 1e-3 * (1 + np.abs(knots[1:, f])))
        distinct = [k for k in distinct if k == 0 or knots[k, f] - knots[k - 1, f] > 1e-3 * (1 + abs(knots[k, f]))]
        at = qt(torch.from_numpy(knots[distinct]).float())[:, f].double().numpy()
        np.testing.assert_allclose(at, norm.ppf(levels[distinct]), atol=2e-2)


def test_quantile_transform_of_continuous_rows_is_near_standard_normal():
    train = torch.randn(5000, 2) ** 3 + 10  # far from normal
    qt = QuantileNormal(2)
    qt.fit(train)
    out = qt(train)
    assert out.mean(0).abs().max() < 0.05 and (out.std(0) - 1).abs().max() < 0.05
    assert qt.knots.shape == (2, QUANTILE_KNOTS - 1)


def test_a_discrete_column_maps_its_values_to_the_middle_of_their_levels():
    train = torch.tensor([0.0] * 500 + [1.0] * 500).unsqueeze(1)
    qt = QuantileNormal(1)
    qt.fit(train)
    out = qt(torch.tensor([[0.0], [1.0]]))[:, 0]
    np.testing.assert_allclose(out.numpy(), [norm.ppf(0.25), norm.ppf(0.75)], atol=0.02)


def test_robust_scaling_uses_the_training_median_and_iqr_and_clips():
    train = torch.randn(2001, 2) * torch.tensor([3.0, 0.5]) + torch.tensor([10.0, -1.0])
    rs = RobustScale(2)
    rs.fit(train)
    q25, q50, q75 = np.quantile(train.double().numpy(), [0.25, 0.5, 0.75], axis=0)
    np.testing.assert_allclose(rs.center.numpy(), q50, rtol=1e-5)
    np.testing.assert_allclose(rs.scale.numpy(), q75 - q25, rtol=1e-5)
    far = rs(torch.tensor([[1e6, -1e6]]))
    assert far.tolist() == [[ROBUST_CLIP, -ROBUST_CLIP]]


def test_piecewise_linear_bins_come_from_training_quantiles():
    train = torch.rand(1000, 1) * 10
    ple = PiecewiseLinearEmbedding(1, dim=4, bins=5)
    ple.fit(train)
    edges = np.quantile(train.double().numpy()[:, 0], np.linspace(0, 1, 6))
    np.testing.assert_allclose(ple.lefts[0].numpy(), edges[:-1], rtol=1e-5)
    # Below every bin: the first bin's ramp goes negative, the others are 0; above: the last passes 1.
    encoded = ple.encode(torch.tensor([[edges[0] - 1.0], [edges[2]], [edges[-1] + 1.0]]))[:, 0]
    assert encoded[0, 0] < 0 and encoded[0, 1:].abs().sum() == 0
    np.testing.assert_allclose(encoded[1].numpy(), [1, 1, 0, 0, 0], atol=1e-5)
    assert torch.all(encoded[2, :-1] == 1) and encoded[2, -1] > 1


# -- the input layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["standard", "quantile", "robust"])
@pytest.mark.parametrize("embedding, dim, width", [("none", 24, 6), ("plr", 8, 3 * 8 + 3),
                                                   ("piecewise_linear", 5, 3 * 5 + 3)])
def test_the_input_layer_shapes_and_passes_flags_and_one_hots_through(transform, embedding, dim, width):
    x = table(400)
    layer = NumericInput(6, NUMERIC, transform, embedding, dim=dim, sigma=0.1, bins=7)
    layer.init_from_data(x)
    out = layer(x)
    assert layer.out_features == width and out.shape == (400, width)
    assert torch.equal(out[:, -3:], x[:, [0, 3, 5]])  # untouched, after the numeric part
    assert torch.isfinite(out).all()


def test_only_the_numeric_columns_are_fitted_and_fitting_reads_the_rows_given():
    x = table(1000)
    layer = NumericInput(6, NUMERIC, "robust", "none")
    layer.init_from_data(x)
    expected = torch.quantile(x[:, list(NUMERIC)], 0.5, dim=0)
    assert torch.allclose(layer.transform.center, expected)
    other = table(1000, seed=1)
    layer.init_from_data(other)
    assert not torch.allclose(layer.transform.center, expected)


def test_fit_fits_the_input_on_training_rows_only():
    """fit() fits the transform on the training split: the validation rows (shifted far away here)
    do not move it, and it is what fitting the training rows alone gives."""
    x_train, x_val = table(600), table(300, seed=1) + 100.0
    y_train, y_val = x_train[:, 1:2].sum(1), x_val[:, 1:2].sum(1)
    data = DeviceData(task="regression", kind="tabular", x_train=x_train, y_train=y_train, x_val=x_val,
                      y_val=y_val, mean=None, std=None, device=torch.device("cpu"))
    params = {"numeric_transform": "quantile", "numeric_embedding": "piecewise_linear", "n_bins": 6, "width": 8}
    model = models.build("ann", params, (6,), 1, numeric=NUMERIC)
    fit(model, data, params, epochs=1, metric=None)
    alone = NumericInput(6, NUMERIC, "quantile", "piecewise_linear", bins=6)
    alone.init_from_data(x_train)
    for name, buffer in alone.state_dict().items():
        if not name.startswith("embedding.linear"):
            assert torch.equal(model[0].state_dict()[name], buffer), name


def test_the_defaults_build_the_plain_mlp_of_before():
    """Saved weights of older studies (no numeric_* parameters) load into the default model."""
    plain = models.build("ann", {"width": 16}, (6,), 1, numeric=NUMERIC)
    assert type(plain) is torch.nn.Sequential
    assert list(plain.state_dict()) == ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    assert not hasattr(plain, "init_from_data")


def test_a_saved_model_predicts_without_the_training_rows():
    x = table(500)
    params = {"numeric_transform": "quantile", "numeric_embedding": "plr", "embedding_dim": 6, "width": 8}
    model = models.build("ann", params, (6,), 1, numeric=NUMERIC)
    model.init_from_data(x)
    fresh = models.build("ann", params, (6,), 1, numeric=NUMERIC)
    fresh.load_state_dict(model.state_dict())
    with torch.inference_mode():
        assert torch.equal(fresh(x[:20]), model(x[:20]))


# -- conditions -----------------------------------------------------------------------------------

RAW = {"dataset": "california-housing", "model": "ann", "metric": "val_mse", "epochs": 2, "params": {
    "numeric_transform": {"type": "categorical", "choices": ["standard", "quantile", "robust"]},
    "numeric_embedding": {"type": "categorical", "choices": ["none", "plr", "piecewise_linear"]},
    "embedding_dim": {"type": "int", "low": 8, "high": 32},
    "plr_sigma": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
    "n_bins": {"type": "int", "low": 8, "high": 64},
    "lr": 1e-3}}


@pytest.mark.parametrize("embedding, stored", [
    ("none", set()), ("plr", {"embedding_dim", "plr_sigma"}), ("piecewise_linear", {"embedding_dim", "n_bins"})])
def test_only_the_chosen_embeddings_knobs_are_sampled_and_stored(embedding, stored):
    spec = spec_mod.spec_from_dict(RAW, source="s.yaml", name="s")
    study = optuna.create_study()
    study.enqueue_trial({"numeric_transform": "quantile", "numeric_embedding": embedding, "embedding_dim": 9,
                         "plr_sigma": 0.5, "n_bins": 10})
    trial = study.ask()
    params = spec_mod.suggest(spec, trial)
    assert set(trial.params) == {"numeric_transform", "numeric_embedding"} | stored
    assert params["numeric_embedding"] == embedding


# -- ONNX -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"numeric_transform": "quantile", "numeric_embedding": "plr", "plr_sigma": 1.0},
    {"numeric_transform": "robust", "numeric_embedding": "piecewise_linear", "n_bins": 9},
])
def test_onnx_gives_pytorchs_numbers(tmp_path, params):
    import onnxruntime

    x = table(800)
    model = models.build("ann", {**params, "width": 16, "embedding_dim": 6}, (6,), 1, numeric=NUMERIC).eval()
    model.init_from_data(x)
    probe = torch.cat([table(200, seed=3), table(20, seed=4) * 50])  # inside and far outside the training range
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (probe[:2],), str(path), input_names=["input"], dynamo=True, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": probe.numpy()})[0]
    with torch.inference_mode():
        expected = model(probe).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_the_last_bit_of_an_input_does_not_move_a_discrete_columns_transform():
    """The ONNX graph scales raw inputs in float32 and predict in float64: their inputs may differ in the
    last bit. Knots between two values of a discrete column (a sliver) or a bin of no width would turn
    that bit into a jump (the wine table's ONNX check once failed by 0.007 so)."""
    torch.manual_seed(0)
    values = torch.tensor([-1.3, -0.4, 0.2, 0.9, 2.1])
    train = values[torch.randint(0, 5, (400,))].unsqueeze(1)
    quantile, bins = QuantileNormal(1), PiecewiseLinearEmbedding(1, 4, 48)
    quantile.fit(train)
    bins.fit(train)
    exact = values.unsqueeze(1)
    nudged = torch.nextafter(exact, torch.full_like(exact, math.inf))
    assert (quantile(nudged) - quantile(exact)).abs().max() < 1e-3
    assert (bins.encode(nudged) - bins.encode(exact)).abs().max() < 1e-3
