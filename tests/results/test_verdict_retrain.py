"""The verdict end to end on a tiny digits pair: retrain with seeds, the leaderboard's verdict, the
test-scoring count, --force, and a pair whose search budgets differ."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers import run_cli, sqlite_snapshot

from anncnn_tune.results.fairness import dataset_entry
from anncnn_tune.results.render import fairness_note
from anncnn_tune.service import optuna_private, records

TINY = ("--n-trials", "2", "--epochs", "1", "--subset", "300", "--device", "cpu", "--quiet")


@pytest.fixture(autouse=True)
def _no_env_storage(monkeypatch):
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """digits-ann and digits-cnn, 2 trials of 1 epoch on 300 samples, each retrained with 2 seeds."""
    work = tmp_path_factory.mktemp("verdict")
    for study in ("digits-ann", "digits-cnn"):
        result = run_cli("optimize", "--study", study, *TINY, cwd=work, timeout=600)
        assert result.returncode == 0, result.stderr
        assert run_cli("export", "--study", study, "-o", f"{study}.yaml", cwd=work).returncode == 0
        result = run_cli("retrain", f"{study}.yaml", "--out", study, "--seeds", "2", "--device", "cpu", cwd=work)
        assert result.returncode == 0, result.stderr
    return work


def board(work: Path) -> dict:
    result = run_cli("compare", "--format", "json", cwd=work)
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)["datasets"]
    return entry


def test_retrain_stores_each_seeds_test_predictions_and_compare_draws_a_verdict(pair):
    predictions = np.load(pair / "digits-cnn" / "test_predictions.npy")
    assert predictions.shape[0] == 2 and predictions.dtype == np.int16
    entry = board(pair)
    verdict = entry["verdict"]
    assert verdict["status"] in ("different", "no_difference"), verdict
    assert verdict["seeds"]["method"] == "Welch t-interval over seeds"
    assert verdict["mcnemar"]["only_a"] + verdict["mcnemar"]["only_b"] <= predictions.shape[1]
    assert "(2 seeds each)" in verdict["line"]
    assert all(r["test_scorings"] == 1 for r in entry["studies"])
    assert all(len(r["test_per_seed"]) == 2 for r in entry["studies"])
    cost = json.loads((pair / "digits-cnn" / "metrics.json").read_text())["cost"]
    assert cost["n_params"] > 0 and cost["flops_per_sample"] > cost["n_params"]  # a conv reuses its weights
    assert 0 < cost["latency_s"]["batch_256"] < 1 and 0 < cost["latency_s"]["batch_1"] < 1  # seconds per sample
    assert cost["latency_s"]["batch_1_repeats"] >= 3 and cost["train_seconds"] > 0
    report = (pair / "digits-cnn" / "report.md").read_text()
    assert "## Cost" in report and f"| {cost['n_params']:,} | {cost['flops_per_sample']:,} |" in report
    assert "Most confused (true → predicted" in report
    cnn = next(r for r in entry["studies"] if r["model"] == "cnn")
    assert cnn["flops_per_sample"] == cost["flops_per_sample"] and cnn["latency_ms_b1"] > 0
    front = entry["frontier"]
    assert front["front"] and front["cheapest"] and len(front["points"]) >= len(front["front"])
    table = run_cli("compare", "--wide", cwd=pair).stdout
    assert "cost frontier (" in table
    assert "verdict: " + verdict["line"] in table and "not a verdict" in table


def test_a_second_retrain_into_the_same_out_is_refused_without_force(pair):
    db = pair / "anncnn-tune.db"
    before, files = sqlite_snapshot(db), sorted(p.name for p in (pair / "digits-ann").iterdir())
    result = run_cli("retrain", "digits-ann.yaml", "--out", "digits-ann", "--device", "cpu", cwd=pair)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "pass --force" in result.stderr
    assert sqlite_snapshot(db) == before
    assert sorted(p.name for p in (pair / "digits-ann").iterdir()) == files


def test_force_warns_and_counts_the_second_test_scoring(pair):
    result = run_cli("retrain", "digits-ann.yaml", "--out", "digits-ann", "--seeds", "2", "--force",
                     "--device", "cpu", cwd=pair)
    assert result.returncode == 0, result.stderr
    assert "scored 1 time(s) before" in result.stderr and "no longer a clean held-out estimate" in result.stderr
    counts = {r["study"]: r["test_scorings"] for r in board(pair)["studies"]}
    assert counts == {"digits-ann": 2, "digits-cnn": 1}
    assert "2x" in run_cli("compare", "--wide", cwd=pair).stdout


def test_budgets_apart_by_less_than_one_trials_worth_stay_fair(pair):
    # A pruner alone makes two searches of the same settings spend different epochs: one trial pruned
    # after a ninth of an epoch where the other ran its whole budget. That is no unequal budget.
    rows = board(pair)["studies"]
    budget = rows[0]["epochs"]
    small = [{**rows[0], "finished_trials": 2, "epochs_spent": 1.0},
             {**rows[1], "finished_trials": 3, "epochs_spent": 1.0 + budget - 0.01}]  # more than 1.5x
    assert dataset_entry("digits", small)["fair"]
    small[1]["epochs_spent"] = 1.0 + budget + 0.01
    assert set(dataset_entry("digits", small)["differs"]) == {"epochs_spent"}


def test_unequal_search_budgets_are_unfair_and_say_by_how_much(pair, tmp_path):
    rows = board(pair)["studies"]
    assert dataset_entry("digits", [dict(r) for r in rows])["fair"]
    rows[1] = {**rows[1], "finished_trials": rows[0]["finished_trials"] * 3,
               "epochs_spent": rows[0]["epochs_spent"] * 3}
    entry = dataset_entry("digits", rows)
    assert not entry["fair"] and set(entry["differs"]) == {"finished_trials", "epochs_spent"}
    note = fairness_note(entry)
    assert "NOT COMPARABLE" in note and "(3.0x, more than the 1.5x allowed)" in note
    assert entry["verdict"]["status"] == "unfair"


def test_one_seed_or_no_retrain_withholds_the_verdict(pair, tmp_path):
    with sqlite3.connect(pair / "anncnn-tune.db") as src, sqlite3.connect(tmp_path / "anncnn-tune.db") as dst:
        src.backup(dst)  # with what is still in the write-ahead log
    shutil.copy(pair / "digits-cnn.yaml", tmp_path / "digits-cnn.yaml")
    url = f"sqlite:///{tmp_path / 'anncnn-tune.db'}"
    tested = records.SYSTEM_PREFIX + "test_metrics"  # the raw record edited: as if digits-ann were not retrained
    optuna_private.set_study_system_attr(optuna.load_study(study_name="digits-ann", storage=url), tested, {})
    assert board(tmp_path)["verdict"]["line"].startswith("not retrained yet (digits-ann)")
    result = run_cli("retrain", "digits-cnn.yaml", "--out", "one", "--device", "cpu", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    original = optuna.load_study(study_name="digits-ann", storage=f"sqlite:///{pair / 'anncnn-tune.db'}")
    optuna_private.set_study_system_attr(optuna.load_study(study_name="digits-ann", storage=url), tested,
                                         optuna_private.study_system_attrs(original)[tested])
    verdict = board(tmp_path)["verdict"]
    assert verdict["status"] == "one_seed" and "no verdict from one seed" in verdict["line"]


def test_the_classical_reference_is_recorded_and_compare_stays_read_only(pair):
    result = run_cli("reference", "--study", "digits-ann", cwd=pair)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("logistic regression on pixels (")
    db = pair / "anncnn-tune.db"
    before = sqlite_snapshot(db)
    entry = board(pair)
    table = run_cli("compare", "--wide", cwd=pair).stdout
    assert sqlite_snapshot(db) == before  # compare writes nothing
    ref = entry["classical"]["reference"]
    assert ref["model"] == "logistic regression on pixels" and ref["search"] == {**ref["search"], "method": "grid",
                                                                                 "trials": 3}
    assert 0.5 < ref["test"] <= 1 and ref["deterministic"] and len(set(ref["per_seed_values"])) == 1
    assert "classical reference: logistic regression on pixels test accuracy" in table
    # Both retrained nets are judged against it (digits-cnn with the reference fitted on digits-ann's splits).
    comparisons = {c["study"]: c for c in entry["classical"]["comparisons"]}
    assert set(comparisons) == {"digits-ann", "digits-cnn"} and comparisons["digits-cnn"]["reference_study"] == "digits-ann"
    for name, c in comparisons.items():
        assert c["word"] in ("better", "worse", "not significant") and "mcnemar" in c["verdict"]  # accuracy: paired too
        assert f"{name} vs classical reference" in " ".join(table.split())
    bad = run_cli("reference", "--study", "nope", cwd=pair)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no study 'nope'")
