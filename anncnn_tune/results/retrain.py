"""`anncnn-tune retrain RUN.yaml`: train a run file's configuration on train+validation, score test once.

The same `fit()` as the search, with fixed params, on train+validation (no pruning, no early
stopping: there is no validation split left to watch) for the epochs the run file records.
Each seed's model sees the test split exactly once. Optional K-fold cross-validation reuses
train+validation only, so the test split stays untouched by anything but the final scoring.

Order matters for "bad input leaves everything as it was": every check (run file, device,
storage, data fingerprint, output directory) happens before training, and the storage is
written last, only after every file exists and the ONNX check passed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from anncnn_tune.data import load_dataset
from anncnn_tune.errors import UserError
from anncnn_tune.results import plots
from anncnn_tune.results.export import Run, load_run, load_stored_study, to_yaml
from anncnn_tune.service.storage import ENV_VAR, mask
from anncnn_tune.training import devices, models
from anncnn_tune.training import metrics as M
from anncnn_tune.training.fit import DeviceData, RunOptions, fit, predict, seed_everything

ONNX_TOLERANCE = 1e-4  # max abs difference of logits between onnxruntime and PyTorch
PROGRESS_EVERY = 10.0  # seconds between epoch lines while a retrain runs
ONNX_CHECK_ROWS = 2048  # test rows the ONNX check runs (enough to catch a wrong op, quick on CIFAR)
FILES = {"run": "run.yaml", "metrics": "metrics.json", "report": "report.md", "weights": "model.pt",
         "onnx": "model.onnx", "curves": "learning_curves.png", "confusion": "confusion_matrix.png"}


@dataclass
class RetrainRequest:
    run_file: str
    out: str | None = None
    seeds: int = 1
    cv: int = 0
    device: str = "auto"
    data_dir: str | None = None
    storage: str | None = None
    record: bool = True


# -- scoring ---------------------------------------------------------------------------------------


def score(task: str, outputs: torch.Tensor, targets: torch.Tensor, classes) -> tuple[dict, dict]:
    """(scalar metrics, details) of one model on one split.

    Loss and accuracy come from metrics.compute, the very code that scored validation during the
    search, so "validation vs test" compares like with like; scikit-learn adds the rest.
    """
    from sklearn import metrics as skm

    scalars = {k: float(v) for k, v in M.compute(task, outputs, targets).items()}
    truth = targets.cpu().numpy()
    out = outputs.float().cpu().numpy()
    if task == "regression":
        scalars["r2"] = float(skm.r2_score(truth, out.reshape(-1)))
        return scalars, {}
    if task == "binary":
        predicted = (out.reshape(-1) > 0).astype(np.int64)
        truth = truth.astype(np.int64)
        scalars["roc_auc"] = float(skm.roc_auc_score(truth, out.reshape(-1))) if len(set(truth)) == 2 else float("nan")
    else:
        predicted = out.argmax(1)
    labels = list(range(len(classes) if classes else int(max(truth.max(), predicted.max())) + 1))
    names = [str(c) for c in classes] if classes else [str(i) for i in labels]
    p, r, f, _ = skm.precision_recall_fscore_support(truth, predicted, labels=labels, average="macro",
                                                     zero_division=0)
    scalars.update(macro_precision=float(p), macro_recall=float(r), macro_f1=float(f))
    details = {
        "per_class": skm.classification_report(truth, predicted, labels=labels, target_names=names,
                                               output_dict=True, zero_division=0),
        "confusion_matrix": {"classes": names,
                             "matrix": skm.confusion_matrix(truth, predicted, labels=labels).tolist()},
    }
    return scalars, details


def summarize(rows: list[dict]) -> dict:
    """mean and std (sample std, 0 for a single run) of every scalar over seeds or folds."""
    keys = rows[0].keys() if rows else ()
    out = {}
    for key in keys:
        values = np.array([row[key] for row in rows], dtype=float)
        out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    return out


# -- the pieces of a retrain -----------------------------------------------------------------------


def _record_target(request: RetrainRequest, run: Run):
    """(study, trial number) to write the test metrics back to, checked before any training."""
    study_name, trial_number = run.source.get("study"), run.source.get("trial")
    if not request.record or study_name is None or trial_number is None:
        return None
    url = request.storage or os.environ.get(ENV_VAR) or run.source.get("storage")
    if not url or "***" in url:
        raise UserError(f"{run.path}: the source storage URL has its password masked; pass --storage URL "
                        "to record the test metrics on the study, or --no-record")
    study = load_stored_study(url, study_name)
    if not any(t.number == trial_number for t in study.get_trials(deepcopy=False)):
        raise UserError(f"study {study_name!r} in {mask(url)} has no trial {trial_number}; pass the --storage "
                        "the run file was exported from, or --no-record")
    if (study.user_attrs.get("data") or {}).get("fingerprint") != run.fingerprint:
        raise UserError(f"study {study_name!r} in {mask(url)} was run on other data than {run.path} records; "
                        "pass the right --storage, or --no-record")
    return study, int(trial_number)


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror or exc}; choose another directory") from None


def _train_once(run: Run, splits, data: DeviceData, seed: int, options: RunOptions, log=None, label: str = ""):
    seed_everything(seed)  # the same initialisation the trial had, for the first seed
    model = models.build(run.model, run.params, splits.input_shape, splits.out_dim)
    result = fit(model, data, run.params, epochs=run.epochs, metric=None, seed=seed, options=options,
                 on_epoch=_epoch_logger(log, label, run.epochs) if log else None)
    return model, result


def _epoch_logger(log, label: str, epochs: int):
    """An epoch line when PROGRESS_EVERY seconds have passed since the last one: a long retrain (a
    CNN on a CPU) shows it is alive, a short one prints only its result line."""
    started = last = time.perf_counter()

    def on_epoch(row: dict) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY:
            last = now
            log(f"{label}epoch {row['epoch']}/{epochs} train_loss={row['train_loss']:.4f} ({now - started:.0f}s)")
    return on_epoch


def cross_validate(run: Run, splits, k: int, device: torch.device, options: RunOptions, log=None) -> dict:
    """K-fold CV on train+validation: each fold's model is scored on its held-out fold, never on test.

    The normalisation statistics stay the training split's (as in the search); they are a
    per-channel mean and std, so the leak into held-out folds is negligible and keeps every
    fold's inputs identical to what the tuned model saw.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    splitter = (KFold if splits.task == "regression" else StratifiedKFold)(n_splits=k, shuffle=True,
                                                                             random_state=run.seed)
    try:
        folds = list(splitter.split(x, y))
    except ValueError as exc:
        raise UserError(f"--cv {k}: {exc}") from None
    rows, histories = [], []
    for i, (train_index, held_index) in enumerate(folds):
        fold = replace(splits, x_train=x[train_index], y_train=y[train_index], x_val=x[held_index],
                       y_val=y[held_index])
        data = DeviceData.from_splits(fold, device)
        model, result = _train_once(run, fold, data, run.seed, options, log, f"fold {i + 1}/{k}: ")
        scalars, _ = score(splits.task, predict(model, data, data.x_val, options), data.y_val, splits.classes)
        rows.append({"fold": i, **scalars})
        histories.append(result.history)
    return {"k": k, "folds": rows, "summary": summarize([{k_: v for k_, v in r.items() if k_ != "fold"}
                                                          for r in rows]), "histories": histories}


