"""The reference of the race (benchmarks/race.py): a plain Optuna script, written the common way.

It follows optuna-examples' pytorch/pytorch_simple.py: a torch DataLoader over the training data,
`.to(device)` per batch, an MLP of 1-3 layers of 4-128 units with dropout 0.2-0.5 after each,
Adam / RMSprop / SGD with a log-uniform learning rate in [1e-5, 1e-1], batches of 128, 10 epochs,
validation after every epoch with `.item()` per batch, `trial.report` and `should_prune` (Optuna's
default TPE sampler and median pruner), and the last epoch's validation score returned. Two
things differ from the example, both to race on equal terms: the data are anncnn-tune's own
splits of the same dataset (the full training split, not the example's 30 batches, and the same
validation split), and a binary target is scored by ROC AUC, the metric of anncnn-tune's study.
Images are scaled to [0, 1] as the example's ToTensor does. Threads: torch's default (all cores).

    python benchmarks/plain_optuna.py --dataset fashion-mnist --timeout 420 --storage sqlite:///plain.db
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_optuna_cnn import load_splits

BATCHSIZE = 128
EPOCHS = 10


def define_model(trial: optuna.Trial, in_features: int, classes: int) -> nn.Module:
    n_layers = trial.suggest_int("n_layers", 1, 3)
    layers = []
    for i in range(n_layers):
        out_features = trial.suggest_int(f"n_units_l{i}", 4, 128)
        layers.append(nn.Linear(in_features, out_features))
        layers.append(nn.ReLU())
        layers.append(nn.Dropout(trial.suggest_float(f"dropout_l{i}", 0.2, 0.5)))
        in_features = out_features
    layers.append(nn.Linear(in_features, classes))
    layers.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*layers)


def loaders(dataset: str, seed: int, data_dir: str | None):
    splits = load_splits(dataset, seed, data_dir)

    def tensors(x, y):
        x = x.reshape(len(x), -1).astype(np.float32)
        if splits.kind == "image":
            x = x / 255.0  # ToTensor()
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(np.asarray(y, dtype=np.int64)))

    train = DataLoader(tensors(splits.x_train, splits.y_train), batch_size=BATCHSIZE, shuffle=True)
    valid = DataLoader(tensors(splits.x_val, splits.y_val), batch_size=BATCHSIZE, shuffle=False)
    classes = 2 if splits.task == "binary" else splits.out_dim
    return train, valid, int(np.prod(splits.input_shape)), classes, splits.task


def make_objective(train_loader, valid_loader, in_features: int, classes: int, task: str, device):
    def objective(trial: optuna.Trial) -> float:
        model = define_model(trial, in_features, classes).to(device)
        optimizer_name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), lr=lr)
        for epoch in range(EPOCHS):
            model.train()
            for data, target in train_loader:
                data, target = data.to(device), target.to(device)
                optimizer.zero_grad()
                loss = F.nll_loss(model(data), target)
                loss.backward()
                optimizer.step()
            model.eval()
            correct, scores, labels = 0, [], []
            with torch.no_grad():
                for data, target in valid_loader:
                    data, target = data.to(device), target.to(device)
                    output = model(data)
                    correct += output.argmax(dim=1).eq(target).sum().item()
                    scores.append(output[:, -1].exp().cpu().numpy())
                    labels.append(target.cpu().numpy())
            if task == "binary":
                value = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
            else:
                value = correct / len(valid_loader.dataset)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.exceptions.TrialPruned()
        return value

    return objective


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True,
                        help="an anncnn-tune dataset key (fashion-mnist, churn, ...), or a file or folder (as "
                             "`optimize --dataset`)")
    parser.add_argument("--timeout", type=float, required=True, help="seconds (Optuna's study.optimize timeout)")
    parser.add_argument("--storage", required=True, help="Optuna storage URL the race reads afterwards")
    parser.add_argument("--seed", type=int, default=0, help="splits and sampler seed (default 0)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(logging.WARNING)
    train, valid, in_features, classes, task = loaders(args.dataset, args.seed, args.data_dir)
    study = optuna.create_study(study_name="plain", storage=args.storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.optimize(make_objective(train, valid, in_features, classes, task, torch.device("cpu")),
                   n_trials=100_000, timeout=args.timeout)


if __name__ == "__main__":
    main()
