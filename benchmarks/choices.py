"""The measurements behind fit()'s speed choices, each an A/B in the same run (medians, interleaved).

- optimizer step: for-loop vs foreach vs fused, for Adam, AdamW and SGD, on the benchmark models;
- batch gather: advanced indexing x[index] vs x.index_select(0, index), uint8 images;
- random translation: four broadcast index tensors (the former code) vs one flat gather (now);
- memory format: NCHW vs channels_last training steps for CNNs;
- validation batch size for predict() on CPU;
- intra-op threads: 1 vs all cores for one training step;
- bf16 autocast vs float32 training steps on CPU (all cores, channels_last), for the fast CNN and the
  notebook CNN: where the CPU computes bf16 natively (AVX-512 BF16, AMX) this decides fit()'s default;
- the CPU's convolution peak in float32 and bf16 (one large 3x3 convolution, forward and backward),
  against which the fast CNN's training throughput is reported;
- batch norm folded into the convolutions at evaluation (training/fusion.py) against the model as
  trained, for the fast CNN's validation pass in bf16 and float32;
- torch.compile (inductor) against eager training steps of the fast CNN in bf16: the compile time, the
  step time of each, and the steps after which compiling has paid for itself (`--compile` stays off by
  default unless a trial is longer than that).

    python benchmarks/choices.py            # ~2-4 minutes on 2 CPU cores
    python benchmarks/choices.py --quick    # a few iterations of each: checks the script only
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.training import models
from anncnn_tune.training.fit import DeviceData, RunOptions, _random_shift, predict
from anncnn_tune.training.fusion import fold_batch_norms
from anncnn_tune.training.threads import available_cores, configure_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CASES, build, synthetic_splits  # a sibling script, not a package


def timed(function, iterations: int) -> float:
    """Seconds per call, after two warm-up calls."""
    for _ in range(2):
        function()
    started = time.perf_counter()
    for _ in range(iterations):
        function()
    return (time.perf_counter() - started) / iterations


def ab(variants: dict, iterations: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each variant, the variants interleaved in every repeat."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(repeats):
        for name in list(variants)[:: 1 if r % 2 == 0 else -1]:
            times[name].append(timed(variants[name], iterations))
    return {name: statistics.median(values) for name, values in times.items()}


def optimizer_steps(iterations, repeats) -> list[dict]:
    rows = []
    for case in CASES:
        model = build(case, 0)
        model(torch.randn(2, *case.shape)).sum().backward()
        for name, cls, extra in (("adam", torch.optim.Adam, {}), ("adamw", torch.optim.AdamW, {}),
                                 ("sgd", torch.optim.SGD, {"momentum": 0.9})):
            variants = {}
            for mode, flag in (("for-loop", {"foreach": False}), ("foreach", {"foreach": True}),
                               ("fused", {"fused": True})):
                optimizer = cls(model.parameters(), lr=1e-4, **extra, **flag)
                variants[mode] = optimizer.step
            result = ab(variants, iterations, repeats)
            rows.append({"what": f"{name} step, {case.name}", **{k: v * 1e6 for k, v in result.items()},
                         "unit": "us"})
    return rows


def gathers(iterations, repeats) -> list[dict]:
    x = torch.randint(0, 256, (54000, 1, 28, 28), dtype=torch.uint8)
    index = torch.randperm(54000)[:128]
    result = ab({"x[index]": lambda: x[index], "index_select": lambda: x.index_select(0, index)}, iterations, repeats)
    return [{"what": "batch of 128 MNIST images", **{k: v * 1e6 for k, v in result.items()}, "unit": "us"}]


def _shift_by_indexing(x, pad, generator):
    """The former implementation: advanced indexing with four broadcast index tensors."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, None, :, None]
    cols = (dx + torch.arange(w))[:, None, None, :]
    batch = torch.arange(b)[:, None, None, None]
    channel = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channel, rows, cols]


def _shift_variants(x, pad, generator) -> dict:
    return {"4 index tensors": lambda: _shift_by_indexing(x, pad, generator),
            "flat gather": lambda: _random_shift(x, pad, generator)}


