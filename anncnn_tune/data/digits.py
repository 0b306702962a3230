"""scikit-learn's bundled 8x8 digits: the embedded dataset that needs no network."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from .base import Splits, channel_stats, fingerprint_arrays, split_off, take_subset

SOURCE = "scikit-learn bundled copy of the UCI ML hand-written digits (1797 images, 8x8, 16 grey levels)"
LICENSE = "CC BY 4.0 (UCI Machine Learning Repository)"


def load(*, data_dir=None, seed: int = 0, subset=None) -> Splits:
    """70/15/15 stratified split; pixels kept as uint8 in 0..16 until they reach the device."""
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = split_off(images, labels, 0.15, seed)
    x_train, x_val, y_train, y_val = split_off(x_rest, y_rest, 0.15 / 0.85, seed)
    x_train, y_train = take_subset(x_train, y_train, subset, seed, stratify=True)
    mean, std = channel_stats(x_train)
    return Splits(
        key="digits",
        task="multiclass",
        kind="image",
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        classes=tuple(str(c) for c in range(10)),
        fingerprint=fingerprint_arrays(images, labels),
        split_seed=seed,
        mean=mean,
        std=std,
    )
