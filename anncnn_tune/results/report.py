"""A retrain's report: its figures (learning curves, confusion matrix) and its Markdown page.

Everything here renders from data it is handed (histories, the metrics dict that metrics.json
holds, the run); nothing opens a storage or trains.
"""

from __future__ import annotations

from pathlib import Path

from anncnn_tune.results import plots
from anncnn_tune.results.export import Run


def learning_curves(run: Run, search_history: list[dict], seed_histories: list[list[dict]],
                    cv_histories: list[list[dict]] = ()) -> list[dict]:
    """The curves of the learning-curve figure: the search trial, every seed, every CV fold."""
    curves = [{"label": f"search trial {run.source.get('trial')} (train / val)", "history": search_history,
               "color": "C0"}]
    # One legend entry per group (matplotlib skips labels starting with "_"), however many seeds or folds.
    seeds_label = f"retrain, {len(seed_histories)} seed(s) (train+val)"
    curves += [{"label": seeds_label if i == 0 else "_seed", "history": h, "color": "C1", "alpha": 0.8}
               for i, h in enumerate(seed_histories)]
    curves += [{"label": f"cv, {len(cv_histories)} folds (held-out fold)" if i == 0 else "_fold", "history": h,
                "color": "C2", "linestyle": ":", "alpha": 0.7} for i, h in enumerate(cv_histories)]
    return curves


def write_figures(run: Run, curves: list[dict], test_value: float, confusion: dict | None, curves_path: Path,
                  confusion_path: Path | None) -> None:
    """The learning curves (with the test score as a line) and, for classifiers, the confusion matrix."""
    plots.save_png(plots.learning_curves(curves, run.metric, title=f"{run.label}: learning curves",
                                         test=test_value), curves_path)
    if confusion is not None and confusion_path is not None:
        plots.save_png(plots.confusion_matrix(confusion["matrix"], confusion["classes"],
                                              title=f"{run.label}: confusion matrix (test, seed {run.seed})"),
                       confusion_path)


def write_test_figure(run: Run, task: str, truth, outputs, path: Path) -> None:
    """ROC and precision-recall curves (binary) or predicted-vs-actual and residuals (regression)."""
    title = f"{run.label}: test split, seed {run.seed}"
    fig = plots.roc_pr(truth, outputs, title=title) if task == "binary" else plots.regression_fit(truth, outputs,
                                                                                                  title=title)
    plots.save_png(fig, path)


def _pm(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def confused_pairs(confusion: dict, top: int = 5) -> list[tuple[str, str, int, float]]:
    """The most confused (true, predicted) class pairs: count and share of the true class's examples."""
    matrix, classes = confusion["matrix"], confusion["classes"]
    pairs = []
    for i, row in enumerate(matrix):
        total = sum(row)
        pairs += [(classes[i], classes[j], n, n / total) for j, n in enumerate(row) if j != i and n and total]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))[:top]


def _cost_lines(cost: dict | None) -> list[str]:
    if not cost:
        return []
    latency = cost["latency_s"]
    return ["", "## Cost", "", ("| parameters | FLOPs per sample | training s (to the best epoch) | "
                                "ms/sample batch 1 | ms/sample batch 256 |"), "|---|---|---|---|---|",
            (f"| {cost['n_params']:,} | {cost['flops_per_sample']:,} | {cost['train_seconds']:.1f} | "
             f"{latency['batch_1'] * 1e3:.4f} | {latency['batch_256'] * 1e3:.5f} |"), "",
            "Latency: ONNX Runtime on this CPU, one thread, median of repeated runs after warm-up."]


def _onnx_lines(name: dict, result: dict, pipeline: dict | None) -> list[str]:
    check = (f"max abs difference to PyTorch {result['onnx']['max_abs_diff']:.2e} "
             f"(tolerance {result['onnx']['tolerance']:.0e})")
    if pipeline is None:
        return [f"- `{name['onnx']}`: input the stored values as the loader gives them; {check}"]
    onnx = pipeline["onnx"]
    inputs = onnx.get("inputs") or {"input": onnx.get("input")}  # preprocess.json before the raw-column inputs
    lines = [f"- `{name['onnx']}` ({check}):", *(f"  - input `{key}`: {text}" for key, text in inputs.items()),
             f"  - output: {onnx['output']}"]
    if onnx.get("positions"):
        lines += ["  - the encoded features the graph computes from them, in order:"]
        lines += [f"    {i}. {text}" for i, text in enumerate(onnx["positions"])]
    return lines