def _trial_history(target) -> list[dict]:
    if target is None:
        return []
    study, number = target
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    return trial.user_attrs.get("history") or []


def _save_weights(model, run: Run, splits, path: Path) -> None:
    """nanoGPT-style: the state dict plus, as plain types, everything that rebuilds the model."""
    torch.save({
        "format": "anncnn-tune-weights/1",
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": run.as_dict(),
        "input_shape": list(splits.input_shape),
        "out_dim": int(splits.out_dim),
        "task": splits.task,
        "kind": splits.kind,
        "classes": list(splits.classes) if splits.classes else None,
        "mean": list(splits.mean) if splits.mean else None,
        "std": list(splits.std) if splits.std else None,
    }, path)


class Deployable(torch.nn.Module):
    """The model plus the input normalisation that fit() does outside it, so the ONNX file takes the
    stored values (raw pixels) and needs no preprocessing code beside it."""

    def __init__(self, model: torch.nn.Module, mean, std):
        super().__init__()
        self.model = model
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean or (0.0,), dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std or (1.0,), dtype=torch.float32).view(shape))
        self.normalise = mean is not None

    def forward(self, x):
        return self.model((x - self.mean) / self.std) if self.normalise else self.model(x)


def export_onnx(model: torch.nn.Module, splits, path: Path) -> float:
    """Write the model as ONNX and return the max abs difference to PyTorch on test inputs."""
    import logging
    import warnings

    import onnx
    import onnxruntime

    wrapped = Deployable(model, splits.mean, splits.std).eval()
    x = torch.from_numpy(np.ascontiguousarray(splits.x_test[:ONNX_CHECK_ROWS])).float()
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # the exporter's notes (e.g. "torchvision is not installed") are noise here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (x[:2],), str(path), input_names=["input"], output_names=["logits"],
                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True,
                              external_data=False, verbose=False)
    finally:
        exporter_log.setLevel(level)
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.inference_mode():
        expected = wrapped(x).numpy()
    return float(np.abs(got - expected).max())


