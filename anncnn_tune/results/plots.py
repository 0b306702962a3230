"""PNG figures for the leaderboard and the retrain report.

Figures are built on `matplotlib.figure.Figure` directly, not pyplot (see service/figures.py,
which holds the basics and the learning curves the workers draw too). Each function takes plain data (history rows, a matrix, leaderboard rows) or a loaded study, so
compare and retrain can both use them; `save_png` / `png_base64` turn a figure into a file or an
embeddable string.
"""

from __future__ import annotations

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

# The figure basics and the learning curves live in service (the workers draw a trial's curve too);
# re-exported so that the results layer has one module of figures.
from anncnn_tune.service.figures import (
    COLORS,
    DPI,
    empty_panel,
    family_color,
    learning_curves,
    png_base64,
    png_bytes,
    save_png,
)
from anncnn_tune.service.records import TrialRecord

__all__ = [
    "COLORS",
    "DPI",
    "confusion_matrix",
    "cost_frontier",
    "leaderboard_bars",
    "learning_curves",
    "optimization_history",
    "param_importances",
    "png_base64",
    "png_bytes",
    "regression_fit",
    "roc_pr",
    "save_png",
]

# -- confusion matrix ------------------------------------------------------------------------------


def confusion_matrix(matrix: list[list[int]], classes: list[str], *, title: str = "") -> Figure:
    """Counts with row-normalised shading, so rare classes are as readable as common ones."""
    n = len(classes)
    size = max(4.5, 0.45 * n + 2.5)
    fig = Figure(figsize=(size, size * 0.9))
    ax = fig.subplots()
    totals = [max(1, sum(row)) for row in matrix]
    shade = [[v / totals[i] for v in row] for i, row in enumerate(matrix)]
    image = ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    labels = [c if len(c) <= 12 else c[:11] + "…" for c in classes]
    ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right" if
                  max(map(len, labels)) > 2 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value:
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                            color="white" if shade[i][j] > 0.6 else "black")
    ax.set_title(title or "confusion matrix (test split)")
    fig.tight_layout()
    return fig


# -- leaderboard -----------------------------------------------------------------------------------


def leaderboard_bars(datasets: list[dict]) -> Figure:
    """Per dataset: the best ANN and CNN trial, each family's baseline trial, and test scores.

    datasets: compare's leaderboard entries ({"dataset", "studies": [rows]}). One panel per
    dataset, because metrics differ between datasets (accuracy here, MSE there).
    """
    n = max(1, len(datasets))
    fig = Figure(figsize=(max(5.0, 4.2 * n), 3.8))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, entry in zip(axes, datasets):
        rows = entry["studies"]
        labels, values, colors, tests = [], [], [], []
        for row in rows:
            family = row["model"]
            labels.append(f"{family.upper()}\ntuned")
            values.append(row["best_value"])
            colors.append(family_color(family))
            tests.append(row["test_value"])
            if row.get("baseline_value") is not None:
                labels.append(f"{family.upper()}\nbaseline")
                values.append(row["baseline_value"])
                colors.append(COLORS["reference"])
                tests.append(None)
        present = [v for v in values + tests if v is not None]
        if not present:
            empty_panel(fig, ax, f"{entry['dataset']}: no complete trial yet")
            continue
        x = list(range(len(values)))
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(x, heights, color=colors, width=0.65)
        for bar, value in zip(bars, values):
            if value is not None:  # inside the bar's top, so a test marker above it hides nothing
                ax.annotate(f"{value:.4f}", (bar.get_x() + bar.get_width() / 2, value), ha="center",
                            va="top", fontsize=8, color="white", xytext=(0, -3), textcoords="offset points")
        tested = [(xi, t) for xi, t in zip(x, tests) if t is not None]
        if tested:
            # Beside the bar's top edge rather than on it, so the bar's own label stays readable.
            ax.scatter([xi + 0.2 for xi, _ in tested], [t for _, t in tested], marker="D", color=COLORS["test"],
                       zorder=3, label="test (retrained)")
            for xi, t in tested:
                ax.annotate(f"test {t:.4f}", (xi + 0.2, t), ha="left", va="bottom", fontsize=8, xytext=(4, 2),
                            textcoords="offset points")
            ax.legend(fontsize=8, loc="lower right")
        metric = rows[0]["metric"] if rows else "value"
        low, high = min(present), max(present)
        if all(r["direction"] == "maximize" for r in rows) and low > 0.5:
            # Accuracies crowd near 1: start the axis below the lowest bar so differences show.
            # Said on the axis, so nobody reads bar heights as ratios.
            floor = max(0.0, low - (high - low) - 0.05)
            ax.set_ylim(floor, min(1.0, high + 0.02) + 0.01)
            metric = f"{metric} (axis from {floor:.2f}, not 0)"
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        # The verdict comes from the test split (the leaderboard's verdict line), never from these bars.
        lead = ", ".join(entry.get("winner") or []) or "none"
        ax.set_title(f"{entry['dataset']} (best validation: {lead})", fontsize=10)
    fig.suptitle("best validation score: tuned vs baseline, ANN vs CNN")
    fig.tight_layout()
    return fig


