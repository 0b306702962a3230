"""`anncnn-tune compare` on a real (small) digits ANN-vs-CNN storage, through the real CLI."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from pathlib import Path

import optuna
import pytest
from helpers import build_digits_demo, sqlite_snapshot, url
from helpers import main_in_process as cli

from anncnn_tune.results import plots
from anncnn_tune.results.render import COLUMNS, TEXT_WIDTH, WIDE_COLUMNS
from anncnn_tune.service import optuna_private, records
from anncnn_tune.service.records import StudyRecord


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return build_digits_demo(tmp_path_factory)


@pytest.fixture(autouse=True)
def _no_env_storage(monkeypatch):
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)


def parse_table(text: str, columns: tuple[str, ...] = WIDE_COLUMNS) -> dict[str, dict]:
    """The table's study rows as {study: {column: cell}}, cells split on runs of 2+ spaces (of `compare --wide`
    by default)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("study "))
    rows = {}
    for line in lines[start + 1:]:
        if not line.startswith("  ") or line.strip().startswith(("winner:", "verdict:", "cost frontier", "classical", "best params")):
            break
        cells = re.split(r" {2,}", line.strip())
        winner = cells[0] == "*"
        row = dict(zip(columns[1:], cells[1:] if winner else cells))
        row["winner"] = winner
        rows[row["study"]] = row
    return rows


def test_table_puts_digits_ann_and_cnn_side_by_side(db, capsys):
    before = sqlite_snapshot(db)
    code, out, err = cli(capsys, "compare", "--storage", url(db), "--wide")
    assert code == 0, err
    assert "digits: ANN/CNN share the same data, splits and budget" in out
    assert "4 epochs" in out and "split seed 0" in out and "sampler tpe(" in out and "pruner hyperband(" in out
    rows = parse_table(out)
    assert set(rows) == {"digits-ann", "digits-cnn"}
    assert sum(r["winner"] for r in rows.values()) >= 1
    assert rows["digits-ann"]["family"] == "ann" and rows["digits-cnn"]["family"] == "cnn"
    assert "keras-mlp-128-64" in rows["digits-ann"]["baseline"]
    assert "conv32-conv64-dense64" in rows["digits-cnn"]["baseline"]
    assert re.search(r"digits-cnn trial \d+: \{", out)
    assert sqlite_snapshot(db) == before  # compare only reads


def test_json_and_csv_carry_the_numbers_of_the_table(db, capsys):
    _, table, _ = cli(capsys, "compare", "--storage", url(db), "--wide")
    _, as_json, _ = cli(capsys, "compare", "--storage", url(db), "--format", "json")
    _, as_csv, _ = cli(capsys, "compare", "--storage", url(db), "--format", "csv")
    board = json.loads(as_json)
    (entry,) = board["datasets"]
    assert entry["dataset"] == "digits" and entry["fair"] and entry["differs"] == {}
    rows = parse_table(table)
    csv_rows = {r["study"]: r for r in csv.DictReader(io.StringIO(as_csv))}
    assert set(csv_rows) == set(rows) == {r["study"] for r in entry["studies"]}
    for row in entry["studies"]:
        cells, line = rows[row["study"]], csv_rows[row["study"]]
        assert cells["best val"] == f"{row['best_value']:.4f}"
        assert cells["trial"].split()[0] == str(row["best_trial"])
        assert cells["baseline"].split()[0] == f"{row['baseline_value']:.4f}"
        assert cells["vs baseline"] == f"{row['vs_baseline']:+.4f}"
        assert int(cells["params"].replace(",", "")) == row["n_params"]
        assert float(cells["train s"]) == pytest.approx(row["train_seconds"], abs=0.05)
        assert cells["epochs"] == f"{row['best_epoch']}/{row['epochs_run']}"
        assert cells["trials c/p/f"] == f"{row['complete']}/{row['pruned']}/{row['failed']}"
        assert float(cells["search s"]) == pytest.approx(row["search_seconds"], abs=0.05)
        assert cells["winner"] == row["winner"] == (row["study"] in entry["winner"])
        # CSV: full precision, the same numbers as the JSON.
        assert float(line["best_value"]) == row["best_value"]
        assert float(line["baseline_value"]) == row["baseline_value"]
        assert int(line["n_params"]) == row["n_params"]
        assert int(line["complete"]) == row["complete"] and int(line["pruned"]) == row["pruned"]
        assert json.loads(line["best_params"]) == row["best_params"]
        assert line["winner"] == str(row["winner"]) and line["fair"] == "True"
    # The study's own best trial, as Optuna reports it.
    study = optuna.load_study(study_name="digits-cnn", storage=url(db))
    cnn = next(r for r in entry["studies"] if r["study"] == "digits-cnn")
    assert cnn["best_value"] == study.best_value and cnn["best_trial"] == study.best_trial.number


