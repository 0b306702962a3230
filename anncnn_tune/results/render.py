"""`anncnn-tune compare`, its third job: write the leaderboard in one of FORMATS.

The table, Markdown and HTML views share TABLE (header, cell) and the dataset's lines (fairness,
verdict, frontier, classical reference); CSV and JSON carry the full-precision values. The API
imports FORMATS from here at import time (the command line's --format choices), so this module
loads nothing heavy at its top: the leaderboard's fields, the fairness rule's numbers and the plots
are imported where they are used.
"""

from __future__ import annotations

import csv
import html
import io
import json
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

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


def _test_cell(row: dict) -> str:
    if row["test_value"] is None:
        return "—"
    test = f"{num(row['test_value'])}±{num(row['test_std'])}"
    return test + (f" (trial {row['test_trial']})" if row["test_trial"] != row["best_trial"] else "")


def _baseline_cell(row: dict) -> str:
    """The study's baseline trial (a named configuration enqueued first; not the classical reference)."""
    if row["baseline_name"] is None:
        return "—"
    if row["baseline_value"] is None:
        return f"{row['baseline_name']} (trial {row['baseline_trial']}, {row['baseline_state']})"
    return f"{num(row['baseline_value'])} {row['baseline_name']} (trial {row['baseline_trial']})"


def _or_dash(key: str, form: str):
    return lambda row: "—" if row[key] is None else format(row[key], form)


@dataclass(frozen=True)
class Column:
    """One column of the table, Markdown and HTML views: its header and how a row's cell reads."""

    header: str
    cell: Callable[[dict], str]
    detail: bool = False  # shown by --wide, Markdown and HTML; left out of the 120-column text table


TABLE: tuple[Column, ...] = (
    Column("", lambda r: "*" if r["winner"] else ""),
    Column("study", lambda r: r["study"]),
    Column("family", lambda r: r["model"]),
    Column("metric", lambda r: r["metric"], detail=True),
    Column("best val", lambda r: num(r["best_value"])),
    Column("trial", lambda r: "—" if r["best_trial"] is None
           else str(r["best_trial"]) + (" baseline" if r["best_is_baseline"] else "")),
    Column("test", _test_cell),
    Column("baseline", _baseline_cell, detail=True),
    Column("vs baseline", _or_dash("vs_baseline", "+.4f")),
    Column("params", _or_dash("n_params", ",")),
    Column("train s", _or_dash("train_seconds", ".1f"), detail=True),
    Column("epochs", lambda r: "—" if r["epochs_run"] is None else f"{r['best_epoch']}/{r['epochs_run']}",
           detail=True),
    Column("trials c/p/f", lambda r: f"{r['complete']}/{r['pruned']}/{r['failed']}"),
    Column("search s", lambda r: f"{r['search_seconds']:.1f}"),
    Column("epochs spent", lambda r: f"{r['epochs_spent']:g}", detail=True),
    Column("FLOPs/sample", _or_dash("flops_per_sample", ","), detail=True),
    Column("ms/sample b1, b256", lambda r: "—" if r["latency_ms_b1"] is None
           else f"{r['latency_ms_b1']:.3f}, {r['latency_ms_b256']:.4f}", detail=True),
    Column("test scored", lambda r: f"{r['test_scorings']}x", detail=True),
)
WIDE_COLUMNS = tuple(c.header for c in TABLE)
COLUMNS = tuple(c.header for c in TABLE if not c.detail)  # the text table without --wide
TEXT_WIDTH = 120  # the text table and its lines fit this many columns (without --wide)


def cells(row: dict, wide: bool = True) -> list[str]:
    return [column.cell(row) for column in TABLE if wide or not column.detail]


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
    if _table_only(entry):
        note = (f"{families} on a table, where no CNN applies: the comparison is the net against gradient boosting "
                + ("(classical reference below)" if entry.get("classical") else
                   f"(`anncnn-tune reference --study {entry['studies'][0]['study']}`)"))
    elif len(entry["studies"]) < 2:
        note = f"only {families} so far (no comparison yet)"
    elif entry["fair"]:
        note = f"{families} share the same data, splits and budget"
    else:
        diffs = "; ".join(f"{k}: " + ", ".join(f"{s}={json.dumps(v)}" for s, v in values.items()) + _ratio(k, values)
                          for k, values in entry["differs"].items())
        note = f"NOT COMPARABLE: {families} studies differ in {diffs}"
    return f"{note} — " + ", ".join(parts) if parts else note


