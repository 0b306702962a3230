"""A retrained model on disk: PyTorch weights that rebuild it, and an ONNX file checked against it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from anncnn_tune.data import pipeline
from anncnn_tune.data.base import TargetScaling
from anncnn_tune.results import onnx_table
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
        "numeric_columns": list(splits.numeric_columns) if splits.numeric_columns is not None else None,
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
    numeric = saved.get("numeric_columns")  # absent from files older than the numeric embeddings: all numeric
    model = models.build(config["model"], config["params"], tuple(saved["input_shape"]), saved["out_dim"],
                         tuple(numeric) if numeric is not None else None)
    model.load_state_dict(saved["model"])
    return model.eval(), saved


class Deployable(torch.nn.Module):
    """The model plus what fit() does outside it: the input normalisation, and for a regression
    target the way back to the user's units (TargetScaling.to_user, the same code predict() runs),
    so the ONNX file takes the stored values (raw pixels) and gives values in the user's units.

    `table`: a table's recorded preprocessing (data/pipeline.py); its numeric part runs first in
    the graph (missing values imputed, numbers scaled), so the input holds raw numbers (NaN for
    missing) and one-hot indicators for the categorical columns; export_onnx then puts the
    raw-column front (results/onnx_table.py) before it, so the file takes the category text."""

    def __init__(self, model: torch.nn.Module, mean, std, target=None, table: dict | None = None):
        super().__init__()
        self.model = model
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean or (0.0,), dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std or (1.0,), dtype=torch.float32).view(shape))
        self.normalise = mean is not None
        self.target = target if target is not None else TargetScaling()
        self.tabular = table is not None
        fill, center, scale = pipeline.onnx_table_prep(table) if table is not None else ((0.0,),) * 3
        for name, values in (("fill", fill), ("center", center), ("scale", scale)):
            self.register_buffer(name, torch.tensor(np.asarray(values), dtype=torch.float32).view(1, -1))

    def forward(self, x):
        if self.tabular:
            x = (torch.where(torch.isnan(x), self.fill, x) - self.center) / self.scale
        out = self.model((x - self.mean) / self.std) if self.normalise else self.model(x)
        return self.target.to_user(out)


def raw_table_inputs(x: np.ndarray, table: dict) -> np.ndarray:
    """Encoded table rows back to the ONNX input (raw numbers, one-hot indicators): x * scale + center."""
    _, center, scale = pipeline.onnx_table_prep(table)
    return (np.asarray(x, np.float64) * scale + center).astype(np.float32)


def describe_pipeline(splits, chosen: dict | None = None) -> dict:
    """preprocess.json: everything from the user's raw input to the user's output, as plain values.
    `chosen`: a binary model's threshold chosen on validation (results/threshold.py); None: 0.5."""
    task, classes = splits.task, list(splits.classes) if splits.classes else None
    decision = {"multiclass": "the class of the largest probability (softmax of the outputs)",
                "binary": {"threshold": chosen["threshold"] if chosen else 0.5,
                           "class_if_above": classes[1] if classes else 1,
                           "probability": "sigmoid of the one output",
                           **({"chosen_on": chosen["chosen_on"], "criterion": chosen["criterion"]} if chosen else {})},
                "regression": None}[task]
    record = {"format": pipeline.FORMAT, "kind": splits.kind, "task": task, "classes": classes,
              "target": {"column": (splits.source or {}).get("target"), "scaling": splits.target.to_dict()},
              "decision": decision, "table": None, "image": None}
    if splits.kind == "image" and splits.mean is not None:
        record["image"] = pipeline.describe_images(splits.input_shape, splits.mean, splits.std)
    elif splits.kind == "tabular":
        record["table"] = splits.preprocess
    record["onnx"] = onnx_description(record, splits)
    return record


