"""`anncnn-tune compare`, its second job: judge one dataset's studies together.

What they share and where they differ (data, splits, budget: the fairness rule), who leads on
validation, the verdict from the test split (verdict.dataset_verdict), the accuracy-versus-cost
frontier over all their trials, and the classical reference against the networks' test scores.
Plain dicts in, plain dicts out; `render` words them.
"""

from __future__ import annotations

import json

from anncnn_tune.results import cost as C
from anncnn_tune.results.verdict import FRACTION_METRICS, dataset_verdict, verdict
from anncnn_tune.service.records import FAIR_KEYS, decode_correct
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
    classical = _classical(rows)  # before the verdict: it drops the per-example correctness it reads
    return {"dataset": dataset, "families": models, "fair": not differs, "shared": shared, "differs": differs,
            "winner": winner, "verdict": dataset_verdict(rows, not differs), "frontier": _frontier(rows),
            "classical": classical, "studies": rows}


def _classical(rows: list[dict]) -> dict | None:
    """The dataset's classical reference against each retrained net, on the test split.

    Each net is compared with the reference fitted on its own study, else with the newest one fitted
    on another study of the same data and splits (fingerprint, split seed, subset). Returns
    {"reference": the newest, "beaten_by": [studies whose mean test score is better], "tested",
    "comparisons": [{"study", "reference_study", "word", "verdict"}]}; word is "better", "worse",
    "not significant" (the net against the reference) or "no verdict". Call it before
    dataset_verdict, which drops the rows' per-example correctness."""
    fitted = [(r["study"], r["classical"]) for r in rows if r.get("classical")]
    if not fitted:
        return None
    _, newest = max(fitted, key=lambda item: item[1].get("fitted_at", ""))
    comparisons = []
    for r in rows:
        r["vs_reference"] = None
        if r["test_value"] is None:
            continue
        owner, ref = _reference_for(r, fitted)
        if ref is None:
            continue
        compared = {"study": r["study"], "reference_study": owner, **_against(r, ref)}
        r["vs_reference"] = compared["word"]
        comparisons.append(compared)
    better = [c["study"] for c in comparisons if c["mean_better"]]
    tested = [r["study"] for r in rows if r["test_value"] is not None]
    return {"reference": newest, "beaten_by": better, "tested": tested, "comparisons": comparisons}


def _splits_of(row: dict) -> dict:
    return {"fingerprint": row["fingerprint"], "split_seed": row["split_seed"], "subset": row["subset"]}


def _reference_for(row: dict, fitted: list[tuple[str, dict]]) -> tuple[str | None, dict | None]:
    """(study, entry) of the reference a retrained net is judged against: its own, else the newest of
    the same splits (a reference older than recorded splits counts for its own study only)."""
    if row.get("classical"):
        return row["study"], row["classical"]
    same = [(study, ref) for study, ref in fitted if ref.get("splits") == _splits_of(row)]
    if not same:
        return None, None
    return max(same, key=lambda item: item[1].get("fitted_at", ""))


def _against(row: dict, ref: dict) -> dict:
    """The net of `row` against the reference `ref`: verdict.verdict()'s dict, and the net's word."""
    maximize = row["direction"] == "maximize"
    mean_better = row["test_metric"] == ref["metric"] and (
        row["test_value"] > ref["test"] if maximize else row["test_value"] < ref["test"])
    if row["test_metric"] != ref["metric"]:
        out = {"status": "unfair", "line": f"no verdict: the net is scored on {row['test_metric']}, the reference on "
                                           f"{ref['metric']}"}
    elif not ref.get("per_seed_values"):
        out = {"status": "no_test", "line": "no verdict: the classical reference was fitted before its seeds were "
                                            "recorded; run `anncnn-tune reference` again"}
    else:
        per_seed = row["test_per_seed"] or ([row["test_value"]] if row["test_seeds"] == 1 else None)
        # Per-example correctness measures accuracy: the paired tests over test examples join in only
        # when accuracy is the metric compared (an AUC or an MSE is judged over seeds).
        paired = ref["metric"] == "accuracy"
        net = {"name": row["study"], "per_seed": per_seed,
               "correct": decode_correct(row.get("test_correct")) if paired else None}
        classical = {"name": ref["model"], "per_seed": ref["per_seed_values"],
                     "correct": decode_correct(ref.get("correct")) if paired else None}
        out = verdict(net, classical, maximize=maximize, fair=True, points=ref["metric"] in FRACTION_METRICS)
        if out["status"] == "one_seed":
            out["line"] = out["line"].replace("retrain with --seeds 3 or more", "retrain the net with --seeds 3 or more")
    word = {"different": "better" if out.get("better") == row["study"] else "worse",
            "no_difference": "not significant"}.get(out["status"], "no verdict")
    compared = {"word": word, "mean_better": mean_better, "verdict": out}
    if ref["metric"] == row["test_metric"] == "mse":
        compared["rmse"] = _rmse_gap(row["test_value"], ref["test"])
        out["line"] += f"; {compared['rmse']['line']}"
    return compared


def _rmse_gap(net_mse: float, reference_mse: float) -> dict:
    """Regression results are quoted in RMSE (the target's own unit), and a gap between two models
    in percent of RMSE is about half the gap in percent of MSE: say both RMSEs and their gap, so a
    reader comparing with published RMSEs does not have to convert. RMSE here is the root of the
    mean test MSE over seeds."""
    net, reference = net_mse ** 0.5, reference_mse ** 0.5
    gap = net / reference - 1 if reference > 0 else float("inf")

    def shown(x: float) -> str:  # a target in dollars reads as 47,146, one in $100k as 0.4715
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4f}"

    return {"net": net, "reference": reference, "relative_gap": gap,
            "line": f"RMSE {shown(net)} against {shown(reference)} ({gap:+.1%})"}


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