def _ratio(key: str, values: dict) -> str:
    """For a search budget, by how much it differs (the fairness rule's tolerance beside it)."""
    from anncnn_tune.results.fairness import BUDGET_KEYS, BUDGET_TOLERANCE

    if key not in BUDGET_KEYS:
        return ""
    low, high = min(values.values()), max(values.values())
    return f" ({high / max(low, 1):.1f}x, more than the {BUDGET_TOLERANCE}x allowed)"


def _table_only(entry: dict) -> bool:
    """A single study of table data: a CNN study cannot exist, so its comparison is the classical one."""
    return len(entry["studies"]) == 1 and entry["studies"][0].get("kind") == "tabular"


def _winner_line(entry: dict) -> str:
    """The verdict (from the test split only) and, apart from it, who leads on validation."""
    scored = [r for r in entry["studies"] if r["best_value"] is not None]
    metric = scored[0]["metric"] if scored else "validation"
    if entry["winner"]:
        lead = f"best {metric}: " + ", ".join(entry["winner"]) + " (* in the table; not a verdict)"
    elif not scored:
        lead = "best validation: none yet"
    elif "metric" in entry["differs"]:
        lead = "best validation: not compared (the studies optimise different metrics)"
    else:  # one study has a best value: it is in the table, and there is no one to lead
        lead = f"best {metric}: {scored[0]['study']} {num(scored[0]['best_value'])} (the only study with a complete trial)"
    return f"verdict: {entry['verdict']['line']}; {lead}"


def _params_lines(entry: dict) -> list[str]:
    return [f"{r['study']} trial {r['best_trial']}: {json.dumps(r['best_params'], sort_keys=True)}"
            for r in entry["studies"] if r["best_params"] is not None]


def _reference_budget(ref: dict) -> str:
    search = ref.get("search")
    if not search:  # a reference fitted before searches were recorded
        return f"light grid of {ref.get('grid_size')}"
    if search["method"] == "grid":
        return f"grid of {search['trials']}"
    return f"tuned by {search['method'].upper()} over {search['trials']} trials, {search['budget']}"


def classical_lines(entry: dict, detail: bool = True) -> list[str]:
    """The classical reference, then one line per retrained net: the net is better, worse, or not
    significantly different (verdict.verdict() over seeds, and over test examples for classes).

    detail: the reference's chosen setting too (left out of the 120-column text table)."""
    c = entry.get("classical")
    if not c:
        return ["classical reference: none yet (`anncnn-tune reference --study NAME`)"]
    ref = c["reference"]
    if ref.get("per_seed_values"):
        spread = (f" over {ref['seeds']} seeds (deterministic: the same model each seed)" if ref.get("deterministic")
                  else f"±{num(ref['test_std'])} over {ref['seeds']} seeds")
    else:
        spread = " (one fit)"
    setting = f", setting {json.dumps(ref['setting'], sort_keys=True)}" if detail else ""
    line = (f"classical reference: {ref['model']} test {ref['metric']} {num(ref['test'])}{spread} (validation "
            f"{num(ref['validation'])}, {_reference_budget(ref)}{setting})")
    if not c["tested"]:
        return [line + "; no network retrained yet"]
    if not c.get("comparisons"):  # a reference recorded before compare judged each net against it
        beaten = c["beaten_by"]
        return [line + ("; above it on test: " + ", ".join(beaten) if beaten else "; no network beats it on test")]
    lines = [line]
    for comp in c["comparisons"]:
        elsewhere = f" (the one fitted on {comp['reference_study']})" if comp["reference_study"] != comp["study"] else ""
        lines.append(f"{comp['study']} vs classical reference{elsewhere}: {comp['word'].upper()}: "
                     f"{comp['verdict']['line']}")
    return lines


