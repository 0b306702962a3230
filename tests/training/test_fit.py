"""fit(), predict() and augment(): the training loop's contract, each test stating one rule.

Correctness only: speed is measured in benchmarks/, never asserted here.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from anncnn_tune.data.base import Splits
from anncnn_tune.training import models
from anncnn_tune.training.fit import (
    DeviceData,
    FitResult,
    NonFiniteLoss,
    RunOptions,
    _optimizer,
    augment,
    fit,
    predict,
    seed_everything,
)
from anncnn_tune.training.observer import FitObserver, TimingObserver
from anncnn_tune.training.threads import available_cores, configure_threads

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def single_thread(request):
    """Tiny models train faster and steadier on one thread, above all on a machine shared with other work.

    Tests that use the default_threads fixture keep the process's setting.
    """
    if "default_threads" in request.fixturenames:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def image_splits(n=120, n_val=40, shape=(1, 8, 8), classes=4, seed=0) -> Splits:
    rng = np.random.default_rng(seed)
    return Splits("fake-images", "multiclass", "image", rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                  rng.integers(0, classes, n), rng.integers(0, 256, (n_val, *shape), dtype=np.uint8),
                  rng.integers(0, classes, n_val), None, None, tuple(map(str, range(classes))), "fp", seed,
                  mean=(100.0,) * shape[0], std=(60.0,) * shape[0])


def tabular_splits(task="binary", n=150, n_val=50, features=6, seed=0) -> Splits:
    rng = np.random.default_rng(seed)
    x, xv = rng.normal(size=(n, features)).astype(np.float32), rng.normal(size=(n_val, features)).astype(np.float32)
    if task == "binary":
        y, yv = (x[:, 0] > 0).astype(np.int64), (xv[:, 0] > 0).astype(np.int64)
    else:
        y, yv = x[:, 0].astype(np.float32), xv[:, 0].astype(np.float32)
    return Splits("fake-table", task, "tabular", x, y, xv, yv, None, None, None, "fp", seed)


# -- augmentation ---------------------------------------------------------------------------------


def batch(n=64, shape=(3, 32, 32), seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def windows(image: torch.Tensor, pad: int) -> dict[tuple[int, int], torch.Tensor]:
    """Every HxW window of the zero-padded image, keyed by its shift (dy, dx) from the original."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    return {(dy - pad, dx - pad): padded[:, dy:dy + h, dx:dx + w]
            for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)}


def shift_of(original: torch.Tensor, augmented: torch.Tensor, pad: int, flips=(False,)):
    """The (dy, dx, flipped) that turns original into augmented, or None."""
    for flipped in flips:
        target = augmented.flip(2) if flipped else augmented
        for shift, window in windows(original, pad).items():
            if torch.equal(window, target):
                return (*shift, flipped)
    return None


@pytest.mark.parametrize("kind", ["none", "flip", "translate", "crop_flip"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_augment_keeps_shape_dtype_and_device(kind, shape):
    x = batch(16, shape)
    out = augment(x, kind, gen())
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device


def test_augment_leaves_non_images_alone_and_rejects_unknown_kinds():
    features = torch.randn(8, 5)
    assert augment(features, "crop_flip", gen()) is features
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(batch(2), "rotate", gen())


@pytest.mark.parametrize("shape,pad", [((1, 28, 28), 2), ((1, 8, 8), 1)])
def test_translate_moves_each_image_by_at_most_pad_pixels_filling_with_zeros(shape, pad):
    x = batch(200, shape)
    out = augment(x, "translate", gen(3))
    shifts = [shift_of(x[i], out[i], pad) for i in range(len(x))]
    assert None not in shifts  # each output is one zero-padded window of its own input
    assert all(abs(dy) <= pad and abs(dx) <= pad for dy, dx, _ in shifts)
    # Different samples get different offsets: with 200 images every one of the (2p+1)^2 shifts occurs.
    assert len(set(shifts)) == (2 * pad + 1) ** 2


def test_flip_mirrors_about_half_of_the_images_left_to_right():
    x = batch(400, (3, 8, 8))
    out = augment(x, "flip", gen(1))
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(2)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(len(x))])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_crop_flip_pads_4_on_cifar_and_flips():
    x = batch(300, (3, 32, 32))
    out = augment(x, "crop_flip", gen(2))
    found = [shift_of(x[i], out[i], 4, flips=(False, True)) for i in range(len(x))]
    assert None not in found
    assert max(max(abs(dy), abs(dx)) for dy, dx, _ in found) == 4
    assert {f for *_, f in found} == {False, True}


