"""The fast CNN's six test-time views export to ONNX for any batch size (a 15-epoch retrain with
tta: flip_shift trained for 27 minutes, then failed its ONNX check: the graph had a fixed batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anncnn_tune.results.weights import _export
from anncnn_tune.training import models


@pytest.mark.parametrize("tta", ["flip", "flip_shift"])
def test_test_time_views_export_with_a_free_batch_size(tmp_path, tta):
    import onnxruntime

    torch.manual_seed(0)
    model = models.build("fastcnn", {"width": 4, "width_mult": 2.0, "depth": 1, "tta": tta}, (3, 16, 16), 10).eval()
    path = tmp_path / "m.onnx"
    _export(model, torch.randn(2, 3, 16, 16), path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, 3, 16, 16)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, expected, atol=1e-4)
