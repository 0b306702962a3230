"""What pruning buys: one study searched without a pruner, with the median pruner and with Hyperband.

Everything goes through anncnn_tune's own machinery (spec.load_spec, study.make_sampler /
make_pruner, objective.Objective, fit) on an in-memory Optuna storage, with the study's baselines
enqueued first as `anncnn-tune optimize` does. For each seed, the unpruned search runs --trials
trials; each pruned search (same sampler seed) runs at least as many, then goes on until one of its
completed trials reaches the unpruned search's best value or it has trained as many epochs as the
unpruned search did (pruning buys more trials per epoch; this lets it spend them). Reported: epochs
and best value at the same trial count, and the epochs and time each search needed to reach the
unpruned search's best (counted in trial order, up to and including the first trial reaching it),
also as a fraction of the unpruned search's epochs.

    python benchmarks/search.py                              # digits-ann, 3 seeds x 3 arms x 40 trials
    python benchmarks/search.py --study digits-cnn --trials 30
    python benchmarks/search.py --quick                      # a few short trials (the smoke test)
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.data import load_dataset
from anncnn_tune.search.objective import Objective
from anncnn_tune.search.spec import load_spec
from anncnn_tune.search.study import make_pruner, make_sampler
from anncnn_tune.service.records import TrialRecord
from anncnn_tune.training.fit import DeviceData, RunOptions
from anncnn_tune.training.threads import available_cores, configure_threads


def arms(spec) -> dict[str, dict]:
    """The pruner of each arm: none, median (warm-up = Hyperband's minimum resource, at least one
    epoch), the study's pruner, Hyperband with its first rung at 1/9 of an epoch (cheap low rungs)."""
    study = dict(spec.pruner)
    warmup = max(1, int(study.get("min_resource", 1)))
    return {
        "none": {"type": "none"},
        "median": {"type": "median", "n_startup_trials": 5, "n_warmup_steps": warmup},
        "study": study,
        "hyperband-ninth": {"type": "hyperband", "min_resource": 0.111,
                            "reduction_factor": int(study.get("reduction_factor", 3))},
    }


ARM_NAMES = ("none", "median", "study", "hyperband-ninth")
# A safety net, not a budget: a pruner whose trials cost a fraction of an epoch runs many trials
# before it has spent the unpruned search's epochs, the limit that should end it.
MAX_TRIALS_FACTOR = 25


def _extra_arm(text: str) -> tuple[str, dict]:
    name, _, options = text.partition("=")
    return name.strip(), json.loads(options)


def better_or_equal(value, target, direction: str) -> bool:
    return value >= target if direction == "maximize" else value <= target


def run_arm(spec, data: DeviceData, splits, n_trials: int, device: torch.device, target: float | None = None,
            epoch_budget: int | None = None) -> dict:
    """Run n_trials; with a target, go on (up to MAX_TRIALS_FACTOR x n_trials) until a trial reaches it or
    the epochs run out."""
    # A fixed name: Hyperband assigns trials to brackets by a hash of the study name and trial number.
    name = f"{spec.name}-{spec.pruner['type']}-seed{spec.seed}"
    study = optuna.create_study(study_name=name, direction=spec.direction, sampler=make_sampler(spec),
                                pruner=make_pruner(spec))
    for baseline in spec.baselines:
        attrs = {"baseline": baseline["name"]}
        if "epochs" in baseline:
            attrs["epochs"] = baseline["epochs"]
        study.enqueue_trial(baseline["params"], user_attrs=attrs)
    objective = Objective(spec, data, splits.input_shape, splits.out_dim, RunOptions(device=device))

    def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(finished) < n_trials:
            return
        reached = any(t.state == TrialState.COMPLETE and better_or_equal(t.value, target, spec.direction)
                      for t in finished)
        spent = sum(TrialRecord.read(t).epochs_spent for t in finished)
        if reached or spent >= epoch_budget:
            study.stop()

    started = time.perf_counter()
    if target is None:
        study.optimize(objective, n_trials=n_trials)
    else:
        study.optimize(objective, n_trials=MAX_TRIALS_FACTOR * n_trials, callbacks=[stop_when_done])
    wall = time.perf_counter() - started
    trials = []
    for t in sorted(study.trials, key=lambda t: t.number):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
        trials.append({"number": t.number, "state": t.state.name, "value": t.value,
                       "epochs": TrialRecord.read(t).epochs_spent, "seconds": seconds})
    first = trials[:n_trials]
    return {"wall_seconds": wall, "n_trials": len(trials), "total_epochs": sum(t["epochs"] for t in trials),
            "best_value": best_of(trials, spec.direction),
            "epochs_at_n": sum(t["epochs"] for t in first), "best_at_n": best_of(first, spec.direction),
            "pruned_at_n": sum(t["state"] == TrialState.PRUNED.name for t in first), "trials": trials}


