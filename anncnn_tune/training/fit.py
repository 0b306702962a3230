"""fit() and evaluate(): the one training loop that tuning and retraining share.

It knows nothing of Optuna: the caller passes one FitObserver (observer.py) whose
on_value(epoch, value) may raise to stop training (the objective raises optuna.TrialPruned there).
Data lives on the device for the whole run; batches are index slices of a device-side permutation; augmentation works on the
whole batch at once; each epoch ends with exactly one device-to-host transfer (the batch loop
itself never waits for the device).

Speed choices, made by measurement (benchmarks/choices.py, figures in benchmarks/RESULTS.md): fused
optimizer steps on CPU and CUDA (on CPU 3-6x faster than foreach or the for-loop for Adam/AdamW,
1.1-1.9x for SGD); batches taken with index_select (~15x cheaper than advanced indexing on CPU);
random translation as one gather (3-7x faster than four broadcast index tensors); uint8 images
normalised per batch on the device (a float copy per process would save under 1% of a CPU step and
take 4x the memory); channels_last for convolutional models (1.05-1.45x faster CPU steps too);
validation in batches of 128 on CPU (larger ones fall out of cache: up to 2x slower at 8192) and
8192 on CUDA. On CUDA also bf16 autocast, cudnn.benchmark and TF32 matmuls; optionally
torch.compile, whose compile time is reported apart from training time.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anncnn_tune.data.base import Splits, TargetScaling
from anncnn_tune.training import averaging
from anncnn_tune.training import metrics as M
from anncnn_tune.training import params as P
from anncnn_tune.training.fusion import fold_batch_norms
from anncnn_tune.training.observer import FitObserver, FitTiming

# Defaults and choices come from the parameter table (training/params.py), the one declaration of each.
TRAIN_DEFAULTS = P.defaults("train")
CHOICES = {name: p.choices for name, p in P.declared("train").items() if p.choices}


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite; the run cannot recover."""

    def __init__(self, epoch: int):
        super().__init__(f"non-finite training loss at epoch {epoch}")
        self.epoch = epoch


@dataclass
class RunOptions:
    """How to run, as opposed to what to train: device and speed switches."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: bool | None = None  # None: bf16 autocast on CUDA with bf16, on CPUs with native bf16 where the model asks
    channels_last: bool | None = None  # None: on for convolutional models (CPU and CUDA: faster on both)
    # torch.compile the model for training steps: True (inductor) or the name of a torch.compile
    # backend ("eager" and "aot_eager" trace without generating code: tests use them).
    compile: bool | str = False
    # Validation and prediction batch; None: 8192 on CUDA, 128 on CPU (where batches past a few
    # hundred samples fall out of cache: up to 2x slower CNN evaluation at 8192, measured).
    eval_batch: int | None = None


@dataclass
class DeviceData:
    """Dataset splits as device tensors: images stay uint8 here and are normalised per batch.

    A regression target is held in the model's units for training (y_train, `target.to_model`)
    and in the user's units for validation (y_val); predict() returns outputs in the user's units.
    """

    task: str
    kind: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    mean: torch.Tensor | None
    std: torch.Tensor | None
    device: torch.device
    target: TargetScaling = field(default_factory=TargetScaling)  # identity for classes

    @classmethod
    def from_splits(cls, splits: Splits, device: torch.device, *, merge_val: bool = False) -> DeviceData:
        """Copy the splits to the device once. merge_val trains on train+val (retraining)."""
        x_train, y_train = splits.x_train, splits.y_train
        x_val, y_val = splits.x_val, splits.y_val
        if merge_val:
            x_train, y_train = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
            x_val = y_val = None
        target = splits.target
        y_train = target.to_model(y_train)  # the loss sees the scaled target; metrics compare in user units

        def put(array):
            return None if array is None else torch.from_numpy(np.ascontiguousarray(array)).to(device)

        mean = std = None
        if splits.kind == "image":
            shape = (1, -1, 1, 1)
            mean = torch.tensor(splits.mean, dtype=torch.float32, device=device).view(shape)
            std = torch.tensor(splits.std, dtype=torch.float32, device=device).view(shape)
        return cls(splits.task, splits.kind, put(x_train), put(y_train), put(x_val), put(y_val), mean, std, device,
                   target)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw stored batch -> float model input (uint8 images normalised here, on the device)."""
        if self.mean is None:
            return x
        return x.to(torch.float32, copy=True).sub_(self.mean).div_(self.std)


