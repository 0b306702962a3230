"""Is one model really better than the other on the test split? The statistics behind the verdict line.

Three views of the same question, each with its own assumption:

- over seeds: each study was retrained with several seeds; the seeds of one study are independent
  of the other's (seed k of the ANN has nothing to do with seed k of the CNN), so the interval of
  the difference of the mean test metrics is Welch's t-interval (unequal variances, Welch-
  Satterthwaite degrees of freedom). It needs two seeds or more on each side.
- over test examples: both studies score the same fixed test split, so their per-example
  correctness pairs by index. The paired bootstrap resamples test examples (with replacement,
  seeded) and recomputes the accuracy difference of the seed-averaged correctness; the 2.5% and
  97.5% percentiles are the interval.
- McNemar's exact test on the first seed of each side: under "no difference" a discordant example
  (right for one model, wrong for the other) is equally likely either way, so the count of one
  kind is Binomial(discordant, 1/2); the p-value is the two-sided binomial test.

`verdict()` turns those into the one line the leaderboard prints; it never names a winner from
validation scores or from a single seed. `dataset_verdict()` picks the two studies of a dataset
it compares (the best study of each side: ANN, then CNN) from the leaderboard's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anncnn_tune.service.records import decode_correct
from anncnn_tune.training import families
from anncnn_tune.training.families.base import SIDES

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
ALPHA = 1 - LEVEL
FRACTION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")  # shown in points (×100)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def _welch(a, b) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch-Satterthwaite degrees of freedom)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the interval over seeds needs at least 2 seeds on each side")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else math.inf
    return float(a.mean() - b.mean()), se, df


def welch_interval(a, b, level: float = LEVEL) -> Interval:
    """CI of mean(a) - mean(b) for independent samples with unequal variances (Welch).

    With both sample variances zero the interval is the point (nothing varies across seeds)."""
    from scipy import stats

    diff, se, df = _welch(a, b)
    if se == 0:
        return Interval(diff, diff, diff)
    half = float(stats.t.ppf(1 - (1 - level) / 2, df)) * se
    return Interval(diff, diff - half, diff + half)


def welch_p_value(a, b) -> float:
    """Two-sided p-value of Welch's t-test, from the same statistic as the interval (with nothing
    varying across seeds: 1.0 when the means agree, else 0.0)."""
    from scipy import stats

    diff, se, df = _welch(a, b)
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * stats.t.sf(abs(diff) / se, df))


def paired_bootstrap(correct_a, correct_b, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     level: float = LEVEL) -> Interval:
    """Percentile CI of accuracy(a) - accuracy(b) over test examples resampled in pairs.

    correct_a, correct_b: (seeds, n_test) or (n_test,) 0/1 arrays, the same test examples in the
    same order; several seeds are averaged per example first (the example is the resampled unit)."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=float)).mean(0)
    b = np.atleast_2d(np.asarray(correct_b, dtype=float)).mean(0)
    if a.shape != b.shape:
        raise ValueError(f"the two prediction sets cover different test splits ({a.shape[0]} vs {b.shape[0]})")
    per_example = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_example), size=(resamples, len(per_example)))
    diffs = per_example[idx].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(float(per_example.mean()), float(low), float(high))


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test: b = right only for a, c = right only for b, p = binomtest(b, b + c, 1/2)."""
    from scipy import stats

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(stats.binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def _p_text(p: float) -> str:
    return "p < 1e-6" if p < 1e-6 else f"p = {p:.2g}"


def verdict(a: dict, b: dict, *, maximize: bool, fair: bool, points: bool) -> dict:
    """What the test data of two retrained studies supports.

    a, b: {"name", "per_seed": [test metric per seed], "correct": (seeds, n) 0/1 array or None};
    points: the metric is a fraction shown in points (accuracy ×100). Returns {"status", "line", ...};
    status is "no_test", "one_seed", "unfair", "different", or "no_difference"."""
    label_a, label_b = a["name"], b["name"]
    if not a.get("per_seed") or not b.get("per_seed"):
        missing = ", ".join(x["name"] for x in (a, b) if not x.get("per_seed"))
        return {"status": "no_test", "line": f"not retrained yet ({missing}): validation only, no verdict"}
    if not fair:
        return {"status": "unfair", "line": "no verdict: the studies are not comparable (see above)"}
    seeds_a, seeds_b = len(a["per_seed"]), len(b["per_seed"])
    if seeds_a < 2 or seeds_b < 2:
        return {"status": "one_seed", "line": f"no verdict from one seed ({label_a}: {seeds_a}, {label_b}: "
                f"{seeds_b}); retrain with --seeds 3 or more"}
    scale = 100.0 if points else 1.0
    seeds = welch_interval(a["per_seed"], b["per_seed"])
    p_seeds = welch_p_value(a["per_seed"], b["per_seed"])
    out = {"seeds": {**seeds.as_dict(), "p_value": p_seeds, "method": "Welch t-interval over seeds"}}
    significant = seeds.excludes_zero
    p_shown = p_seeds
    if a.get("correct") is not None and b.get("correct") is not None \
            and np.shape(a["correct"])[-1] == np.shape(b["correct"])[-1]:
        boot = paired_bootstrap(a["correct"], b["correct"])
        test = mcnemar_exact(np.atleast_2d(a["correct"])[0], np.atleast_2d(b["correct"])[0])
        out["bootstrap"] = {**boot.as_dict(), "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED}
        out["mcnemar"] = test
        # Every view must agree before a difference is claimed.
        significant = significant and boot.excludes_zero and test["p_value"] < ALPHA
        p_shown = max(p_seeds, test["p_value"])
    # "better" in the metric's direction, and the interval of better minus worse.
    sign = 1.0 if maximize else -1.0
    diff = sign * seeds.estimate
    low, high = sorted((sign * seeds.low, sign * seeds.high))
    better, worse = label_a, label_b
    if diff < 0:
        better, worse, diff, low, high = label_b, label_a, -diff, -high, -low
    diff, low, high = diff * scale, low * scale, high * scale
    unit = " points" if points else ""
    d = 2 if points else 4  # points are hundredths already; an AUC or an MSE needs its 4 decimals
    count = f"{seeds_a} and {seeds_b} seeds" if seeds_a != seeds_b else f"{seeds_a} seeds each"
    if significant:
        line = (f"{better} better than {worse} by {diff:.{d}f}{unit} [{low:.{d}f}, {high:.{d}f}], "
                f"{_p_text(p_shown)} ({count})")
        out["status"], out["better"] = "different", better
    else:
        line = (f"no significant difference: {better} ahead by {diff:.{d}f}{unit} [{low:.{d}f}, "
                f"{high:.{d}f}], {_p_text(p_shown)} ({count})")
        out["status"] = "no_difference"
    out["line"] = line
    return out



def _best_of_each_side(rows: list[dict]) -> list[dict]:
    """The pair a verdict compares: the best study of the ANN side, then of the CNN side (a side may
    hold several families: the notebook CNN and the fast CNN), each judged by its retrained test score
    where it has one, else its best validation value; without both sides, the first two rows."""
    sides: dict[str, list[dict]] = {}
    for r in rows:
        sides.setdefault(families.side(r["model"]), []).append(r)
    if not all(s in sides for s in SIDES):
        return rows[:2]

    def rank(r: dict):
        sign = 1 if r["direction"] == "maximize" else -1
        tested = r["test_value"] is not None
        value = r["test_value"] if tested else r["best_value"]
        return (tested, value is not None, sign * (value if value is not None else 0.0))

    return [max(sides[s], key=rank) for s in SIDES]


def dataset_verdict(rows: list[dict], fair: bool) -> dict:
    """What the test split says about the best study of each side (ANN, then CNN): verdict()'s dict.

    The per-example correctness is used here and dropped from the rows (it is large, and the JSON
    keeps the verdict's numbers instead)."""
    for r in rows:
        r["test_correct"] = decode_correct(r.pop("test_correct", None))
    pair = _best_of_each_side(rows)
    rows = pair + [r for r in rows if not any(r is p for p in pair)]
    if len(rows) < 2 and rows and rows[0].get("kind") == "tabular":
        out = {"status": "single", "line": "no ANN-vs-CNN verdict on a table (no CNN applies)"}
    elif len(rows) < 2:
        out = {"status": "single", "line": "no verdict: only one study so far"}
    elif rows[0]["metric"] != rows[1]["metric"]:
        out = {"status": "unfair", "line": "no verdict: the studies optimise different metrics"}
    else:
        a, b = ({"name": r["study"], "per_seed": r["test_per_seed"], "correct": r["test_correct"]} for r in rows[:2])
        for side, r in ((a, rows[0]), (b, rows[1])):
            if r["test_value"] is not None and not side["per_seed"] and r["test_seeds"] == 1:
                side["per_seed"] = [r["test_value"]]  # a record older than per_seed_values: one seed is one value
        older = [r["study"] for r in rows[:2] if r["test_value"] is not None and not r["test_per_seed"]
                 and r["test_seeds"] != 1]
        if older:
            return _drop_correct(rows, {"status": "no_test", "line": f"no verdict: {older[0]} was retrained before "
                                        "per-seed test scores were recorded; retrain it with --force"})
        metric = rows[0]["test_metric"] or rows[0]["metric"].removeprefix("val_")
        out = verdict(a, b, maximize=rows[0]["direction"] == "maximize", fair=fair,
                        points=metric in FRACTION_METRICS)
        if len(rows) > 2:
            out["line"] += f" (the best of each side: {rows[0]['study']} and {rows[1]['study']}, of {len(rows)} studies)"
    return _drop_correct(rows, out)


def _drop_correct(rows: list[dict], out: dict) -> dict:
    for r in rows:
        r.pop("test_correct", None)
    return out
