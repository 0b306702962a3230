"""The Python API (anncnn_tune.optimize, compare, export, retrain): data back, the CLI's numbers, cheap import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import optuna
import pytest
from helpers import sqlite_snapshot

import anncnn_tune as at
from anncnn_tune import api
from anncnn_tune.cli.main import main


def test_import_is_cheap_and_changes_nothing():
    code = ("import os, sys; before = os.umask(0o022); os.umask(before); "
            "import warnings; filters = list(warnings.filters); import anncnn_tune; "
            "after = os.umask(0o022); os.umask(after); "
            "print([m for m in ('torch', 'optuna', 'pandas', 'sklearn', 'anncnn_tune.api') if m in sys.modules], "
            "before == after, warnings.filters == filters)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True True"


def test_the_lazy_names_are_the_public_api():
    from anncnn_tune import _LAZY

    assert at.__all__ == sorted(_LAZY)
    for name in at.__all__:
        assert getattr(at, name) is not None and name in dir(at)
    assert at.optimize is api.optimize and at.compare.__doc__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        at.nothing  # noqa: B018


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """digits ANN and CNN, two trials each, through the API as a notebook runs them."""
    folder = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{folder / 'api.db'}"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    results = {name: at.optimize(name, storage=url, n_trials=2, epochs=2, threads=1, quiet=True)
               for name in ("digits-ann", "digits-cnn")}
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # a notebook keeps its Ctrl-C
    return folder, url, results


def test_optimize_returns_the_study_and_its_best_trial(searched):
    _, url, results = searched
    result = results["digits-cnn"]
    assert isinstance(result, at.OptimizeResult) and isinstance(result.study, optuna.Study)
    assert sum(result.states.values()) == 2 and result.ran_here == 2 and not result.interrupted
    stored = optuna.load_study(study_name="digits-cnn", storage=url)
    best = max((t for t in stored.trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, -t.number))
    assert (result.best_trial, result.best_value, result.best_params) == (best.number, best.value, best.params)
    assert result.best_baseline == best.user_attrs.get("baseline")


def test_compare_is_a_dataframe_with_the_numbers_of_the_json(searched, capsys):
    import pandas

    _, url, _ = searched
    frame = at.compare(storage=url)
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["study"]) == ["digits-ann", "digits-cnn"] and list(frame["model"]) == ["ann", "cnn"]
    assert {"best_value", "test_value", "baseline_value", "n_params", "fair", "winner"} <= set(frame.columns)
    assert frame["fair"].all() and frame["winner"].sum() >= 1
    assert main(["compare", "--storage", url, "--format", "json"]) is None
    printed = json.loads(capsys.readouterr().out)
    rows = {r["study"]: r for r in printed["datasets"][0]["studies"]}
    for row in frame.itertuples():
        assert row.best_value == rows[row.study]["best_value"] and row.best_trial == rows[row.study]["best_trial"]
    assert frame.attrs["leaderboard"]["datasets"][0]["dataset"] == "digits"
    assert at.compare(storage=url, format="markdown").startswith("# ANN vs CNN leaderboard")
    html = at.compare(storage=url, datasets=["digits"], format="html")
    # bars, the cost frontier, and per study: history, importances, curves
    assert html.count("data:image/png;base64,") == 1 + 1 + 3 * 2


def test_export_and_retrain_return_data_and_record_on_the_study(searched):
    folder, url, _ = searched
    exported = at.export("digits-ann", storage=url, output=str(folder / "best.yaml"))
    assert isinstance(exported, at.ExportedRun) and (folder / "best.yaml").read_text() == exported.text
    assert exported.run["source"]["study"] == "digits-ann" and exported.run["model"] == "ann"
    lines = []
    result = at.retrain(folder / "best.yaml", out=folder / "out", storage=url, log=lines.append)
    assert isinstance(result, at.RetrainResult) and result.recorded
    assert json.loads((folder / "out" / "metrics.json").read_text()) == json.loads(json.dumps(result.as_dict()))
    assert result.test["metric"] == "accuracy" and 0 < result.test["mean"] <= 1 and result.onnx["passed"]
    assert any(line.startswith(f"seed {exported.run['seed']}: test accuracy") for line in lines)
    frame = at.compare(storage=url)
    assert frame.set_index("study").loc["digits-ann", "test_value"] == result.test["mean"]


@pytest.mark.parametrize("call, fragment", [
    (lambda url: at.optimize("digits-ann", storage=url, n_trials=0), "n_trials (--n-trials) must be"),
    (lambda url: at.optimize("no-such-study", storage=url), "no-such-study"),
    (lambda url: at.compare(storage=url, format="xml"), "unknown compare format 'xml'"),
    (lambda url: at.compare(storage=url, datasets=["cifar10"]), "no studies of dataset 'cifar10'"),
    (lambda url: at.export("digits-ann", storage=url, trial=-1), "trial must be a trial number"),
    (lambda url: at.retrain("/nonexistent/run.yaml", storage=url), "does not exist"),
])
def test_mistakes_are_one_line_user_errors_that_leave_the_storage_alone(searched, call, fragment):
    folder, url, _ = searched
    before = sqlite_snapshot(folder / "api.db")
    with pytest.raises(at.UserError) as caught:
        call(url)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert sqlite_snapshot(folder / "api.db") == before


def test_storage_defaults_to_the_environment_then_the_working_directory(searched, tmp_path, monkeypatch):
    _, url, _ = searched
    monkeypatch.setenv("ANNCNN_TUNE_STORAGE", url)
    assert list(at.compare()["study"]) == ["digits-ann", "digits-cnn"]
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(at.UserError):
        at.compare()  # no anncnn-tune.db here, and compare creates none
    assert os.listdir(tmp_path) == []
