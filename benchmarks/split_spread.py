"""How much of a table's test score is the choice of test rows? The exported net and the tuned
gradient boosting, each kept as tuned, retrained and scored on other draws of the same split sizes.

A target such as "test ROC AUC at least 0.86" is a statement about one draw of test rows. With a
thousand test rows, the standard error of one ROC AUC is about 0.012: a model can pass on one draw
and miss on the next without any change to it. This script measures that spread for a study of a
user's table (or a built-in one): for N split seeds, from the study's own (draw 0) on, it

- retrains the run file (`anncnn-tune export`) with `data.split_seed` set to the seed: the same
  configuration and epochs, trained on that draw's train+validation rows, scored once on its test
  rows (`api.retrain`, nothing recorded in the study);
- refits the study's classical reference (the setting `anncnn-tune reference` tuned and recorded,
  with its boosting rounds) on the same train+validation rows and scores it on the same test rows.

The configurations were chosen on draw 0 and are not tuned again; both sides get the same
treatment. The mean over draws estimates each model's score on new rows of this table; the per-draw
difference (paired: the same rows) says whether one is ahead. Prints a Markdown table; --json
writes every number.

    python benchmarks/split_spread.py --run best.yaml --storage sqlite:///telco.db --study telco-ann \
        --splits 10 --threshold 0.86
    python benchmarks/split_spread.py --quick      # breast cancer from scikit-learn: checks the script
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def recorded(storage: str, study_name: str) -> dict:
    """What the study recorded on its own split: the tuned reference (setting, metric, the seed of its
    first refit, its test score there) and the retrained net's first seed's test score."""
    from anncnn_tune.results.export import load_stored_study
    from anncnn_tune.service.records import StudyRecord

    record = StudyRecord.read(load_stored_study(storage, study_name))
    if not record.reference:
        raise SystemExit(f"study {study_name!r} has no classical reference: run `anncnn-tune reference` first")
    ref = record.reference
    net = max(record.test_metrics.values(), key=lambda entry: entry.get("retrained_at", ""))
    return {"setting": dict(ref["setting"]), "metric": ref["metric"], "seed": int(record.spec.get("seed") or 0),
            "reference": ref["per_seed_values"][0], "net": net["per_seed_values"][0]}


def net_on_split(run_raw: dict, split_seed: int, work: Path, data_dir: str | None) -> tuple[float, str, float]:
    """(test metric, its name, seconds) of the run file retrained on split seed `split_seed`."""
    import anncnn_tune as at

    raw = json.loads(json.dumps(run_raw))
    raw["data"]["split_seed"] = split_seed
    path = work / f"run-split{split_seed}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    started = time.perf_counter()
    result = at.retrain(str(path), out=str(work / f"net-split{split_seed}"), seeds=1, data_dir=data_dir,
                        record=False, log=None)
    return float(result.test["mean"]), result.test["metric"], time.perf_counter() - started


def reference_on_split(run, setting: dict, metric: str, seed: int, split_seed: int, data_dir: str | None) -> float:
    """The reference's test metric on split seed `split_seed`: refit (random seed `seed`, as the
    reference's first refit) on its train+validation rows."""
    from anncnn_tune.data import load_dataset
    from anncnn_tune.results.reference import _table_model, outputs, score_outputs

    splits = load_dataset(run.data_source or run.dataset, data_dir=data_dir, seed=split_seed, subset=run.subset)
    setting = dict(setting)
    rounds = setting.pop("max_iter", None)
    model = _table_model(splits.task, setting, seed=seed, rounds=rounds)
    model.fit(np.concatenate([splits.x_train, splits.x_val]), np.concatenate([splits.y_train, splits.y_val]))
    out = outputs(splits.task, model, splits.x_test)
    return float(score_outputs(splits.task, out, splits.y_test, splits.classes)[metric])


