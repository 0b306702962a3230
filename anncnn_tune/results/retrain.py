"""`anncnn-tune retrain RUN.yaml`: train a run file's configuration on train+validation, score test once.

The same `fit()` as the search, with fixed params, on train+validation (no pruning, no early
stopping: there is no validation split left to watch) for the epochs the run file records.
Each seed's model sees the test split exactly once. Optional K-fold cross-validation reuses
train+validation only, so the test split stays untouched by anything but the final scoring.

This module is the order of the steps; each step has a module of its own: refit (one training),
scoring, crossval, weights (PyTorch and ONNX files, and preprocess.json: the raw input's
preprocessing, which `anncnn-tune predict` applies), report (figures and report.md), recording
(the test metrics on the study).

Order matters for "bad input leaves everything as it was": every check (run file, device,
storage, data fingerprint, output directory) happens before training, and the storage is
written last, only after every file exists and the ONNX check passed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.data.base import Splits, TargetScaling
from anncnn_tune.data.source import check_unchanged
from anncnn_tune.errors import UserError
from anncnn_tune.results import report
from anncnn_tune.results import threshold as decision_threshold
from anncnn_tune.results.cost import measure as measure_cost
from anncnn_tune.results.crossval import cross_validate
from anncnn_tune.results.export import Run, load_run, to_yaml
from anncnn_tune.results.recording import (
    RecordTarget,
    check_clean_test,
    record,
    record_target,
    trial_history,
    warn_rescoring,
)
from anncnn_tune.results.refit import train_once
from anncnn_tune.results.scoring import correctness, predicted, score, summarize
from anncnn_tune.results.weights import ONNX_TOLERANCE, export_onnx, onnx_feeds, save_pipeline, save_weights
from anncnn_tune.search.names import path_component
from anncnn_tune.training import devices, models
from anncnn_tune.training.fit import DeviceData, RunOptions, predict

FILES = {"run": "run.yaml", "metrics": "metrics.json", "report": "report.md", "weights": "model.pt",
         "onnx": "model.onnx", "preprocess": "preprocess.json", "curves": "learning_curves.png", "confusion": "confusion_matrix.png",
         "predictions": "test_predictions.npy", "roc_pr": "roc_pr.png", "fit": "predicted_vs_actual.png"}


@dataclass
class RetrainRequest:
    run_file: str
    out: str | None = None  # None: runs/<study>-trial<N>
    seeds: int = 1
    cv: int = 0  # K-fold cross-validation on train+validation; 0: none
    device: str = "auto"
    data_dir: str | None = None
    storage: str | None = None  # where to record the test metrics; None: $ANNCNN_TUNE_STORAGE, else the source's
    record: bool = True
    force: bool = False  # overwrite a non-empty --out (a second test scoring: warned about)


@dataclass
class RetrainResult:
    """What a retrain measured and wrote; `as_dict()` is the content of metrics.json."""

    run: dict  # the run file's content
    run_file: str
    device: str
    epochs: int
    n_train: int
    n_test: int
    n_params: int
    validation: dict  # {"metric", "value"}: the trial's validation score in the search
    test: dict  # {"metric", "mean", "std", "seeds", "summary", "per_seed", and per_class/confusion_matrix}
    cv: dict | None  # {"k", "folds", "summary"}
    onnx: dict  # {"max_abs_diff", "tolerance", "passed"}
    files: dict[str, str]  # name -> path of every file written
    retrained_at: str
    cost: dict | None = None  # results/cost.measure: params, FLOPs per sample, training seconds, ONNX latency
    decision: dict | None = None  # binary: the threshold chosen on validation (results/threshold.py)
    recorded: bool = False  # the test metrics were written to the source study

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "recorded"}


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}; choose another directory") from None


def retrain(request: RetrainRequest, log=print) -> RetrainResult:
    """Check, train every seed (and CV folds), write the files, then record the test metrics."""
    inputs = _check_inputs(request, log)
    run, splits, device = inputs.run, inputs.splits, inputs.device
    options = RunOptions(device=device)
    data = DeviceData.from_splits(splits, device, merge_val=True)
    seeds = _train_seeds(run, splits, data, request.seeds, options, log)
    cv = cross_validate(run, splits, request.cv, device, options, log) if request.cv else None
    result = _write_outputs(request, inputs, data, seeds, cv)
    if inputs.target is not None:
        record(inputs.target, result.as_dict(), inputs.out,
               None if seeds.correct[0] is None else np.stack(seeds.correct))
    result.recorded = inputs.target is not None
    return result


@dataclass
class _Inputs:
    """What the checks of a retrain produced: the run file, the device, the data, where to record, where to write."""

    run: Run
    device: torch.device
    splits: Splits  # with the run file's target scaling
    target: RecordTarget | None  # the study to record the test metrics on; None: none
    out: Path


def _check_inputs(request: RetrainRequest, log) -> _Inputs:
    """Every check (run file, options, device, data fingerprint, storage, output directory), in one place.

    They come before any training and before any file is written, so that bad input costs nothing and
    leaves everything as it was; the only thing done here is making (and probing) the output directory.
    """
    run = load_run(request.run_file)
    if request.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {request.seeds}")
    if request.cv == 1 or request.cv < 0:
        raise UserError(f"--cv needs at least 2 folds (or 0 for none), got {request.cv}")
    device = devices.resolve(request.device)
    if run.data_source is not None:  # checked before decoding, so a changed folder adds nothing to the cache
        check_unchanged(run.data_source, run.fingerprint)
    splits = load_dataset(run.data_source or run.dataset, data_dir=request.data_dir, seed=run.split_seed,
                          subset=run.subset)
    if splits.fingerprint != run.fingerprint:
        raise UserError(f"{run.path}: the {run.dataset} files here (fingerprint {splits.fingerprint[:12]}) are not "
                        f"the ones the study used ({run.fingerprint[:12]}); use the original files (--data-dir)")
    # The target scaling the trials trained with, as the run file recorded it; a run file from a
    # study made before targets were scaled has none: identity, so it retrains as its trials did.
    splits.target_scaling = TargetScaling.from_dict(run.target_scaling)
    target = record_target(run, request.storage, request.record)
    # The default folder's name comes from the run file's content: one sanitized component under runs/.
    out = Path(request.out or Path("runs") / path_component(run.label))
    overwriting = check_clean_test(out, request.force)
    _prepare_out(out)
    warn_rescoring(target, overwriting, log)
    return _Inputs(run, device, splits, target, out)


@dataclass
class _Seeds:
    """What training every seed left: the first seed's model and outputs, and every seed's scores."""

    model: torch.nn.Module  # the first seed's: the one saved, exported and detailed
    details: dict  # the first seed's per-class scores / confusion matrix (scoring.score)
    first_outputs: np.ndarray  # the first seed's test outputs, (n_test, outputs)
    per_seed: list[dict]
    histories: list
    predictions: list  # every seed's test predictions, by test index
    correct: list  # every seed's per-sample correctness (None for regression)
    decision: dict | None = None  # binary: the threshold chosen on validation (results/threshold.py)


def _train_seeds(run: Run, splits: Splits, data: DeviceData, n_seeds: int, options: RunOptions, log) -> _Seeds:
    """Train one model per seed on train+validation and score each on the test split, once.

    A step of its own because it is the long part, and because its only output is what the later
    steps need: they write files and never train.
    """
    device = options.device
    x_test = torch.from_numpy(np.ascontiguousarray(splits.x_test)).to(device)
    y_test = torch.from_numpy(np.ascontiguousarray(splits.y_test)).to(device)
    key = run.metric.removeprefix("val_")
    # Chosen before any test output exists, on validation outputs of a model that never saw them.
    decision = decision_threshold.choose(run, splits, options, log) if splits.task == "binary" else None
    cut = decision["threshold"] if decision else 0.5
    per_seed, seed_histories, kept, predictions, correct = [], [], None, [], []
    for k in range(n_seeds):
        seed = run.seed + k
        model, result = train_once(run, splits, data, seed, options, log, f"seed {seed}: ")
        outputs = predict(model, data, x_test, options)
        if kept is None:
            first_outputs = outputs.float().cpu().numpy().reshape(len(splits.y_test), -1)
        scalars, details = score(splits.task, outputs, y_test, splits.classes, cut)
        predictions.append(predicted(splits.task, outputs, cut))
        correct.append(correctness(splits.task, predictions[-1], splits.y_test))
        per_seed.append({"seed": seed, "train_seconds": round(result.train_seconds, 3), **scalars})
        seed_histories.append(result.history)
        log(f"seed {seed}: test {key} {scalars[key]:.4f} "
            f"({run.epochs} epochs on {len(data.y_train)} train+val samples, {result.train_seconds:.1f}s)")
        if kept is None:
            kept = (model, details)  # the first seed's model is the one saved, exported and detailed
    model, details = kept
    return _Seeds(model, details, first_outputs, per_seed, seed_histories, predictions, correct, decision)


def _write_outputs(request: RetrainRequest, inputs: _Inputs, data: DeviceData, seeds: _Seeds,
                   cv: dict | None) -> RetrainResult:
    """Write every file of the retrain (run file, predictions, weights, ONNX, figures, metrics, report).

    The files come before the study is written: a failed ONNX check raises here, after metrics.json and
    the report exist (the PyTorch weights are fine) but before anything is recorded on the study.
    """
    run, splits, out, model, details = inputs.run, inputs.splits, inputs.out, seeds.model, seeds.details
    key = run.metric.removeprefix("val_")
    files = {name: out / FILES[name] for name in ("run", "metrics", "report", "weights", "onnx", "preprocess",
                                                  "curves", "predictions")}
    if "confusion_matrix" in details:
        files["confusion"] = out / FILES["confusion"]
    test_figure = {"binary": "roc_pr", "regression": "fit"}.get(splits.task)
    if test_figure:
        files[test_figure] = out / FILES[test_figure]
    files["run"].write_text(to_yaml(run.as_dict()))
    # Every seed's test predictions, by test index (the split is fixed): what verdict.py pairs.
    np.save(files["predictions"], np.stack(seeds.predictions))
    save_weights(model, run, splits, files["weights"])
    pipeline = save_pipeline(splits, files["preprocess"], seeds.decision)  # raw input -> model -> the user's classes or units
    onnx_diff, onnx_tolerance = export_onnx(model.cpu().eval(), splits, files["onnx"])
    # Retrain trains the trial's best epoch count, so the first seed's time is its time to the best epoch.
    first = np.ascontiguousarray(splits.x_test[:1])
    spent = measure_cost(model, torch.from_numpy(first), files["onnx"], seeds.per_seed[0]["train_seconds"],
                         onnx_feeds(splits, first))

    summary = summarize([{k: v for k, v in row.items() if k not in ("seed", "train_seconds")}
                         for row in seeds.per_seed])
    curves = report.learning_curves(run, trial_history(inputs.target), seeds.histories, cv["histories"] if cv else [])
    report.write_figures(run, curves, summary[key]["mean"], details.get("confusion_matrix"), files["curves"],
                         files.get("confusion"))
    if test_figure:  # the first seed's, like the confusion matrix
        report.write_test_figure(run, splits.task, splits.y_test, seeds.first_outputs[:, 0], files[test_figure])

    result = RetrainResult(
        run=run.as_dict(),
        run_file=str(Path(request.run_file).resolve()),
        device=str(inputs.device),
        epochs=run.epochs,
        n_train=len(data.y_train),
        n_test=len(splits.y_test),
        n_params=models.count_params(model),
        validation={"metric": run.metric, "value": run.source.get("value")},
        test={"metric": key, "mean": summary[key]["mean"], "std": summary[key]["std"], "seeds": request.seeds,
              "summary": summary, "per_seed": seeds.per_seed, **details},
        cv={k: v for k, v in cv.items() if k != "histories"} if cv else None,
        onnx={"max_abs_diff": onnx_diff, "tolerance": onnx_tolerance, "relative_tolerance": ONNX_TOLERANCE,
              "passed": onnx_diff <= onnx_tolerance},
        files={name: str(path) for name, path in files.items()},
        retrained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        cost=spent,
        decision=seeds.decision,
    )
    metrics = result.as_dict()
    files["metrics"].write_text(json.dumps(metrics, indent=2))
    files["report"].write_text(report.markdown_report(metrics, run, pipeline))
    if onnx_diff > onnx_tolerance:
        raise UserError(f"the ONNX export differs from PyTorch by {onnx_diff:.3g} (> {onnx_tolerance:.3g}, "
                        f"{ONNX_TOLERANCE:g} of the outputs' scale); the PyTorch weights in {out} are fine, but do "
                        f"not deploy {files['onnx']}")
    return result


__all__ = ["FILES", "RetrainRequest", "RetrainResult", "retrain"]
