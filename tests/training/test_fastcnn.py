"""The fast CNN family and the training-loop pieces its recipe uses: each rule stated once."""

from __future__ import annotations

import math

import pytest
import torch

from anncnn_tune.training import averaging, families, models
from anncnn_tune.training.families.fastcnn import TTA_VIEWS, BatchNorm
from anncnn_tune.training.fit import (
    DeviceData,
    RunOptions,
    _alternating_flip,
    _scheduler,
    _use_amp,
    augment,
    cpu_has_native_bf16,
    fit,
    scaled_lr,
)

SHAPE = (3, 16, 16)


def _images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Correlated channels and neighbouring pixels, as in photographs: whitening has work to do.
    base = torch.rand(n, 1, 16, 16, generator=g)
    x = torch.cat([base, 0.8 * base + 0.2 * torch.rand(n, 1, 16, 16, generator=g), 1 - base], dim=1)
    return x.sub(0.5).div(0.3)


def test_whitening_stem_decorrelates_the_training_patches():
    model = models.build("fastcnn", {"width": 8, "width_mult": 2.0}, SHAPE, 10)
    x = _images(256)
    model.init_from_data(x)
    out = model.stem(x) - model.stem.bias.view(1, -1, 1, 1)
    half = out.shape[1] // 2  # the second half is the first negated
    assert torch.allclose(out[:, half:], -out[:, :half], atol=1e-5)
    flat = out[:, :half].permute(0, 2, 3, 1).reshape(-1, half).double()
    cov = flat.T @ flat / len(flat)
    # Whitened: unit variance per filter (eps keeps the tiniest eigenvalues a little under 1), no correlation.
    off_diagonal = cov - torch.diag(torch.diag(cov))
    assert off_diagonal.abs().max() < 1e-3
    assert torch.diag(cov)[:4].sub(1).abs().max() < 0.05
    assert not model.stem.weight.requires_grad


def test_frozen_batch_norm_scales_and_the_bias_group():
    model = models.build("fastcnn", {"width": 8, "width_mult": 2.0, "bias_lr": 16.0}, SHAPE, 10)
    norms = [m for m in model.modules() if isinstance(m, BatchNorm)]
    assert norms and all(not m.weight.requires_grad for m in norms)
    rest, biases = model.optimizer_groups(0.5, 1.0e-3)
    assert biases["lr"] == 8.0 and biases["weight_decay"] == pytest.approx(1.0e-3 / 16)
    assert {id(p) for p in biases["params"]} == {id(m.bias) for m in norms}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in rest["params"]} | {id(p) for p in biases["params"]}


@pytest.mark.parametrize("tta", sorted(TTA_VIEWS))
def test_test_time_views_average_in_eval_mode_only(tta):
    torch.manual_seed(0)
    model = models.build("fastcnn", {"width": 8, "width_mult": 2.0, "tta": tta}, SHAPE, 10)
    x = _images(4)
    model.eval()
    out = model(x)
    if tta == "none":
        assert torch.equal(out, model.logits(x))
    else:  # a flip-averaged model gives a mirrored image the same logits
        assert torch.allclose(model(x.flip(3)), out, atol=1e-5)
    assert families.get("fastcnn").eval_views({"tta": tta}) == TTA_VIEWS[tta]
    model.train()
    assert torch.equal(model(x), model.logits(x))


def test_dirac_init_passes_the_first_channels_through():
    model = models.build("fastcnn", {"width": 8, "width_mult": 1.0, "dirac": True}, SHAPE, 10)
    conv = model.groups[0].body[-3]  # the group's second convolution: 8 -> 8 channels
    x = torch.randn(1, 8, 6, 6)
    assert torch.allclose(conv(x), x, atol=1e-6)


def test_flops_and_parameters_are_known_before_building():
    family = families.get("fastcnn")
    small, wide = {"width": 16}, {"width": 32}
    assert family.n_params(small, SHAPE, 10) < family.n_params(wide, SHAPE, 10)
    built = models.count_params(models.build("fastcnn", wide, SHAPE, 10))
    assert family.n_params(wide, SHAPE, 10) == built
    assert 2 < family.flops(wide, SHAPE, 10) / family.flops(small, SHAPE, 10) < 5  # ~4x: quadratic in width