def _pipeline_lines(name: dict, pipeline: dict | None) -> list[str]:
    if pipeline is None or "preprocess" not in name:
        return []
    if pipeline["table"] is None and pipeline["image"] is None:
        what = "no input preprocessing could be recorded for this data: `predict` does not take it"
    elif pipeline["table"] is not None:
        what = ("each column's role, imputed value, scaling and one-hot categories as fitted on the training rows; "
                "`anncnn-tune predict RUN_DIR rows.csv` applies them to raw rows")
    else:
        what = ("decoding (mode, size, resampling) and the per-channel mean/std; `anncnn-tune predict RUN_DIR "
                "image-or-folder` applies them")
    return [(f"- `{name['preprocess']}`: from raw input to output: {what}; the class names, the target's "
            "scaling and the decision rule")]


def markdown_report(result: dict, run: Run, pipeline: dict | None = None) -> str:
    """report.md: the metrics.json content (`result`) as a page, with the figures and files linked;
    `pipeline` (preprocess.json) says what the ONNX input is."""
    test, source = result["test"], run.source
    name = {key: Path(path).name for key, path in result["files"].items()}  # links relative to the report
    lines = [f"# Retrain: {run.label}", ""]
    lines += [f"- dataset **{run.dataset}**, family **{run.model}**, {result['n_params']:,} parameters",
              (f"- source: study `{source.get('study')}` trial {source.get('trial')} "
              f"({source.get('baseline') or 'tuned'}), storage `{source.get('storage')}`"),
              (f"- trained {run.epochs} epochs on train+validation ({result['n_train']} samples) on {result['device']}, "
              f"{test['seeds']} seed(s) from {run.seed}; test split ({result['n_test']} samples) scored once per seed"),
              f"- data fingerprint `{run.fingerprint[:16]}…`, split seed {run.split_seed}", ""]
    val = result["validation"]["value"]
    lines += ["## Test metrics", "", "| metric | test (mean ± std) |", "|---|---|"]
    lines += [f"| {metric} | {_pm(entry)} |" for metric, entry in test["summary"].items()]
    if val is not None:
        lines += ["", (f"Best validation {run.metric} during the search: **{val:.4f}**; test {test['metric']}: "
                      f"**{_pm(test)}** (difference {test['mean'] - val:+.4f}).")]
    if result["cv"]:
        lines += ["", f"## {result['cv']['k']}-fold cross-validation on train+validation (held-out folds)", "",
                  "| metric | mean ± std |", "|---|---|"]
        lines += [f"| {metric} | {_pm(entry)} |" for metric, entry in result["cv"]["summary"].items()]
    if "per_class" in test:
        lines += ["", f"## Per class (test, seed {run.seed})", "", "| class | precision | recall | f1 | support |",
                  "|---|---|---|---|---|"]
        for label, row in test["per_class"].items():
            if isinstance(row, dict):
                lines.append(f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1-score']:.4f} | "
                             f"{int(row['support'])} |")
        lines += ["", f"![confusion matrix]({name['confusion']})", "",
                  "Most confused (true → predicted, share of the true class):", ""]
        lines += [f"- {a} → {b}: {n} ({share:.1%})" for a, b, n, share in
                  confused_pairs(test["confusion_matrix"])] or ["- none: every test example right"]
    for key, caption in (("roc_pr", "ROC and precision-recall (test)"), ("fit", "predicted vs actual (test)")):
        if key in name:
            lines += ["", f"## {caption}", "", f"![{caption}]({name[key]})"]
    lines += _cost_lines(result.get("cost"))
    lines += ["", "## Learning curves", "", f"![learning curves]({name['curves']})", "",
              "## Files", "",
              (f"- `{name['weights']}`: `torch.load(path, weights_only=True)` gives the state dict (`model`) and "
              "the run config (`config`, `input_shape`, `out_dim`) that rebuild the model with `models.build`"),
              *_onnx_lines(name, result, pipeline), *_pipeline_lines(name, pipeline),
              f"- `{name['metrics']}`, `{name['run']}`", ""]
    return "\n".join(lines)
