"""`anncnn-tune compare`: the ANN-vs-CNN leaderboard, from the storage alone.

Every study carries its spec (user_attrs["spec"]) and data description (user_attrs["data"]);
retrain adds user_attrs["test_metrics"]. So one pass over the storage gives, per dataset, each
study's best trial, its reference baseline, its test score once retrained, and whether the
studies being compared share data, splits and budget. `leaderboard()` builds plain dicts; the
renderers below turn the same dicts into a table, Markdown, CSV, JSON or an HTML report, so
every format carries the same numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json

import optuna
from optuna.trial import TrialState

from anncnn_tune.data.source import source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.service.storage import mask, open_storage

# What must match for an ANN-vs-CNN comparison to be fair (DESIGN.md, "Fair comparison").
FAIR_KEYS = ("metric", "fingerprint", "split_seed", "subset", "epochs", "sampler", "pruner")
FORMATS = ("table", "markdown", "csv", "json", "html")
FAMILY_ORDER = {"ann": 0, "cnn": 1}


# -- the data --------------------------------------------------------------------------------------


def _best(trials, maximize: bool):
    scored = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not scored:
        return None
    # Ties go to the earlier trial.
    if maximize:
        return max(scored, key=lambda t: (t.value, -t.number))
    return min(scored, key=lambda t: (t.value, t.number))


def _duration(trial) -> float:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0


def _test_entry(study: optuna.Study, best_number: int | None) -> tuple[int | None, dict | None]:
    """The best trial's recorded test metrics; else the most recently retrained trial's."""
    recorded = study.user_attrs.get("test_metrics") or {}
    if best_number is not None and str(best_number) in recorded:
        return best_number, recorded[str(best_number)]
    if recorded:
        number, entry = max(recorded.items(), key=lambda item: item[1].get("retrained_at", ""))
        return int(number), entry
    return None, None


def _dataset_label(dataset) -> str:
    """A registry key, or a user dataset's key (its file stem or folder name), to group studies by."""
    return dataset if isinstance(dataset, str) else source_from_dict(dataset).key


def study_row(study: optuna.Study) -> dict:
    """One leaderboard row: a study's best trial, its reference baseline, its budget and its test score."""
    spec, data = study.user_attrs["spec"], study.user_attrs.get("data") or {}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = study.get_trials(deepcopy=False)
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    best = _best(trials, maximize)
    baselines = [t for t in trials if t.user_attrs.get("baseline")]
    reference = _best(baselines, maximize) or (baselines[0] if baselines else None)
    test_trial, test = _test_entry(study, best.number if best else None)
    attrs = best.user_attrs if best else {}
    row = {
        "dataset": _dataset_label(spec["dataset"]), "study": study.study_name, "model": spec["model"], "metric": spec["metric"],
        "direction": "maximize" if maximize else "minimize", "winner": False,
        "best_value": best.value if best else None, "best_trial": best.number if best else None,
        "best_is_baseline": attrs.get("baseline"),
        "test_metric": test["metric"] if test else None, "test_value": test["mean"] if test else None,
        "test_std": test["std"] if test else None, "test_seeds": test["seeds"] if test else None,
        "test_trial": test_trial,
        "baseline_name": reference.user_attrs["baseline"] if reference else None,
        "baseline_trial": reference.number if reference else None,
        "baseline_state": reference.state.name.lower() if reference else None,
        "baseline_value": reference.value if reference and reference.state == TrialState.COMPLETE else None,
        "n_params": attrs.get("n_params"), "train_seconds": attrs.get("train_seconds"),
        "epochs_run": attrs.get("epochs_run"), "best_epoch": attrs.get("best_epoch"),
        "complete": states[TrialState.COMPLETE], "pruned": states[TrialState.PRUNED],
        "failed": states[TrialState.FAIL], "running": states[TrialState.RUNNING] + states[TrialState.WAITING],
        # Summed trial durations: the compute spent, independent of idle gaps between resumed runs.
        "search_seconds": round(sum(_duration(t) for t in trials), 3),
        "best_params": dict(best.params) if best else None,
        "fingerprint": data.get("fingerprint"), "split_seed": data.get("split_seed"), "subset": spec.get("subset"),
        "epochs": spec.get("epochs"), "sampler": spec.get("sampler"), "pruner": spec.get("pruner"),
        "task": data.get("task"),
    }
    ref = row["baseline_value"]
    row["vs_baseline"] = row["best_value"] - ref if ref is not None and row["best_value"] is not None else None
    return row