def translations(iterations, repeats) -> list[dict]:
    rows = []
    for shape, pad, b in (((1, 28, 28), 2, 128), ((3, 32, 32), 4, 64)):
        x = torch.randint(0, 256, (b, *shape), dtype=torch.uint8)
        generator = torch.Generator().manual_seed(0)
        a = _shift_by_indexing(x, pad, torch.Generator().manual_seed(1))
        assert torch.equal(a, _random_shift(x, pad, torch.Generator().manual_seed(1)))  # same result
        result = ab(_shift_variants(x, pad, generator), iterations, repeats)
        rows.append({"what": f"translate {b}x{shape} by up to {pad}", **{k: v * 1e6 for k, v in result.items()},
                     "unit": "us"})
    return rows


def _train_step(model, x, y, optimizer, loss_fn=F.cross_entropy):
    def step():
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


CNNS = [
    ("digits baseline", {"blocks": 2, "filters": 32}, (1, 8, 8), 64),
    ("mnist bn+residual k5", {"blocks": 2, "filters": 32, "convs": 2, "kernel": 5, "batch_norm": True,
                              "residual": True, "dropout": 0.2}, (1, 28, 28), 64),
    ("mnist baseline", {"blocks": 2, "filters": 32, "head_width": 64}, (1, 28, 28), 64),
    ("cifar10 32-64-128", {"blocks": 3, "filters": 32, "head_width": 128}, (3, 32, 32), 64),
    ("cifar10 vgg-bn", {"blocks": 3, "filters": 32, "convs": 2, "batch_norm": True, "dropout": 0.25,
                        "head_width": 256, "head_dropout": 0.5}, (3, 32, 32), 64),
]


def memory_formats(iterations, repeats) -> list[dict]:
    rows = []
    for name, params, shape, b in CNNS:
        variants = {}
        for fmt in (torch.contiguous_format, torch.channels_last):
            torch.manual_seed(0)
            model = models.build("cnn", params, shape, 10).to(memory_format=fmt)
            x = torch.randn(b, *shape).contiguous(memory_format=fmt)
            optimizer = torch.optim.Adam(model.parameters(), fused=True)
            variants["NCHW" if fmt == torch.contiguous_format else "channels_last"] = _train_step(
                model, x, torch.randint(0, 10, (b,)), optimizer)
        result = ab(variants, iterations, repeats)
        rows.append({"what": f"training step, {name}, batch {b}", **{k: v * 1e3 for k, v in result.items()},
                     "unit": "ms"})
    return rows


def _predict_variants(model, data) -> dict:
    return {str(size): (lambda size=size: predict(model, data, data.x_val, RunOptions(eval_batch=size)))
            for size in (64, 128, 512, 8192)}