def test_alternating_flip_shows_each_image_both_ways_every_two_epochs():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    bits = torch.tensor([True, False])
    odd, even = _alternating_flip(x, bits, 1), _alternating_flip(x, bits, 2)
    for i in range(2):
        assert {tuple(odd[i].flatten().tolist()), tuple(even[i].flatten().tolist())} == {
            tuple(x[i].flatten().tolist()), tuple(x[i].flip(2).flatten().tolist())}
    shifted = augment(x.repeat(4, 1, 8, 8), "translate_altflip", torch.Generator().manual_seed(0),
                      flip_bits=bits.repeat(4), epoch=3)
    assert shifted.shape == (8, 1, 16, 24)


def test_triangle_schedule_rises_then_falls_to_zero():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = _scheduler(opt, {"schedule": "triangle", "warmup": 0.25, "lr": 2.0}, 100, 2.0)
    rates = []
    for _ in range(100):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(0.4) and max(rates) == pytest.approx(2.0)
    assert rates.index(max(rates)) == 25 and rates[-1] == pytest.approx(2.0 / 75)


@pytest.mark.parametrize(("rule", "expected"), [("none", 0.1), ("linear", 0.2), ("sqrt", 0.1 * math.sqrt(2))])
def test_learning_rate_scaled_to_the_batch(rule, expected):
    assert scaled_lr({"lr": 0.1, "lr_scale": rule}, 512) == pytest.approx(expected)


def test_lookahead_holds_back_nothing_early_and_averages_late():
    weight = torch.nn.Parameter(torch.zeros(3))
    model = torch.nn.Module()
    model.w = weight
    average = averaging.WeightAverage(model, "lookahead", 0.9, total_steps=100)
    with torch.no_grad():
        for _ in range(5):  # early: the pull is 0.9**5 * (5/100)**3, almost none
            weight.add_(1.0)
            average.update()
    assert weight.detach()[0] == pytest.approx(5.0, rel=1e-3)
    average.steps = 99
    with torch.no_grad():
        weight.add_(10.0)
        average.update()  # step 100: a pull of 0.9**5 towards the slow weights
    assert weight.detach()[0] == pytest.approx(5.0 + 10.0 * (1 - 0.9**5), rel=1e-3)


def test_ema_is_what_validation_sees_and_what_fit_returns():
    torch.manual_seed(0)
    n = 64
    x = torch.randint(0, 255, (n, 3, 16, 16), dtype=torch.uint8)
    y = torch.randint(0, 3, (n,))
    data = DeviceData("multiclass", "image", x, y, x, y, torch.full((1, 3, 1, 1), 127.0),
                      torch.full((1, 3, 1, 1), 74.0), torch.device("cpu"))
    params = {"width": 8, "width_mult": 2.0, "optimizer": "sgd", "lr": 0.2, "batch_size": 16,
              "averaging": "ema", "average_decay": 0.5}
    model = models.build("fastcnn", params, SHAPE, 3)
    result = fit(model, data, params, epochs=2, metric="val_accuracy", options=RunOptions(amp=False))
    assert len(result.history) == 2 and all(math.isfinite(r["val_loss"]) for r in result.history)
    # fit leaves the averaged weights in the model: validating it again gives the last epoch's loss.
    from anncnn_tune.training.fit import evaluate

    again = evaluate(model, data, x, y, RunOptions(amp=False))
    assert float(again["loss"]) == pytest.approx(result.history[-1]["val_loss"], rel=1e-4)


def test_bf16_default_follows_the_model_and_the_cpu():
    fast = models.build("fastcnn", {"width": 8}, SHAPE, 10)
    notebook = models.build("cnn", {}, SHAPE, 10)
    digits = models.build("cnn", {}, (1, 8, 8), 10)
    cpu = RunOptions()
    assert _use_amp(cpu, fast) == cpu_has_native_bf16()
    # the notebook CNN too, on images large enough to gain (8x8 digits stay in float32)
    assert min(SHAPE[1:]) >= 16 and _use_amp(cpu, notebook) == cpu_has_native_bf16()
    assert _use_amp(cpu, digits) is False
    assert _use_amp(RunOptions(amp=False), fast) is False
