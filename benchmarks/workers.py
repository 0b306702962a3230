"""Parallel trials on a CPU: N worker processes with one torch thread each, against one process with N.

The same work, W trials of one model (each a fit() of its epochs on synthetic data of a real
dataset's shape, validation included), is done two ways on the cores this process may use:

- threads: one process with N intra-op threads runs the W trials one after another (`--workers 1`);
- processes: N processes with one thread each run W / N trials side by side (`--workers N`).

Children are spawned and load and warm up before a common start signal, so interpreter start-up and
imports are not timed (a real launch pays them once either way). Each model is measured `--repeats`
times, the two ways interleaved with their order alternating; medians are reported with each
model's training work per step (forward and backward FLOPs of one batch, counted by
torch.utils.flop_counter on the meta device: `training.size_check.step_flops`, the quantity
`--workers auto` decides on). The ratio threads / processes above 1 means parallel trials win.

    python benchmarks/workers.py                 # the ladder of models: ~10 minutes on 2 cores
    python benchmarks/workers.py --quick         # tiny sizes, seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.data.base import Splits
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, fit
from anncnn_tune.training.size_check import step_flops
from anncnn_tune.training.threads import available_cores


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    params: dict  # model and training parameters (batch_size among them)
    shape: tuple[int, ...]
    n_train: int  # per trial: sized so that one single-threaded trial takes a few seconds here
    epochs: int = 1

    def quick(self) -> Case:
        return replace(self, n_train=max(64, self.n_train // 50))


# From the studies' small and large corners: per-step work from ~10 kFLOP to ~10 GFLOP.
CASES = [
    Case("churn-mlp-16-8", "ann", {"layers": 2, "width": 16, "batch_size": 32}, (45,), 4930, epochs=10),
    Case("churn-mlp-256x3", "ann", {"layers": 3, "width": 256, "shrink": 1.0, "batch_size": 64}, (45,), 4930,
         epochs=4),
    Case("digits-cnn-32-64", "cnn", {"blocks": 2, "filters": 32, "batch_size": 64}, (1, 8, 8), 1257, epochs=4),
    Case("fashion-mlp-128-64", "ann", {"layers": 2, "width": 128, "batch_size": 128}, (1, 28, 28), 27000),
    Case("fashion-mlp-1024x2", "ann", {"layers": 2, "width": 1024, "shrink": 1.0, "batch_size": 256},
         (1, 28, 28), 12000),
    Case("fashion-mlp-2048x3", "ann", {"layers": 3, "width": 2048, "shrink": 1.0, "batch_size": 512},
         (1, 28, 28), 4000),
    Case("mnist-cnn-32-64", "cnn", {"blocks": 2, "filters": 32, "head_width": 64, "batch_size": 64},
         (1, 28, 28), 2000),
    Case("cifar10-cnn-32-64-128", "cnn", {"blocks": 3, "filters": 32, "head_width": 128, "batch_size": 64,
                                          "augment": "crop_flip"}, (3, 32, 32), 1200),
    Case("cifar10-cnn-64x3-bn", "cnn", {"blocks": 3, "filters": 64, "convs": 2, "batch_norm": True,
                                        "head_width": 256, "batch_size": 128}, (3, 32, 32), 400),
]


def _splits(case: Case) -> Splits:
    rng = np.random.default_rng(0)
    n_val = max(32, case.n_train // 10)
    if len(case.shape) == 3:
        x = rng.integers(0, 256, (case.n_train, *case.shape), dtype=np.uint8)
        xv = rng.integers(0, 256, (n_val, *case.shape), dtype=np.uint8)
        return Splits(case.name, "multiclass", "image", x, rng.integers(0, 10, case.n_train), xv,
                      rng.integers(0, 10, n_val), None, None, tuple(map(str, range(10))), "synthetic", 0,
                      mean=(127.0,) * case.shape[0], std=(64.0,) * case.shape[0])
    x = rng.normal(size=(case.n_train, *case.shape)).astype(np.float32)
    xv = rng.normal(size=(n_val, *case.shape)).astype(np.float32)
    return Splits(case.name, "binary", "tabular", x, (x[:, 0] > 0).astype(np.int64), xv, (xv[:, 0] > 0).astype(np.int64),
                  None, None, None, "synthetic", 0)


def _child(case: Case, trials: int, threads: int, ready, go, results) -> None:
    """One process: `trials` fits of the case with `threads` intra-op threads, timed from `go`."""
    torch.set_num_threads(threads)
    splits = _splits(case)
    data = DeviceData.from_splits(splits, torch.device("cpu"))
    metric = "val_accuracy" if splits.task == "multiclass" else "val_roc_auc"

    def one_trial(seed: int, n_epochs: int) -> None:
        model = models.build(case.family, case.params, splits.input_shape, splits.out_dim)
        fit(model, data, case.params, epochs=n_epochs, metric=metric, seed=seed, options=RunOptions())

    one_trial(0, 1)  # warm-up: allocator, first kernels
    ready.set()
    go.wait()
    for seed in range(trials):
        one_trial(seed + 1, case.epochs)
    results.put(time.monotonic())


def measure(case: Case, way: str, cores: int, trials_per_worker: int) -> float:
    """Wall seconds for cores * trials_per_worker trials done one way ('threads' or 'processes')."""
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    if way == "threads":
        plan = [(cores * trials_per_worker, cores)]
    else:
        plan = [(trials_per_worker, 1)] * cores
    children = []
    for trials, threads in plan:
        ready = context.Event()
        process = context.Process(target=_child, args=(case, trials, threads, ready, go, results))
        process.start()
        children.append((process, ready))
    for process, ready in children:
        while not ready.wait(timeout=1.0):
            if process.exitcode is not None:
                raise RuntimeError(f"{case.name}: a worker exited with code {process.exitcode} before starting")
    started = time.monotonic()
    go.set()
    finished = [results.get(timeout=3600) for _ in children]
    for process, _ in children:
        process.join()
    return max(finished) - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=None, help="N (default: the cores this process may use)")
    parser.add_argument("--trials", type=int, default=2, help="trials per worker process (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each way (default 3)")
    parser.add_argument("--models", default=None, help="comma-separated case names (default all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks the script only")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    cases = [c for c in CASES if not args.models or c.name in args.models.split(",")]
    if args.quick:  # one tiny model, one core: the mechanics (spawn, start signal, timing), in seconds
        cases, args.repeats, args.trials, args.cores = [cases[0].quick()], 1, 1, args.cores or 1
    cores = args.cores or available_cores()
    info = {"cores": cores, "trials_per_worker": args.trials, "repeats": args.repeats, "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}
    print(f"# {' '.join(['python', 'benchmarks/workers.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"# {info}", flush=True)
    rows = []
    for case in cases:
        times = {"threads": [], "processes": []}
        for repeat in range(args.repeats):
            order = ("threads", "processes") if repeat % 2 == 0 else ("processes", "threads")
            for way in order:
                times[way].append(measure(case, way, cores, args.trials))
        flops = step_flops(case.family, case.params, _splits(case).input_shape, 10, case.params["batch_size"])
        row = {"model": case.name, "step_flops": flops, "threads_s": statistics.median(times["threads"]),
               "processes_s": statistics.median(times["processes"]), "runs": times}
        row["ratio"] = row["threads_s"] / row["processes_s"]
        rows.append(row)
        print(f"# {case.name}: {flops / 1e6:,.1f} MFLOP per step; {cores} threads {row['threads_s']:.2f} s, "
              f"{cores} processes {row['processes_s']:.2f} s, ratio {row['ratio']:.2f}", flush=True)
    print(f"\n| model | MFLOP per step | 1 process x {cores} threads, s | {cores} processes x 1 thread, s "
          "| threads / processes |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['step_flops'] / 1e6:,.2f} | {r['threads_s']:.2f} | {r['processes_s']:.2f} | "
              f"{r['ratio']:.2f} |")
    out = {"info": info, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
