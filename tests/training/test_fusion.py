"""Batch norm folded into convolutions for evaluation gives the same outputs as the model it came from."""

from __future__ import annotations

import torch
from torch import nn

from anncnn_tune.training import models
from anncnn_tune.training.fusion import fold_batch_norms


def _trained_statistics(model: nn.Module, x: torch.Tensor) -> None:
    """Give every batch norm non-trivial running statistics (and random biases), as training would."""
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.bias is not None:
                m.bias.normal_()
        for _ in range(3):
            model(x)
    model.eval()


def test_the_fast_cnn_with_folded_batch_norms_gives_the_same_logits():
    torch.manual_seed(0)
    model = models.build("fastcnn", {"width": 8, "width_mult": 2.0, "depth": 2, "tta": "flip"}, (3, 16, 16), 10)
    x = torch.randn(32, 3, 16, 16)
    model.init_from_data(x)
    _trained_statistics(model, x)
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())  # every one was folded
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_a_negative_scale_behind_a_max_pool_is_not_folded():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(4))
    x = torch.randn(8, 3, 8, 8)
    _trained_statistics(model, x)
    with torch.no_grad():
        model[2].weight.copy_(torch.tensor([1.0, -1.0, 0.5, 2.0]))
    folded = fold_batch_norms(model)
    assert isinstance(folded[2], nn.BatchNorm2d)  # max(-a) is not -max(a): left as it is
    torch.testing.assert_close(folded(x), model(x))


def test_the_notebook_cnn_folds_where_a_convolution_precedes_its_batch_norm():
    torch.manual_seed(0)
    model = models.build("cnn", {"blocks": 2, "filters": 8, "convs": 2, "batch_norm": True}, (3, 16, 16), 10)
    x = torch.randn(16, 3, 16, 16)
    _trained_statistics(model, x)
    folded = fold_batch_norms(model)
    before, after = (sum(isinstance(m, nn.BatchNorm2d) for m in m_.modules()) for m_ in (model, folded))
    assert before == 4 and after == 0
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