def test_augment_is_a_function_of_the_generator_state():
    x = batch(32)
    for kind in ("flip", "translate", "crop_flip"):
        assert torch.equal(augment(x, kind, gen(7)), augment(x, kind, gen(7)))
        assert not torch.equal(augment(x, kind, gen(7)), augment(x, kind, gen(8)))


# -- device data and prediction -------------------------------------------------------------------


def test_images_stay_uint8_on_the_device_and_are_normalised_per_batch_without_touching_the_store():
    splits = image_splits()
    data = DeviceData.from_splits(splits, CPU)
    assert data.x_train.dtype == torch.uint8 and data.x_val.dtype == torch.uint8
    stored = data.x_train.clone()
    x = data.inputs(data.x_train[:10])
    expected = (torch.from_numpy(splits.x_train[:10]).double() - 100.0) / 60.0
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(data.x_train, stored)


def test_merge_val_trains_on_train_plus_validation():
    splits = image_splits(n=30, n_val=10)
    data = DeviceData.from_splits(splits, CPU, merge_val=True)
    assert len(data.y_train) == 40 and data.x_val is None and data.y_val is None


def test_predict_in_large_batches_equals_small_batches_and_restores_the_mode():
    splits = image_splits(n=50, n_val=70)
    data = DeviceData.from_splits(splits, CPU)
    seed_everything(0)
    model = models.build("cnn", {"blocks": 1, "filters": 4, "dropout": 0.3, "batch_norm": True}, (1, 8, 8), 4)
    model.train()
    big = predict(model, data, data.x_val, RunOptions(eval_batch=8192))
    small = predict(model, data, data.x_val, RunOptions(eval_batch=16))
    assert model.training and big.shape == (70, 4) and big.is_inference()
    torch.testing.assert_close(big, small)


# -- the loop -------------------------------------------------------------------------------------


SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")


@pytest.fixture
def host_reads(monkeypatch):
    """Count every Python-level read of a tensor's value to the host during the test."""
    calls: list[str] = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("case", ["image-crop_flip-onecycle", "binary-balanced-cosine", "regression-sgd",
                                  "image-no-validation"])