@dataclass
class FitResult:
    history: list[dict]
    epochs_run: int
    best_epoch: int
    best_value: float | None
    train_seconds: float  # wall time of the epochs (training and validation), compilation excluded
    samples_per_second: float
    stopped: str  # "budget" or "early_stopping"
    compile_seconds: float = 0.0  # torch.compile's tracing and code generation (0 without compile)
    partial: list[dict] = field(default_factory=list)  # the rows validated inside the first epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_batch_size(batch_size, n_train: int) -> int:
    """An int is a count; a float in (0, 1] is a fraction of the training split (at least 1)."""
    if isinstance(batch_size, float) and batch_size <= 1.0:
        return max(1, round(batch_size * n_train))
    return max(1, min(int(batch_size), n_train))


# -- augmentation: whole batch at once, on the device, no per-sample Python ---------------------------


def _random_shift(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Pad with zeros and take one random HxW window per image (random crop / translation).

    One gather over the flattened padded images: each output pixel reads padded[dy + i, dx + j]
    of its own image (3-7x faster on CPU than indexing with four broadcast index tensors).
    """
    b, c, h, w = x.shape
    width = w + 2 * pad
    padded = F.pad(x, (pad, pad, pad, pad)).view(b, c, -1)
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=x.device, generator=generator)
    window = (torch.arange(h, device=x.device).view(h, 1) * width + torch.arange(w, device=x.device)).view(1, 1, -1)
    index = (window + dy * width + dx).expand(b, c, h * w)
    return padded.gather(2, index).view(b, c, h, w)


def _random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def _alternating_flip(x: torch.Tensor, flip_bits: torch.Tensor, epoch: int) -> torch.Tensor:
    """Mirror the images whose fixed random bit differs from the epoch's parity: every image is seen
    both ways every two epochs, which random flips only do on average (airbench's alternating flip)."""
    flip = flip_bits ^ bool(epoch % 2)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, kind: str, generator: torch.Generator, *, flip_bits: torch.Tensor | None = None,
            epoch: int = 1) -> torch.Tensor:
    """Augment a batch of images (N, C, H, W), any dtype; inputs that are no images pass unchanged.

    flip_bits: the batch's fixed per-image bits, for the alternating flip (translate_altflip)."""
    if kind == "none" or x.dim() != 4:
        return x
    height = x.shape[2]
    if kind == "flip":
        return _random_flip(x, generator)
    if kind == "translate":  # small shifts: 2 px on 28x28, 1 px on 8x8
        return _random_shift(x, max(1, round(height / 14)), generator)
    if kind == "crop_flip":  # CIFAR's standard: pad 4 on 32x32, then crop, then flip
        return _random_flip(_random_shift(x, max(1, height // 8), generator), generator)
    if kind in ("translate_flip", "translate_altflip"):  # the fast trainers': 2 px on 32x32
        shifted = _random_shift(x, max(1, height // 16), generator)
        if kind == "translate_flip" or flip_bits is None:
            return _random_flip(shifted, generator)
        return _alternating_flip(shifted, flip_bits, epoch)
    raise ValueError(f"unknown augmentation {kind!r}")


# -- the loop -------------------------------------------------------------------------------------


def _loss_function(task: str, params: dict, y_train: torch.Tensor):
    """loss(outputs, targets); binary and regression targets arrive as float (cast once per fit). An
    ensemble's training outputs, (batch, members, outputs), give the mean of its members' losses."""
    loss = _task_loss(task, params, y_train)

    def members_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.dim() == 3:
            return loss(out.flatten(0, 1), y.repeat_interleave(out.shape[1]))
        return loss(out, y)

    return members_loss


def _task_loss(task: str, params: dict, y_train: torch.Tensor):
    if task == "multiclass":
        weight = None
        if params["class_weight"] == "balanced":
            counts = torch.bincount(y_train).float()
            weight = counts.sum() / (len(counts) * counts.clamp(min=1))
        smoothing = float(params["label_smoothing"])
        return lambda out, y: F.cross_entropy(out, y, weight=weight, label_smoothing=smoothing)
    if task == "binary":
        pos_weight = None
        if params["class_weight"] == "balanced":
            positives = y_train.float().sum()
            pos_weight = ((len(y_train) - positives) / positives.clamp(min=1)).view(1)
        return lambda out, y: F.binary_cross_entropy_with_logits(out.view(-1), y, pos_weight=pos_weight)
    return lambda out, y: F.mse_loss(out.view(-1), y)


LR_REFERENCE_BATCH = 256  # lr_scale: the batch size at which lr is taken as given


def scaled_lr(params: dict, batch_size: int) -> float:
    """The learning rate for this batch size: as given, or scaled linearly or by the square root."""
    lr, rule = float(params["lr"]), params.get("lr_scale", "none")
    ratio = batch_size / LR_REFERENCE_BATCH
    return lr * ratio if rule == "linear" else lr * math.sqrt(ratio) if rule == "sqrt" else lr


def _optimizer(model: nn.Module, params: dict, device: torch.device, lr: float) -> torch.optim.Optimizer:
    # Fused kernels (one launch for all parameters) on CUDA and CPU: measured 3-6x faster steps on
    # CPU than foreach for Adam/AdamW, 1.1-1.9x for SGD (torch 2.13). foreach where fused is refused.
    wd = float(params["weight_decay"])
    # A model may give some of its parameters their own rates (the fast CNN's batch-norm biases).
    trainable = (model.optimizer_groups(lr, wd) if hasattr(model, "optimizer_groups")
                 else [p for p in model.parameters() if p.requires_grad])
    name = params["optimizer"]
    if name == "sgd":
        nesterov = bool(params["nesterov"]) and float(params["momentum"]) > 0
        cls, kwargs = torch.optim.SGD, {"momentum": float(params["momentum"]), "nesterov": nesterov}
    elif name == "adam":
        cls, kwargs = torch.optim.Adam, {}
    elif name == "adamw":
        cls, kwargs = torch.optim.AdamW, {}
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    if device.type in ("cuda", "cpu"):
        try:
            return cls(trainable, lr=lr, weight_decay=wd, fused=True, **kwargs)
        except (RuntimeError, ValueError):
            pass
    return cls(trainable, lr=lr, weight_decay=wd, foreach=True, **kwargs)


def _scheduler(optimizer, params: dict, total_steps: int, lr: float):
    name = params["schedule"]
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=max(2, total_steps))
    if name == "triangle":  # from lr/5 up to lr over the warm-up, then linearly down to 0 at the last step
        peak = max(1, round(float(params["warmup"]) * total_steps))
        total = max(peak + 1, total_steps)

        def factor(step: int) -> float:
            if step < peak:
                return 0.2 + 0.8 * step / peak
            return max(0.0, (total - step) / (total - peak))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return None


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: the CPU computes bf16 dot products natively (oneDNN then runs bf16
    convolutions faster than float32; without it, bf16 is emulated and slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _use_amp(options: RunOptions, model: nn.Module | None = None) -> bool:
    """bf16 autocast: on CUDA devices with bf16; on CPUs with native bf16 for models that declare
    `cpu_bf16 = True` (the fast CNN; the notebook CNN on images of 16 pixels or more): measured faster
    at the same accuracy (benchmarks/choices.py, bf16_accuracy.py)."""
    if options.amp is not None:
        return options.amp
    if options.device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(getattr(model, "cpu_bf16", False)) and cpu_has_native_bf16()


def _autocast(options: RunOptions, model: nn.Module | None = None):
    if _use_amp(options, model):
        return torch.autocast(device_type=options.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _use_channels_last(model: nn.Module, options: RunOptions) -> bool:
    """channels_last pays for convolutions only; dense models keep NCHW.

    On by default on CUDA (tensor-core convolutions want NHWC) and on CPU too, where oneDNN's
    convolutions measured 1.05-1.45x faster training steps over five CNNs of the studies' spaces.
    """
    wanted = options.channels_last if options.channels_last is not None else True
    return bool(wanted) and any(isinstance(m, nn.Conv2d) for m in model.modules())


def _configure_cuda(device: torch.device) -> None:
    # Autotune convolution algorithms for the (fixed) batch shapes; TF32 for what stays float32.
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


OUT_OF_MEMORY = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED",
                 "can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """The one test for an allocation failure: torch's OutOfMemoryError, or one that torch raises as a
    plain RuntimeError (cuBLAS/cuDNN workspaces, the CPU allocator)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and any(text in str(exc) for text in OUT_OF_MEMORY))


@torch.inference_mode()
def predict(model: nn.Module, data: DeviceData, x: torch.Tensor, options: RunOptions | None = None) -> torch.Tensor:
    """Model outputs for stored inputs x, in large batches, in eval mode (float32); a regression
    target's in the user's units (the one place where outputs are unscaled, data.target.to_user)."""
    options = options or RunOptions(device=data.device)
    trained, was_training = model, model.training
    model.eval()
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        # 1.03-1.26x faster evaluation for a fold of about 3 ms (benchmarks/choices.py, "folded batch norm")
        model = fold_batch_norms(model)
    channels_last = _use_channels_last(model, options)
    size = options.eval_batch or (8192 if data.device.type == "cuda" else 128)
    outputs = []
    with _autocast(options, model):
        for start in range(0, len(x), size):
            batch = data.inputs(x[start : start + size])
            if channels_last and batch.dim() == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.append(model(batch).float())
    trained.train(was_training)
    return data.target.to_user(torch.cat(outputs))


def evaluate(model, data: DeviceData, x, y, options: RunOptions | None = None) -> dict[str, torch.Tensor]:
    """All metrics of the task on (x, y), as device tensors; the caller decides when to sync."""
    return M.compute(data.task, predict(model, data, x, options), y)


def _rng_state(device: torch.device) -> dict:
    """The global generators that dropout draws from (the batch order and augmentation have their own)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict | None, device: torch.device) -> None:
    if not state:
        return
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def fit(
    model: nn.Module,
    data: DeviceData,
    params: dict,
    *,
    epochs: int,
    metric: str | None = None,
    seed: int = 0,
    options: RunOptions | None = None,
    observer: FitObserver | None = None,
    partial_epochs: tuple[float, ...] = (),
) -> FitResult:
    """Train `model` on data.x_train for up to `epochs`, validating after each epoch.

    params: training parameters (missing ones take TRAIN_DEFAULTS). metric: the validation
    metric that observer.on_value receives and early stopping watches (None when there is no
    validation split, as in retraining). observer: a FitObserver (observer.py) told of every
    epoch, value and timing; on_value may raise to stop. Where it saves checkpoints, training
    resumes from its load_checkpoint() and it gets a state after every finished epoch but the last
    (so a retried trial resumes, and its epochs and weights are exactly those of an uninterrupted run).
    partial_epochs: fractions of the first epoch, in (0, 1), after which to validate as well (the
    cheap low rungs of a pruner: a bad configuration is stopped after a seeded part of the
    training split). Each is reported to observer.on_partial and on_value(fraction, value) at the
    first batch boundary at or past it; validating changes nothing in the training itself.
    Raises NonFiniteLoss when the training loss stops being finite, and torch.OutOfMemoryError
    for every allocation failure (also those torch raises as a plain RuntimeError).
    """
    try:
        return _fit(model, data, params, epochs=epochs, metric=metric, seed=seed,
                    options=options or RunOptions(device=data.device), observer=observer or FitObserver(),
                    partial_epochs=partial_epochs if metric else ())
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        if is_out_of_memory(exc):
            raise torch.OutOfMemoryError(str(exc)) from exc
        raise


@dataclass
class _Loop:
    """What stays fixed during one fit: the model to step, the batching, optimizer and loss."""

    model: nn.Module
    step_model: nn.Module  # the compiled model where torch.compile is on
    data: DeviceData
    options: RunOptions
    channels_last: bool
    n: int
    batch_size: int
    steps: int
    optimizer: torch.optim.Optimizer
    scheduler: object
    loss_fn: object
    targets: torch.Tensor
    generator: torch.Generator
    augment: str
    amp: object
    sync: object
    average: averaging.WeightAverage | None  # the weights validation uses, where averaging is on
    flip_bits: torch.Tensor | None  # one fixed random bit per training image (the alternating flip)
    compiled_sizes: set = field(default_factory=set)  # batch sizes torch.compile has seen


@dataclass
class _Progress:
    """What changes from epoch to epoch, and what a checkpoint saves of it."""

    history: list = field(default_factory=list)
    partial: list = field(default_factory=list)  # rows validated inside the first epoch (partial_epochs)
    best_value: float | None = None
    best_epoch: int = 0
    since_best: int = 0
    elapsed: float = 0.0
    compile_seconds: float = 0.0

    def timing(self, *, within_epoch: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> FitTiming:
        """Time so far; within_epoch: (fraction of the running epoch trained, its seconds, its compiling)."""
        fraction, seconds, compiling = within_epoch
        return FitTiming(len(self.history), self.elapsed + seconds - compiling, self.compile_seconds + compiling,
                         epochs_trained=len(self.history) + fraction)

    def track_best(self, epoch: int, value: float, metric: str) -> None:
        if M.is_better(value, self.best_value, metric):
            self.best_value, self.best_epoch, self.since_best = value, epoch, 0
        else:
            self.since_best += 1


def _prepare(model, data: DeviceData, p: dict, *, epochs: int, seed: int, options: RunOptions) -> _Loop:
    device = data.device
    _configure_cuda(device)
    model.to(device)
    channels_last = _use_channels_last(model, options)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if options.compile:
        # Each trial compiles its own model. Dynamo caches a few graphs per code object (8 by default)
        # and then silently runs eager: start every fit from an empty cache.
        torch.compiler.reset()
        backend = options.compile if isinstance(options.compile, str) else "inductor"
        step_model = torch.compile(model, backend=backend, dynamic=False)
    else:
        step_model = model
    n = len(data.y_train)
    batch_size = resolve_batch_size(p["batch_size"], n)
    # A last batch of one sample would break batch norm and adds noise: fold it into the previous one.
    steps = max(1, n // batch_size if n % batch_size == 1 else math.ceil(n / batch_size))
    lr = scaled_lr(p, batch_size)
    optimizer = _optimizer(model, p, device, lr)
    generator = torch.Generator(device=device).manual_seed(seed)
    if hasattr(model, "init_from_data"):  # a data-dependent initialisation (the fast CNN's whitening stem)
        model.init_from_data(data.inputs(data.x_train[:8192]))
    return _Loop(
        model=model, step_model=step_model, data=data, options=options, channels_last=channels_last, n=n,
        batch_size=batch_size, steps=steps, optimizer=optimizer,
        scheduler=_scheduler(optimizer, p, steps * epochs, lr),
        loss_fn=_loss_function(data.task, p, data.y_train),
        targets=data.y_train if data.task == "multiclass" else data.y_train.float(),
        generator=generator, augment=p["augment"],
        amp=_autocast(options, model),  # built once, entered once per step (autocast contexts may be re-entered)
        sync=(lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None),
        average=averaging.make(model, p, steps * epochs),
        flip_bits=(torch.rand(n, device=device, generator=generator) < 0.5) if p["augment"].endswith("altflip")
        else None,
    )


def _resume(loop: _Loop, state: dict | None) -> _Progress:
    """The progress a checkpoint saved (its weights, optimizer and generators restored), else a fresh one."""
    if not state:
        return _Progress()
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    if loop.scheduler is not None:
        loop.scheduler.load_state_dict(state["scheduler"])
    if loop.average is not None and state.get("average") is not None:
        loop.average.load_state_dict(state["average"])
    loop.generator.set_state(state["generator"].to(loop.generator.get_state().device))
    _set_rng_state(state.get("rng"), loop.data.device)
    return _Progress(history=state["history"], partial=state.get("partial", []), best_value=state["best_value"],
                     best_epoch=state["best_epoch"],
                     since_best=state["since_best"], elapsed=state["elapsed"],
                     compile_seconds=state.get("compile_seconds", 0.0))


def _checkpoint_state(loop: _Loop, progress: _Progress) -> dict:
    return {
        "model": loop.model.state_dict(), "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict() if loop.scheduler is not None else None,
        "average": loop.average.state_dict() if loop.average is not None else None,
        "generator": loop.generator.get_state(), "rng": _rng_state(loop.data.device), "history": progress.history,
        "partial": progress.partial,
        "best_value": progress.best_value, "best_epoch": progress.best_epoch, "since_best": progress.since_best,
        "elapsed": progress.elapsed, "compile_seconds": progress.compile_seconds,
    }


def _train_epoch(loop: _Loop, marks: dict[int, tuple[float, ...]], epoch: int, on_step):
    """One pass over the training split, as a generator: it yields (samples seen, the summed loss so far
    as a device tensor, seconds spent compiling so far), each led by the steps done, after each step
    count named in `marks` (see _marks) and once at the end of the epoch. on_step(epoch, seen, n) after
    every step (the observer's progress hook)."""
    data, n, batch_size, steps = loop.data, loop.n, loop.batch_size, loop.steps
    compiling = 0.0
    loop.model.train()
    order = torch.randperm(n, device=data.device, generator=loop.generator)
    loss_sum = torch.zeros((), device=data.device)
    for step in range(steps):
        index = order[step * batch_size : n if step == steps - 1 else (step + 1) * batch_size]
        size = len(index)
        # With torch.compile, a step with a new batch shape compiles: time it apart (two syncs per
        # batch shape and fit call: the only syncs inside the loop, and only with compile on).
        timed = loop.options.compile and size not in loop.compiled_sizes
        if timed:
            loop.sync()
            step_started = time.perf_counter()
        flip_bits = loop.flip_bits.index_select(0, index) if loop.flip_bits is not None else None
        xb = data.inputs(augment(data.x_train.index_select(0, index), loop.augment, loop.generator,
                                 flip_bits=flip_bits, epoch=epoch))
        if loop.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with loop.amp:
            loss = loop.loss_fn(loop.step_model(xb), loop.targets.index_select(0, index))
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        if loop.scheduler is not None:
            loop.scheduler.step()
        if loop.average is not None:
            loop.average.update()
        loss_sum.add_(loss.detach(), alpha=size)
        if timed:
            loop.sync()
            loop.compiled_sizes.add(size)
            compiling += time.perf_counter() - step_started
        on_step(epoch, min((step + 1) * batch_size, n), n)
        if step + 1 in marks:
            yield step + 1, (step + 1) * batch_size, loss_sum, compiling
    yield steps, n, loss_sum, compiling


def _marks(loop: _Loop, fractions: tuple[float, ...]) -> dict[int, tuple[float, ...]]:
    """The step after which each fraction of an epoch is reached: the first batch boundary at or past
    it (a fraction smaller than one batch waits for the first batch). Fractions that need the whole
    epoch are left out: the epoch's own validation comes then. Several fractions may share a step."""
    marks: dict[int, tuple[float, ...]] = {}
    for fraction in sorted(set(fractions)):
        step = max(1, math.ceil(fraction * loop.n / loop.batch_size - 1e-9))
        if step < loop.steps:
            marks[step] = (*marks.get(step, ()), fraction)
    return marks


def _epoch_values(loop: _Loop, loss_sum: torch.Tensor, seen: int) -> dict[str, float]:
    """The train loss over the `seen` samples so far and the validation metrics, fetched in one
    device-to-host transfer."""
    data = loop.data
    # A standardised target's squared error is back in the user's units times std**2 (exact); a log
    # target's training loss stays on the model's scale (there is no such factor).
    summary = {"train_loss": loss_sum / seen * (data.target.loss_scale or 1.0)}
    if data.x_val is not None:
        with loop.average.applied() if loop.average is not None else contextlib.nullcontext():
            values = evaluate(loop.model, data, data.x_val, data.y_val, loop.options)
        summary.update({f"val_{k}": v for k, v in values.items()})
    return dict(zip(summary, torch.stack([v.float() for v in summary.values()]).tolist()))  # the sync


def _fit(model, data: DeviceData, params: dict, *, epochs, metric, seed, options: RunOptions,
         observer: FitObserver, partial_epochs: tuple[float, ...]) -> FitResult:
    p = {**TRAIN_DEFAULTS, **params}
    loop = _prepare(model, data, p, epochs=epochs, seed=seed, options=options)
    progress = _resume(loop, observer.load_checkpoint() if observer.saves_checkpoints else None)
    observer.on_timing(progress.timing())
    marks = _marks(loop, partial_epochs)
    stopped = "budget"
    for epoch in range(len(progress.history) + 1, epochs + 1):
        started = time.perf_counter()
        for done, seen, loss_sum, compiling in _train_epoch(loop, marks if epoch == 1 else {}, epoch, observer.on_step):
            values = _epoch_values(loop, loss_sum, seen)
            if done < loop.steps:  # a mark inside the first epoch
                within = (seen / loop.n, time.perf_counter() - started, compiling)
                _report_partial(progress, observer, marks[done], seen, values, metric, within)
        progress.elapsed += time.perf_counter() - started - compiling
        progress.compile_seconds += compiling
        row = {"epoch": epoch, **values}
        progress.history.append(row)
        observer.on_timing(progress.timing())
        observer.on_epoch(row)
        if not math.isfinite(values["train_loss"]):
            raise NonFiniteLoss(epoch)
        if metric:
            progress.track_best(epoch, values[metric], metric)
            observer.on_value(epoch, values[metric])
            if p["patience"] and progress.since_best >= int(p["patience"]):
                stopped = "early_stopping"
                break
        else:
            progress.best_epoch = epoch
        if observer.saves_checkpoints and epoch < epochs:
            observer.save_checkpoint(_checkpoint_state(loop, progress))
    if loop.average is not None:
        loop.average.finish()
    epochs_run = len(progress.history)
    return FitResult(
        history=progress.history,
        epochs_run=epochs_run,
        best_epoch=progress.best_epoch,
        best_value=progress.best_value,
        train_seconds=progress.elapsed,
        samples_per_second=loop.n * epochs_run / progress.elapsed if progress.elapsed > 0 else 0.0,
        stopped=stopped,
        compile_seconds=progress.compile_seconds,
        partial=progress.partial,
    )


def _report_partial(progress: _Progress, observer: FitObserver, fractions: tuple[float, ...], seen: int,
                    values: dict, metric: str, within: tuple[float, float, float]) -> None:
    """A validation inside the first epoch, once per fraction it stands for: a row (with the samples
    actually trained on, the resource this rung used) and the value, which the observer may stop at."""
    observer.on_timing(progress.timing(within_epoch=within))
    for fraction in fractions:
        row = {"epoch": round(fraction, 6), "samples": seen, **values}
        progress.partial.append(row)
        observer.on_partial(row)
        if not math.isfinite(values["train_loss"]):
            raise NonFiniteLoss(1)
        observer.on_value(fraction, values[metric])
