"""The statistics of the verdict line, against hand-computed small cases, and when a verdict is withheld."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from anncnn_tune.results import verdict as V
from anncnn_tune.service.records import decode_correct, encode_correct


def test_mcnemar_counts_the_discordant_pairs_of_a_hand_made_table():
    # 2x2 table: both right 5, only a right 4, only b right 1, both wrong 2.
    a = np.array([1] * 5 + [1] * 4 + [0] * 1 + [0] * 2)
    b = np.array([1] * 5 + [0] * 4 + [1] * 1 + [0] * 2)
    result = V.mcnemar_exact(a, b)
    assert (result["only_a"], result["only_b"]) == (4, 1)
    # Two-sided exact binomial on 5 discordant pairs, 4 one way: P(X<=1)+P(X>=4) = (1+5+5+1)/32.
    assert result["p_value"] == pytest.approx(12 / 32)
    assert result["p_value"] == pytest.approx(stats.binomtest(4, 5, 0.5).pvalue)


def test_mcnemar_without_discordant_pairs_is_p_one_and_a_lopsided_table_is_tiny():
    same = np.array([1, 0, 1, 1])
    assert V.mcnemar_exact(same, same)["p_value"] == 1.0
    a, b = np.ones(30), np.zeros(30)
    assert V.mcnemar_exact(a, b)["p_value"] == pytest.approx(2 * 0.5 ** 30)


def test_welch_interval_matches_the_formula():
    a, b = [0.90, 0.92, 0.94], [0.80, 0.81, 0.85]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    got = V.welch_interval(a, b)
    diff = np.mean(a) - np.mean(b)
    assert got.estimate == pytest.approx(diff)
    assert (got.low, got.high) == (pytest.approx(diff - half), pytest.approx(diff + half))
    assert got.excludes_zero
    assert V.welch_p_value(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    with pytest.raises(ValueError):
        V.welch_interval([0.9], [0.8, 0.7])


def test_paired_bootstrap_on_a_tiny_case_is_seeded_and_brackets_the_difference():
    a = np.array([1, 1, 1, 1, 0, 1, 1, 1])
    b = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    first, again = V.paired_bootstrap(a, b, resamples=2000, seed=3), V.paired_bootstrap(a, b, resamples=2000, seed=3)
    assert first == again  # seeded: the same interval every time
    assert first.estimate == pytest.approx(3 / 8)
    # By hand: the per-example differences are 0/1 with three ones in eight; the resampled mean
    # is Binomial(8, 3/8)/8, whose 2.5% and 97.5% quantiles are 1/8 and 6/8.
    assert first.low == pytest.approx(1 / 8) and first.high == pytest.approx(6 / 8)
    # Two seeds per side are averaged per example before resampling.
    two = V.paired_bootstrap(np.stack([a, a]), np.stack([b, b]), seed=3)
    assert two == first


def test_the_verdict_names_the_better_model_with_its_interval_and_p_value():
    rng = np.random.default_rng(0)
    truth_a = (rng.random((3, 2000)) < 0.95).astype(np.uint8)
    truth_b = (rng.random((3, 2000)) < 0.85).astype(np.uint8)
    a = {"name": "ann", "per_seed": list(truth_a.mean(1)), "correct": truth_a}
    b = {"name": "cnn", "per_seed": list(truth_b.mean(1)), "correct": truth_b}
    out = V.verdict(b, a, maximize=True, fair=True, points=True)
    assert out["status"] == "different" and out["better"] == "ann"
    assert out["line"].startswith("ann better than cnn by ") and "points [" in out["line"]
    # The p shown is the larger of Welch's over 3 seeds and McNemar's over 2000 examples.
    assert out["line"].endswith("(3 seeds each)") and ", p = " in out["line"]
    assert max(out["seeds"]["p_value"], out["mcnemar"]["p_value"]) < 1e-3 and out["mcnemar"]["p_value"] < 1e-6
    low, high = (float(x) for x in out["line"].split("[")[1].split("]")[0].split(", "))
    assert 0 < low < 10 < high  # the true difference is 10 points


def test_a_loss_is_better_when_lower_and_noise_is_no_difference():
    out = V.verdict({"name": "a", "per_seed": [0.30, 0.31, 0.29], "correct": None},
                    {"name": "b", "per_seed": [0.50, 0.52, 0.49], "correct": None}, maximize=False, fair=True,
                    points=False)
    assert out["status"] == "different" and out["better"] == "a"
    same = V.verdict({"name": "a", "per_seed": [0.90, 0.80, 0.85], "correct": None},
                     {"name": "b", "per_seed": [0.86, 0.84, 0.83], "correct": None}, maximize=True, fair=True,
                     points=True)
    assert same["status"] == "no_difference" and same["line"].startswith("no significant difference")


@pytest.mark.parametrize("a_seeds,b_seeds,fair,status", [
    (None, [0.9, 0.9], True, "no_test"), ([0.9], [0.8, 0.7], True, "one_seed"),
    ([0.9, 0.91], [0.5, 0.51], False, "unfair")])
def test_a_verdict_is_withheld_without_test_scores_with_one_seed_or_when_unfair(a_seeds, b_seeds, fair, status):
    out = V.verdict({"name": "a", "per_seed": a_seeds}, {"name": "b", "per_seed": b_seeds}, maximize=True,
                    fair=fair, points=True)
    assert out["status"] == status and "better" not in out
    assert "no verdict" in out["line"]


def test_correctness_round_trips_through_the_record_compactly():
    correct = (np.random.default_rng(1).random((3, 10_001)) < 0.9).astype(np.uint8)
    stored = encode_correct(correct)
    assert sum(len(s) for s in stored["seeds"]) < 3 * 1700
    assert np.array_equal(decode_correct(stored), correct)
    assert decode_correct(None) is None


@pytest.mark.parametrize(("net_mse", "reference_mse", "line"), [
    (0.1980, 0.1904, "RMSE 0.4450 against 0.4363 (+2.0%)"),  # California in $100k (docs/results.md)
    (2.2227e9, 2.0411e9, "RMSE 47,146 against 45,179 (+4.4%)"),  # housing.csv in dollars
    (0.19, 0.19, "RMSE 0.4359 against 0.4359 (+0.0%)"),
])
def test_an_mse_comparison_is_also_said_in_rmse_and_its_gap(net_mse, reference_mse, line):
    """Published regression figures are RMSEs: the gap in RMSE is about half the gap in MSE."""
    from anncnn_tune.results.fairness import _rmse_gap

    gap = _rmse_gap(net_mse, reference_mse)
    assert gap["line"] == line
    assert gap["relative_gap"] == pytest.approx((net_mse / reference_mse) ** 0.5 - 1)
