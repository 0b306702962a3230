"""scikit-learn's bundled 8x8 digits: the embedded dataset that needs no network."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from anncnn_tune.data.base import Splits, fingerprint_arrays, image_splits, split_off

SOURCE = "scikit-learn bundled copy of the UCI ML hand-written digits (1797 images, 8x8, 16 grey levels)"
LICENSE = "CC BY 4.0 (UCI Machine Learning Repository)"


def load(*, data_dir=None, seed: int = 0, subset=None) -> Splits:
    """70/15/15 stratified split; pixels kept as uint8 in 0..16 until they reach the device."""
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x_rest, x_test, y_rest, y_test = split_off(images, labels, 0.15, seed)
    return image_splits("digits", x_rest, y_rest, x_test, y_test, [str(c) for c in range(10)],
                        fingerprint=fingerprint_arrays(images, labels), seed=seed, subset=subset,
                        val_fraction=0.15 / 0.85)