def frontier_line(entry: dict) -> str:
    """"a 38k-parameter CNN within 0.3 points of the best at 1/40 the parameters" (validation values)."""
    cheap = entry["frontier"].get("cheapest")
    if not cheap:
        return "cost frontier: no complete trials with a parameter count yet"
    on_front = len(entry["frontier"]["front"])
    on_front = f"{on_front} trial{'s' if on_front != 1 else ''} on it"
    best = cheap["best"]
    unit = " points" if entry["frontier"]["tolerance"].endswith("points") else "%"
    if cheap["trial"] == best["trial"] and cheap["study"] == best["study"]:
        return (f"cost frontier ({on_front}): the best trial is also the "
                f"cheapest within {entry['frontier']['tolerance']}: {cheap['study']} trial {cheap['trial']}, "
                f"{cheap['cost']:,} parameters")
    return (f"cost frontier ({on_front}): a {cheap['cost']:,}-parameter "
            f"{cheap['model'].upper()} ({cheap['study']} trial {cheap['trial']}) within {cheap['gap']:.2f}{unit} of "
            f"the best ({best['study']} trial {best['trial']}, validation) at 1/{cheap['cost_ratio']:.1f} the "
            "parameters")


# -- renderers -------------------------------------------------------------------------------------

def _aligned(header, rows) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (header, *rows)]


def _wrapped(text: str, indent: str, wide: bool) -> list[str]:
    """A line of prose, wrapped to TEXT_WIDTH (continuation lines indented two more), or as is with --wide."""
    if wide:
        return [indent + text]
    return textwrap.wrap(text, TEXT_WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=False, break_on_hyphens=False)


def left_out_lines(board: dict) -> list[str]:
    """One warning line per study left out of the board because its data changed or moved."""
    return [f"warning: study {s['study']} ({s['dataset']}) left out of the comparison: {s['reason']}"
            for s in board.get("left_out", ())]


def render_table(board: dict, wide: bool = False) -> str:
    """The text table: 120 columns with the main figures; wide=True adds every column and the best params."""
    lines = [f"storage: {board['storage']}"]  # the left-out warnings go to stderr (api.compare's log)
    for entry in board["datasets"]:
        lines += ["", *_wrapped(f"{entry['dataset']}: {fairness_note(entry)}", "", wide)]
        header = WIDE_COLUMNS if wide else COLUMNS
        lines += ["  " + line for line in _aligned(header, [cells(r, wide) for r in entry["studies"]])]
        for line in (_winner_line(entry), frontier_line(entry), *classical_lines(entry, detail=wide)):
            lines += _wrapped(line, "  ", wide)
        if wide:
            lines += ["  best params:", *("    " + line for line in _params_lines(entry))]
        else:
            lines.append("  best params, baselines, FLOPs and latency: --wide, --format json or the html report")
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(board: dict) -> str:
    lines = ["# ANN vs CNN leaderboard", "", f"Storage `{board['storage']}`, generated {board['generated_at']}.", ""]
    lines += [*(f"> {_md_escape(line)}" for line in left_out_lines(board)), ""] if board.get("left_out") else []
    for entry in board["datasets"]:
        lines += [f"## {entry['dataset']}", "", f"{fairness_note(entry)}", ""]
        header = ["winner" if c == "" else c for c in WIDE_COLUMNS]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_escape(c) for c in cells(r)) + " |" for r in entry["studies"]]
        lines += ["", _winner_line(entry), "", frontier_line(entry), ""]
        lines += [*(f"- {_md_escape(line)}" for line in classical_lines(entry)), "", "Best params:", ""]
        lines += [f"- `{line}`" for line in _params_lines(entry)]
        lines.append("")
    return "\n".join(lines)


def render_csv(board: dict) -> str:
    """One row per study, full precision; nested settings as JSON strings."""
    from anncnn_tune.results.leaderboard import CSV_FIELDS, FIELDS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in board["datasets"]:
        for row in entry["studies"]:
            writer.writerow({f.name: f.csv(f.entry(entry) if f.entry else row.get(f.name))
                             for f in FIELDS if f.csv is not None})
    return buffer.getvalue()