# -- the whole run ---------------------------------------------------------------------------------


def retrain(request: RetrainRequest, log=print) -> dict:
    run = load_run(request.run_file)
    if request.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {request.seeds}")
    if request.cv == 1 or request.cv < 0:
        raise UserError(f"--cv needs at least 2 folds (or 0 for none), got {request.cv}")
    device = devices.resolve(request.device)
    splits = load_dataset(run.data_source or run.dataset, data_dir=request.data_dir, seed=run.split_seed,
                          subset=run.subset)
    if splits.fingerprint != run.fingerprint:
        raise UserError(f"{run.path}: the {run.dataset} files here (fingerprint {splits.fingerprint[:12]}) are not "
                        f"the ones the study used ({run.fingerprint[:12]}); use the original files (--data-dir)")
    target = _record_target(request, run)
    out = Path(request.out or Path("runs") / run.label)
    _prepare_out(out)
    options = RunOptions(device=device)

    data = DeviceData.from_splits(splits, device, merge_val=True)
    x_test = torch.from_numpy(np.ascontiguousarray(splits.x_test)).to(device)
    y_test = torch.from_numpy(np.ascontiguousarray(splits.y_test)).to(device)
    per_seed, seed_histories, kept = [], [], None
    for k in range(request.seeds):
        seed = run.seed + k
        model, result = _train_once(run, splits, data, seed, options, log, f"seed {seed}: ")
        scalars, details = score(splits.task, predict(model, data, x_test, options), y_test, splits.classes)
        per_seed.append({"seed": seed, "train_seconds": round(result.train_seconds, 3), **scalars})
        seed_histories.append((seed, result.history))
        log(f"seed {seed}: test {run.metric.removeprefix('val_')} {scalars[run.metric.removeprefix('val_')]:.4f} "
            f"({run.epochs} epochs on {len(data.y_train)} train+val samples, {result.train_seconds:.1f}s)")
        if kept is None:
            kept = (model, details)  # the first seed's model is the one saved, exported and detailed
    model, details = kept
    cv = cross_validate(run, splits, request.cv, device, options, log) if request.cv else None

    files = {"run": out / FILES["run"], "metrics": out / FILES["metrics"], "report": out / FILES["report"],
             "weights": out / FILES["weights"], "onnx": out / FILES["onnx"], "curves": out / FILES["curves"]}
    files["run"].write_text(to_yaml(run.as_dict()))
    _save_weights(model, run, splits, files["weights"])
    onnx_diff = export_onnx(model.cpu().eval(), splits, files["onnx"])

    key = run.metric.removeprefix("val_")
    summary = summarize([{k: v for k, v in row.items() if k not in ("seed", "train_seconds")} for row in per_seed])
    curves = [{"label": f"search trial {run.source.get('trial')} (train / val)", "history": _trial_history(target),
               "color": "C0"}]
    # One legend entry per group (matplotlib skips labels starting with "_"), however many seeds or folds.
    seeds_label = f"retrain, {len(seed_histories)} seed(s) (train+val)"
    curves += [{"label": seeds_label if i == 0 else "_seed", "history": h, "color": "C1", "alpha": 0.8}
               for i, (_, h) in enumerate(seed_histories)]
    if cv:
        curves += [{"label": f"cv, {cv['k']} folds (held-out fold)" if i == 0 else "_fold", "history": h,
                    "color": "C2", "linestyle": ":", "alpha": 0.7} for i, h in enumerate(cv["histories"])]
    plots.save_png(plots.learning_curves(curves, run.metric, title=f"{run.label}: learning curves",
                                         test=summary[key]["mean"]), files["curves"])
    if "confusion_matrix" in details:
        files["confusion"] = out / FILES["confusion"]
        cm = details["confusion_matrix"]
        plots.save_png(plots.confusion_matrix(cm["matrix"], cm["classes"],
                                              title=f"{run.label}: confusion matrix (test, seed {run.seed})"),
                       files["confusion"])

    result = {
        "run": run.as_dict(),
        "run_file": str(Path(request.run_file).resolve()),
        "device": str(device),
        "epochs": run.epochs,
        "n_train": len(data.y_train),
        "n_test": len(splits.y_test),
        "n_params": models.count_params(model),
        "validation": {"metric": run.metric, "value": run.source.get("value")},
        "test": {"metric": key, "mean": summary[key]["mean"], "std": summary[key]["std"], "seeds": request.seeds,
                 "summary": summary, "per_seed": per_seed, **details},
        "cv": {k: v for k, v in cv.items() if k != "histories"} if cv else None,
        "onnx": {"max_abs_diff": onnx_diff, "tolerance": ONNX_TOLERANCE, "passed": onnx_diff <= ONNX_TOLERANCE},
        "files": {name: str(path) for name, path in files.items()},
        "retrained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    files["metrics"].write_text(json.dumps(result, indent=2))
    files["report"].write_text(markdown_report(result, run))
    if onnx_diff > ONNX_TOLERANCE:
        raise UserError(f"the ONNX export differs from PyTorch by {onnx_diff:.3g} (> {ONNX_TOLERANCE}); the PyTorch "
                        f"weights in {out} are fine, but do not deploy {files['onnx']}")
    if target is not None:
        _record(target, result, out)
    result["recorded"] = target is not None
    return result


def _record(target, result: dict, out: Path) -> None:
    """The test metrics on the study (keyed by trial number), where compare finds them."""
    study, number = target
    recorded = dict(study.user_attrs.get("test_metrics") or {})
    test = result["test"]
    recorded[str(number)] = {
        "metric": test["metric"], "mean": test["mean"], "std": test["std"], "seeds": test["seeds"],
        "epochs": result["epochs"], "summary": test["summary"],
        "cv": result["cv"]["summary"] if result["cv"] else None,
        "onnx_max_abs_diff": result["onnx"]["max_abs_diff"], "out": str(out.resolve()),
        "retrained_at": result["retrained_at"],
    }
    study.set_user_attr("test_metrics", recorded)


# -- the Markdown report ---------------------------------------------------------------------------


def _pm(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def markdown_report(result: dict, run: Run) -> str:
    test, source = result["test"], run.source
    lines = [f"# Retrain: {run.label}", ""]
    lines += [f"- dataset **{run.dataset}**, family **{run.model}**, {result['n_params']:,} parameters",
              (f"- source: study `{source.get('study')}` trial {source.get('trial')} "
              f"({source.get('baseline') or 'tuned'}), storage `{source.get('storage')}`"),
              (f"- trained {run.epochs} epochs on train+validation ({result['n_train']} samples) on {result['device']}, "
              f"{test['seeds']} seed(s) from {run.seed}; test split ({result['n_test']} samples) scored once per seed"),
              f"- data fingerprint `{run.fingerprint[:16]}…`, split seed {run.split_seed}", ""]
    val = result["validation"]["value"]
    lines += ["## Test metrics", "", "| metric | test (mean ± std) |", "|---|---|"]
    lines += [f"| {name} | {_pm(entry)} |" for name, entry in test["summary"].items()]
    if val is not None:
        lines += ["", (f"Best validation {run.metric} during the search: **{val:.4f}**; test {test['metric']}: "
                      f"**{_pm(test)}** (difference {test['mean'] - val:+.4f}).")]
    if result["cv"]:
        lines += ["", f"## {result['cv']['k']}-fold cross-validation on train+validation (held-out folds)", "",
                  "| metric | mean ± std |", "|---|---|"]
        lines += [f"| {name} | {_pm(entry)} |" for name, entry in result["cv"]["summary"].items()]
    if "per_class" in test:
        lines += ["", f"## Per class (test, seed {run.seed})", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        for name, row in test["per_class"].items():
            if isinstance(row, dict):
                lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                             f"{int(row['support'])} |")
        lines += ["", f"![confusion matrix]({FILES['confusion']})"]
    lines += ["", "## Learning curves", "", f"![learning curves]({FILES['curves']})", "",
              "## Files", "",
              (f"- `{FILES['weights']}`: `torch.load(path, weights_only=True)` gives the state dict (`model`) and "
              "the run config (`config`, `input_shape`, `out_dim`) that rebuild the model with `models.build`"),
              (f"- `{FILES['onnx']}`: input raw stored values (pixels before normalisation; tabular features as the "
              f"loader scales them), output logits; max abs difference to PyTorch "
              f"{result['onnx']['max_abs_diff']:.2e} (tolerance {result['onnx']['tolerance']:.0e})"),
              f"- `{FILES['metrics']}`, `{FILES['run']}`", ""]
    return "\n".join(lines)


def load_weights(path: str):
    """Rebuild the model saved by retrain (also what the tests use to read the file back)."""
    saved = torch.load(path, weights_only=True, map_location="cpu")
    config = saved["config"]
    model = models.build(config["model"], config["params"], tuple(saved["input_shape"]), saved["out_dim"])
    model.load_state_dict(saved["model"])
    return model.eval(), saved


__all__ = ["RetrainRequest", "export_onnx", "load_weights", "retrain", "score", "summarize"]
