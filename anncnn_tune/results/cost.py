"""What a model costs: parameters, FLOPs per sample, inference latency through ONNX Runtime on this CPU,
and, across the trials of a pair, the accuracy-versus-parameters Pareto front.

FLOPs are counted by torch.utils.flop_counter (matmuls and convolutions, the multiply-add counted
as 2 FLOPs) on one sample. Latency is the median over repeated runs of the exported ONNX file,
single-threaded (intra_op_num_threads=1: the number another process sharing the CPU would see,
and comparable between runs), after warm-up runs, divided by the batch size.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

LATENCY_BATCHES = (1, 256)
LATENCY_REPEATS = 20
LATENCY_BUDGET_S = 2.0  # per batch size: fewer repeats for a slow model, never fewer than 3
# The cheapest model "as good as the best": within this many points (accuracy) or this fraction
# of the best value (other metrics).
NEAR_BEST_POINTS = 0.5


def flops_per_sample(model: torch.nn.Module, sample: torch.Tensor) -> int:
    """FLOPs of one forward pass on one sample (sample: a batch of one)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(sample[:1])
    return int(counter.get_total_flops())


def onnx_latency(path: Path, feeds: dict[str, np.ndarray]) -> dict:
    """Median seconds per sample of the ONNX file at batch 1 and 256 ({"batch_1": s, "batch_256": s}).
    feeds: one sample of each input (batch 1), repeated to each batch size."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out = {}
    for batch in LATENCY_BATCHES:
        x = {name: np.ascontiguousarray(np.repeat(value[:1], batch, axis=0)) for name, value in feeds.items()}
        for _ in range(2):  # warm-up: the first runs allocate
            session.run(None, x)
        times, started = [], time.perf_counter()
        while len(times) < LATENCY_REPEATS and (len(times) < 3 or time.perf_counter() - started < LATENCY_BUDGET_S):
            t0 = time.perf_counter()
            session.run(None, x)
            times.append(time.perf_counter() - t0)
        out[f"batch_{batch}"] = statistics.median(times) / batch
        out[f"batch_{batch}_repeats"] = len(times)
    return out


def measure(model: torch.nn.Module, x_sample: torch.Tensor, onnx_path: Path, train_seconds: float,
            onnx_feeds: dict[str, np.ndarray]) -> dict:
    """A retrained model's cost: what retrain records beside its test metrics. x_sample: one model
    input (FLOPs); onnx_feeds: the same sample as the ONNX file's inputs (latency)."""
    return {"n_params": int(sum(p.numel() for p in model.parameters())),
            "flops_per_sample": flops_per_sample(model.cpu(), x_sample.cpu().float()),
            "train_seconds": round(float(train_seconds), 3),
            "latency_s": onnx_latency(onnx_path, onnx_feeds)}


def pareto_front(points: list[dict], maximize: bool) -> list[dict]:
    """The points ({"cost", "value", ...}) that no other point beats on both: cheaper or as cheap, and
    better or as good. Sorted by cost."""
    sign = 1 if maximize else -1
    front, best = [], -np.inf
    for p in sorted(points, key=lambda p: (p["cost"], -sign * p["value"])):
        if sign * p["value"] > best:
            front.append(p)
            best = sign * p["value"]
    return front


def cheapest_near_best(points: list[dict], maximize: bool, points_scale: bool) -> dict | None:
    """The cheapest point within NEAR_BEST_POINTS points (a fraction metric) or NEAR_BEST_POINTS% of the
    best value (any other metric); with "gap" (the distance to the best, in points or relative)."""
    if not points:
        return None
    pick = max if maximize else min
    best = pick(points, key=lambda p: p["value"])
    def gap(p):
        d = (best["value"] - p["value"]) if maximize else (p["value"] - best["value"])
        return d * 100 if points_scale else d / abs(best["value"]) * 100 if best["value"] else d
    near = [p for p in points if gap(p) <= NEAR_BEST_POINTS]
    cheapest = min(near, key=lambda p: (p["cost"], gap(p)))
    return {**cheapest, "gap": gap(cheapest), "best": best, "cost_ratio": best["cost"] / cheapest["cost"]
            if cheapest["cost"] else None}
