"""`anncnn-tune compare`: the ANN-vs-CNN leaderboard, from the storage alone.

Every study carries its spec and data description, and retrain adds its test metrics
(service/records.py reads them all). So one pass over the storage gives, per dataset, each
study's best trial, its reference baseline, its test score once retrained, and whether the
studies being compared share data, splits and budget. `leaderboard()` builds plain dicts; the
renderers below turn the same dicts into a table, Markdown, CSV, JSON or an HTML report, so
every format carries the same numbers.

A row's values are declared once, in FIELDS (name, source, CSV form); the table's cells once, in
TABLE (header, cell). A new leaderboard column is a Field and a Column here, plus, where it shows
a trial attribute not yet read, that attribute in records.TrialRecord.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from anncnn_tune.data.source import source_from_dict
from anncnn_tune.errors import UserError
from anncnn_tune.results import cost as C
from anncnn_tune.results import verdict as V
from anncnn_tune.results.export import unchanged_spec
from anncnn_tune.service.readonly import open_storage_readonly
from anncnn_tune.service.records import (
    FAIR_KEYS,
    StudyRecord,
    TrialRecord,
    best_trial,
    decode_correct,
    is_maximize,
)
from anncnn_tune.service.storage import mask

FORMATS = ("table", "markdown", "csv", "json", "html")
FAMILY_ORDER = {"ann": 0, "cnn": 1}
# Search budgets are comparable when the larger is at most this many times the smaller, both in
# finished trials (complete + pruned) and in epochs trained over all trials (the compute spent,
# in the unit the two families share; seconds would charge the CNN for being slower per epoch),
# or when they differ by less than one trial's worth (one trial, or one trial's epoch budget): with
# the same settings a pruner's decisions alone make the epochs spent differ by that much.
BUDGET_TOLERANCE = 1.5
BUDGET_KEYS = ("finished_trials", "epochs_spent")
FRACTION_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")  # shown in points (×100)


# -- the data --------------------------------------------------------------------------------------


def _duration(trial) -> float:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0


@dataclass(frozen=True)
class StudyFacts:
    """What a leaderboard row is read from: a study's record, its best trial and reference, its test."""

    name: str
    record: StudyRecord
    maximize: bool
    trials: list
    states: dict
    best: FrozenTrial | None
    best_record: TrialRecord  # all None where there is no best trial yet
    reference: FrozenTrial | None  # the best baseline trial, else the first one
    test_trial: int | None
    test: dict | None

    @classmethod
    def read(cls, study: optuna.Study) -> StudyFacts:
        maximize = is_maximize(study)
        trials = study.get_trials(deepcopy=False)
        best = best_trial(trials, maximize)
        baselines = [t for t in trials if TrialRecord.read(t).baseline]
        record = StudyRecord.read(study)
        test_trial, test = _test_entry(record, best.number if best else None)
        return cls(name=study.study_name, record=record, maximize=maximize, trials=trials,
                   states={s: sum(t.state == s for t in trials) for s in TrialState}, best=best,
                   best_record=TrialRecord.read(best) if best else TrialRecord(number=-1),
                   reference=best_trial(baselines, maximize) or (baselines[0] if baselines else None),
                   test_trial=test_trial, test=test)

    @property
    def spec(self) -> dict:
        return self.record.spec

    @property
    def reference_value(self) -> float | None:
        ref = self.reference
        return ref.value if ref is not None and ref.state == TrialState.COMPLETE else None

    def test_field(self, key: str):
        return self.test[key] if self.test else None


def _test_entry(record: StudyRecord, best_number: int | None) -> tuple[int | None, dict | None]:
    """The best trial's recorded test metrics; else the most recently retrained trial's."""
    recorded = record.test_metrics
    if best_number is not None and best_number in recorded:
        return best_number, recorded[best_number]
    if recorded:
        return max(recorded.items(), key=lambda item: item[1].get("retrained_at", ""))
    return None, None


def _vs_reference(f: StudyFacts) -> float | None:
    ref = f.reference_value
    return f.best.value - ref if ref is not None and f.best is not None else None


def _latency_ms(f: StudyFacts, key: str) -> float | None:
    latency = (f.test_field("cost") or {}).get("latency_s") or {}
    return round(latency[key] * 1e3, 5) if key in latency else None