def dataset_entry(dataset: str, rows: list[dict]) -> dict:
    """Rows of one dataset, the settings they share, those they do not, and the winner."""
    rows = sorted(rows, key=lambda r: (FAMILY_ORDER.get(r["model"], 9), r["study"]))
    shared, differs = {}, {}
    for key in FAIR_KEYS:
        values = {r["study"]: r[key] for r in rows}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) == 1:
            shared[key] = rows[0][key]
        else:
            differs[key] = values
    scored = [r for r in rows if r["best_value"] is not None]
    winner = []
    if len(scored) >= 2 and "metric" not in differs:
        pick = max if scored[0]["direction"] == "maximize" else min
        top = pick(r["best_value"] for r in scored)
        winner = [r["study"] for r in scored if r["best_value"] == top]
        for r in rows:
            r["winner"] = r["study"] in winner
    families = sorted({r["model"] for r in rows})
    return {"dataset": dataset, "families": families, "fair": not differs, "shared": shared, "differs": differs,
            "winner": winner, "studies": rows}


def leaderboard(url: str, datasets: tuple[str, ...] | list[str] | None = None) -> dict:
    """Per dataset, the anncnn-tune studies of the storage side by side (reads only; writes nothing)."""
    storage = open_storage(url, must_exist=True)
    rows, foreign = [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if "spec" not in summary.user_attrs:
            foreign.append(summary.study_name)  # a study some other tool made: nothing to compare it on
            continue
        rows.append(study_row(optuna.load_study(study_name=summary.study_name, storage=storage)))
    if not rows:
        raise UserError(f"no anncnn-tune studies in {mask(url)}; run `anncnn-tune optimize --study NAME` first "
                        "or pass --storage")
    present = sorted({r["dataset"] for r in rows})
    if datasets:
        unknown = [d for d in datasets if d not in present]
        if unknown:
            raise UserError(f"no studies of dataset {unknown[0]!r} in {mask(url)}; datasets there: "
                            f"{', '.join(present)}")
        present = [d for d in present if d in datasets]
    return {
        "storage": mask(url),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "datasets": [dataset_entry(d, [r for r in rows if r["dataset"] == d]) for d in present],
        "other_studies": foreign,
    }


# -- shared formatting -----------------------------------------------------------------------------

COLUMNS = ("", "study", "family", "metric", "best val", "trial", "test", "reference", "vs ref", "params",
           "train s", "epochs", "trials c/p/f", "search s")


def num(value, digits: int = 4) -> str:
    """Metrics as fixed 4 decimals (what the table shows, and what the tests compare against JSON)."""
    if value is None:
        return "—"
    if value != 0 and (abs(value) >= 10_000 or abs(value) < 10 ** -digits):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def _options(section: dict | None) -> str:
    if not section:
        return "—"
    rest = ", ".join(f"{k}={v}" for k, v in section.items() if k != "type")
    return f"{section.get('type')}({rest})"


def cells(row: dict) -> list[str]:
    if row["test_value"] is None:
        test = "—"
    else:
        test = f"{num(row['test_value'])}±{num(row['test_std'])}"
        if row["test_trial"] != row["best_trial"]:
            test += f" (trial {row['test_trial']})"
    if row["baseline_name"] is None:
        reference = "—"
    elif row["baseline_value"] is None:
        reference = f"{row['baseline_name']} (trial {row['baseline_trial']}, {row['baseline_state']})"
    else:
        reference = f"{num(row['baseline_value'])} {row['baseline_name']} (trial {row['baseline_trial']})"
    trial = "—" if row["best_trial"] is None else str(row["best_trial"]) + (" ref" if row["best_is_baseline"] else "")
    epochs = "—" if row["epochs_run"] is None else f"{row['best_epoch']}/{row['epochs_run']}"
    return [
        "*" if row["winner"] else "", row["study"], row["model"], row["metric"], num(row["best_value"]), trial, test,
        reference, "—" if row["vs_baseline"] is None else f"{row['vs_baseline']:+.4f}",
        "—" if row["n_params"] is None else f"{row['n_params']:,}",
        "—" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}", epochs,
        f"{row['complete']}/{row['pruned']}/{row['failed']}", f"{row['search_seconds']:.1f}",
    ]


