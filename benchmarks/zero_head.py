"""A table MLP's output layer at zero (what build() does since the invariance change) against the
random output layer it had before: same configurations, same splits, same seeds, validation only.

Why it matters: the zero output layer is what makes renamed classes give the same model (issue 23
part 6); it must not cost accuracy. Each configuration is trained with both heads on the study's
training split and scored on its validation split (the test split is not looked at); the paired
difference per seed is printed. The hidden layers are drawn identically in both arms (the output
layer is drawn, then zeroed), so the heads are the only difference.

    python benchmarks/zero_head.py                 # California (2 configurations) and churn, 3 seeds
    python benchmarks/zero_head.py --quick         # churn, 2 epochs, 1 seed: checks the script
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.training import models
from anncnn_tune.training.families import mlp
from anncnn_tune.training.fit import DeviceData, fit, seed_everything

TRAIN = {"optimizer": "adamw", "lr": 1.6e-3, "weight_decay": 5.7e-5, "schedule": "cosine", "batch_size": 256}
CONFIGS = {
    # California's best of the 40-trial search in docs/results.md (trial 36), and the mlp-plr baseline
    "california-best": ("california-housing", "val_mse", 40, {
        "layers": 4, "width": 364, "shrink": 0.42, "activation": "tanh", "batch_norm": True, "dropout": 0.14,
        "numeric_transform": "quantile", "numeric_embedding": "plr", "embedding_dim": 15, "plr_sigma": 1.16,
        **TRAIN}),
    "california-mlp-plr": ("california-housing", "val_mse", 30, {
        "layers": 3, "width": 256, "shrink": 1.0, "activation": "relu", "dropout": 0.1,
        "numeric_transform": "quantile", "numeric_embedding": "plr", "embedding_dim": 24, "plr_sigma": 0.1,
        "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "cosine", "batch_size": 256}),
    # churn-ann's first baseline shape (Keras' 2x64 ReLU tutorial net), Adam
    "churn-mlp": ("churn", "val_roc_auc", 30, {"layers": 2, "width": 64, "shrink": 1.0, "activation": "relu",
                                                "optimizer": "adam", "lr": 1e-3, "batch_size": 64}),
}


def train(dataset, metric, epochs, params, *, zero: bool, seed: int, cache: dict) -> float:
    splits = cache.setdefault(dataset, load_dataset(dataset, seed=0))
    out = len(splits.classes) if splits.task == "multiclass" else 1
    saved = mlp._zero_head
    if not zero:
        mlp._zero_head = lambda head: None  # the random head of before
    try:
        seed_everything(seed)
        model = models.build("ann", params, splits.input_shape, out, splits.numeric_columns)
    finally:
        mlp._zero_head = saved
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    result = fit(model, data, params, epochs=epochs, metric=metric, seed=seed)
    return float(result.best_value)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = dict(CONFIGS)
    if args.quick:
        dataset, metric, _, params = CONFIGS["churn-mlp"]
        configs = {"churn-mlp": (dataset, metric, 2, params)}
    else:
        configs = {name: configs[name] for name in args.configs.split(",")}
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    started, cache, rows = time.time(), {}, []
    for name, (dataset, metric, epochs, params) in configs.items():
        for seed in seeds:
            for zero in (False, True):
                value = train(dataset, metric, epochs, params, zero=zero, seed=seed, cache=cache)
                rows.append({"config": name, "metric": metric, "seed": seed, "head": "zero" if zero else "random",
                             "best_val": value})
                print(json.dumps(rows[-1]), flush=True)
    print("| configuration | metric | random head | zero head | zero - random per seed |")
    print("|---|---|---:|---:|---|")
    for name in configs:
        random_ = [r["best_val"] for r in rows if r["config"] == name and r["head"] == "random"]
        zero_ = [r["best_val"] for r in rows if r["config"] == name and r["head"] == "zero"]
        print(f"| {name} | {configs[name][1]} | {np.mean(random_):.4f} | {np.mean(zero_):.4f} | "
              f"{', '.join(f'{z - r:+.4f}' for r, z in zip(random_, zero_))} |")
    result = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
              "threads": args.threads, "load_end": [round(x, 1) for x in os.getloadavg()],
              "seconds": round(time.time() - started), "rows": rows}
    print(f"{result['seconds']} s, load at the end {result['load_end']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