def _trial_points(f: StudyFacts) -> list[dict]:
    """Every complete trial as a point of the accuracy-versus-cost plane (cost: parameters)."""
    return [{"study": f.name, "model": f.spec["model"], "trial": t.number, "value": t.value,
             "cost": TrialRecord.read(t).n_params} for t in f.trials
            if t.state == TrialState.COMPLETE and t.value is not None and TrialRecord.read(t).n_params]


def _json_or_empty(value) -> str:
    return json.dumps(value, sort_keys=True) if value is not None else ""


def _plain(value):
    return "" if value is None else value


@dataclass(frozen=True)
class Field:
    """One value of a leaderboard row: its name (row key, JSON key, CSV column) and where it comes from.

    value(facts) reads a study's row; entry(dataset_entry) reads the dataset's instead (CSV only, as
    the JSON has it once per dataset). csv: how the CSV writes it; None leaves it out of the CSV.
    """

    name: str
    value: Callable[[StudyFacts], object] | None = None
    entry: Callable[[dict], object] | None = None
    csv: Callable[[object], object] | None = _plain


# The row, in CSV column order. A new column: a Field here (and a Column below for the table).
FIELDS: tuple[Field, ...] = (
    Field("dataset", lambda f: _dataset_label(f.spec["dataset"])),
    Field("study", lambda f: f.name),
    Field("model", lambda f: f.spec["model"]),
    Field("metric", lambda f: f.spec["metric"]),
    Field("direction", lambda f: "maximize" if f.maximize else "minimize"),
    Field("winner", lambda f: False),  # dataset_entry decides
    Field("best_value", lambda f: f.best.value if f.best else None),
    Field("best_trial", lambda f: f.best.number if f.best else None),
    Field("best_is_baseline", lambda f: f.best_record.baseline),
    Field("test_metric", lambda f: f.test_field("metric")),
    Field("test_value", lambda f: f.test_field("mean")),
    Field("test_std", lambda f: f.test_field("std")),
    Field("test_seeds", lambda f: f.test_field("seeds")),
    Field("test_trial", lambda f: f.test_trial),
    Field("baseline_name", lambda f: TrialRecord.read(f.reference).baseline if f.reference else None),
    Field("baseline_trial", lambda f: f.reference.number if f.reference else None),
    Field("baseline_state", lambda f: f.reference.state.name.lower() if f.reference else None),
    Field("baseline_value", lambda f: f.reference_value),
    Field("vs_baseline", _vs_reference),
    Field("n_params", lambda f: f.best_record.n_params),
    Field("train_seconds", lambda f: f.best_record.train_seconds),
    Field("epochs_run", lambda f: f.best_record.epochs_run),
    Field("best_epoch", lambda f: f.best_record.best_epoch),
    Field("complete", lambda f: f.states[TrialState.COMPLETE]),
    Field("pruned", lambda f: f.states[TrialState.PRUNED]),
    Field("failed", lambda f: f.states[TrialState.FAIL]),
    Field("running", lambda f: f.states[TrialState.RUNNING] + f.states[TrialState.WAITING]),
    # Summed trial durations: the compute spent, independent of idle gaps between resumed runs.
    Field("search_seconds", lambda f: round(sum(_duration(t) for t in f.trials), 3)),
    Field("finished_trials", lambda f: f.states[TrialState.COMPLETE] + f.states[TrialState.PRUNED]),
    Field("epochs_spent", lambda f: round(sum(TrialRecord.read(t).epochs_spent for t in f.trials), 3)),
    Field("test_scorings", lambda f: f.record.test_scorings),
    Field("test_per_seed", lambda f: f.test_field("per_seed_values"), csv=None),
    Field("test_correct", lambda f: f.test_field("correct"), csv=None),
    Field("flops_per_sample", lambda f: (f.test_field("cost") or {}).get("flops_per_sample")),
    Field("latency_ms_b1", lambda f: _latency_ms(f, "batch_1")),
    Field("latency_ms_b256", lambda f: _latency_ms(f, "batch_256")),
    Field("trial_points", lambda f: _trial_points(f), csv=None),
    Field("classical", lambda f: f.record.reference, csv=_json_or_empty),  # moved to the dataset's frontier  # dropped once the verdict is drawn
    Field("fair", entry=lambda e: e["fair"]),
    Field("differs", entry=lambda e: ",".join(e["differs"])),
    Field("verdict", entry=lambda e: e["verdict"]["line"]),
    *(Field(key, lambda f, key=key: f.record.fairness()[key], csv=_json_or_empty if key in ("sampler", "pruner")
            else _plain) for key in FAIR_KEYS if key != "metric"),
    Field("best_params", lambda f: dict(f.best.params) if f.best else None, csv=_json_or_empty),
    Field("task", lambda f: f.record.data.get("task"), csv=None),
)
CSV_FIELDS = tuple(f.name for f in FIELDS if f.csv is not None)