def fairness_note(entry: dict) -> str:
    """One line: what the studies share, or which settings differ (so the comparison is not fair)."""
    shared = entry["shared"]
    parts = []
    if "fingerprint" in shared:
        parts.append(f"data {str(shared['fingerprint'])[:12]}")
    if "split_seed" in shared:
        parts.append(f"split seed {shared['split_seed']}")
    if "subset" in shared and shared["subset"] is not None:
        parts.append(f"subset {shared['subset']}")
    if "epochs" in shared:
        parts.append(f"{shared['epochs']} epochs")
    if "sampler" in shared:
        parts.append(f"sampler {_options(shared['sampler'])}")
    if "pruner" in shared:
        parts.append(f"pruner {_options(shared['pruner'])}")
    families = "/".join(f.upper() for f in entry["families"])
    if len(entry["studies"]) < 2:
        note = f"only {families} so far (no comparison yet)"
    elif entry["fair"]:
        note = f"{families} share the same data, splits and budget"
    else:
        diffs = "; ".join(f"{k}: " + ", ".join(f"{s}={json.dumps(v)}" for s, v in values.items())
                          for k, values in entry["differs"].items())
        note = f"NOT COMPARABLE: {families} studies differ in {diffs}"
    return f"{note} — " + ", ".join(parts) if parts else note


def _winner_line(entry: dict) -> str:
    if not entry["winner"]:
        return "winner: none (needs two studies with complete trials and the same metric)"
    return "winner: " + ", ".join(entry["winner"]) + " (best validation score; * in the table)"


def _params_lines(entry: dict) -> list[str]:
    return [f"{r['study']} trial {r['best_trial']}: {json.dumps(r['best_params'], sort_keys=True)}"
            for r in entry["studies"] if r["best_params"] is not None]


# -- renderers -------------------------------------------------------------------------------------


def _aligned(header, rows) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (header, *rows)]


def render_table(board: dict) -> str:
    lines = [f"storage: {board['storage']}"]
    for entry in board["datasets"]:
        lines += ["", f"{entry['dataset']}: {fairness_note(entry)}"]
        lines += ["  " + line for line in _aligned(COLUMNS, [cells(r) for r in entry["studies"]])]
        lines += ["  " + _winner_line(entry), "  best params:"]
        lines += ["    " + line for line in _params_lines(entry)]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(board: dict) -> str:
    lines = ["# ANN vs CNN leaderboard", "", f"Storage `{board['storage']}`, generated {board['generated_at']}.", ""]
    for entry in board["datasets"]:
        lines += [f"## {entry['dataset']}", "", f"{fairness_note(entry)}", ""]
        header = ["winner" if c == "" else c for c in COLUMNS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_escape(c) for c in cells(r)) + " |" for r in entry["studies"]]
        lines += ["", _winner_line(entry), "", "Best params:", ""]
        lines += [f"- `{line}`" for line in _params_lines(entry)]
        lines.append("")
    return "\n".join(lines)