def render_json(board: dict) -> str:
    return json.dumps(board, indent=2) + "\n"


def render_html(board: dict, studies: Mapping[str, optuna.Study]) -> str:
    """A self-contained page: the tables plus every figure embedded as a base64 PNG.

    studies: the board's studies by name (leaderboard.stored_studies), whose trials the figures draw.
    """
    from anncnn_tune.results import plots
    from anncnn_tune.service.records import TrialRecord

    def image(fig, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{plots.png_base64(fig)}">'

    body = [(f"<h1>ANN vs CNN leaderboard</h1><p>Storage <code>{html.escape(board['storage'])}</code>, generated "
            f"{html.escape(board['generated_at'])}.</p>"),
            *(f"<p class='unfair'>{html.escape(line)}</p>" for line in left_out_lines(board)), image(plots.leaderboard_bars(board["datasets"]),
                                                                "leaderboard bar chart")]
    for entry in board["datasets"]:
        fair = "fair" if entry["fair"] else "unfair"
        body.append(f"<h2>{html.escape(entry['dataset'])}</h2><p class='{fair}'>{html.escape(fairness_note(entry))}"
                    f"</p>")
        header = "".join(f"<th>{html.escape(c or 'winner')}</th>" for c in WIDE_COLUMNS)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells(r)) + "</tr>"
                       for r in entry["studies"])
        body.append(f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")
        body.append(f"<p><b>{html.escape(_winner_line(entry))}</b></p><p>{html.escape(frontier_line(entry))}</p>"
                    + "".join(f"<p>{html.escape(line)}</p>" for line in classical_lines(entry)) + "<ul>"
                    + "".join(f"<li><code>{html.escape(line)}</code></li>" for line in _params_lines(entry))
                    + "</ul>")
        body.append(image(plots.cost_frontier(entry), f"{entry['dataset']} cost frontier"))
        for row in entry["studies"]:
            study = studies[row["study"]]
            body.append(f"<h3>{html.escape(row['study'])}</h3><div class='figs'>")
            body.append(image(plots.optimization_history(study), f"{row['study']} optimization history"))
            body.append(image(plots.param_importances(study), f"{row['study']} parameter importances"))
            body.append("</div><div>")  # the two-panel learning curves get a row of their own
            if row["best_trial"] is not None:
                trial = next(t for t in study.get_trials(deepcopy=False) if t.number == row["best_trial"])
                curve = [{"label": f"trial {trial.number} (search)", "history": TrialRecord.read(trial).history}]
                body.append(image(plots.learning_curves(curve, row["metric"], title=f"{row['study']}: best trial",
                                                        test=row["test_value"] if row["test_trial"] ==
                                                        row["best_trial"] else None),
                                  f"{row['study']} learning curves"))
            body.append("</div>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:80%}"
             "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
             ".unfair{color:#b00;font-weight:bold}img{max-width:100%;margin:4px}"
             ".figs img{max-width:48%}code{font-size:85%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ANN vs CNN leaderboard</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


# The formats, in the order --format lists them; this is their one list (FORMATS follows from it).
RENDERERS: dict[str, Callable[..., str]] = {
    "table": render_table,
    "markdown": render_markdown,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}
FORMATS: tuple[str, ...] = tuple(RENDERERS)


def render(board: dict, fmt: str, studies: Mapping[str, optuna.Study] | None = None, wide: bool = False) -> str:
    """The board in one of FORMATS; html needs the board's studies (leaderboard.stored_studies) for its figures.
    wide: the text table with every column and the best params (the other formats always have them)."""
    if fmt not in RENDERERS:
        raise ValueError(fmt)
    if fmt == "table":
        return render_table(board, wide)
    if fmt == "html":
        if studies is None:
            raise ValueError("the html format draws the studies' figures: pass studies=stored_studies(url, board)")
        return render_html(board, studies)
    return RENDERERS[fmt](board)