def best_of(trials: list[dict], direction: str) -> float | None:
    values = [t["value"] for t in trials if t["state"] == TrialState.COMPLETE.name]
    return (max(values) if direction == "maximize" else min(values)) if values else None


def reach(result: dict, target: float | None, direction: str) -> dict:
    """Epochs and trial seconds spent, in trial order, until a completed trial reached target."""
    epochs = seconds = 0.0
    for t in result["trials"]:
        epochs += t["epochs"]
        seconds += t["seconds"]
        value = t["value"] if t["state"] == TrialState.COMPLETE.name else None
        if target is not None and value is not None and better_or_equal(value, target, direction):
            return {"reached": True, "epochs": epochs, "seconds": seconds, "trial": t["number"]}
    return {"reached": False, "epochs": None, "seconds": None, "trial": None}


def summarise(runs: list[dict], names: list[str]) -> list[dict]:
    """Medians over the seeds per arm. The fraction of the unpruned epochs needed to reach the unpruned
    best counts a seed that never reached it as infinitely many (more than 1: it spent all of them
    without getting there), so a median over seeds is not flattered by the seeds that did."""
    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def fraction(r, key):
        return r[key]["epochs"] / r["unpruned_epochs"] if r[key]["reached"] else math.inf

    rows = []
    for name in names:
        mine = [r for r in runs if r["arm"] == name]
        reached = [r for r in mine if r["reach"]["reached"]]
        row = {
            "arm": name, "seeds": len(mine),
            "epochs_at_n": median(r["epochs_at_n"] for r in mine),
            "best_at_n": median(r["best_at_n"] for r in mine),
            "pruned_at_n": median(r["pruned_at_n"] for r in mine),
            "reached": f"{len(reached)}/{len(mine)}",
            "epochs_to_target_fraction": median(fraction(r, "reach") for r in mine),
            "fractions": [fraction(r, "reach") for r in mine],
            "seconds_to_target": median(r["reach"]["seconds"] for r in reached),
            "n_trials": median(r["n_trials"] for r in mine),
            "total_epochs": median(r["total_epochs"] for r in mine),
            "wall_seconds": median(r["wall_seconds"] for r in mine),
        }
        if all("near" in r for r in mine):
            row["near_fraction"] = median(fraction(r, "near") for r in mine)
            row["near_fractions"] = [fraction(r, "near") for r in mine]
        rows.append(row)
    return rows


