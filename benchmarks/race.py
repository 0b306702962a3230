"""The race: anncnn-tune against a plain Optuna script, same data, splits, device and wall clock.

Each arm runs as its own process for --budget seconds, counted from the process's start (so its
imports and data loading count), on the same dataset and splits (the seed picks the splits and
the sampler of both). At the deadline the process is killed: a trial still running then is lost to
both sides alike. Afterwards the arm's storage is read: its anytime curve (the best validation score
among the trials complete by time t), trials and epochs done, and for anncnn-tune the climb above
its reference baselines (best minus the best baseline trial, by time t). For each pair the race also
reports the time each side needed to reach the other's final best.

Arms: `plain` is benchmarks/plain_optuna.py (optuna-examples' pytorch_simple.py style); `anncnn:W`
is `anncnn-tune optimize --study STUDY --workers W` (W a number or auto; `anncnn:W@FILE` races another
study file, a variant of the study, beside it). The arms of one seed run
one after another, their order rotating from seed to seed; nothing else of this script runs
meanwhile.

    python benchmarks/race.py --study fashion-mnist-ann --dataset fashion-mnist --budget 420 --seeds 0,1,2
    python benchmarks/race.py --study churn-ann --dataset churn --arms plain,anncnn:1,anncnn:auto
    python benchmarks/race.py --quick            # digits, 25 s per arm: checks the script only
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anncnn_tune.service.records import TrialRecord
from anncnn_tune.training.threads import available_cores

CHECKPOINTS = (30, 60, 120, 240, 420, 600, 900)  # seconds at which the anytime curves are tabulated


def command(arm: str, args, seed: int, storage: str, workdir: Path) -> list[str]:
    python = sys.executable
    if arm == "plain":
        return [python, str(ROOT / "benchmarks" / "plain_optuna.py"), "--dataset", args.dataset, "--timeout",
                str(args.budget), "--storage", storage, "--seed", str(seed)]
    workers, study = _anncnn_arm(arm, args)
    extra = ["--epochs", str(args.epochs)] if args.epochs else []
    return [python, "-m", "anncnn_tune.cli", "optimize", "--study", study, "--timeout", str(args.budget),
            "--n-trials", "100000", "--storage", storage, "--seed", str(seed), "--workers", workers,
            # Artifacts (and checkpoints) beside the arm's own storage: a trial killed at one arm's deadline
            # leaves a checkpoint that a later arm's trial of the same number must not resume from.
            "--artifacts", storage.removeprefix("sqlite:///").removesuffix(".db") + "-artifacts", "--quiet", *extra]


def _anncnn_arm(arm: str, args) -> tuple[str, str]:
    """`anncnn:W` or `anncnn:W@STUDY`: the worker count and the study (a name or a file; default --study)."""
    workers, _, study = arm.split(":", 1)[1].partition("@")
    return workers, study or args.study


def run_arm(arm: str, args, seed: int, workdir: Path) -> dict:
    """Run one arm for the budget; its trials as (seconds from start, state, value, epochs, baseline)."""
    db = workdir / f"{arm.replace(':', '-').replace('@', '-').replace('/', '_')}-seed{seed}.db"
    storage = f"sqlite:///{db}"
    log = (workdir / f"{db.stem}.log").open("w")
    started = time.time()
    # A process group of its own, so the deadline reaches spawned workers too.
    process = subprocess.Popen(command(arm, args, seed, storage, workdir), cwd=workdir, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ})
    try:
        process.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()
    deadline = datetime.datetime.fromtimestamp(started + args.budget)
    study = optuna.load_study(study_name="plain" if arm == "plain" else Path(_anncnn_arm(arm, args)[1]).stem,
                              storage=storage)
    trials = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None or t.datetime_complete > deadline or not t.state.is_finished():
            continue
        record = TrialRecord.read(t)
        epochs = record.epochs_spent if arm != "plain" else len(t.intermediate_values)
        trials.append({"seconds": (t.datetime_complete - datetime.datetime.fromtimestamp(started)).total_seconds(),
                       "state": t.state.name, "value": t.value, "epochs": epochs, "baseline": record.baseline})
    trials.sort(key=lambda t: t["seconds"])
    return {"arm": arm, "seed": seed, "exit_code": process.returncode, "trials": trials,
            "log_tail": (workdir / f"{db.stem}.log").read_text()[-2000:]}


def best_by(trials: list[dict], t: float, *, baselines: bool | None = None) -> float | None:
    """The best complete trial's value among those done by t (baselines only / none of them / all)."""
    values = [x["value"] for x in trials if x["seconds"] <= t and x["state"] == TrialState.COMPLETE.name
              and (baselines is None or (x["baseline"] is not None) == baselines)]
    return max(values) if values else None


def time_to_reach(trials: list[dict], target: float | None) -> float | None:
    if target is None:
        return None
    for x in trials:
        if x["state"] == TrialState.COMPLETE.name and x["value"] >= target:
            return x["seconds"]
    return None