def test_one_host_read_per_epoch_and_none_inside_the_batch_loop(case, host_reads):
    if case.startswith("image"):
        splits = image_splits(n=100, shape=(3, 8, 8))
        model = models.build("cnn", {"blocks": 1, "filters": 4, "batch_norm": True, "dropout": 0.2}, (3, 8, 8), 4)
        params = {"augment": "crop_flip", "schedule": "onecycle", "batch_size": 16, "label_smoothing": 0.1}
    elif case.startswith("binary"):
        splits = tabular_splits("binary")
        model = models.build("ann", {"width": 16, "dropout": 0.1}, (6,), 1)
        params = {"class_weight": "balanced", "schedule": "cosine", "batch_size": 16, "optimizer": "adamw"}
    else:
        splits = tabular_splits("regression")
        model = models.build("ann", {"width": 16}, (6,), 1)
        params = {"optimizer": "sgd", "nesterov": True, "batch_size": 16}
    data = DeviceData.from_splits(splits, CPU, merge_val=case.endswith("no-validation"))
    metric = None if data.x_val is None else ("val_loss" if splits.task == "regression" else "val_accuracy")
    host_reads.clear()
    result = fit(model, data, params, epochs=3, metric=metric)
    assert result.epochs_run == 3
    assert host_reads == ["tolist"] * 3  # 7+ batches per epoch, one read per epoch: the epoch summary


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (sync debug mode is CUDA-only)")
def test_cuda_batch_loop_never_synchronises(monkeypatch):
    """Any synchronising CUDA call raises, except the epoch summary and the optimizer's one-time state setup."""
    device = torch.device("cuda")
    data = DeviceData.from_splits(image_splits(n=256, shape=(3, 8, 8)), device)
    model = models.build("cnn", {"blocks": 1, "filters": 8, "batch_norm": True}, (3, 8, 8), 4).to(device)

    def exempt(function):
        def call(*args, **kwargs):
            torch.cuda.set_sync_debug_mode(0)
            try:
                return function(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("error")
        return call

    monkeypatch.setattr(torch.Tensor, "tolist", exempt(torch.Tensor.tolist))  # the one sync per epoch
    first_step = torch.optim.Adam.step
    steps = []

    def step(self, *args, **kwargs):  # the first step creates the optimizer state (a host-to-device copy)
        steps.append(1)
        return (exempt(first_step) if len(steps) == 1 else first_step)(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = fit(model, data, {"augment": "crop_flip", "batch_size": 32}, epochs=2, metric="val_accuracy",
                     options=RunOptions(device=device))
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert result.epochs_run == 2 and len(steps) == 16


class MemoryCheckpoint(FitObserver):
    """What the objective's observer does with a TrialCheckpoint, in memory: a serialised copy
    (weights_only, as on disk)."""

    saves_checkpoints = True

    def __init__(self, stop_after_save: int | None = None):
        self.blob: bytes | None = None
        self.saves = 0
        self.stop_after_save = stop_after_save

    def load_checkpoint(self):
        return None if self.blob is None else torch.load(io.BytesIO(self.blob), weights_only=True)

    def save_checkpoint(self, state):
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.blob = buffer.getvalue()
        self.saves += 1
        if self.saves == self.stop_after_save:
            raise KeyboardInterrupt("worker killed")


def _build(family: str, splits: Splits, seed: int) -> nn.Module:
    seed_everything(seed)  # as the objective does before each (re)try
    params = {"ann": {"layers": 2, "width": 32, "dropout": 0.3, "batch_norm": True},
              "cnn": {"blocks": 2, "filters": 4, "dropout": 0.2, "batch_norm": True, "head_dropout": 0.3}}[family]
    return models.build(family, params, splits.input_shape, splits.out_dim)


@pytest.fixture
def default_threads():
    """The thread count torch picks on its own, one per core (see single_thread; conftest.py gives the
    test processes one thread, and this fixture undoes that for the test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(available_cores())
    yield
    torch.set_num_threads(before)


def test_resume_is_exact_under_the_default_thread_count_too(default_threads):
    test_resumed_run_is_bit_identical_to_an_uninterrupted_one("ann", "val_accuracy")


@pytest.mark.parametrize("family,metric", [("ann", "val_accuracy"), ("cnn", "val_loss"), ("cnn", None)])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(family, metric):
    splits = image_splits(n=90, n_val=30)
    data = DeviceData.from_splits(splits, CPU, merge_val=metric is None)
    params = {"augment": "translate", "schedule": "onecycle", "optimizer": "adamw", "batch_size": 16,
              "weight_decay": 1e-3}
    seed, epochs = 11, 4

    straight = _build(family, splits, seed)
    expected = fit(straight, data, params, epochs=epochs, metric=metric, seed=seed)

    checkpoint = MemoryCheckpoint(stop_after_save=2)  # the worker dies right after saving epoch 2
    with pytest.raises(KeyboardInterrupt):
        fit(_build(family, splits, seed), data, params, epochs=epochs, metric=metric, seed=seed,
            observer=checkpoint)
    assert len(checkpoint.load_checkpoint()["history"]) == 2
    resumed_model = _build(family, splits, seed)
    resumed = fit(resumed_model, data, params, epochs=epochs, metric=metric, seed=seed, observer=checkpoint)

    assert resumed.history == expected.history  # floats compared exactly
    assert resumed.best_epoch == expected.best_epoch and resumed.best_value == expected.best_value
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name


def test_checkpoint_saved_after_every_epoch_but_the_last_and_not_after_early_stopping():
    splits = tabular_splits("binary")
    data = DeviceData.from_splits(splits, CPU)
    checkpoint = MemoryCheckpoint()
    fit(models.build("ann", {"width": 8}, (6,), 1), data, {"batch_size": 32}, epochs=3, metric="val_roc_auc",
        observer=checkpoint)
    assert checkpoint.saves == 2
    stopping = MemoryCheckpoint()
    result = fit(models.build("ann", {"width": 8}, (6,), 1), data, {"lr": 1e-9, "patience": 1, "batch_size": 32},
                 epochs=10, metric="val_loss", observer=stopping)
    assert result.stopped == "early_stopping" and stopping.saves == result.epochs_run - 1


def test_history_rows_carry_every_metric_of_the_task():
    data = DeviceData.from_splits(tabular_splits("binary"), CPU)
    result = fit(models.build("ann", {"width": 8}, (6,), 1), data, {}, epochs=2, metric="val_roc_auc")
    assert set(result.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "val_roc_auc",
                                      "val_precision", "val_recall", "val_f1", "val_balanced_accuracy"}
    assert result.best_value == max(row["val_roc_auc"] for row in result.history)
    assert isinstance(result, FitResult) and result.compile_seconds == 0.0
    assert result.samples_per_second == pytest.approx(150 * 2 / result.train_seconds)


def test_on_epoch_sees_every_history_row_also_without_a_validation_split():
    data = DeviceData.from_splits(tabular_splits("binary"), CPU, merge_val=True)
    seen = []

    class Rows(FitObserver):
        def on_epoch(self, row):
            seen.append(row)

    result = fit(models.build("ann", {"width": 8}, (6,), 1), data, {}, epochs=3, metric=None, observer=Rows())
    assert seen == result.history and [row["epoch"] for row in seen] == [1, 2, 3]


def test_timing_stays_current_when_on_value_stops_training():
    data = DeviceData.from_splits(tabular_splits("binary"), CPU)

    class StopAtTwo(TimingObserver):
        def on_value(self, epoch, value):
            if epoch == 2:
                raise RuntimeError("pruned")

    observer = StopAtTwo()
    with pytest.raises(RuntimeError, match="pruned"):
        fit(models.build("ann", {"width": 8}, (6,), 1), data, {}, epochs=5, metric="val_loss", observer=observer)
    timing = observer.timing
    assert timing.epochs_run == 2 and timing.train_seconds > 0 and timing.compile_seconds == 0


def test_a_last_batch_of_one_sample_is_folded_into_the_previous_batch():
    # 33 samples at batch 16 would leave one sample alone, which batch norm cannot train on.
    splits = image_splits(n=33)
    data = DeviceData.from_splits(splits, CPU)
    model = models.build("ann", {"width": 8, "batch_norm": True}, (1, 8, 8), 4)
    result = fit(model, data, {"batch_size": 16}, epochs=1, metric="val_accuracy")
    assert math.isfinite(result.history[0]["train_loss"])


def test_diverging_training_raises_non_finite_loss_with_the_epoch():
    data = DeviceData.from_splits(tabular_splits("regression"), CPU)
    with pytest.raises(NonFiniteLoss, match=r"non-finite training loss at epoch [12]$"):  # 2: a zero head moves first
        fit(models.build("ann", {"width": 8}, (6,), 1), data, {"optimizer": "sgd", "lr": 1e12}, epochs=3,
            metric="val_mse")


class Exploding(nn.Module):
    """A real module whose forward fails the way torch fails on an allocation (or otherwise)."""

    def __init__(self, message):
        super().__init__()
        self.linear = nn.Linear(6, 1)
        self.message = message

    def forward(self, x):
        raise RuntimeError(self.message)


OUT_OF_MEMORY_MESSAGES = [
    "CUDA error: out of memory",
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
]


@pytest.mark.parametrize("message", OUT_OF_MEMORY_MESSAGES)
def test_every_allocation_failure_surfaces_as_out_of_memory_error(message):
    data = DeviceData.from_splits(tabular_splits("binary"), CPU)
    with pytest.raises(torch.OutOfMemoryError):
        fit(Exploding(message), data, {}, epochs=1, metric="val_loss")


def test_other_runtime_errors_pass_through_unchanged():
    data = DeviceData.from_splits(tabular_splits("binary"), CPU)
    with pytest.raises(RuntimeError, match="shape mismatch") as info:
        fit(Exploding("shape mismatch"), data, {}, epochs=1, metric="val_loss")
    assert not isinstance(info.value, torch.OutOfMemoryError)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_cpu_optimizers_use_the_fused_kernels(name):
    # Measured fastest on CPU (benchmarks/choices.py); foreach remains the fallback.
    optimizer = _optimizer(nn.Linear(3, 2), {"optimizer": name, "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9,
                                             "nesterov": True}, CPU, 0.1)
    assert optimizer.defaults["fused"] is True


def test_compile_time_is_reported_apart_from_training_time():
    # The "eager" backend runs torch.compile's real tracing without generating C++ (fast enough for a test).
    data = DeviceData.from_splits(image_splits(n=40, n_val=20), CPU)
    params = {"batch_size": 16}
    seed_everything(0)
    plain_model = models.build("ann", {"width": 8}, (1, 8, 8), 4)
    plain = fit(plain_model, data, params, epochs=2, metric="val_accuracy")
    seed_everything(0)
    compiled_model = models.build("ann", {"width": 8}, (1, 8, 8), 4)
    compiled = fit(compiled_model, data, params, epochs=2, metric="val_accuracy",
                   options=RunOptions(compile="eager"))
    assert compiled.compile_seconds > 0 and plain.compile_seconds == 0
    assert compiled.train_seconds > 0
    for row, other in zip(compiled.history, plain.history):
        assert row.keys() == other.keys()
        for key in row:
            assert row[key] == pytest.approx(other[key], rel=1e-5, abs=1e-6)


# -- threads --------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_configure_threads_shares_the_cores_among_workers(restore_threads):
    cores = available_cores()
    assert configure_threads() == cores
    assert configure_threads(workers=2) == max(1, cores // 2)
    assert configure_threads(workers=cores * 4) == 1
    assert configure_threads(workers=3, threads=1) == 1


def test_configure_threads_respects_omp_num_threads_and_rejects_nonsense(restore_threads, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads(workers=1) == 1
    with pytest.raises(ValueError):
        configure_threads(workers=0)


# -- validations inside the first epoch (a pruner's cheap low rungs) -------------------------------


class Partial(TimingObserver):
    """Keeps the rows validated inside the first epoch, the values reported, and may stop at a fraction."""

    def __init__(self, stop_at: float | None = None):
        super().__init__()
        self.rows, self.values, self.stop_at = [], [], stop_at

    def on_partial(self, row):
        self.rows.append(row)

    def on_value(self, epoch, value):
        self.values.append(epoch)
        if epoch == self.stop_at:
            raise RuntimeError("pruned")


def test_validating_inside_the_first_epoch_changes_nothing_in_the_training():
    splits = image_splits(n=120, n_val=40)
    data = DeviceData.from_splits(splits, CPU)
    params = {"augment": "translate", "dropout": 0.2, "batch_norm": True, "batch_size": 16, "schedule": "cosine"}
    plain_model = _build("ann", splits, 3)  # seeds the global generator (dropout) too, as the objective does
    plain = fit(plain_model, data, params, epochs=3, metric="val_accuracy", seed=3)
    observer = Partial()
    marked_model = _build("ann", splits, 3)
    marked = fit(marked_model, data, params, epochs=3, metric="val_accuracy", seed=3, observer=observer,
                 partial_epochs=(1 / 9, 1 / 3))
    assert marked.history == plain.history  # exactly: the same batches, dropout masks and updates
    for name, tensor in plain_model.state_dict().items():
        assert torch.equal(tensor, marked_model.state_dict()[name]), name
    # 120 samples in batches of 16: 1/9 (13.3 samples) after the first batch, 1/3 (40) after the third.
    assert [(r["epoch"], r["samples"]) for r in observer.rows] == [(0.111111, 16), (0.333333, 48)]
    assert observer.values == [1 / 9, 1 / 3, 1, 2, 3] and marked.partial == observer.rows
    assert set(observer.rows[0]) == set(plain.history[0]) | {"samples"}


def test_fractions_wait_for_a_batch_boundary_and_those_needing_the_whole_epoch_are_the_epoch():
    data = DeviceData.from_splits(tabular_splits("binary", n=150), CPU)
    observer = Partial()
    fit(models.build("ann", {"width": 8}, (6,), 1), data, {"batch_size": 32}, epochs=1, metric="val_loss",
        observer=observer, partial_epochs=(0.5, 0.1, 0.111, 0.95))
    # 5 batches (32 x 4 + 22): 0.1 and 0.111 share the first batch, 0.5 (75 samples) needs three,
    # and 0.95 would need all five, which is the epoch's own validation.
    assert [(r["epoch"], r["samples"]) for r in observer.rows] == [(0.1, 32), (0.111, 32), (0.5, 96)]
    assert observer.values == [0.1, 0.111, 0.5, 1]


def test_a_trial_stopped_inside_the_first_epoch_reports_the_part_it_trained():
    data = DeviceData.from_splits(tabular_splits("binary", n=150), CPU)
    observer = Partial(stop_at=1 / 3)
    with pytest.raises(RuntimeError, match="pruned"):
        fit(models.build("ann", {"width": 8}, (6,), 1), data, {"batch_size": 10}, epochs=4, metric="val_loss",
            observer=observer, partial_epochs=(1 / 9, 1 / 3))
    assert observer.timing.epochs_run == 0 and observer.timing.epochs_trained == pytest.approx(50 / 150)
    assert observer.timing.train_seconds > 0


def test_without_a_metric_there_is_nothing_to_validate_inside_an_epoch():
    data = DeviceData.from_splits(tabular_splits("binary"), CPU, merge_val=True)
    observer = Partial()
    result = fit(models.build("ann", {"width": 8}, (6,), 1), data, {}, epochs=1, metric=None, observer=observer,
                 partial_epochs=(0.5,))
    assert observer.rows == [] and result.partial == []