def table(rows: list[dict], n_trials: int, tolerance: float = 0.0) -> str:
    near = tolerance > 0
    head = (f"| pruner | epochs, first {n_trials} trials | best, first {n_trials} trials | pruned of them "
            "| reached unpruned best | fraction of unpruned epochs to reach it (median; per seed) "
            + (f"| the same within {tolerance:g} " if near else "")
            + "| seconds to reach it | trials run | epochs run | wall s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def num(value, fmt):
        if value is None:
            return "-"
        return "never" if value == math.inf else format(value, fmt)

    def fractions(median, values):
        return f"{num(median, '.2f')} ({', '.join(num(v, '.2f') for v in values)})"

    for r in rows:
        lines.append(f"| {r['arm']} | {num(r['epochs_at_n'], '.0f')} | {num(r['best_at_n'], '.4f')} | "
                     f"{num(r['pruned_at_n'], '.0f')} | {r['reached']} | "
                     f"{fractions(r['epochs_to_target_fraction'], r['fractions'])} | "
                     + (f"{fractions(r['near_fraction'], r['near_fractions'])} | " if near else "")
                     + f"{num(r['seconds_to_target'], '.1f')} | {num(r['n_trials'], '.0f')} | "
                     f"{num(r['total_epochs'], '.0f')} | {num(r['wall_seconds'], '.1f')} |")
    return "\n".join(lines)


def near_target(best: float, direction: str, tolerance: float) -> float:
    return best - tolerance if direction == "maximize" else best + tolerance


def resummarise(path: Path, tolerance: float) -> None:
    """The tables of an earlier run's JSON, with reach also counted within `tolerance` of the unpruned best."""
    saved = json.loads(path.read_text())
    runs, direction = saved["runs"], saved["info"].get("direction", "maximize")
    for r in runs:
        best = next(u["best_value"] for u in runs if u["arm"] == "none" and u["seed"] == r["seed"])
        r["near"] = reach(r, near_target(best, direction, tolerance), direction)
    names = list(dict.fromkeys(r["arm"] for r in runs))
    print(f"# {path}: {saved['info']}")
    print(table(summarise(runs, names), saved["info"]["trials"], tolerance))


def loaded(spec, device: torch.device):
    splits = load_dataset(spec.dataset, seed=spec.seed, subset=spec.subset)
    return DeviceData.from_splits(splits, device), splits


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="digits-ann", help="a study name or file (default digits-ann)")
    parser.add_argument("--trials", type=int, default=None, help="trials per search (default 40, quick 4)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2; quick 0)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget per trial (default: the study's)")
    parser.add_argument("--no-early-stopping", action="store_true", help="set patience 0 (pruning alone)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1",
                        help="torch intra-op threads, or 'auto' for configure_threads() (all cores). Default 1: "
                             "on a machine shared with other work, more threads than free cores make every "
                             "parallel region wait for descheduled threads (see RESULTS.md)")
    parser.add_argument("--arms", default=None,
                        help=f"comma-separated arms to run (default all: {', '.join(ARM_NAMES)}); 'none' always runs "
                             "first: the others are measured against it")
    parser.add_argument("--extra-arm", action="append", default=[], metavar="NAME=JSON",
                        help='another pruner to measure, e.g. \'hb4={"type": "hyperband", "min_resource": 0.25, '
                             '"reduction_factor": 4}\' (repeatable)')
    parser.add_argument("--quick", action="store_true", help="a few short trials: checks the script only")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="also count a search as having reached the unpruned best once a trial is within this "
                             "of it (the validation metric's noise: e.g. one validation sample's accuracy)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="print the tables of an earlier --json run (with --tolerance) instead of running")
    args = parser.parse_args(argv)
    if args.from_json:
        resummarise(args.from_json, args.tolerance)
        return {}

    optuna.logging.set_verbosity(logging.WARNING)
    device = torch.device(args.device)
    threads = configure_threads(threads=None if args.threads == "auto" else int(args.threads))
    n_trials = args.trials or (4 if args.quick else 40)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    epochs = args.epochs or (3 if args.quick else None)

    base = load_spec(args.study)
    info = {"study": base.name, "direction": base.direction, "trials": n_trials, "seeds": seeds, "epochs": epochs or base.epochs,
            "early_stopping": not args.no_early_stopping, "device": str(device), "torch_threads": threads,
            "cores": available_cores(), "torch": torch.__version__, "optuna": optuna.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}
    print(f"# {' '.join(['python', 'benchmarks/search.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"# {info}", flush=True)
    warm = base.with_overrides(epochs=1)  # imports, allocator, first kernels: not the first arm's cost
    run_arm(replace(warm, pruner={"type": "none"}, baselines=[]), *loaded(warm, device), 1, device)
    runs = []
    chosen = ["none", *[a for a in (args.arms.split(",") if args.arms else ARM_NAMES) if a != "none"]]
    extra = dict(_extra_arm(text) for text in args.extra_arm)
    names = chosen + list(extra)
    for seed in seeds:
        spec = base.with_overrides(epochs=epochs, seed=seed)
        if args.no_early_stopping:
            spec = replace(spec, fixed={**spec.fixed, "patience": 0})
        data, splits = loaded(spec, device)
        unpruned = None
        for name, pruner in {**{k: v for k, v in arms(spec).items() if k in chosen}, **extra}.items():
            if unpruned is None:
                result = unpruned = run_arm(replace(spec, pruner=pruner), data, splits, n_trials, device)
            else:
                result = run_arm(replace(spec, pruner=pruner), data, splits, n_trials, device,
                                 target=unpruned["best_value"], epoch_budget=unpruned["total_epochs"])
            result.update(arm=name, seed=seed, unpruned_epochs=unpruned["total_epochs"],
                          reach=reach(result, unpruned["best_value"], spec.direction))
            if args.tolerance:
                result["near"] = reach(result, near_target(unpruned["best_value"], spec.direction, args.tolerance),
                                       spec.direction)
            runs.append(result)
            print(f"# seed {seed} {name:>9}: first {n_trials} trials {result['epochs_at_n']:>4} epochs, best "
                  f"{result['best_at_n']:.4f}; reached {unpruned['best_value']:.4f}: {result['reach']['reached']} "
                  f"after {result['reach']['epochs']} epochs; {result['n_trials']} trials, "
                  f"{result['total_epochs']} epochs, {result['wall_seconds']:.1f} s", flush=True)
    rows = summarise(runs, names)
    print(f"\nmedians over {len(seeds)} seed(s); {n_trials} trials per unpruned search:\n")
    print(table(rows, n_trials, args.tolerance))
    out = {"info": info, "summary": rows, "runs": runs}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
