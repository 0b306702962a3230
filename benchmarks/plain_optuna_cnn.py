"""The CNN reference of the race (benchmarks/race.py, arm `plain-cnn`): a plain Optuna CNN search, the common way.

It follows optuna-examples' pytorch/pytorch_simple.py, with the CIFAR-10 habits of torchvision's
tutorials: a torch `Dataset` over the decoded uint8 images whose `__getitem__` does a random crop
(zero padding 4 on 32x32, height // 8 on other sizes) and a horizontal flip per sample on the
CPU, scales to [0, 1] and normalises per channel (ToTensor + Normalize); a DataLoader (batch 128,
shuffled, no worker processes, as the example); `.to(device)` per batch; Optuna's default TPE
sampler (seeded) and median pruner; 10 epochs per trial, validation after every epoch with `.item()`
per batch, `trial.report` and `should_prune`, and the last epoch's validation accuracy returned.

The space (`suggest`), a conventional conv net with batch norm:
  blocks        2..4 (fewer where the image is too small to halve that often)
  filters       16, 32 or 64 in the first block, doubling in each next block
  convs         1..2 of (3x3 conv, batch norm, ReLU) per block, then 2x2 max pooling
  dropout       0..0.5, channel-wise (Dropout2d) after each block
  head_units    64..512 (log), one dense ReLU layer, then head_dropout 0..0.5, then the classes
  optimizer     Adam or SGD (momentum 0.9); lr log-uniform 1e-4..1e-1; weight_decay log-uniform 1e-6..1e-2
benchmarks/plain_same_engine.py searches the same space with the same sampler, pruner and epochs on
anncnn-tune's own training loop (the notebook `cnn` family builds the same network), so the pair
separates the engine's speed from what anncnn-tune's own search adds.

The data are anncnn-tune's own splits (`anncnn_tune.data.load_dataset`, seeded by --seed) of a
dataset key or a folder of class folders (a CIFAR-10 JPEG copy: train/<class>/*.jpg, test/...), so
both sides train and validate on the same images. The device: CUDA where there is one, else the
CPU with torch's default threads (all cores), unless --device says otherwise.

    python benchmarks/plain_optuna_cnn.py --dataset /path/to/cifar10-jpeg --timeout 1800 --storage sqlite:///plain-cnn.db
    # the full race (30 minutes per arm, 3 seeds):
    python benchmarks/race.py --study cifar10-cnn --dataset /path/to/cifar10-jpeg --budget 1800 --seeds 0,1,2 \\
        --arms plain-cnn,plain-engine,anncnn:1
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.data import DATASETS, load_dataset, parse_source
from anncnn_tune.errors import UserError

BATCHSIZE = 128
EPOCHS = 10
STUDY_NAME = "plain-cnn"


def load_splits(dataset: str, seed: int, data_dir: str | None = None):
    """anncnn-tune's splits of a dataset key (cifar10) or of a file or folder (as `optimize --dataset`)."""
    if dataset in DATASETS:
        return load_dataset(dataset, data_dir=data_dir, seed=seed)
    source = parse_source({"path": dataset}, base_dir=Path.cwd(), where="--dataset")
    return load_dataset(source, data_dir=data_dir, seed=seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def max_blocks(height: int, width: int) -> int:
    """At most 4 blocks, and no more 2x2 poolings than the image can take (down to 1x1)."""
    return max(1, min(4, int(math.log2(min(height, width)))))


def suggest(trial: optuna.Trial, in_shape: tuple[int, ...]) -> dict:
    """The search space, shared with plain_same_engine.py (which translates it to its own names)."""
    _, height, width = in_shape
    return {
        "n_blocks": trial.suggest_int("n_blocks", min(2, max_blocks(height, width)), max_blocks(height, width)),
        "filters": trial.suggest_categorical("filters", [16, 32, 64]),
        "convs": trial.suggest_int("convs", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "head_units": trial.suggest_int("head_units", 64, 512, log=True),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
        "optimizer": trial.suggest_categorical("optimizer", ["Adam", "SGD"]),
        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
    }


def define_model(params: dict, in_shape: tuple[int, ...], classes: int) -> nn.Module:
    channels, height, width = in_shape
    layers: list[nn.Module] = []
    for i in range(params["n_blocks"]):
        filters = params["filters"] * 2**i
        for j in range(params["convs"]):
            layers += [nn.Conv2d(channels if j == 0 else filters, filters, 3, padding=1, bias=False),
                       nn.BatchNorm2d(filters), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        if params["dropout"] > 0:
            layers.append(nn.Dropout2d(params["dropout"]))
        channels, height, width = filters, height // 2, width // 2
    layers += [nn.Flatten(), nn.Linear(channels * height * width, params["head_units"]), nn.ReLU()]
    if params["head_dropout"] > 0:
        layers.append(nn.Dropout(params["head_dropout"]))
    layers.append(nn.Linear(params["head_units"], classes))
    return nn.Sequential(*layers)


def define_optimizer(params: dict, model: nn.Module) -> torch.optim.Optimizer:
    if params["optimizer"] == "SGD":
        return torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"])
    return torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])


class Images(Dataset):
    """Decoded uint8 images (N, C, H, W) and their labels; training samples get a random crop and flip."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, *, augment: bool):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1) / 255.0
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1) / 255.0
        self.augment = augment
        self.pad = max(1, self.images.shape[2] // 8)  # 4 on 32x32: the usual RandomCrop(32, padding=4)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment:
            _, height, width = image.shape
            padded = F.pad(image, (self.pad,) * 4)
            top, left = np.random.randint(0, 2 * self.pad + 1, size=2)
            image = padded[:, top : top + height, left : left + width]
            if np.random.rand() < 0.5:
                image = image.flip(2)
        image = (image.float() / 255.0 - self.mean) / self.std  # ToTensor() + Normalize(mean, std)
        return image, self.labels[index]


def loaders(splits):
    train = Images(splits.x_train, splits.y_train, splits.mean, splits.std, augment=True)
    valid = Images(splits.x_val, splits.y_val, splits.mean, splits.std, augment=False)
    return (DataLoader(train, batch_size=BATCHSIZE, shuffle=True),
            DataLoader(valid, batch_size=BATCHSIZE, shuffle=False))


def make_objective(train_loader, valid_loader, in_shape, classes: int, device: torch.device):
    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, in_shape)
        model = define_model(params, in_shape, classes).to(device)
        optimizer = define_optimizer(params, model)
        for epoch in range(EPOCHS):
            model.train()
            for data, target in train_loader:
                data, target = data.to(device), target.to(device)
                optimizer.zero_grad()
                loss = F.cross_entropy(model(data), target)
                loss.backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for data, target in valid_loader:
                    data, target = data.to(device), target.to(device)
                    correct += model(data).argmax(dim=1).eq(target).sum().item()
            accuracy = correct / len(valid_loader.dataset)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.exceptions.TrialPruned()
        return accuracy

    return objective


def arguments_and_splits(argv, description: str):
    """The arguments both CNN race scripts take, and the image classes they search (a one-line error
    and exit 2 otherwise): plain_same_engine.py runs this same search on anncnn-tune's fit."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", required=True,
                        help="an image dataset key (cifar10) or a folder of class folders (as `optimize --dataset`)")
    parser.add_argument("--timeout", type=float, required=True, help="seconds (Optuna's study.optimize timeout)")
    parser.add_argument("--storage", required=True, help="Optuna storage URL the race reads afterwards")
    parser.add_argument("--seed", type=int, default=0, help="splits and sampler seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (CUDA where there is one), cpu, cuda or cuda:N")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        splits = load_splits(args.dataset, args.seed, args.data_dir)
    except UserError as exc:
        parser.error(str(exc))
    if splits.kind != "image" or splits.task != "multiclass":
        parser.error(f"--dataset {args.dataset} holds {splits.kind} data for {splits.task}; "
                     "this script needs classes of images")
    return args, splits


def create_study(args, name: str) -> optuna.Study:
    """Optuna's defaults, as the common way uses them: TPE (seeded) and the median pruner."""
    return optuna.create_study(study_name=name, storage=args.storage, direction="maximize",
                               sampler=optuna.samplers.TPESampler(seed=args.seed),
                               pruner=optuna.pruners.MedianPruner())


def main(argv=None) -> None:
    args, splits = arguments_and_splits(argv, __doc__.split("\n\n")[0])
    train, valid = loaders(splits)
    study = create_study(args, STUDY_NAME)
    study.optimize(make_objective(train, valid, splits.input_shape, splits.out_dim, resolve_device(args.device)),
                   n_trials=100_000, timeout=args.timeout)


if __name__ == "__main__":
    main()