def summary(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"{arr.mean():.4f} ± {arr.std(ddof=1):.4f} (min {arr.min():.4f}, max {arr.max():.4f})"


def spread(run_file: str, storage: str, study: str, n_splits: int, threshold: float | None,
           data_dir: str | None, work: Path, log=print) -> dict:
    from anncnn_tune.results.export import load_run

    run = load_run(run_file)
    run_raw = yaml.safe_load(Path(run_file).read_text())
    own = recorded(storage, study)
    ref_metric = own["metric"]
    rows = []
    for k in range(run.split_seed, run.split_seed + n_splits):
        net, metric, seconds = net_on_split(run_raw, k, work, data_dir)
        if metric != ref_metric:
            raise SystemExit(f"the net is scored on {metric}, the reference on {ref_metric}")
        ref = reference_on_split(run, own["setting"], ref_metric, own["seed"], k, data_dir)
        rows.append({"split_seed": k, "net": net, "reference": ref, "net_seconds": round(seconds, 1)})
        log(f"split seed {k}: net {metric} {net:.4f}, reference {ref:.4f} ({seconds:.0f} s)")
    net = [r["net"] for r in rows]
    ref = [r["reference"] for r in rows]
    diff = [a - b for a, b in zip(net, ref)]
    # Draw 0 is the study's own split: there both must give what the study recorded.
    out = {"metric": ref_metric, "splits": n_splits, "rows": rows,
           "recorded_on_own_split": {"net": own["net"], "reference": own["reference"]},
           "net": {"mean": float(np.mean(net)), "std": float(np.std(net, ddof=1))},
           "reference": {"mean": float(np.mean(ref)), "std": float(np.std(ref, ddof=1))},
           "net_minus_reference": {"mean": float(np.mean(diff)), "std": float(np.std(diff, ddof=1)),
                                   "net_ahead": int(np.sum(np.asarray(diff) > 0))}}
    if threshold is not None:
        out["threshold"] = threshold
        out["net_reaches"] = int(np.sum(np.asarray(net) >= threshold))
        out["reference_reaches"] = int(np.sum(np.asarray(ref) >= threshold))
    return out


def report(result: dict) -> None:
    metric, n = result["metric"], result["splits"]
    print(f"| split seed | net test {metric} | reference test {metric} | net - reference |")
    print("|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['split_seed']} | {r['net']:.4f} | {r['reference']:.4f} | {r['net'] - r['reference']:+.4f} |")
    rows = result["rows"]
    own = result["recorded_on_own_split"]
    print(f"\nsplit seed {rows[0]['split_seed']} is the study's own split, where it recorded net {own['net']:.4f} (its retrain's first "
          f"seed) and reference {own['reference']:.4f}")
    print(f"net: {summary([r['net'] for r in rows])}")
    print(f"reference: {summary([r['reference'] for r in rows])}")
    d = result["net_minus_reference"]
    print(f"net - reference (paired, same rows): {d['mean']:+.4f} ± {d['std']:.4f}; net ahead on {d['net_ahead']} "
          f"of {n} draws")
    if "threshold" in result:
        print(f"at least {result['threshold']}: net on {result['net_reaches']} of {n} draws, reference on "
              f"{result['reference_reaches']} of {n}")


def quick(work: Path, data_dir: str | None) -> tuple[str, str, str]:
    """Breast cancer from scikit-learn through init (as tables.py writes it), a 2-trial search, export,
    a 2-seed retrain and the reference: a run file, a storage and a study name for a 2-draw check."""
    from tables import TABLES, sklearn_csv

    import anncnn_tune as at

    csv = sklearn_csv(next(t for t in TABLES if t.name == "breast-cancer"), work)
    (study_file,) = at.init(str(csv), target="target", name="spread", out_dir=str(work)).files
    url = f"sqlite:///{work / 'spread.db'}"
    at.optimize(str(study_file), storage=url, n_trials=2, epochs=3, threads=1, data_dir=data_dir, quiet=True)
    run_file = str(work / "best.yaml")
    at.export("spread-ann", storage=url, output=run_file)
    at.retrain(run_file, out=str(work / "retrain"), seeds=2, data_dir=data_dir, storage=url, log=None)
    at.reference("spread-ann", storage=url, data_dir=data_dir, trials=3, log=None)
    return run_file, url, "spread-ann"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="the run file `anncnn-tune export` wrote for the study's best trial")
    parser.add_argument("--storage", help="the study's storage URL (its classical reference is read from it)")
    parser.add_argument("--study", help="the study's name in --storage")
    parser.add_argument("--splits", type=int, default=10,
                        help="draws: the study's split seed and the N-1 after it (default 10)")
    parser.add_argument("--threshold", type=float, help="also count the draws on which each reaches this score")
    parser.add_argument("--data-dir", default=os.environ.get("ANNCNN_TUNE_DATA"))
    parser.add_argument("--quick", action="store_true", help="breast cancer, 2 draws: checks the script")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not args.quick and not (args.run and args.storage and args.study):
        parser.error("--run, --storage and --study are needed (or --quick)")
    if args.splits < 2:
        parser.error("--splits must be at least 2 (a spread needs two draws)")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_file, storage, study = quick(work, args.data_dir) if args.quick else (args.run, args.storage, args.study)
        result = spread(run_file, storage, study, 2 if args.quick else args.splits, args.threshold, args.data_dir,
                        work)
    result.update(date=datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
                  seconds=round(time.time() - started), load_end=[round(x, 1) for x in os.getloadavg()])
    report(result)
    print(f"{result['seconds']} s, load at the end {result['load_end']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
