"""Figure basics and the learning-curve plot, shared by the dashboard's trial artifacts and the reports.

They live in the service layer because both the workers (service/artifacts.py: a finished trial's
`learning-curve.png`) and the results commands (compare's HTML report, retrain's curves) draw a
learning curve, and it must be one plot, not two that drift apart.

Figures are built on `matplotlib.figure.Figure` directly, not pyplot: no global figure state, no
GUI backend to choose (Agg renders the PNG), nothing to close, and nothing happens at import.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

from matplotlib.figure import Figure

from anncnn_tune.training import families

COLORS = {"ann": "#4C72B0", "cnn": "#DD8452", "reference": "#8C8C8C", "test": "#2A2A2A"}  # by side


def family_color(model: str) -> str:
    """A family's colour: its side's (every CNN family shares the CNN colour)."""
    return COLORS.get(families.side(model), "C2")
DPI = 110


def save_png(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    return path


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def png_base64(fig: Figure) -> str:
    return base64.b64encode(png_bytes(fig)).decode("ascii")


def empty_panel(fig: Figure, ax, text: str) -> None:
    """An empty panel that says why it is empty (few trials, no history), instead of failing."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10, color="#555555",
            transform=ax.transAxes)


# -- learning curves -------------------------------------------------------------------------------


def learning_curves(curves: list[dict], metric: str, *, title: str = "", test: float | None = None) -> Figure:
    """Loss (left: training solid, validation dotted) and validation metric (right) per epoch.

    curves: dicts with `label` and `history` (rows of {"epoch", "train_loss", "val_...": ...}, the
    form fit() returns and trials store). Curves without validation columns (retraining on
    train+val) appear only on the left. test: the test score, drawn as a line on the right panel
    so "validation during search" and "test after retraining" sit on one axis.
    """
    fig = Figure(figsize=(10, 3.8))
    loss_ax, metric_ax = fig.subplots(1, 2)
    has_metric = False
    for i, curve in enumerate(curves):
        rows = curve.get("history") or []
        if not rows:
            continue
        epochs = [r["epoch"] for r in rows]
        style = {"label": curve["label"], "color": curve.get("color") or f"C{i}",
                 "linestyle": curve.get("linestyle", "-"), "marker": "o" if len(rows) <= 30 else None,
                 "markersize": 3, "alpha": curve.get("alpha", 1.0)}
        loss_ax.plot(epochs, [r["train_loss"] for r in rows], **style)
        if "val_loss" in rows[0]:  # a gap between the two is what overfitting looks like
            loss_ax.plot(epochs, [r["val_loss"] for r in rows],
                         **{**style, "linestyle": ":", "label": f"{curve['label']}, validation"})
        if metric in rows[0]:
            metric_ax.plot(epochs, [r[metric] for r in rows], **style)
            has_metric = True
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss: training (solid), validation (dotted)")
    if loss_ax.lines:
        loss_ax.legend(fontsize=8)
    if test is not None and math.isfinite(test):
        metric_ax.axhline(test, color=COLORS["test"], linestyle="--", linewidth=1,
                          label=f"test {metric.removeprefix('val_')} {test:.4f}")
        has_metric = True
    if has_metric:
        metric_ax.set_xlabel("epoch")
        metric_ax.set_ylabel(metric)
        metric_ax.set_title(f"{metric} per epoch (validation or held-out fold)")
        metric_ax.legend(fontsize=8)
    else:
        empty_panel(fig, metric_ax, "no validation split in these runs")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