def summarise(run: dict, budget: float) -> dict:
    trials = run["trials"]
    points = [c for c in CHECKPOINTS if c < budget] + [budget]
    curve = {str(t): best_by(trials, t) for t in points}
    baseline_best = {str(t): best_by(trials, t, baselines=True) for t in points}
    climb = {k: (curve[k] - baseline_best[k]) if curve[k] is not None and baseline_best[k] is not None else None
             for k in curve}
    return {"arm": run["arm"], "seed": run["seed"], "final": curve[str(budget)], "curve": curve, "climb": climb,
            "trials": len(trials), "complete": sum(x["state"] == "COMPLETE" for x in trials),
            "pruned": sum(x["state"] == "PRUNED" for x in trials), "epochs": round(sum(x["epochs"] for x in trials), 2),
            "first_trial_s": trials[0]["seconds"] if trials else None}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(summaries: list[dict], runs: list[dict], arms: list[str], budget: float) -> str:
    def fmt(value, spec=".4f"):
        return "-" if value is None else format(value, spec)

    points = [c for c in CHECKPOINTS if c < budget] + [budget]
    lines = [(f"best validation score by time t (median over seeds; seeds: "
             f"{sorted({s['seed'] for s in summaries})})"), "",
             "| arm | " + " | ".join(f"t={t:g}s" for t in points) + " | trials | pruned | epochs | error at end |",
             "|---|" + "---|" * (len(points) + 4)]
    for arm in arms:
        mine = [s for s in summaries if s["arm"] == arm]
        final = _median(s["final"] for s in mine)
        lines.append(f"| {arm} | " + " | ".join(fmt(_median(s["curve"][str(t)] for s in mine)) for t in points)
                     + f" | {fmt(_median(s['trials'] for s in mine), '.0f')} | "
                       f"{fmt(_median(s['pruned'] for s in mine), '.0f')} | {fmt(_median(s['epochs'] for s in mine), '.0f')}"
                       f" | {fmt(None if final is None else 1 - final)} |")
    climbing = [a for a in arms if a != "plain"]
    if climbing:
        lines += ["", "climb above the best baseline (best minus best baseline trial, median over seeds)", "",
                  "| arm | " + " | ".join(f"t={t:g}s" for t in points) + " |", "|---|" + "---|" * len(points)]
        for arm in climbing:
            mine = [s for s in summaries if s["arm"] == arm]
            lines.append(f"| {arm} | " + " | ".join(fmt(_median(s["climb"][str(t)] for s in mine), "+.4f")
                                                   for t in points) + " |")
    if "plain" in arms:
        lines += ["", ("per seed: final best, error ratio to plain, and the seconds each needed to reach the "
                      "other's final best"), "",
                  ("| seed | arm | final | plain final | error / plain error | arm reaches plain's best at s | "
                  "plain reaches arm's best at s |"), "|---|---|---|---|---|---|---|"]
        by = {(r["arm"], r["seed"]): r for r in runs}
        for s in summaries:
            if s["arm"] == "plain":
                continue
            plain = next(p for p in summaries if p["arm"] == "plain" and p["seed"] == s["seed"])
            ratio = ((1 - s["final"]) / (1 - plain["final"])
                     if s["final"] is not None and plain["final"] not in (None, 1.0) else None)
            lines.append(f"| {s['seed']} | {s['arm']} | {fmt(s['final'])} | {fmt(plain['final'])} | {fmt(ratio, '.2f')} | "
                         f"{fmt(time_to_reach(by[(s['arm'], s['seed'])]['trials'], plain['final']), '.0f')} | "
                         f"{fmt(time_to_reach(by[('plain', s['seed'])]['trials'], s['final']), '.0f')} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="fashion-mnist-ann", help="anncnn-tune's study (default fashion-mnist-ann)")
    parser.add_argument("--dataset", default="fashion-mnist", help="the plain script's dataset (the study's)")
    parser.add_argument("--budget", type=float, default=420.0, help="wall-clock seconds per arm (default 420)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--arms", default="plain,anncnn:auto",
                        help="comma-separated arms: plain, anncnn:W with W a worker count or auto (default "
                             "plain,anncnn:auto)")
    parser.add_argument("--epochs", type=int, default=None, help="override the study's epoch budget")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the storages and logs here")
    parser.add_argument("--quick", action="store_true", help="digits, 25 s per arm, one seed: checks the script")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.study, args.dataset, args.budget, args.seeds, args.epochs = "digits-ann", "digits", 25.0, "0", 3
    optuna.logging.set_verbosity(logging.WARNING)
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="race-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = {"study": args.study, "dataset": args.dataset, "budget_s": args.budget, "seeds": seeds, "arms": arms,
            "cores": available_cores(), "python": platform.python_version(), "optuna": optuna.__version__,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "load_before": os.getloadavg()}
    print(f"# {' '.join(['python', 'benchmarks/race.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"# {info}; storages and logs in {workdir}", flush=True)
    runs, summaries = [], []
    for i, seed in enumerate(seeds):
        order = arms[i % len(arms):] + arms[:i % len(arms)]  # rotate: no arm always goes first
        for arm in order:
            run = run_arm(arm, args, seed, workdir)
            summary = summarise(run, args.budget)
            runs.append(run)
            summaries.append(summary)
            print(f"# seed {seed} {arm}: best {summary['final']}, {summary['trials']} trials ({summary['pruned']} "
                  f"pruned), {summary['epochs']} epochs; load {os.getloadavg()[0]:.1f}", flush=True)
    text = report(summaries, runs, arms, args.budget)
    print("\n" + text)
    out = {"info": {**info, "load_after": os.getloadavg()}, "summaries": summaries, "runs": runs}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
