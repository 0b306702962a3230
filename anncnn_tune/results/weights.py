"""A retrained model on disk: PyTorch weights that rebuild it, and an ONNX file checked against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anncnn_tune.data.base import TargetScaling
from anncnn_tune.results.export import Run
from anncnn_tune.training import models

# max abs difference between onnxruntime's and PyTorch's outputs, relative to the outputs' scale
# (their largest magnitude, at least 1): float32 keeps ~7 digits, so a target near 2e5 dollars
# differs by a few 1e-2 between two correct runtimes, where logits near 1 differ by ~1e-6.
ONNX_TOLERANCE = 1e-4
ONNX_CHECK_ROWS = 2048  # test rows the ONNX check runs (enough to catch a wrong op, quick on CIFAR)
FORMAT = "anncnn-tune-weights/1"


def save_weights(model: torch.nn.Module, run: Run, splits, path: Path) -> None:
    """nanoGPT-style: the state dict plus, as plain types, everything that rebuilds the model."""
    torch.save({
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": run.as_dict(),
        "input_shape": list(splits.input_shape),
        "out_dim": int(splits.out_dim),
        "task": splits.task,
        "kind": splits.kind,
        "classes": list(splits.classes) if splits.classes else None,
        "mean": list(splits.mean) if splits.mean else None,
        "std": list(splits.std) if splits.std else None,
        "target_scaling": splits.target.to_dict(),  # the model's outputs are to_user()'d into the user's units
    }, path)


def load_weights(path: str):
    """Rebuild the model saved by retrain (also what the tests use to read the file back)."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    config = saved["config"]
    model = models.build(config["model"], config["params"], tuple(saved["input_shape"]), saved["out_dim"])
    model.load_state_dict(saved["model"])
    return model.eval(), saved


class Deployable(torch.nn.Module):
    """The model plus what fit() does outside it: the input normalisation, and for a regression
    target the way back to the user's units (TargetScaling.to_user, the same code predict() runs),
    so the ONNX file takes the stored values (raw pixels) and gives values in the user's units."""

    def __init__(self, model: torch.nn.Module, mean, std, target=None):
        super().__init__()
        self.model = model
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean or (0.0,), dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std or (1.0,), dtype=torch.float32).view(shape))
        self.normalise = mean is not None
        self.target = target if target is not None else TargetScaling()

    def forward(self, x):
        out = self.model((x - self.mean) / self.std) if self.normalise else self.model(x)
        return self.target.to_user(out)


def onnx_tolerance(expected: np.ndarray) -> float:
    """ONNX_TOLERANCE relative to the outputs' scale: their largest magnitude, at least 1."""
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    return ONNX_TOLERANCE * max(1.0, scale)


def export_onnx(model: torch.nn.Module, splits, path: Path) -> tuple[float, float]:
    """Write the model as ONNX; (max abs difference to PyTorch on test inputs, the tolerance for it),
    both in the user's units."""
    import logging
    import warnings

    import onnx
    import onnxruntime

    wrapped = Deployable(model, splits.mean, splits.std, splits.target).eval()
    x = torch.from_numpy(np.ascontiguousarray(splits.x_test[:ONNX_CHECK_ROWS])).float()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter's notes (e.g. "torchvision is not installed") are noise here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (x[:2],), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True,
                              external_data=False, verbose=False)
    finally:
        exporter_log.setLevel(level)
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        expected = wrapped(x).numpy()
    return float(np.abs(got - expected).max()), onnx_tolerance(expected)
