"""Figures of what the API returns, for notebooks: each function takes an API result and returns a
matplotlib Figure (Jupyter shows it inline; `fig.savefig("x.png")` writes it).

    import anncnn_tune as at
    from anncnn_tune import plots

    ann = at.optimize("digits-ann", n_trials=10)
    plots.history(ann)                      # each trial's value, the best so far, the baseline trials
    plots.learning_curves(ann, cnn)         # each study's best trial, epoch by epoch
    board = at.compare()
    plots.leaderboard(board)                # tuned vs baseline per dataset, test scores marked
    final = at.retrain("best.yaml")
    plots.confusion(final)                  # the test split's confusion matrix (classification)

These are the figures `anncnn-tune compare --format html` and `retrain` draw (results/plots.py); this
module only finds their data in the returned objects, so a notebook needs no internals. Importing it
loads matplotlib only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    import pandas
    from matplotlib.figure import Figure

    from anncnn_tune.results.retrain import RetrainResult
    from anncnn_tune.search.launcher import OptimizeResult

__all__ = ["confusion", "cost", "history", "importances", "leaderboard", "learning_curves"]


def _shown(fig: Figure) -> Figure:
    """The figure, with IPython told how to show a bare Figure (no pyplot here, so the inline
    backend's formatter is not registered): a PNG at the figure's own size and DPI."""
    try:
        from IPython import get_ipython
    except ImportError:
        return fig
    shell = get_ipython()
    if shell is not None:
        from matplotlib.figure import Figure as FigureType

        from anncnn_tune.results.plots import png_bytes

        shell.display_formatter.formatters["image/png"].for_type(FigureType, png_bytes)
    return fig


def _study(result: OptimizeResult | optuna.Study) -> optuna.Study:
    study = getattr(result, "study", result)  # an OptimizeResult holds the study; a Study is one
    if study is None or not hasattr(study, "get_trials"):
        raise TypeError(f"expected what anncnn_tune.optimize returns (or an optuna.Study), got {type(result).__name__}")
    return study


def _board(board: pandas.DataFrame | dict) -> dict:
    found = board.attrs.get("leaderboard") if hasattr(board, "attrs") else board
    if not isinstance(found, dict) or "datasets" not in found:
        raise TypeError("expected the DataFrame anncnn_tune.compare() returns")
    return found


def history(result: OptimizeResult | optuna.Study) -> Figure:
    """A study's optimization history: each finished trial's value (pruned ones at their last report),
    the best so far, and its baseline trials starred."""
    from anncnn_tune.results.plots import optimization_history

    return _shown(optimization_history(_study(result)))


def importances(result: OptimizeResult | optuna.Study, *, top: int = 12) -> Figure:
    """fANOVA parameter importances of a study (a note in the figure with fewer than 2 complete trials)."""
    from anncnn_tune.results.plots import param_importances

    return _shown(param_importances(_study(result), top=top))


def learning_curves(*results: OptimizeResult, metric: str | None = None, title: str = "best trials") -> Figure:
    """Loss and validation metric per epoch of each study's best trial, as the trial recorded them.
    metric: the validation column to draw (default: the first study's metric, e.g. val_accuracy)."""
    from anncnn_tune.results.plots import learning_curves as draw
    from anncnn_tune.service.records import TrialRecord

    curves = []
    for result in results:
        study = _study(result)
        best = getattr(result, "best_trial", None)
        trial = study.trials[best] if best is not None else study.best_trial
        curves.append({"label": f"{study.study_name} trial {trial.number}", "history": TrialRecord.read(trial).history})
    if metric is None:
        metric = (_study(results[0]).metric_names or ["val_loss"])[0] if results else "val_loss"
    return _shown(draw(curves, metric, title=title))


def leaderboard(board: pandas.DataFrame) -> Figure:
    """Per dataset of `at.compare()`'s board: best validation score tuned vs baseline, ANN vs CNN, and
    the retrained test scores. The verdict is the board's `verdict` column, not these bars."""
    from anncnn_tune.results.plots import leaderboard_bars

    return _shown(leaderboard_bars(_board(board)["datasets"]))


def cost(board: pandas.DataFrame, dataset: str | None = None) -> Figure:
    """Validation value against parameters for every complete trial of a dataset (default: the first
    of the board), with its Pareto front."""
    from anncnn_tune.results.plots import cost_frontier

    entries = _board(board)["datasets"]
    chosen = [e for e in entries if dataset is None or e["dataset"] == dataset]
    if not chosen:
        raise ValueError(f"no dataset {dataset!r} in the board (it has {', '.join(e['dataset'] for e in entries)})")
    return _shown(cost_frontier(chosen[0]))


def confusion(final: RetrainResult) -> Figure:
    """The test split's confusion matrix of a retrained classifier (its first seed, as retrain draws it)."""
    from anncnn_tune.results.plots import confusion_matrix

    found = final.test.get("confusion_matrix")
    if found is None:
        raise ValueError("this retrain has no confusion matrix: it is a regression, not a classification")
    matrix, classes = found["matrix"], found["classes"]
    label = (final.run.get("source") or {}).get("study") or final.run.get("model")
    return _shown(confusion_matrix(matrix, classes, title=f"{label}: confusion matrix (test split)"))
