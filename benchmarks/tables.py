"""The tuned ANN against tuned gradient boosting (and RealMLP, where it installs) on real tables.

For each table, on one set of train/validation/test splits (the study's, 70/15/15, split seed 0):

- ANN: anncnn-tune through its API: `init` (scikit-learn's bundled sets are written to a CSV and go
  through `init` as a user's file would; California Housing and Telco churn are the built-in
  studies), `optimize` with --trials trials of at most --epochs epochs, `export` the best trial,
  `retrain` it on train+validation with --seeds seeds, each scored once on test.
- GB: `anncnn-tune reference` on the same study: scikit-learn's histogram gradient boosting, tuned
  by TPE with as many trials as the net's search finished (at least 10), refit on train+validation
  with --seeds seeds, scored once on test; `compare`'s word for the net against it.
- RealMLP: pytabkit's RealMLP-TD ("tuned defaults", Holzmüller et al. 2024), as an outside
  reference, if --realmlp-python names a Python that has pytabkit (kept in a separate virtual
  environment: it pins its own dependencies). It gets the same preprocessed matrices the net gets
  (its own robust scaling and smooth clipping on top), fits on train with the validation split for
  its best-epoch choice, and is scored on test with the net's scoring code, once per seed.

The test metric is the study's (ROC AUC for binary, accuracy for several classes, MSE for
regression, in the target's units). Prints a Markdown table; --json writes every number.

    python benchmarks/tables.py --realmlp-python /tmp/pytabkit-venv/bin/python   # ~20 minutes on 2 cores
    python benchmarks/tables.py --tables wine,iris --trials 4 --epochs 5         # a minute
    python benchmarks/tables.py --quick                                          # checks the script only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED_DATA = REPO.parent / "shared" / "datasets"  # the offline copies (California Housing, Telco churn)


@dataclass(frozen=True)
class Table:
    name: str
    study: str | None  # a built-in study; None: a scikit-learn set written to CSV and put through init
    loader: str | None = None  # sklearn.datasets.load_<loader>
    task: str | None = None


TABLES = (
    Table("breast-cancer", None, "breast_cancer", "binary"),
    Table("wine", None, "wine", "multiclass"),
    Table("iris", None, "iris", "multiclass"),
    Table("diabetes", None, "diabetes", "regression"),
    Table("churn", "churn-ann"),
    Table("california-housing", "california-housing-ann"),
)

# RealMLP-TD in the other environment: reads the splits, writes each seed's test predictions.
REALMLP = r"""
import sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
d = np.load(sys.argv[1]); task = str(d["task"]); out = {}
for seed in [int(s) for s in sys.argv[4].split(",")]:
    cls = RealMLP_TD_Regressor if task == "regression" else RealMLP_TD_Classifier
    model = cls(random_state=seed, n_threads=int(sys.argv[3]), device="cpu", verbosity=0)
    started = time.perf_counter()
    model.fit(d["x_train"], d["y_train"], X_val=d["x_val"], y_val=d["y_val"])
    out[f"seconds_{seed}"] = np.array(time.perf_counter() - started)
    out[f"pred_{seed}"] = model.predict(d["x_test"]) if task == "regression" else model.predict_proba(d["x_test"])
np.savez(sys.argv[2], **out)
"""


def sklearn_csv(table: Table, folder: Path) -> Path:
    """A bundled scikit-learn set as a user's CSV: named columns, class names as the target."""
    import pandas as pd
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{table.loader}")()
    frame = pd.DataFrame(bunch.data, columns=[str(c).replace(" ", "_") for c in bunch.feature_names])
    names = getattr(bunch, "target_names", None)
    frame["target"] = (np.asarray(names)[bunch.target] if table.task != "regression" and names is not None
                       else bunch.target)
    path = folder / f"{table.name}.csv"
    frame.to_csv(path, index=False)
    return path


def mean_std(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
            "per_seed": [float(v) for v in arr]}


