"""The MLP as a TabM-mini ensemble (`ensemble: k`, training/families/ensemble.py): k members that share
the hidden layers, each trained on its own loss, one mean prediction out, the same numbers from ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, _loss_function, fit

NUMERIC = (0, 1, 2)


def rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    x[:, 3] = (x[:, 3] > 0).float()  # a flag column the numeric input leaves alone
    return x, torch.sin(2 * x[:, 0]) + x[:, 1] * x[:, 3] + 0.1 * torch.randn(n, generator=g)


def test_members_answer_separately_in_training_and_as_their_mean_in_evaluation():
    model = models.build("ann", {"ensemble": 4, "width": 8, "layers": 2}, (4,), 3)
    with torch.no_grad():
        model.head_weight.normal_()  # a table's heads start at zero: give the members something to say
    x, _ = rows(5)
    members = model.train()(x)
    assert members.shape == (5, 4, 3)
    assert not torch.allclose(members[:, 0], members[:, 1])  # their own input signs and output layers
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), model.train()(x).mean(1))


def test_the_loss_is_the_mean_of_the_members_losses():
    loss = _loss_function("regression", {}, torch.zeros(3))
    out, y = torch.randn(3, 4, 1), torch.randn(3)
    expected = torch.stack([torch.nn.functional.mse_loss(out[:, m, 0], y) for m in range(4)]).mean()
    torch.testing.assert_close(loss(out, y), expected)
    classes = _loss_function("multiclass", {"class_weight": "none", "label_smoothing": 0.0}, torch.tensor([0, 1, 2]))
    logits, labels = torch.randn(3, 2, 5), torch.tensor([4, 0, 2])
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[:, m], labels) for m in range(2)]).mean()
    torch.testing.assert_close(classes(logits, labels), expected)


def test_every_member_learns_and_the_ensemble_fits_a_table():
    x, y = rows(600)
    xv, yv = rows(300, seed=1)
    data = DeviceData(task="regression", kind="tabular", x_train=x, y_train=y, x_val=xv, y_val=yv, mean=None,
                      std=None, device=torch.device("cpu"))
    params = {"ensemble": 4, "width": 32, "layers": 2, "numeric_transform": "quantile", "numeric_embedding": "plr",
              "embedding_dim": 8, "plr_sigma": 0.5, "lr": 3e-3, "optimizer": "adam", "batch_size": 64}
    model = models.build("ann", params, (4,), 1, numeric=NUMERIC)
    assert torch.count_nonzero(model.head_weight) == 0  # a table's output layers start at zero
    result = fit(model, data, params, epochs=15, metric="val_mse")
    assert result.best_value < 0.5 * float(yv.var())  # learned the function, not the mean
    heads = model.head_weight.detach()
    assert all(torch.count_nonzero(heads[m]) > 0 for m in range(4))
    assert not torch.allclose(heads[0], heads[1])  # the members learned apart


def test_one_member_is_the_plain_mlp_of_before():
    plain = models.build("ann", {"width": 16, "ensemble": 1}, (6,), 1)
    assert type(plain) is torch.nn.Sequential  # saved weights of older studies still load


def test_an_ensemble_costs_k_times_the_hidden_layers():
    from anncnn_tune.training import families

    ann = families.get("ann")
    one, eight = (ann.flops({"width": 64, "layers": 2, "ensemble": k}, (10,), 1) for k in (1, 8))
    assert 7.5 * one < eight < 8.5 * one
    assert ann.n_params({"width": 64, "layers": 2, "ensemble": 8}, (10,), 1) < 2 * ann.n_params(
        {"width": 64, "layers": 2}, (10,), 1)


@pytest.mark.parametrize("params", [{}, {"numeric_transform": "quantile", "numeric_embedding": "plr"}])
def test_onnx_gives_pytorchs_numbers(tmp_path, params):
    import onnxruntime

    x, _ = rows(400)
    model = models.build("ann", {**params, "ensemble": 3, "width": 16, "embedding_dim": 6}, (4,), 2,
                         numeric=NUMERIC).eval()
    model.init_from_data(x)
    with torch.no_grad():
        model.head_weight.normal_()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x[:2],), str(path), input_names=["input"], dynamo=True, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probe = rows(50, seed=2)[0]
    with torch.inference_mode():
        np.testing.assert_allclose(session.run(None, {"input": probe.numpy()})[0], model(probe).numpy(),
                                   atol=1e-5, rtol=1e-5)
