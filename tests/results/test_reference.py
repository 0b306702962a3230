"""`anncnn-tune reference` on a small table study, and `compare`'s net-against-gradient-boosting line.

The study: a 300-row regression CSV in dollars through init, a 2-trial search of 1 epoch, retrained
with 3 seeds. The reference's recorded test scores are checked against scikit-learn refitted here
with the recorded setting on the study's own splits; compare's word (better / worse / not
significant) against references rewritten on purpose; and the user errors (unknown study, a study
never retrained) as one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from helpers import run_cli, sqlite_snapshot

from anncnn_tune.data import load_dataset
from anncnn_tune.data.source import source_from_dict
from anncnn_tune.results.fairness import _rmse_gap
from anncnn_tune.results.render import TEXT_WIDTH
from anncnn_tune.service import records

QUICK = ("--n-trials", "2", "--epochs", "1", "--quiet", "--threads", "1", "--device", "cpu")
STUDY = "homes-ann"


def homes_csv(path: Path, n: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    price = 2.5e5 + 7e4 * x[:, 0] - 4e4 * np.tanh(x[:, 1]) + 2e4 * x[:, 0] * x[:, 2] + rng.normal(0, 1e4, n)
    pd.DataFrame({"sqft": 1500 + 400 * x[:, 0], "age": 30 + 10 * x[:, 1], "rooms": 4 + x[:, 2],
                  "price": np.round(price, 2)}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """The retrained study, the reference fitted on it, and what `reference` said before the retrain."""
    folder = tmp_path_factory.mktemp("reference")
    homes_csv(folder / "homes.csv")
    for args in (("init", "homes.csv", "--target", "price"), ("optimize", "--study", f"{STUDY}.yaml", *QUICK)):
        result = run_cli(*args, cwd=folder)
        assert result.returncode == 0, (args, result.stderr)
    db = folder / "anncnn-tune.db"
    before = sqlite_snapshot(db)
    early = run_cli("reference", "--study", STUDY, cwd=folder)  # not retrained yet
    unchanged = sqlite_snapshot(db) == before
    for args in (("export", "--study", STUDY, "-o", "best.yaml"),
                 ("retrain", "best.yaml", "--out", "final", "--seeds", "3", "--device", "cpu")):
        result = run_cli(*args, cwd=folder)
        assert result.returncode == 0, (args, result.stderr)
    fitted = run_cli("reference", "--study", STUDY, "--trials", "3", cwd=folder)  # seeds: the retrain's 3
    assert fitted.returncode == 0, fitted.stderr
    return {"folder": folder, "db": db, "early": early, "early_unchanged": unchanged, "fitted": fitted}


def study(work: dict) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{work['db']}")


def test_the_stored_reference_scores_what_sklearn_gives_for_its_setting_on_the_studys_splits(work):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error

    record = records.StudyRecord.read(study(work))
    entry = record.reference
    assert entry["model"] == "histogram gradient boosting" and entry["metric"] == "mse"
    assert entry["search"]["method"] == "tpe" and entry["search"]["trials"] == 3
    assert entry["seeds"] == 3 and len(entry["per_seed_values"]) == 3
    splits = load_dataset(source_from_dict(record.spec["dataset"]), seed=record.split_seed(0))
    setting = dict(entry["setting"])
    x = np.concatenate([splits.x_train, splits.x_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    expected, seed = [], int(record.spec.get("seed") or 0)
    for k in range(3):
        model = HistGradientBoostingRegressor(early_stopping=False, random_state=seed + k, **setting).fit(x, y)
        expected.append(mean_squared_error(splits.y_test, model.predict(splits.x_test)))
    # In dollars², as the net's test MSE: the reference trains on the user's units.
    assert entry["per_seed_values"] == pytest.approx(expected, rel=1e-5)
    assert entry["test"] == pytest.approx(np.mean(expected), rel=1e-5) and entry["test"] > 1e7
    assert entry["splits"] == {"fingerprint": record.fingerprint, "split_seed": record.split_seed(), "subset": None}
    said = work["fitted"].stdout
    assert said.startswith("histogram gradient boosting (") and "3 trials (--trials 3; the net finished 2)" in said


def test_a_reference_needs_a_known_and_retrained_study_and_writes_nothing_otherwise(work):
    early = work["early"]
    assert early.returncode == 2 and work["early_unchanged"]
    assert early.stderr.startswith(f"error: study {STUDY!r} has no retrained trial yet") and early.stderr.count("\n") == 1
    before = sqlite_snapshot(work["db"])
    for args, start in ((("--study", "nope"), "error: no study 'nope'"),
                        (("--study", STUDY, "--trials", "0"), "error: --trials must be at least 1")):
        bad = run_cli("reference", *args, cwd=work["folder"])
        assert bad.returncode == 2 and bad.stderr.startswith(start) and bad.stderr.count("\n") == 1, bad.stderr
    assert sqlite_snapshot(work["db"]) == before


@pytest.mark.parametrize(("factor", "word"), [(1e-3, "WORSE"), (1e3, "BETTER"), (None, "NOT SIGNIFICANT")])
def test_compare_says_whether_the_net_beats_gradient_boosting(work, tmp_path, factor, word):
    """References rewritten on a copy of the storage: a thousandth of the net's mean MSE on every
    seed (the net is worse), a thousand times it (better), and the net's own per-seed values (no
    difference)."""
    import sqlite3

    copy = tmp_path / "copy.db"
    with sqlite3.connect(work["db"]) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # the write-ahead log's pages too, which a file copy would miss
    url = f"sqlite:///{copy}"
    stored = optuna.load_study(study_name=STUDY, storage=url)
    net = next(iter(records.StudyRecord.read(stored).test_metrics.values()))["per_seed_values"]
    entry = dict(records.StudyRecord.read(stored).reference)
    values = list(net) if factor is None else [float(np.mean(net)) * factor] * len(net)
    entry.update(per_seed_values=values, test=float(np.mean(values)), test_std=float(np.std(values, ddof=1)),
                 deterministic=False)
    records.write_reference(stored, entry)

    table = run_cli("compare", "--storage", url, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= TEXT_WIDTH
    words = " ".join(table.stdout.split())
    assert f"{STUDY} vs classical reference: {word}:" in words
    assert f"classical reference: histogram gradient boosting test mse {entry['test']:.4g}±" in words
    assert "over 3 seeds" in words and "(3 seeds each)" in words
    # The verdict line ends in RMSEs and their gap (their wording: test_verdict.py).
    assert _rmse_gap(float(np.mean(net)), entry["test"])["line"] in words
    if word == "WORSE":
        assert f"histogram gradient boosting better than {STUDY} by" in words
    elif word == "BETTER":
        assert f"{STUDY} better than histogram gradient boosting by" in words
    else:
        assert "no significant difference:" in words

    board = json.loads(run_cli("compare", "--storage", url, "--format", "json", cwd=tmp_path).stdout)
    (dataset,) = board["datasets"]
    (comparison,) = dataset["classical"]["comparisons"]
    assert comparison["word"] == word.lower() and comparison["verdict"]["seeds"]["method"] == "Welch t-interval over seeds"
    low, high = comparison["verdict"]["seeds"]["low"], comparison["verdict"]["seeds"]["high"]
    assert (low <= 0 <= high) == (word == "NOT SIGNIFICANT")
    assert dataset["studies"][0]["vs_reference"] == word.lower()
    csv = run_cli("compare", "--storage", url, "--format", "csv", cwd=tmp_path).stdout
    header, row = csv.splitlines()[:2]
    assert "vs_reference" in header.split(",") and f",{word.lower()}," in row
    markdown = run_cli("compare", "--storage", url, "--format", "markdown", cwd=tmp_path).stdout
    assert f"- {STUDY} vs classical reference: {word}:" in markdown
    html = run_cli("compare", "--storage", url, "--format", "html", "-o", str(tmp_path / "r.html"), cwd=tmp_path)
    assert html.returncode == 0, html.stderr
    assert f"{STUDY} vs classical reference: {word}:" in (tmp_path / "r.html").read_text()
