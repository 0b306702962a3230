"""Would a 16x16 first rung pay on cifar10-cnn? Issue 22 part 3 asks for lower-resolution rungs
"where it measurably pays"; this measures it before anything is built.

cifar10-cnn's first rung trains each trial's whole schedule on a seeded, stratified 1/9 of the
training images and validates it once on the whole validation split (search/fidelity.py). A 16x16
rung would train the same schedule on the same images downsampled 2x2 (and validate on the
validation images downsampled alike), at about a quarter of the convolutions' cost. It pays if it
costs much less and ranks the trials as the 32x32 rung does (the rung's only job is to rank: the
best third goes on). So each of K configurations drawn from the study's space (seeded, the fast CNN
family; the airbench94 baseline first) trains both rungs, interleaved; printed: each rung's value
and seconds, the Spearman rank correlation between the two rungs, whether the 16x16 rung promotes
the same best third, and the time ratio.

    python benchmarks/resolution_rungs.py --dataset /tmp/cifar/cifar10-jpeg --configs 8
    python benchmarks/resolution_rungs.py --quick      # digits (8x8 -> 4x4), 2 configs: checks the script
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from anncnn_tune.data import load_dataset
from anncnn_tune.data.source import load_source, parse_source
from anncnn_tune.search.fidelity import at_side, train_rung
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions


def study() -> dict:
    return yaml.safe_load((REPO / "studies" / "cifar10-cnn.yaml").read_text())


def draw(space: dict, rng: random.Random) -> dict:
    """One configuration of the study's space, uniform (log-uniform where the space says log)."""
    params = {}
    for name, value in space.items():
        if not isinstance(value, dict):
            params[name] = value  # a fixed value
        elif value["type"] == "categorical":
            params[name] = rng.choice(value["choices"])
        elif value.get("log"):
            params[name] = math.exp(rng.uniform(math.log(value["low"]), math.log(value["high"])))
        else:
            params[name] = rng.uniform(value["low"], value["high"])
        if isinstance(value, dict) and value["type"] == "int":
            params[name] = round(params[name])
    return params


def spearman(a, b) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="/tmp/cifar/cifar10-jpeg", help="a folder of 32x32 colour images")
    parser.add_argument("--configs", type=int, default=8, help="configurations: the airbench94 baseline, then draws")
    parser.add_argument("--fraction", type=float, default=None, help="the rung's part (default: the study's first)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = study()
    fraction = args.fraction or spec["pruner"]["min_resource"]
    if args.quick:
        splits, n_configs, epochs = load_dataset("digits", seed=0), 2, 1
    else:
        source = parse_source({"path": args.dataset}, base_dir=Path.cwd(), where="--dataset")
        splits, n_configs, epochs = load_source(source, seed=0), args.configs, spec["epochs"]
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    small = at_side(data, data.x_train.shape[-1] // 2)  # 2x2 blocks averaged, as first_rung_side does
    rng = random.Random(0)
    fixed = {name: value for name, value in spec["params"].items() if not isinstance(value, dict)}
    configs = [("airbench94-recipe", {**fixed, **spec["baselines"][0]["params"]})]  # the study's fixed values too
    configs += [(f"draw {i}", draw(spec["params"], rng)) for i in range(1, n_configs)]
    options = RunOptions()
    started, load_before, rows = time.time(), os.getloadavg(), []
    for i, (name, params) in enumerate(configs):
        row = {"config": name, "params": params}
        for label, d in ([("32", data), ("16", small)] if i % 2 == 0 else [("16", small), ("32", data)]):
            shape = tuple(d.x_train.shape[1:])  # built for the rung's size: it pools only what is left

            def build(p=params, shape=shape):
                return models.build("fastcnn", p, shape, len(splits.classes))

            result = train_rung(build, d, params, fraction=fraction, epochs=epochs, metric="val_accuracy", seed=0,
                                data_seed=spec["seed"], options=options)
            row[f"value_{label}"], row[f"seconds_{label}"] = result.value, result.seconds
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "params"}), flush=True)
    v32, v16 = [r["value_32"] for r in rows], [r["value_16"] for r in rows]
    third = max(1, len(rows) // 3)
    best32, best16 = set(np.argsort(v32)[-third:]), set(np.argsort(v16)[-third:])
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "dataset": "digits" if args.quick else args.dataset, "fraction": fraction, "epochs": epochs,
        "threads": args.threads, "load": [round(x, 1) for x in load_before + os.getloadavg()],
        "spearman": spearman(v32, v16), "same_best_third": len(best32 & best16) / third,
        "time_ratio_16_over_32": sum(r["seconds_16"] for r in rows) / sum(r["seconds_32"] for r in rows),
        "seconds": round(time.time() - started), "rows": rows,
    }
    print("| configuration | 32x32 rung val acc | s | 16x16 rung val acc | s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['value_32']:.4f} | {r['seconds_32']:.0f} | {r['value_16']:.4f} | "
              f"{r['seconds_16']:.0f} |")
    print(f"Spearman {result['spearman']:.2f}; the 16x16 rung promotes {len(best32 & best16)} of the 32x32 rung's "
          f"best {third}; time 16/32 = {result['time_ratio_16_over_32']:.2f}; load {result['load']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