# -- one study -------------------------------------------------------------------------------------


def optimization_history(study) -> Figure:
    """Each finished trial's value, the best so far, and the baseline trials marked.

    Drawn here rather than with optuna.visualization.matplotlib so pruned trials (at their last
    reported value) and the baseline trials are visible, and no pyplot state is involved.
    """
    from optuna.trial import TrialState

    maximize = study.direction.name == "MAXIMIZE"
    metric = (study.metric_names or ["value"])[0]
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)) if t.intermediate_values]
    if not complete and not pruned:
        empty_panel(fig, ax, f"{study.study_name}: no finished trial yet")
        return fig
    if pruned:
        ax.scatter([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
                   marker="x", color="#BBBBBB", label="pruned (last reported)")
    refs = [t for t in complete if TrialRecord.read(t).baseline]
    plain = [t for t in complete if t not in refs]
    if plain:
        ax.scatter([t.number for t in plain], [t.value for t in plain], color="C0", label="complete")
    if refs:
        ax.scatter([t.number for t in refs], [t.value for t in refs], marker="*", s=140, color="C3",
                   label="baseline trial", zorder=3)
    if complete:
        best, xs, ys = None, [], []
        for t in sorted(complete, key=lambda t: t.number):
            if best is None or (t.value > best if maximize else t.value < best):
                best = t.value
            xs.append(t.number)
            ys.append(best)
        last = max(t.number for t in complete + pruned)
        ax.step(xs + [last], ys + [best], where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title(f"{study.study_name}: optimization history")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def param_importances(study, *, top: int = 12) -> Figure:
    """fANOVA importances (optuna.importance); a note instead when there are too few trials."""
    import optuna
    from optuna.trial import TrialState

    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if n_complete < 2:
        empty_panel(fig, ax, f"{study.study_name}: parameter importances need at least 2 complete trials "
                          f"(this study has {n_complete})")
        return fig
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial with the same parameters
        empty_panel(fig, ax, f"{study.study_name}: importances unavailable ({exc})")
        return fig
    if not importances:
        empty_panel(fig, ax, f"{study.study_name}: no searchable parameter varied between trials")
        return fig
    items = list(importances.items())[:top][::-1]
    ax.barh([name for name, _ in items], [value for _, value in items], color="C0")
    for i, (_, value) in enumerate(items):
        ax.annotate(f"{value:.2f}", (value, i), va="center", fontsize=8, xytext=(3, 0), textcoords="offset points")
    ax.set_xlim(0, max(value for _, value in items) * 1.15)  # room for the value labels
    ax.set_xlabel("importance (fANOVA, sums to 1)")
    ax.set_title(f"{study.study_name}: parameter importances ({n_complete} complete trials)")
    fig.tight_layout()
    return fig


def cost_frontier(entry: dict) -> Figure:
    """Validation value against parameters (log scale) for every complete trial of a dataset's studies,
    the Pareto front drawn as a step line and the cheapest trial near the best circled."""
    frontier = entry["frontier"]
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    if not frontier["points"]:
        empty_panel(fig, ax, f"{entry['dataset']}: no complete trial with a parameter count yet")
        return fig
    for family in sorted({p["model"] for p in frontier["points"]}):
        mine = [p for p in frontier["points"] if p["model"] == family]
        ax.scatter([p["cost"] for p in mine], [p["value"] for p in mine], s=18, alpha=0.6,
                   color=family_color(family), label=f"{family.upper()} trials")
    front = frontier["front"]
    if front:
        ax.step([p["cost"] for p in front], [p["value"] for p in front], where="post", color="black", lw=1,
                label="Pareto front")
    cheap = frontier.get("cheapest")
    if cheap:
        ax.scatter([cheap["cost"]], [cheap["value"]], s=120, facecolors="none", edgecolors="red", lw=1.5,
                   label=f"cheapest within {frontier['tolerance']} of best", zorder=3)
    ax.set_xscale("log")
    ax.margins(x=0.08, y=0.08)  # the circled point at an edge stays whole
    # Ticks at 1, 2 and 5 of each decade, written as 20k: readable on a range shorter than a decade too.
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("parameters (log scale)")
    metric = entry["studies"][0]["metric"] if entry["studies"] else "value"
    ax.set_ylabel(f"{metric} (validation)")
    ax.set_title(f"{entry['dataset']}: accuracy vs cost", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# -- the test split's own figures: binary and regression ------------------------------------------


def roc_pr(truth, scores, *, title: str = "") -> Figure:
    """ROC and precision-recall curves of a binary classifier's test scores (logits or probabilities)."""
    from sklearn import metrics as skm

    fig = Figure(figsize=(9.0, 3.8))
    roc_ax, pr_ax = fig.subplots(1, 2)
    if len(set(truth.tolist())) < 2:
        empty_panel(fig, roc_ax, "one class in the test split: no ROC curve")
        empty_panel(fig, pr_ax, "one class in the test split: no PR curve")
        return fig
    fpr, tpr, _ = skm.roc_curve(truth, scores)
    roc_ax.plot(fpr, tpr, color="C0", label=f"AUC {skm.roc_auc_score(truth, scores):.3f}")
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    precision, recall, _ = skm.precision_recall_curve(truth, scores)
    pr_ax.plot(recall, precision, color="C1", label=f"AP {skm.average_precision_score(truth, scores):.3f}")
    base = float(np.mean(truth))
    pr_ax.axhline(base, color="grey", lw=0.8, ls="--", label=f"positive rate {base:.2f}")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    for ax in (roc_ax, pr_ax):
        ax.legend(fontsize=8, loc="lower right" if ax is roc_ax else "lower left")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def regression_fit(truth, predicted, *, title: str = "") -> Figure:
    """Predicted against actual (with the identity line) and the residuals against the prediction."""
    fig = Figure(figsize=(9.0, 3.8))
    fit_ax, res_ax = fig.subplots(1, 2)
    truth, predicted = np.asarray(truth, dtype=float).reshape(-1), np.asarray(predicted, dtype=float).reshape(-1)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    fit_ax.scatter(truth, predicted, s=6, alpha=0.4, color="C0")
    fit_ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="predicted = actual")
    fit_ax.set(xlabel="actual", ylabel="predicted", title="predicted vs actual (test)")
    fit_ax.legend(fontsize=8, loc="upper left")
    residuals = predicted - truth
    res_ax.scatter(predicted, residuals, s=6, alpha=0.4, color="C1")
    res_ax.axhline(0, color="grey", lw=0.8, ls="--")
    res_ax.set(xlabel="predicted", ylabel="residual (predicted - actual)", title="residuals (test)")
    for ax in (fit_ax, res_ax):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