def _dataset_label(dataset) -> str:
    """A registry key, or a user dataset's key (its file stem or folder name), to group studies by."""
    return dataset if isinstance(dataset, str) else source_from_dict(dataset).key


def study_row(study: optuna.Study) -> dict:
    """One leaderboard row: a study's best trial, its reference baseline, its budget and its test score."""
    facts = StudyFacts.read(study)
    return {f.name: f.value(facts) for f in FIELDS if f.value is not None}


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
    families = sorted({r["model"] for r in rows})
    return {"dataset": dataset, "families": families, "fair": not differs, "shared": shared, "differs": differs,
            "winner": winner, "verdict": _verdict(rows, not differs), "frontier": _frontier(rows),
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


def classical_line(entry: dict) -> str:
    """"classical reference: histogram gradient boosting test accuracy 0.9400 ...; no network beats it"."""
    c = entry.get("classical")
    if not c:
        return "classical reference: none yet (`anncnn-tune reference --study NAME`)"
    ref = c["reference"]
    line = (f"classical reference: {ref['model']} test {ref['metric']} {num(ref['test'])} (validation "
            f"{num(ref['validation'])}, {ref['setting']}, light grid of {ref['grid_size']})")
    if not c["tested"]:
        return line + "; no network retrained yet"
    if c["beaten_by"]:
        return line + ("; above it on test (mean over seeds; one test split, no significance test): "
                       + ", ".join(c["beaten_by"]))
    return line + "; no network beats it on test"


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


def _verdict(rows: list[dict], fair: bool) -> dict:
    """What the test split says about the first two studies (ANN, then CNN): verdict.verdict's dict.

    The per-example correctness is used here and dropped from the rows (it is large, and the JSON
    keeps the verdict's numbers instead)."""
    for r in rows:
        r["test_correct"] = decode_correct(r.pop("test_correct", None))
    if len(rows) < 2:
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
        out = V.verdict(a, b, maximize=rows[0]["direction"] == "maximize", fair=fair,
                        points=metric in FRACTION_METRICS)
        if len(rows) > 2:
            out["line"] += f" (first two of {len(rows)} studies)"
    return _drop_correct(rows, out)


def _drop_correct(rows: list[dict], out: dict) -> dict:
    for r in rows:
        r.pop("test_correct", None)
    return out


def leaderboard(url: str, datasets: tuple[str, ...] | list[str] | None = None) -> dict:
    """Per dataset, the anncnn-tune studies of the storage side by side (reads only; writes nothing)."""
    storage = open_storage_readonly(url)
    rows, foreign = [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if not StudyRecord.read_summary(summary, storage).is_ours:
            foreign.append(summary.study_name)  # a study some other tool made: nothing to compare it on
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        unchanged_spec(study)  # a user dataset changed since its study began is refused, not compared
        rows.append(study_row(study))
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


def _reference_cell(row: dict) -> str:
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


TABLE: tuple[Column, ...] = (
    Column("", lambda r: "*" if r["winner"] else ""),
    Column("study", lambda r: r["study"]),
    Column("family", lambda r: r["model"]),
    Column("metric", lambda r: r["metric"]),
    Column("best val", lambda r: num(r["best_value"])),
    Column("trial", lambda r: "—" if r["best_trial"] is None
           else str(r["best_trial"]) + (" ref" if r["best_is_baseline"] else "")),
    Column("test", _test_cell),
    Column("reference", _reference_cell),
    Column("vs ref", _or_dash("vs_baseline", "+.4f")),
    Column("params", _or_dash("n_params", ",")),
    Column("train s", _or_dash("train_seconds", ".1f")),
    Column("epochs", lambda r: "—" if r["epochs_run"] is None else f"{r['best_epoch']}/{r['epochs_run']}"),
    Column("trials c/p/f", lambda r: f"{r['complete']}/{r['pruned']}/{r['failed']}"),
    Column("search s", lambda r: f"{r['search_seconds']:.1f}"),
    Column("epochs spent", lambda r: f"{r['epochs_spent']:g}"),
    Column("FLOPs/sample", _or_dash("flops_per_sample", ",")),
    Column("ms/sample b1, b256", lambda r: "—" if r["latency_ms_b1"] is None
           else f"{r['latency_ms_b1']:.3f}, {r['latency_ms_b256']:.4f}"),
    Column("test scored", lambda r: f"{r['test_scorings']}x"),
)
COLUMNS = tuple(c.header for c in TABLE)


def cells(row: dict) -> list[str]:
    return [column.cell(row) for column in TABLE]


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
        diffs = "; ".join(f"{k}: " + ", ".join(f"{s}={json.dumps(v)}" for s, v in values.items()) + _ratio(k, values)
                          for k, values in entry["differs"].items())
        note = f"NOT COMPARABLE: {families} studies differ in {diffs}"
    return f"{note} — " + ", ".join(parts) if parts else note


def _ratio(key: str, values: dict) -> str:
    """For a search budget, by how much it differs (the fairness rule's tolerance beside it)."""
    if key not in BUDGET_KEYS:
        return ""
    low, high = min(values.values()), max(values.values())
    return f" ({high / max(low, 1):.1f}x, more than the {BUDGET_TOLERANCE}x allowed)"


def _winner_line(entry: dict) -> str:
    """The verdict (from the test split only) and, apart from it, who leads on validation."""
    lead = ("best validation: none yet" if not entry["winner"] else
            "best validation: " + ", ".join(entry["winner"]) + " (* in the table; not a verdict)")
    return f"verdict: {entry['verdict']['line']}; {lead}"


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
        lines += ["  " + _winner_line(entry), "  " + frontier_line(entry), "  " + classical_line(entry),
                  "  best params:"]
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
        lines += ["", _winner_line(entry), "", frontier_line(entry), "", classical_line(entry), "", "Best params:", ""]
        lines += [f"- `{line}`" for line in _params_lines(entry)]
        lines.append("")
    return "\n".join(lines)


def render_csv(board: dict) -> str:
    """One row per study, full precision; nested settings as JSON strings."""
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


def stored_studies(url: str, board: dict) -> dict[str, optuna.Study]:
    """The leaderboard's studies, loaded once, for the figures of the HTML report (reads only)."""
    storage = open_storage_readonly(url)
    return {row["study"]: optuna.load_study(study_name=row["study"], storage=storage)
            for entry in board["datasets"] for row in entry["studies"]}


def render_html(board: dict, studies: Mapping[str, optuna.Study]) -> str:
    """A self-contained page: the tables plus every figure embedded as a base64 PNG.

    studies: the board's studies by name (stored_studies), whose trials the figures draw.
    """
    from anncnn_tune.results import plots

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
        body.append(f"<p><b>{html.escape(_winner_line(entry))}</b></p><p>{html.escape(frontier_line(entry))}</p>"
                    f"<p>{html.escape(classical_line(entry))}</p><ul>"
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


def render(board: dict, fmt: str, studies: Mapping[str, optuna.Study] | None = None) -> str:
    """The board in one of FORMATS; html needs the board's studies (stored_studies) for its figures."""
    if fmt == "table":
        return render_table(board)
    if fmt == "markdown":
        return render_markdown(board)
    if fmt == "csv":
        return render_csv(board)
    if fmt == "json":
        return render_json(board)
    if fmt == "html":
        if studies is None:
            raise ValueError("the html format draws the studies' figures: pass studies=stored_studies(url, board)")
        return render_html(board, studies)
    raise ValueError(fmt)