def realmlp(python: str, splits, seeds: list[int], threads: int, work: Path, timeout: float, log) -> dict:
    """RealMLP-TD's test metric per seed (the net's scoring code), or {"skipped": why}."""
    from anncnn_tune.results.reference import as_outputs, score_outputs

    data = work / f"{splits.key}-splits.npz"
    y = {name: getattr(splits, f"y_{name}") for name in ("train", "val", "test")}
    if splits.task != "regression":  # class indices as ints: RealMLP's classifier maps its classes itself
        y = {k: v.astype(np.int64) for k, v in y.items()}
    np.savez(data, task=splits.task, x_train=splits.x_train, x_val=splits.x_val, x_test=splits.x_test,
             y_train=y["train"], y_val=y["val"], y_test=y["test"])
    out = work / f"{splits.key}-realmlp.npz"
    try:
        done = subprocess.run([python, "-c", REALMLP, str(data), str(out), str(threads), ",".join(map(str, seeds))],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over its {timeout:.0f} s limit"}
    if done.returncode != 0:
        return {"skipped": "failed: " + (done.stderr.strip().splitlines() or ["no message"])[-1][:200]}
    preds = np.load(out)
    values, seconds = [], []
    for seed in seeds:
        raw = preds[f"pred_{seed}"]
        if splits.task == "binary" and raw.ndim == 1:
            raw = np.stack([1 - raw, raw], axis=1)
        scalars = score_outputs(splits.task, as_outputs(splits.task, raw), splits.y_test, splits.classes)
        values.append(scalars)
        seconds.append(float(preds[f"seconds_{seed}"]))
        log(f"  RealMLP-TD seed {seed}: {seconds[-1]:.1f}s")
    return {"values": values, "seconds": seconds}


def run_table(table: Table, args, url: str, work: Path, log) -> dict:
    import anncnn_tune as at
    from anncnn_tune.data import load_dataset
    from anncnn_tune.results.leaderboard import leaderboard
    from anncnn_tune.service.records import StudyRecord

    started = time.perf_counter()
    if table.study is None:
        init = at.init(sklearn_csv(table, work), target="target", task=table.task, name=table.name, out_dir=work,
                       force=True)
        study_file, study = str(next(f for f in init.files if str(f).endswith("-ann.yaml"))), f"{init.name}-ann"
    else:
        study_file, study = table.study, table.study
    log(f"{table.name}: optimize {study} ({args.trials} trials, at most {args.epochs} epochs)")
    result = at.optimize(study_file, storage=url, n_trials=args.trials, epochs=args.epochs, seed=0, device="cpu",
                         threads=args.threads, data_dir=str(args.data_dir), quiet=True, study_name=study)
    search_s = time.perf_counter() - started
    record = StudyRecord.read(result.study)
    if not record.test_metrics:  # a rerun of the script in the same --work resumes after the retrain
        run_file = work / f"{study}.yaml"
        at.export(study, storage=url, output=str(run_file))
        at.retrain(str(run_file), out=str(work / study), seeds=args.seeds, device="cpu",
                   data_dir=str(args.data_dir), storage=url, log=None, force=True)
    ann_s = time.perf_counter() - started
    log(f"{table.name}: ANN done in {ann_s:.0f}s; tuning gradient boosting")
    gb_started = time.perf_counter()
    ref = at.reference(study, storage=url, data_dir=str(args.data_dir), seeds=args.seeds, log=None)
    gb_s = time.perf_counter() - gb_started
    board = leaderboard(url)
    row_entry = next(e for e in board["datasets"] if any(r["study"] == study for r in e["studies"]))
    row = next(r for r in row_entry["studies"] if r["study"] == study)
    comparison = next(c for c in row_entry["classical"]["comparisons"] if c["study"] == study)
    key = ref["metric"]
    out = {"table": table.name, "study": study, "task": None, "metric": key,
           "ann": {**mean_std(row["test_per_seed"]), "trials": row["finished_trials"],
                   "search_seconds": round(search_s, 1), "seconds": round(ann_s, 1), "epochs": row["epochs"]},
           "gb": {"mean": ref["test"], "std": ref["test_std"], "per_seed": ref["per_seed_values"],
                  "trials": ref["search"]["trials"], "seconds": round(gb_s, 1), "deterministic": ref["deterministic"]},
           "vs_gb": {"word": comparison["word"], "line": comparison["verdict"]["line"]}}
    spec = record.spec
    splits = load_dataset(at_dataset(spec), data_dir=str(args.data_dir), seed=record.split_seed(0),
                          subset=spec.get("subset"))
    out["task"], out["rows"], out["features"] = splits.task, int(len(splits.y_train) + len(splits.y_val)
                                                                   + len(splits.y_test)), int(splits.x_train.shape[1])
    if args.realmlp_python:
        log(f"{table.name}: RealMLP-TD, {args.seeds} seeds")
        rm = realmlp(args.realmlp_python, splits, [k for k in range(args.seeds)], args.threads, work,
                     args.realmlp_timeout, log)
        out["realmlp"] = ({**mean_std([v[key] for v in rm["values"]]), "seconds": round(sum(rm["seconds"]), 1)}
                          if "values" in rm else rm)
    else:
        out["realmlp"] = {"skipped": "no --realmlp-python"}
    return out


def at_dataset(spec: dict):
    from anncnn_tune.data.source import source_from_dict

    return source_from_dict(spec["dataset"]) if isinstance(spec["dataset"], dict) else spec["dataset"]


def cell(result: dict) -> str:
    if "mean" not in result:
        return f"— ({result.get('skipped', 'not run')})"
    return f"{result['mean']:.4f} ± {result['std']:.4f}"


def markdown(results: list[dict]) -> str:
    head = ("| table | rows | features | task | test metric | ANN (tuned, retrained) | gradient boosting (tuned) "
            "| RealMLP-TD | ANN vs GB (compare) | ANN s | GB s | RealMLP s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['table']} | | | | | failed: {r['error']} | | | | | | |")
            continue
        best = "max" if r["metric"] in ("roc_auc", "accuracy", "f1", "r2") else "min"
        lines.append(f"| {r['table']} | {r['rows']} | {r['features']} | {r['task']} | {r['metric']} ({best}) | "
                     f"{cell(r['ann'])} | {cell(r['gb'])} | {cell(r['realmlp'])} | {r['vs_gb']['word']} | "
                     f"{r['ann']['seconds']:.0f} | {r['gb']['seconds']:.0f} | "
                     f"{_seconds(r['realmlp'])} |")
    return "\n".join(lines)


def _seconds(result: dict) -> str:
    return f"{result['seconds']:.0f}" if "seconds" in result else "—"


def machine(threads: int) -> dict:
    import sklearn
    import torch

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": threads,
            "torch": torch.__version__, "sklearn": sklearn.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "load_at_start": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", default=",".join(t.name for t in TABLES),
                        help="comma-separated, of: " + ", ".join(t.name for t in TABLES))
    parser.add_argument("--trials", type=int, default=12, help="ANN search trials (GB gets as many, at least 10)")
    parser.add_argument("--epochs", type=int, default=30, help="ANN epochs per trial and in the retrain")
    parser.add_argument("--seeds", type=int, default=3, help="retrain, GB refit and RealMLP seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch, OpenMP and BLAS threads")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ANNCNN_TUNE_DATA", SHARED_DATA)),
                        help="where California Housing and Telco churn lie (default: $ANNCNN_TUNE_DATA, else "
                             "../shared/datasets)")
    parser.add_argument("--realmlp-python", default=None, metavar="PYTHON",
                        help="a Python with pytabkit installed (a separate venv); without it RealMLP is skipped")
    parser.add_argument("--realmlp-timeout", type=float, default=900, help="seconds for one table's RealMLP seeds")
    parser.add_argument("--work", type=Path, default=None, help="storage and files (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="two small tables, 2 trials of 2 epochs, 2 seeds: checks "
                                                             "the script, measures nothing")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.tables, args.trials, args.epochs, args.seeds = "wine,diabetes", 2, 2, 2
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy's BLAS starts work
        os.environ[var] = str(args.threads)
    known = {t.name: t for t in TABLES}
    chosen = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in known]
    if unknown:
        parser.error(f"unknown table {unknown[0]!r}; choose from {', '.join(known)}")
    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="anncnn-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'tables.db'}"
    info = {"machine": machine(args.threads), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "trials": args.trials, "epochs": args.epochs, "seeds": args.seeds, "work": str(work)}
    log = lambda line: print(line, file=sys.stderr, flush=True)
    results = []
    for name in chosen:
        try:
            results.append(run_table(known[name], args, url, work, log))
        except Exception as exc:  # noqa: BLE001 - one table's failure is reported in its row; the others still run
            log(f"{name}: failed: {type(exc).__name__}: {exc}")
            results.append({"table": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        if args.json:  # after every table: a run cut short keeps what finished
            args.json.write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")
    try:
        info["load_at_end"] = os.getloadavg()
    except OSError:
        pass
    print(markdown(results))
    print()
    for r in results:
        if "vs_gb" in r:
            print(f"- {r['table']}: {r['vs_gb']['line']}")
    print(f"\n{info['command']}; {info['machine']['date']}; {args.trials} ANN trials of at most {args.epochs} epochs, "
          f"{args.seeds} seeds; load {info['machine']['load_at_start']} at start, {info.get('load_at_end')} at end")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
