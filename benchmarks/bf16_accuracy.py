"""bf16 autocast against float32 for the notebook CNNs of cifar10-cnn: accuracy and speed, same seeds.

The fast CNN family trains in bf16 on CPUs with native bf16 because it was measured to be faster at
the same accuracy (benchmarks/choices.py, RESULTS.md). The notebook CNN family (`model: cnn`, the
reference notebooks' nets, cifar10-cnn's named baselines) still trains in float32 on the CPU. This
trains each named notebook baseline of the study twice per seed, float32 then bf16 (interleaved, so
both see the same load), on the same stratified part of the training images and the same seed, and
scores both on the whole validation split: the paired difference in validation accuracy says whether
bf16 costs accuracy, the ratio of training seconds what it buys.

    python benchmarks/bf16_accuracy.py --dataset /tmp/cifar/cifar10-jpeg --part 0.333 --epochs 8 --seeds 0,1
    python benchmarks/bf16_accuracy.py --quick          # digits, checks the script only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.data.base import take_subset
from anncnn_tune.data.source import load_source, parse_source
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, cpu_has_native_bf16, fit, seed_everything

NOTEBOOKS = ("vgg-bn-l2-dropout-augment", "vgg-32-64-128-bn", "conv32-64-128-dense128")


def baselines(names: list[str]) -> list[dict]:
    """The study's named notebook baselines, as cifar10-cnn.yaml writes them."""
    spec = yaml.safe_load((REPO / "studies" / "cifar10-cnn.yaml").read_text())
    found = {b["name"]: b for b in spec["baselines"] if b.get("model") == "cnn"}
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"cifar10-cnn.yaml has no notebook baseline {missing[0]!r}; it has {', '.join(found)}")
    return [found[n] for n in names]


def splits_for(dataset: str, part: float, quick: bool):
    splits = (load_dataset("digits", seed=0) if quick else
              load_source(parse_source({"path": dataset}, base_dir=Path.cwd(), where="--dataset"), seed=0))
    if part < 1:
        index, _ = take_subset(np.arange(len(splits.y_train)), splits.y_train, part, 0, stratify=True)
        splits.x_train, splits.y_train = splits.x_train[index], splits.y_train[index]
    return splits


def one_run(baseline: dict, splits, data: DeviceData, *, bf16: bool, seed: int, epochs: int) -> dict:
    out_dim = len(splits.classes)
    seed_everything(seed)
    model = models.build("cnn", baseline["params"], splits.input_shape, out_dim)
    options = RunOptions(amp=bf16)
    result = fit(model, data, baseline["params"], epochs=epochs, metric="val_accuracy", seed=seed, options=options)
    last = result.history[-1]
    return {"baseline": baseline["name"], "precision": "bf16" if bf16 else "float32", "seed": seed,
            "val_accuracy": float(last["val_accuracy"]), "best_val_accuracy": float(result.best_value),
            "train_seconds": float(result.train_seconds), "epochs": result.epochs_run}


def summary(rows: list[dict]) -> list[str]:
    lines = ["| notebook baseline | float32 val acc | bf16 val acc | bf16 - float32 (per seed) | float32 s / bf16 s |",
             "|---|---:|---:|---|---:|"]
    for name in dict.fromkeys(r["baseline"] for r in rows):
        f32 = [r for r in rows if r["baseline"] == name and r["precision"] == "float32"]
        b16 = [r for r in rows if r["baseline"] == name and r["precision"] == "bf16"]
        diffs = [b["val_accuracy"] - f["val_accuracy"] for f, b in zip(f32, b16)]
        speed = sum(f["train_seconds"] for f in f32) / sum(b["train_seconds"] for b in b16)
        lines.append(f"| {name} | {np.mean([r['val_accuracy'] for r in f32]):.4f} | "
                     f"{np.mean([r['val_accuracy'] for r in b16]):.4f} | "
                     f"{', '.join(f'{d:+.4f}' for d in diffs)} | {speed:.2f}x |")
    return lines


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="/tmp/cifar/cifar10-jpeg", help="a folder of 32x32 colour images")
    parser.add_argument("--baselines", default=",".join(NOTEBOOKS), help="cifar10-cnn's notebook baselines to train")
    parser.add_argument("--part", type=float, default=1 / 3, help="share of the training images (stratified, seeded)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true", help="digits, 1 epoch, one baseline, one seed")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.baselines.split(",")[:1] if args.quick else args.baselines.split(",")
    epochs, seeds = (1, [0]) if args.quick else (args.epochs, [int(s) for s in args.seeds.split(",")])
    splits = splits_for(args.dataset, args.part, args.quick)
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    started, load_before = time.time(), os.getloadavg()
    rows = []
    for baseline in baselines(names):
        for seed in seeds:
            for bf16 in (False, True):  # interleaved: both precisions see the same load
                rows.append(one_run(baseline, splits, data, bf16=bf16, seed=seed, epochs=epochs))
                print(json.dumps(rows[-1]), flush=True)
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, native bf16: "
                   f"{cpu_has_native_bf16()}", "threads": args.threads, "dataset": args.dataset,
        "train_images": len(splits.y_train), "val_images": len(splits.y_val), "epochs": epochs,
        "load": [round(x, 1) for x in load_before + os.getloadavg()], "seconds": round(time.time() - started),
        "rows": rows,
    }
    print("\n".join(summary(rows)))
    print(f"{result['train_images']} training images, {epochs} epochs, load {result['load']}, {result['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