CSV_FIELDS = ("dataset", "study", "model", "metric", "direction", "winner", "best_value", "best_trial",
              "best_is_baseline", "test_metric", "test_value", "test_std", "test_seeds", "test_trial",
              "baseline_name", "baseline_trial", "baseline_state", "baseline_value", "vs_baseline", "n_params",
              "train_seconds", "epochs_run", "best_epoch", "complete", "pruned", "failed", "running",
              "search_seconds", "fair", "differs", "fingerprint", "split_seed", "subset", "epochs", "sampler",
              "pruner", "best_params")


def render_csv(board: dict) -> str:
    """One row per study, full precision; nested settings as JSON strings."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in board["datasets"]:
        for row in entry["studies"]:
            out = {k: row.get(k) for k in CSV_FIELDS}
            out.update(fair=entry["fair"], differs=",".join(entry["differs"]))
            for key in ("sampler", "pruner", "best_params"):
                out[key] = json.dumps(row[key], sort_keys=True) if row[key] is not None else ""
            writer.writerow({k: "" if v is None else v for k, v in out.items()})
    return buffer.getvalue()


def render_json(board: dict) -> str:
    return json.dumps(board, indent=2) + "\n"


def render_html(board: dict, url: str) -> str:
    """A self-contained page: the tables plus every figure embedded as a base64 PNG."""
    from anncnn_tune.results import plots

    storage = open_storage(url, must_exist=True)

    def image(fig, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{plots.png_base64(fig)}">'

    body = [(f"<h1>ANN vs CNN leaderboard</h1><p>Storage <code>{html.escape(board['storage'])}</code>, generated "
            f"{html.escape(board['generated_at'])}.</p>"), image(plots.leaderboard_bars(board["datasets"]),
                                                                "leaderboard bar chart")]
    for entry in board["datasets"]:
        fair = "fair" if entry["fair"] else "unfair"
        body.append(f"<h2>{html.escape(entry['dataset'])}</h2><p class='{fair}'>{html.escape(fairness_note(entry))}"
                    f"</p>")
        header = "".join(f"<th>{html.escape(c or 'winner')}</th>" for c in COLUMNS)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(r)) + "</tr>"
                       for r in entry["studies"])
        body.append(f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")
        body.append(f"<p>{html.escape(_winner_line(entry))}</p><ul>"
                    + "".join(f"<li><code>{html.escape(line)}</code></li>" for line in _params_lines(entry))
                    + "</ul>")
        for row in entry["studies"]:
            study = optuna.load_study(study_name=row["study"], storage=storage)
            body.append(f"<h3>{html.escape(row['study'])}</h3><div class='figs'>")
            body.append(image(plots.optimization_history(study), f"{row['study']} optimization history"))
            body.append(image(plots.param_importances(study), f"{row['study']} parameter importances"))
            body.append("</div><div>")  # the two-panel learning curves get a row of their own
            if row["best_trial"] is not None:
                trial = next(t for t in study.get_trials(deepcopy=False) if t.number == row["best_trial"])
                curve = [{"label": f"trial {trial.number} (search)", "history": trial.user_attrs.get("history")}]
                body.append(image(plots.learning_curves(curve, row["metric"], title=f"{row['study']}: best trial",
                                                        test=row["test_value"] if row["test_trial"] ==
                                                        row["best_trial"] else None),
                                  f"{row['study']} learning curves"))
            body.append("</div>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
             ".unfair{color:#b00;font-weight:bold}img{max-width:100%;margin:4px}"
             ".figs img{max-width:48%}code{font-size:85%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ANN vs CNN leaderboard</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def render(board: dict, fmt: str, url: str) -> str:
    if fmt == "table":
        return render_table(board)
    if fmt == "markdown":
        return render_markdown(board)
    if fmt == "csv":
        return render_csv(board)
    if fmt == "json":
        return render_json(board)
    if fmt == "html":
        return render_html(board, url)
    raise ValueError(fmt)
