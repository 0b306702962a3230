"""Batch norm folded into the convolution before it, for evaluation only.

In eval mode a batch norm is a fixed per-channel affine map, so the convolution before it can absorb
it: one pass over the activations fewer per block. A max pool between the two (the fast CNN pools
right after a group's first convolution) does not stop the fold where every channel's scale is
positive, since a positive affine map commutes with a maximum. The fold is exact up to rounding.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _scale_and_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_var)
    bias = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bias - bn.running_mean * scale


@torch.no_grad()
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale, shift = _scale_and_shift(bn)
    conv.weight.mul_(scale.view(-1, 1, 1, 1).to(conv.weight.dtype))
    old_bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
    conv.bias = nn.Parameter(old_bias * scale + shift, requires_grad=False)


def _foldable(layers: list[nn.Module], i: int) -> int | None:
    """Where layers[i] is a batch norm that the convolution before it can absorb, that convolution's index."""
    bn = layers[i]
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None:
        return None
    j = i - 1
    if j >= 0 and isinstance(layers[j], nn.MaxPool2d):
        if not bool((_scale_and_shift(bn)[0] > 0).all()):
            return None  # a negative scale would turn the max into a min
        j -= 1
    conv = layers[j] if j >= 0 else None
    return j if isinstance(conv, nn.Conv2d) and conv.out_channels == bn.num_features else None


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` where each batch norm that follows a convolution inside an
    nn.Sequential (with at most a max pool between) is folded into it and replaced by an identity.
    The model itself is left as it is."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        for i in range(len(layers)):
            j = _foldable(layers, i)
            if j is not None:
                _fold(layers[j], layers[i])
                module[i] = nn.Identity()
    return folded