def onnx_description(record: dict, splits) -> dict:
    """The ONNX file's inputs and output, in words and shapes (what report.md prints)."""
    cut = record["decision"]["threshold"] if splits.task == "binary" else None
    output = {"multiclass": f"(N, {splits.out_dim}) logits, one per class in `classes` order; softmax gives "
                            "probabilities",
              "binary": f"(N, 1) logit; sigmoid gives the probability of the second class, above {cut:.4g} "
                        "(`decision.threshold`) predicts it" if cut is not None else None,
              "regression": "(N, 1) the prediction in the target's own units"}[splits.task]
    if record["image"] is not None:
        image = record["image"]
        h, w = image["size"]
        text = (f"float32 (N, {image['channels']}, {h}, {w}): pixel values 0-255 of images decoded as "
                f"{image['mode']} and resized to {h}x{w} (bilinear) if they differ; the graph subtracts mean "
                f"{[round(m, 3) for m in image['mean']]} and divides by std {[round(s, 3) for s in image['std']]}")
        return {"inputs": {"input": text}, "positions": None, "output": output}
    if record["table"] is not None:
        table = record["table"]
        if not onnx_table.takes_raw_columns(table):
            text = (f"float32 (N, {pipeline.table_width(table)}): per column in order, a number in raw units (NaN "
                    "for missing: the graph imputes it and scales it) or, for a categorical column, one 0/1 "
                    "indicator per training category (all 0: a category unseen in training; all NaN: missing, the "
                    "most frequent category). Turning category text into indicators (rare levels pooled), dates "
                    "into their parts and missing values into missing indicators is not in the graph: "
                    "`anncnn-tune predict` does it from preprocess.json; `positions` lists what each input holds")
            return {"inputs": {"input": text}, "positions": pipeline.onnx_table_input(table), "output": output}
        numeric, categorical = onnx_table.columns(table)
        inputs = {}
        if numeric:
            inputs[onnx_table.NUMERIC] = (
                f"float32 (N, {len(numeric)}): the columns {', '.join(numeric)}, in that order, in raw units "
                "(NaN for missing: the graph imputes the training value and scales)")
        if categorical:
            inputs[onnx_table.CATEGORICAL] = (
                f"string (N, {len(categorical)}): the columns {', '.join(categorical)}, in that order, as text. "
                "A training category is itself; empty or whitespace-only text, or a word pandas reads as "
                "missing in a CSV (NA, nan, NULL, N/A, None, ...), is missing: the most frequent training "
                "category; any other text is a category unseen in training: all its one-hot indicators 0, as "
                "`anncnn-tune predict` does. From pandas: `frame[cols].fillna('').astype(str)`")
        return {"inputs": inputs, "positions": pipeline.onnx_table_input(record["table"]), "output": output}
    return {"inputs": {"input": f"float32 (N, {', '.join(map(str, splits.input_shape))}): the stored features as "
                                "the loader gives them (no preprocessing recorded)"}, "positions": None,
            "output": output}


def save_pipeline(splits, path: Path, chosen: dict | None = None) -> dict:
    record = describe_pipeline(splits, chosen)
    path.write_text(json.dumps(record, indent=2))
    return record


def onnx_tolerance(expected: np.ndarray) -> float:
    """ONNX_TOLERANCE relative to the outputs' scale: their largest magnitude, at least 1."""
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    return ONNX_TOLERANCE * max(1.0, scale)


def onnx_feeds(splits, x: np.ndarray) -> dict[str, np.ndarray]:
    """The ONNX file's inputs for model inputs `x` (test rows): the raw columns of a table
    (onnx_table.raw_frame), else `x` itself as float32 (image pixels, or encoded features)."""
    table = splits.preprocess if splits.kind == "tabular" else None
    if table is not None and onnx_table.takes_raw_columns(table):
        return onnx_table.feeds(onnx_table.raw_frame(x, table), table)
    if table is not None:
        return {"input": raw_table_inputs(x, table)}
    return {"input": np.ascontiguousarray(x, dtype=np.float32)}


def _export(module: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    import logging
    import warnings

    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter's notes (e.g. "torchvision is not installed") are noise here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (sample[:2],), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True,
                              external_data=False, verbose=False)
    finally:
        exporter_log.setLevel(level)


def export_onnx(model: torch.nn.Module, splits, path: Path) -> tuple[float, float]:
    """Write the model as ONNX; (max abs difference to PyTorch on test inputs, the tolerance for it),
    both in the user's units.

    Images: raw pixels in (Deployable normalises them). Tables: the raw columns in (onnx_table's
    `numeric` and `categorical` inputs), and the check is against predict's own path: the test rows,
    plus rows with every value missing, as raw columns; encode_table on them, the model, the target's
    way back to the user's units."""
    import onnx
    import onnxruntime

    table = splits.preprocess if splits.kind == "tabular" else None
    wrapped = Deployable(model, splits.mean, splits.std, splits.target, table).eval()
    x = np.ascontiguousarray(splits.x_test[:ONNX_CHECK_ROWS])
    if table is None or not onnx_table.takes_raw_columns(table):
        # Images; or a table whose dates, missing indicators or pooled levels predict computes first
        sample = torch.from_numpy(x if table is None else raw_table_inputs(x, table)).float()
        _export(wrapped, sample, path)
        onnx.checker.check_model(str(path))
        feeds = {"input": sample.numpy()}
        with torch.inference_mode():
            expected = wrapped(sample).numpy()
    else:
        _export(wrapped, torch.from_numpy(raw_table_inputs(x, table)), path)
        onnx.save(onnx_table.prepend(onnx.load(str(path)), table), str(path))
        rows = onnx_table.with_missing(onnx_table.raw_frame(x, table), table)
        feeds = onnx_table.feeds(rows, table)
        with torch.inference_mode():  # what predict computes from the same rows
            expected = splits.target.to_user(model(torch.from_numpy(pipeline.encode_table(rows, table)))).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    return float(np.abs(got - expected).max()), onnx_tolerance(expected)