def test_markdown_is_a_table_per_dataset(db, capsys):
    code, out, _ = cli(capsys, "compare", "--storage", url(db), "--format", "markdown", "--dataset", "digits")
    assert code == 0
    assert "## digits" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 3 and table[0].startswith("| winner | study | family")
    assert all(line.count("|") == table[0].count("|") for line in table)  # escaped pipes keep the columns


def test_html_report_is_self_contained(db, capsys, tmp_path):
    report = tmp_path / "report.html"
    code, out, err = cli(capsys, "compare", "--storage", url(db), "--format", "html", "-o", report)
    assert code == 0, err and f"wrote {report}" in out
    page = report.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    # the bar chart, then per study: optimization history, importances, learning curves
    assert len(images) == 1 + 1 + 2 * 3  # bars, the cost frontier, three figures per study
    assert all(base64.b64decode(img).startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch from beside the file
    assert "digits-ann" in page and "digits-cnn" in page and "<table>" in page


def test_unfair_comparison_is_flagged(db, tmp_path, capsys):
    copy = tmp_path / "unfair.db"
    shutil.copy(db, copy)
    study = optuna.load_study(study_name="digits-ann", storage=url(copy))
    spec = {**StudyRecord.read(study).spec, "epochs": 20}  # as if searched with 20 epochs: the raw record edited
    optuna_private.set_study_system_attr(study, records.SYSTEM_PREFIX + "spec", spec)
    code, out, _ = cli(capsys, "compare", "--storage", url(copy))
    assert code == 0
    assert "NOT COMPARABLE" in out and 'epochs: digits-ann=20, digits-cnn=4' in out
    _, as_json, _ = cli(capsys, "compare", "--storage", url(copy), "--format", "json")
    (entry,) = json.loads(as_json)["datasets"]
    assert not entry["fair"] and set(entry["differs"]) == {"epochs"}


@pytest.mark.parametrize("case", ["unknown dataset", "missing storage", "unwritable -o", "empty storage"])
def test_bad_compare_input_is_one_line_and_exit_2(db, tmp_path, capsys, case):
    before = sqlite_snapshot(db)
    target = url(db)
    args = []
    if case == "unknown dataset":
        args, fragment = ["--dataset", "cifar10"], "no studies of dataset 'cifar10'"
    elif case == "missing storage":
        target, fragment = url(tmp_path / "nothing.db"), "no study storage at"
    elif case == "unwritable -o":
        blocker = tmp_path / "file"
        blocker.write_text("")
        args, fragment = ["-o", blocker / "report.txt"], "cannot write"
    else:
        optuna.create_study(study_name="foreign", storage=url(tmp_path / "empty.db"))
        target, fragment = url(tmp_path / "empty.db"), "no anncnn-tune studies"
    code, out, err = cli(capsys, "compare", "--storage", target, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err
    assert sqlite_snapshot(db) == before
    assert not (tmp_path / "nothing.db").exists()


def test_plots_render_and_handle_too_few_trials(db, tmp_path):
    from matplotlib.image import imread

    study = optuna.load_study(study_name="digits-cnn", storage=url(db))
    lonely = optuna.create_study(direction="maximize")  # one complete trial: importances cannot be computed
    lonely.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    empty = optuna.create_study(direction="maximize")
    figures = {
        "history": plots.optimization_history(study),
        "importances": plots.param_importances(study),
        "importances-one-trial": plots.param_importances(lonely),
        "history-empty": plots.optimization_history(empty),
        "curves": plots.learning_curves([{"label": "best", "history": study.best_trial.user_attrs["history"]}],
                                        "val_accuracy", test=0.95),
        "confusion": plots.confusion_matrix([[5, 1], [0, 6]], ["cat", "dog"]),
        "bars": plots.leaderboard_bars([{"dataset": "digits", "winner": [], "studies": []}]),
    }
    for name, fig in figures.items():
        path = plots.save_png(fig, tmp_path / f"{name}.png")
        pixels = imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
    text = [t.get_text() for t in figures["importances-one-trial"].axes[0].texts]
    assert any("at least 2 complete trials" in t for t in text)


def test_a_minimised_metric_ranks_the_lowest_value_best():
    """California's val_mse: the best trial is the lowest, ties going to the earlier trial."""
    from anncnn_tune.results.leaderboard import study_row

    study = optuna.create_study(direction="minimize")
    study.set_user_attr("spec", {"dataset": "california-housing", "model": "ann", "metric": "val_mse",
                                 "epochs": 3, "sampler": {"type": "tpe"}, "pruner": {"type": "none"}})
    for value, attrs in [(0.58, {"baseline": "ref"}), (0.25, {}), (0.40, {}), (0.25, {})]:
        trial = study.ask()
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
        study.tell(trial, value)
    row = study_row(study)
    assert (row["best_value"], row["best_trial"]) == (0.25, 1)
    assert row["direction"] == "minimize"


# -- compare says what it means (issue 24, part 7): one test per friction -----------------------------


def _only_ann(db: Path, tmp_path: Path, kind: str | None = None) -> str:
    """A copy of the demo storage holding digits-ann alone; kind rewrites its data record's kind."""
    copy = tmp_path / "one.db"
    shutil.copy(db, copy)
    optuna.delete_study(study_name="digits-cnn", storage=url(copy))
    if kind is not None:
        study = optuna.load_study(study_name="digits-ann", storage=url(copy))
        data = {**StudyRecord.read(study).data, "kind": kind}  # as if the study had searched a table
        optuna_private.set_study_system_attr(study, records.SYSTEM_PREFIX + "data", data)
    return url(copy)


def test_a_table_study_alone_is_compared_with_gradient_boosting_not_awaiting_a_cnn(db, tmp_path, capsys):
    code, out, err = cli(capsys, "compare", "--storage", _only_ann(db, tmp_path, kind="tabular"))
    assert code == 0, err
    words = " ".join(out.split())  # the text table wraps its lines at 120 columns
    assert "so far" not in words and "no comparison yet" not in words  # no CNN study can come on a table
    assert "the comparison is the net against gradient boosting (`anncnn-tune reference --study digits-ann`)" in words
    assert "no ANN-vs-CNN verdict on a table" in words


def test_a_best_value_is_never_called_none_yet(db, tmp_path, capsys):
    code, out, err = cli(capsys, "compare", "--storage", _only_ann(db, tmp_path))
    assert code == 0, err
    words = " ".join(out.split())  # the text table wraps its lines at 120 columns
    assert "best validation: none yet" not in words
    assert re.search(r"best val_accuracy: digits-ann \d\.\d{4} \(the only study with a complete trial\)", words)


def test_baseline_trials_and_the_classical_reference_have_a_word_each(db, capsys):
    for args in ((), ("--wide",), ("--format", "markdown")):
        code, out, err = cli(capsys, "compare", "--storage", url(db), *args)
        assert code == 0, err
        words = " ".join(out.split())
        assert not re.search(r"\bref\b", words), args  # "ref" was the baseline trials' word
        # "reference" is the classical one only (and the command that fits it)
        assert words.count("reference") == words.count("classical reference") + words.count("tune reference"), args
    assert "vs baseline" in out and "| baseline |" in out


def test_the_text_table_fits_120_columns_and_wide_has_the_details(db, capsys):
    code, out, err = cli(capsys, "compare", "--storage", url(db))
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= TEXT_WIDTH == 120
    assert set(parse_table(out, COLUMNS)) == {"digits-ann", "digits-cnn"}
    assert "--wide" in out  # it says where the rest is
    _, wide, _ = cli(capsys, "compare", "--storage", url(db), "--wide")
    assert re.search(r"digits-cnn trial \d+: \{", wide) and "FLOPs/sample" in wide
