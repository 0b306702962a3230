"""`anncnn-tune compare`, its second job: judge one dataset's studies together.

What they share and where they differ (data, splits, budget: the fairness rule), who leads on
validation, the verdict from the test split (verdict.dataset_verdict), the accuracy-versus-cost
frontier over all their trials, and the classical reference against the networks' test scores.
Plain dicts in, plain dicts out; `render` words them.
"""

from __future__ import annotations

import json

from anncnn_tune.results import cost as C
from anncnn_tune.results.verdict import FRACTION_METRICS, dataset_verdict
from anncnn_tune.service.records import FAIR_KEYS
from anncnn_tune.training.families import side_order

# Search budgets are comparable when the larger is at most this many times the smaller, both in
# finished trials (complete + pruned) and in epochs trained over all trials (the compute spent,
# in the unit the two families share; seconds would charge the CNN for being slower per epoch),
# or when they differ by less than one trial's worth (one trial, or one trial's epoch budget): with
# the same settings a pruner's decisions alone make the epochs spent differ by that much.
BUDGET_TOLERANCE = 1.5
BUDGET_KEYS = ("finished_trials", "epochs_spent")


def dataset_entry(dataset: str, rows: list[dict]) -> dict:
    """Rows of one dataset, the settings they share, those they do not, and the winner."""
    rows = sorted(rows, key=lambda r: (side_order(r["model"]), r["study"]))
    shared, differs = {}, {}
    for key in FAIR_KEYS:
        values = {r["study"]: r[key] for r in rows}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) == 1:
            shared[key] = rows[0][key]
        else:
            differs[key] = values
    if len(rows) >= 2:
        one_trial = {"finished_trials": 1, "epochs_spent": max(r["epochs"] or 0 for r in rows)}
        for key in BUDGET_KEYS:
            values = {r["study"]: r[key] for r in rows}
            low, high = min(values.values()), max(values.values())
            if high > BUDGET_TOLERANCE * max(low, 1) and high - low > one_trial[key]:
                differs[key] = values
    scored = [r for r in rows if r["best_value"] is not None]
    winner = []
    if len(scored) >= 2 and "metric" not in differs:
        pick = max if scored[0]["direction"] == "maximize" else min
        top = pick(r["best_value"] for r in scored)
        winner = [r["study"] for r in scored if r["best_value"] == top]
        for r in rows:
            r["winner"] = r["study"] in winner
    models = sorted({r["model"] for r in rows})
    return {"dataset": dataset, "families": models, "fair": not differs, "shared": shared, "differs": differs,
            "winner": winner, "verdict": dataset_verdict(rows, not differs), "frontier": _frontier(rows),
            "classical": _classical(rows), "studies": rows}


def _classical(rows: list[dict]) -> dict | None:
    """The dataset's classical reference (the most recently fitted over its studies) against the
    networks' test scores: {"reference", "beaten_by": [studies whose mean test score is better]}."""
    fitted = [r["classical"] for r in rows if r.get("classical")]
    if not fitted:
        return None
    ref = max(fitted, key=lambda e: e.get("fitted_at", ""))
    better = [r["study"] for r in rows if r["test_value"] is not None and r["test_metric"] == ref["metric"]
              and (r["test_value"] > ref["test"] if r["direction"] == "maximize" else r["test_value"] < ref["test"])]
    tested = [r["study"] for r in rows if r["test_value"] is not None]
    return {"reference": ref, "beaten_by": better, "tested": tested}


def _frontier(rows: list[dict]) -> dict:
    """The accuracy-versus-parameters Pareto front over every complete trial of the dataset's studies,
    and the cheapest trial within cost.NEAR_BEST_POINTS of the best (validation values)."""
    points = [p for r in rows for p in r.pop("trial_points", None) or []]
    if not points or len({r["metric"] for r in rows}) != 1:
        return {"points": points, "front": [], "cheapest": None}
    maximize = rows[0]["direction"] == "maximize"
    fraction = rows[0]["metric"].removeprefix("val_") in FRACTION_METRICS
    return {"points": points, "front": C.pareto_front(points, maximize),
            "cheapest": C.cheapest_near_best(points, maximize, fraction), "cost": "parameters",
            "tolerance": f"{C.NEAR_BEST_POINTS} {'points' if fraction else '%'}"}
