"""The fast CNN on CIFAR-10 (JPEG q75 copy): bf16 against float32 on the same seeds, accuracy and speed.

Trains the same configuration twice from the same seed, once with bf16 autocast and once in float32,
on a seeded subset of the training split, and reports validation accuracy and images per second of
each (interleaving is not possible for minutes-long runs: the two run back to back, and the load is
printed before each). This is the accuracy check behind fit()'s bf16 default for the fast CNN on CPUs
with native bf16; benchmarks/choices.py has the step-time A/B.

    python benchmarks/cifar_fast.py --data /tmp/cifar10-jpeg --subset 10000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.data import load_dataset
from anncnn_tune.data.source import parse_source
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, fit, seed_everything

RECIPE = {"width": 32, "width_mult": 4.0, "depth": 2, "optimizer": "sgd", "nesterov": True, "momentum": 0.85,
          "lr": 1.0, "weight_decay": 1.0e-3, "label_smoothing": 0.2, "schedule": "triangle", "batch_size": 512,
          "augment": "translate_altflip", "averaging": "lookahead", "average_decay": 0.9, "tta": "flip"}


def run(data: DeviceData, shape, out_dim: int, params: dict, epochs: int, bf16: bool, seed: int) -> dict:
    seed_everything(seed)
    model = models.build("fastcnn", params, shape, out_dim)
    load = os.getloadavg()[0]
    result = fit(model, data, params, epochs=epochs, metric="val_accuracy", seed=seed,
                 options=RunOptions(amp=bf16))
    return {"precision": "bf16" if bf16 else "float32", "val_accuracy": result.history[-1]["val_accuracy"],
            "images_per_s": result.samples_per_second, "train_seconds": result.train_seconds, "load": load}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the CIFAR-10 JPEG folder (train/ and test/ class folders)")
    parser.add_argument("--subset", type=int, default=10000, help="training images (seeded subset)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--params", default=None, help="JSON overrides of the recipe")
    args = parser.parse_args(argv)
    params = {**RECIPE, **(json.loads(args.params) if args.params else {})}
    source = parse_source({"path": args.data}, base_dir=Path.cwd(), where="--data")
    splits = load_dataset(source, seed=0, subset=args.subset)
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    print(f"# python benchmarks/cifar_fast.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# CIFAR-10 (JPEG q75 copy), {len(splits.y_train)} training images, {len(splits.y_val)} validation; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for bf16 in (True, False):
            row = {"seed": seed, **run(data, splits.input_shape, splits.out_dim, params, args.epochs, bf16, seed)}
            rows.append(row)
            print(f"| seed {seed} | {row['precision']} | val accuracy {row['val_accuracy']:.4f} | "
                  f"{row['images_per_s']:.0f} images/s | {row['train_seconds']:.0f} s | load {row['load']:.2f} |",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
