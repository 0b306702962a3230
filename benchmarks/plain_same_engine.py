"""The plain CNN search on anncnn-tune's engine (benchmarks/race.py, arm `plain-engine`).

The search of benchmarks/plain_optuna_cnn.py, unchanged: its space (`suggest`), Optuna's default TPE
sampler (seeded) and median pruner, 10 epochs per trial, a report and a pruning check after every
epoch, the last epoch's validation accuracy returned, batches of 128, random crop (pad 4 on 32x32)
and flip. Only the engine differs: anncnn-tune's `fit` on `DeviceData` (the uint8 images copied
to the device once, batches as index slices of an on-device permutation, the crop and flip done
for the whole batch on the device, normalised per batch there, channels_last, fused optimizer
steps, one host-device sync per epoch, bf16 autocast on CUDA). The network is the notebook `cnn`
family's (`to_engine_params` translates the plain space to its parameters: blocks, filters,
growth 2, convs, batch_norm, dropout, one dense head layer), which builds the same layers as the
plain script's define_model.

So `plain-cnn` against `plain-engine` measures the engine alone (same search, other training
loop), and `plain-engine` against `anncnn:1` what anncnn-tune's own search adds (its space,
fidelity schedule, pruner and baselines) on the same engine.

One difference in behaviour: where the training loss stops being finite (a too large SGD learning
rate), fit stops; the trial reports that epoch's validation accuracy and returns it, where the
plain script would go on training a broken network for its remaining epochs.

    python benchmarks/plain_same_engine.py --dataset /path/to/cifar10-jpeg --timeout 1800 --storage sqlite:///engine.db
    # the full race (30 minutes per arm, 3 seeds):
    python benchmarks/race.py --study cifar10-cnn --dataset /path/to/cifar10-jpeg --budget 1800 --seeds 0,1,2 \\
        --arms plain-cnn,plain-engine,anncnn:1
"""

from __future__ import annotations

import sys
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plain_optuna_cnn import BATCHSIZE, EPOCHS, arguments_and_splits, create_study, resolve_device, suggest

from anncnn_tune.service.records import trial_seed
from anncnn_tune.training import families, models
from anncnn_tune.training.fit import DeviceData, NonFiniteLoss, RunOptions, fit, seed_everything
from anncnn_tune.training.observer import FitObserver

STUDY_NAME = "plain-engine"
METRIC = "val_accuracy"


def to_engine_params(plain: dict) -> dict:
    """The plain space's values as the notebook cnn family's and fit's parameters (the same network
    and training as plain_optuna_cnn.py's define_model and loop)."""
    sgd = plain["optimizer"] == "SGD"
    return {
        "blocks": plain["n_blocks"], "filters": plain["filters"], "growth": 2.0, "convs": plain["convs"],
        "kernel": 3, "activation": "relu", "batch_norm": True, "dropout": plain["dropout"], "pooling": "max",
        "residual": False, "head_layers": 1, "head_width": plain["head_units"], "head_dropout": plain["head_dropout"],
        "optimizer": "sgd" if sgd else "adam", "lr": plain["lr"], "weight_decay": plain["weight_decay"],
        "momentum": 0.9, "nesterov": False, "batch_size": BATCHSIZE, "augment": "crop_flip", "schedule": "none",
        "label_smoothing": 0.0, "patience": 0,
    }


class Reporter(FitObserver):
    """trial.report and should_prune after every epoch, as the plain loop does (step = epoch - 1)."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial
        self.last: float | None = None

    def on_epoch(self, row: dict) -> None:
        self.last = row[METRIC]

    def on_value(self, epoch: float, value: float) -> None:
        self.trial.report(value, int(epoch) - 1)
        if self.trial.should_prune():
            raise optuna.exceptions.TrialPruned()


def make_objective(data: DeviceData, in_shape, classes: int, options: RunOptions, seed: int):
    def objective(trial: optuna.Trial) -> float:
        params = families.get("cnn").full(to_engine_params(suggest(trial, in_shape)))
        trial_rng = trial_seed(seed, trial.number)
        seed_everything(trial_rng)
        model = models.build("cnn", params, in_shape, classes)
        reporter = Reporter(trial)
        try:
            result = fit(model, data, params, epochs=EPOCHS, metric=METRIC, seed=trial_rng, options=options,
                         observer=reporter)
        except NonFiniteLoss as exc:  # the epoch that diverged, as the last report and the value
            reporter.on_value(exc.epoch, reporter.last)
            return reporter.last
        return result.history[-1][METRIC]

    return objective


def main(argv=None) -> None:
    args, splits = arguments_and_splits(argv, __doc__.split("\n\n")[0])
    device = resolve_device(args.device)
    data = DeviceData.from_splits(splits, device)
    options = RunOptions(device=device, channels_last=True)
    study = create_study(args, STUDY_NAME)
    study.optimize(make_objective(data, splits.input_shape, splits.out_dim, options, args.seed),
                   n_trials=100_000, timeout=args.timeout)


if __name__ == "__main__":
    main()
