"""Training throughput of anncnn_tune's fit() against the common way, measured in the same run.

The reference is written as optuna-examples' pytorch_simple.py trains: a torch DataLoader over a
TensorDataset (per-sample augmentation in a Dataset wrapper, on the CPU), `.to(device)` per batch,
torch.optim.Adam with its default settings, and validation after every epoch with `.item()` per
batch. Same model, batch size, device, thread count and epoch count as fit(). Data are synthetic
tensors of the real datasets' shapes (throughput does not depend on the pixel values).

Each model is measured `--repeats` times, fit and reference interleaved (their order alternating),
and the medians are reported, as other work on the machine makes single timings unreliable. The
machine's float32 matmul throughput is measured between the models, and each model's training
FLOPs (3 x forward FLOPs of its Linear and Conv2d layers per training sample, plus 1 x per
validation sample) are set against it.

    python benchmarks/throughput.py                       # all models, one thread: ~2-3 minutes here
    python benchmarks/throughput.py --threads auto --models churn-mlp,mnist-ann   # all cores
    python benchmarks/throughput.py --quick               # small sizes, seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.data.base import Splits
from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, fit, resolve_batch_size
from anncnn_tune.training.threads import available_cores, configure_threads


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    params: dict
    shape: tuple[int, ...]
    task: str
    n_train: int
    n_val: int
    batch_size: int
    augment: str = "none"
    epochs_per_run: int = 1  # short epochs are timed over several, so one run lasts a second or more

    def quick(self) -> Case:
        return replace(self, n_train=min(self.n_train, 4 * self.batch_size), n_val=min(self.n_val, 2 * self.batch_size),
                       epochs_per_run=1)


CASES = [
    # The MLP of the issue on MNIST: 784-512-256-10.
    Case("mnist-ann", "ann", {"layers": 2, "width": 512, "shrink": 0.5}, (1, 28, 28), "multiclass", 54000, 6000, 128),
    # The mnist-cnn baseline (conv32-conv64-dense64); an epoch of 6000 images keeps the run short.
    Case("mnist-cnn", "cnn", {"blocks": 2, "filters": 32, "growth": 2.0, "head_layers": 1, "head_width": 64},
         (1, 28, 28), "multiclass", 6000, 1000, 64),
    # CIFAR-10 CNN 32-64-128 + dense 128 with random crop (pad 4) and flip, batch 64; 4000 images.
    Case("cifar10-cnn", "cnn", {"blocks": 3, "filters": 32, "growth": 2.0, "head_layers": 1, "head_width": 128},
         (3, 32, 32), "multiclass", 4000, 1000, 64, "crop_flip"),
    # Telco churn-sized table (7043 rows, 70/15/15): 45 features, MLP 64-32, batch 32.
    Case("churn-mlp", "ann", {"layers": 2, "width": 64, "shrink": 0.5}, (45,), "binary", 4930, 1056, 32,
         epochs_per_run=5),
]


# -- data -----------------------------------------------------------------------------------------


def synthetic_splits(case: Case, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    classes = 10 if case.task == "multiclass" else 2
    if len(case.shape) == 3:
        x = rng.integers(0, 256, (case.n_train, *case.shape), dtype=np.uint8)
        xv = rng.integers(0, 256, (case.n_val, *case.shape), dtype=np.uint8)
        stats = {"mean": (120.0,) * case.shape[0], "std": (64.0,) * case.shape[0]}
        kind = "image"
    else:
        x = rng.normal(size=(case.n_train, *case.shape)).astype(np.float32)
        xv = rng.normal(size=(case.n_val, *case.shape)).astype(np.float32)
        stats, kind = {}, "tabular"
    y, yv = rng.integers(0, classes, case.n_train), rng.integers(0, classes, case.n_val)
    names = tuple(map(str, range(classes))) if case.task == "multiclass" else None
    return Splits(case.name, case.task, kind, x, y, xv, yv, None, None, names, "synthetic", seed, **stats)


def normalised(x: np.ndarray, splits: Splits) -> torch.Tensor:
    """What a common pipeline holds in its TensorDataset: float32, normalised once up front."""
    t = torch.from_numpy(x)
    if splits.kind != "image":
        return t
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    return (t.float() - mean) / std


class PerSampleAugment(Dataset):
    """torchvision-style per-sample RandomCrop(padding) + RandomHorizontalFlip, in Python, on the CPU."""

    def __init__(self, base: TensorDataset, kind: str):
        self.base, self.kind = base, kind

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        if self.kind in ("translate", "crop_flip"):
            h, w = x.shape[1:]
            pad = max(1, round(h / 14)) if self.kind == "translate" else max(1, h // 8)
            padded = F.pad(x, (pad, pad, pad, pad))
            top, left = random.randint(0, 2 * pad), random.randint(0, 2 * pad)
            x = padded[:, top:top + h, left:left + w]
        if self.kind in ("flip", "crop_flip") and random.random() < 0.5:
            x = x.flip(-1)
        return x, y


# -- the reference loop (pytorch_simple.py's shape) -----------------------------------------------


def reference_loaders(case: Case, splits: Splits, batch_size: int):
    train = TensorDataset(normalised(splits.x_train, splits), torch.from_numpy(splits.y_train))
    if case.augment != "none":
        train = PerSampleAugment(train, case.augment)
    val = TensorDataset(normalised(splits.x_val, splits), torch.from_numpy(splits.y_val))
    return (DataLoader(train, batch_size=batch_size, shuffle=True),
            DataLoader(val, batch_size=batch_size, shuffle=False))


def reference_epoch(model, optimizer, train_loader, val_loader, device, task) -> float:
    model.train()
    for data, target in train_loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        if task == "multiclass":
            loss = F.cross_entropy(output, target)
        else:
            loss = F.binary_cross_entropy_with_logits(output.view(-1), target.float())
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in val_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            pred = output.argmax(dim=1, keepdim=True) if task == "multiclass" else (output > 0).long()
            correct += pred.eq(target.view_as(pred)).sum().item()
    return correct / len(val_loader.dataset)


# -- measurements ---------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, n: int, seconds: float = 1.0) -> float:
    """float32 n x n matmul throughput (the machine's practical peak for dense float32 work)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    count, started = 0, time.perf_counter()
    while True:
        a @ b
        count += 1
        if count % 2 == 0:
            sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return 2 * n**3 * count / elapsed / 1e9


def forward_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of one sample's forward pass through Linear and Conv2d layers."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features
        else:
            kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            total += 2 * output[0].numel() * kernel

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return total


def build(case: Case, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(case.family, case.params, case.shape, 10 if case.task == "multiclass" else 1)


def measure(case: Case, device: torch.device, epochs: int, repeats: int, matmul_n: int, matmul_seconds: float) -> dict:
    splits = synthetic_splits(case)
    batch_size = resolve_batch_size(case.batch_size, case.n_train)
    params = {"batch_size": batch_size, "augment": case.augment, "optimizer": "adam", "lr": 1e-3}
    metric = "val_accuracy"
    options = RunOptions(device=device)
    epochs *= case.epochs_per_run

    def run_fit(seed, data, n_epochs) -> float:
        result = fit(build(case, seed), data, params, epochs=n_epochs, metric=metric, seed=seed, options=options)
        return result.train_seconds / n_epochs

    def run_reference(seed, loaders, n_epochs) -> float:
        model = build(case, seed).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        sync(device)
        started = time.perf_counter()
        for _ in range(n_epochs):
            reference_epoch(model, optimizer, *loaders, device, case.task)
        sync(device)
        return (time.perf_counter() - started) / n_epochs

    # Warm-up on a few batches: allocator, kernels, cuDNN autotuning, lazy imports.
    small = replace(case, n_train=min(case.n_train, 4 * batch_size), n_val=min(case.n_val, batch_size))
    small_splits = synthetic_splits(small)
    run_fit(0, DeviceData.from_splits(small_splits, device), 1)
    run_reference(0, reference_loaders(small, small_splits, batch_size), 1)

    data = DeviceData.from_splits(splits, device)
    loaders = reference_loaders(case, splits, batch_size)
    fit_times, ref_times, matmul = [], [], []
    for r in range(repeats):  # interleaved, the order alternating, so drifting load hits all alike
        runs = [lambda s: fit_times.append(run_fit(s, data, epochs)),
                lambda s: ref_times.append(run_reference(s, loaders, epochs)),
                lambda s: matmul.append(matmul_gflops(device, matmul_n, matmul_seconds))]
        for run in runs if r % 2 == 0 else runs[::-1]:
            run(r + 1)
    flops = forward_flops(build(case, 0), case.shape)
    fit_epoch, ref_epoch = statistics.median(fit_times), statistics.median(ref_times)
    work = 3 * flops * case.n_train + flops * case.n_val
    peak = statistics.median(matmul)
    return {
        "model": case.name, "batch_size": batch_size, "n_train": case.n_train, "n_val": case.n_val,
        "augment": case.augment, "forward_mflops_per_sample": flops / 1e6,
        "fit_epoch_s": fit_epoch, "ref_epoch_s": ref_epoch,
        "fit_epoch_s_all": fit_times, "ref_epoch_s_all": ref_times,
        "fit_samples_per_s": case.n_train / fit_epoch, "ref_samples_per_s": case.n_train / ref_epoch,
        "speedup": ref_epoch / fit_epoch, "fit_gflops": work / fit_epoch / 1e9, "ref_gflops": work / ref_epoch / 1e9,
        "matmul_gflops": peak, "matmul_gflops_all": matmul, "matmul_fraction": work / fit_epoch / 1e9 / peak,
    }


def machine(device: torch.device, threads: int) -> dict:
    try:
        lscpu = subprocess.run(["lscpu"], check=False, capture_output=True, text=True, timeout=10).stdout
        model_name = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                           if line.startswith("Model name")), platform.processor())
    except (OSError, subprocess.SubprocessError):
        model_name = platform.processor()
    info = {"cpu": model_name, "cores": available_cores(), "torch_threads": threads,
            "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "date": datetime.date.today().isoformat()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def table(results: list[dict]) -> str:
    head = ("| model | batch | n_train | fit epoch s | ref epoch s | fit samples/s | ref samples/s | fit / ref "
            "| fit GFLOP/s | matmul GFLOP/s | % of matmul |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['n_train']} | {r['fit_epoch_s']:.3f} | "
                     f"{r['ref_epoch_s']:.3f} | {r['fit_samples_per_s']:,.0f} | {r['ref_samples_per_s']:,.0f} | "
                     f"{r['speedup']:.2f}x | {r['fit_gflops']:.1f} | {r['matmul_gflops']:.1f} | "
                     f"{100 * r['matmul_fraction']:.0f}% |")
    return "\n".join(lines)


def fmt(values: list[float], spec: str = ".2f") -> str:
    return "[" + ", ".join(format(v, spec) for v in values) + "]"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timed run (default 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each (default 5, quick 1)")
    parser.add_argument("--threads", default="1",
                        help="torch intra-op threads, or 'auto' for configure_threads() (all cores). Default 1: "
                             "on a machine shared with other work, more threads than free cores make every "
                             "parallel region wait for descheduled threads (see RESULTS.md)")
    parser.add_argument("--models", default=None, help=f"comma-separated subset of {[c.name for c in CASES]}")
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the script, measures nothing")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    threads = configure_threads(threads=None if args.threads == "auto" else int(args.threads))
    repeats = args.repeats or (1 if args.quick else 5)
    cases = CASES
    if args.models:
        wanted = args.models.split(",")
        unknown = set(wanted) - {c.name for c in CASES}
        if unknown:
            parser.error(f"unknown models {sorted(unknown)}")
        cases = [c for c in CASES if c.name in wanted]
    if args.quick:
        cases = [c.quick() for c in cases]
    matmul_n = 256 if args.quick else 2048
    matmul_seconds = 0.1 if args.quick else 1.0

    info = machine(device, threads)
    print(f"# {' '.join(['python', 'benchmarks/throughput.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"# {info}")
    results = []
    for case in cases:
        result = measure(case, device, args.epochs, repeats, matmul_n, matmul_seconds)
        results.append(result)
        print(f"# {case.name}: fit {result['fit_epoch_s']:.3f} s/epoch {fmt(result['fit_epoch_s_all'])}, reference "
              f"{result['ref_epoch_s']:.3f} s/epoch {fmt(result['ref_epoch_s_all'])} ({result['speedup']:.2f}x); "
              f"matmul GFLOP/s {fmt(result['matmul_gflops_all'], '.0f')}", flush=True)
    peaks = [p for r in results for p in r["matmul_gflops_all"]]
    peak = statistics.median(peaks)
    print(f"\nfloat32 matmul {matmul_n}x{matmul_n}, measured between the runs: median {peak:.1f} GFLOP/s, "
          f"max {max(peaks):.1f}; each model is set against the median measured during its own runs.\n")
    print(table(results))
    out = {"machine": info, "epochs": args.epochs, "repeats": repeats, "quick": args.quick,
           "matmul_gflops": peak, "matmul_gflops_max": max(peaks), "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