def eval_batches(iterations, repeats, quick) -> list[dict]:
    rows = []
    for case in CASES[:3]:
        splits = synthetic_splits(case.quick() if quick else case)
        data = DeviceData.from_splits(splits, torch.device("cpu"))
        model = build(case, 0)
        result = ab(_predict_variants(model, data), max(1, iterations // 20), repeats)
        rows.append({"what": f"predict {len(splits.y_val)} validation samples, {case.name}",
                     **{f"batch {k}": v * 1e3 for k, v in result.items()}, "unit": "ms"})
    return rows


def _binary_loss(out, target):
    return F.binary_cross_entropy_with_logits(out.view(-1), target)


def _thread_variants(step, cores: int) -> dict:
    def with_threads(n):
        def run():
            torch.set_num_threads(n)
            step()
        return run
    return {f"{n} thread(s)": with_threads(n) for n in sorted({1, cores})}


def threads(iterations, repeats) -> list[dict]:
    rows = []
    cores = available_cores()
    for case in (CASES[0], CASES[1], CASES[3]):
        model = build(case, 0)
        x = torch.randn(case.batch_size, *case.shape)
        y = torch.randint(0, 10 if case.task == "multiclass" else 1, (case.batch_size,))
        loss_fn = F.cross_entropy
        if case.task == "binary":
            y = y.float()
            loss_fn = _binary_loss
        step = _train_step(model, x, y, torch.optim.Adam(model.parameters(), fused=True), loss_fn)
        result = ab(_thread_variants(step, cores), iterations, repeats)
        rows.append({"what": f"training step, {case.name}, batch {case.batch_size}",
                     **{k: v * 1e3 for k, v in result.items()}, "unit": "ms"})
    return rows


FAST_CNNS = [
    ("fastcnn airbench widths 64/256/256", "fastcnn", {"width": 64, "width_mult": 4.0}, (3, 32, 32), 512),
    ("fastcnn half width 32/128/128", "fastcnn", {"width": 32, "width_mult": 4.0}, (3, 32, 32), 512),
    ("cnn vgg-bn 32-64-128", "cnn", {"blocks": 3, "filters": 32, "convs": 2, "batch_norm": True,
                                     "head_width": 128}, (3, 32, 32), 256),
    ("cnn digits baseline", "cnn", {"blocks": 2, "filters": 32}, (1, 8, 8), 64),
]


def _sgd_step(model, x, y, bf16: bool):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                                nesterov=True, fused=True)
    context = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def step():
        with context:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def bf16_steps(iterations, repeats, quick=False) -> list[dict]:
    """Images per second of training steps, float32 against bf16 autocast, all cores, channels_last."""
    torch.set_num_threads(available_cores())
    rows = []
    for name, family, params, shape, b in FAST_CNNS:
        b = 8 if quick else b
        variants = {}
        for label, bf16 in (("float32", False), ("bf16", True)):
            torch.manual_seed(0)
            model = models.build(family, params, shape, 10).to(memory_format=torch.channels_last)
            x = torch.randn(b, *shape).contiguous(memory_format=torch.channels_last)
            variants[label] = _sgd_step(model, x, torch.randint(0, 10, (b,)), bf16)
        result = ab(variants, iterations, repeats)
        rows.append({"what": f"{name}, batch {b}", **{k: b / v for k, v in result.items()},
                     "bf16 speed-up": result["float32"] / result["bf16"], "unit": "images/s"})
    torch.set_num_threads(1)
    return rows


def conv_peak(iterations, repeats, quick=False) -> list[dict]:
    """GFLOP/s of one large 3x3 convolution's forward and backward (256 channels, 16x16, batch 64):
    the most this CPU's convolutions give, in each precision."""
    torch.set_num_threads(available_cores())
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    batch = 2 if quick else 64
    x = torch.randn(batch, 256, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    flops = 3 * 2 * batch * 256 * 256 * 9 * 16 * 16  # forward, and backward (input and weight gradients)

    def run(bf16):
        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                conv(x).float().sum().backward()
        return step

    result = ab({"float32": run(False), "bf16": run(True)}, iterations, repeats)
    torch.set_num_threads(1)
    return [{"what": "3x3 conv 256->256, 16x16, batch 64, forward + backward",
             **{k: flops / v / 1e9 for k, v in result.items()}, "unit": "GFLOP/s"}]


def folded_eval(iterations, repeats, quick=False) -> list[dict]:
    """Images per second of the fast CNN's evaluation (test-time flip, channels_last, all cores), with
    its batch norms as trained and folded into the convolutions; the fold itself is timed too, as a
    validation would pay it once per epoch."""
    torch.set_num_threads(available_cores())
    rows = []
    for name, family, params, shape, _ in FAST_CNNS[:2]:
        b = 8 if quick else 500
        torch.manual_seed(0)
        model = models.build(family, {**params, "tta": "flip"}, shape, 10).to(memory_format=torch.channels_last)
        model.eval()
        x = torch.randn(b, *shape).contiguous(memory_format=torch.channels_last)
        for bf16 in (False, True):
            def run(m, bf16=bf16, x=x):
                def forward():
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        m(x)
                return forward
            result = ab({"as trained": run(model), "folded": run(fold_batch_norms(model))}, iterations, repeats)
            fold_seconds = timed(functools.partial(fold_batch_norms, model), 3)
            rows.append({"what": f"{name}, {'bf16' if bf16 else 'float32'}, batch {b}",
                         **{k: b / v for k, v in result.items()},
                         "fold speed-up": result["as trained"] / result["folded"],
                         "fold (ms)": fold_seconds * 1e3, "unit": "images/s"})
    torch.set_num_threads(1)
    return rows


def compiled_steps(iterations, repeats, quick=False) -> list[dict]:
    """Seconds per bf16 training step of the fast CNNs, eager against torch.compile (inductor, as
    fit() compiles: the model, static shapes), and the compile time: the first compiled call's
    seconds less an eager step's. Break-even: the steps after which compiling has paid."""
    torch.set_num_threads(available_cores())
    rows = []
    for name, family, params, shape, b in FAST_CNNS[:2]:
        b = 8 if quick else b
        torch.manual_seed(0)
        model = models.build(family, params, shape, 10).to(memory_format=torch.channels_last)
        x = torch.randn(b, *shape).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (b,))
        torch.compiler.reset()
        # --quick checks the script: aot_eager traces forward and backward without generating code
        compiled = torch.compile(model, dynamic=False, backend="aot_eager" if quick else "inductor")
        eager_step, compiled_step = _sgd_step(model, x, y, True), _sgd_step(compiled, x, y, True)
        started = time.perf_counter()
        compiled_step()  # tracing and code generation, forward and backward
        first = time.perf_counter() - started
        result = ab({"eager": eager_step, "compiled": compiled_step}, iterations, repeats)
        gain = result["eager"] - result["compiled"]
        rows.append({"what": f"{name}, bf16, batch {b}", "eager (s/step)": result["eager"],
                     "compiled (s/step)": result["compiled"], "compile speed-up": result["eager"] / result["compiled"],
                     "compile (s)": first - result["compiled"],
                     "break-even (steps)": (first - result["compiled"]) / gain if gain > 0 else float("inf"),
                     "unit": "s"})
    torch.set_num_threads(1)
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default=None,
                        help="comma-separated words: run only the sections whose title contains one (e.g. bf16,peak)")
    args = parser.parse_args(argv)
    configure_threads(threads=1)
    iterations, repeats = (3, 1) if args.quick else (40, 5)
    print(f"# python benchmarks/choices.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# torch {torch.__version__}, {available_cores()} cores; medians of {repeats} interleaved repeats, "
          f"one intra-op thread unless stated")
    planned = {
        "optimizer step (CPU)": lambda: optimizer_steps(iterations * 5, repeats),
        "batch gather": lambda: gathers(iterations * 20, repeats),
        "translation": lambda: translations(iterations * 5, repeats),
        "memory format": lambda: memory_formats(max(2, iterations // 4), repeats),
        "validation batch (CPU)": lambda: eval_batches(iterations, repeats, args.quick),
        "intra-op threads": lambda: threads(max(2, iterations // 2), repeats),
        "bf16 autocast (CPU, all cores)": lambda: bf16_steps(max(2, iterations // 8), repeats, args.quick),
        "convolution peak (CPU, all cores)": lambda: conv_peak(max(2, iterations // 8), repeats, args.quick),
        "folded batch norm at evaluation (CPU, all cores)":
            lambda: folded_eval(max(2, iterations // 8), repeats, args.quick),
        "torch.compile against eager (CPU, all cores)":
            lambda: compiled_steps(max(2, iterations // 8), repeats, args.quick),
    }
    words = args.only.split(",") if args.only else None
    sections = {title: run() for title, run in planned.items() if words is None or any(w in title for w in words)}
    torch.set_num_threads(1)
    for title, rows in sections.items():
        columns = [k for k in rows[0] if k not in ("what", "unit")]
        print(f"\n{title}\n\n| | " + " | ".join(c if "speed-up" in c or "(" in c else f"{c} ({rows[0]['unit']})"
                                                for c in columns) + " |")
        print("|---|" + "---|" * len(columns))
        for row in rows:
            digits = {c: 2 if "speed-up" in c else 3 if "/step" in c else 1 for c in columns}
            print(f"| {row['what']} | " + " | ".join(f"{row[c]:.{digits[c]}f}" for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(sections, indent=2))
    return sections


if __name__ == "__main__":
    main()
