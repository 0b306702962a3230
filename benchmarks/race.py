"""The race: anncnn-tune against a plain Optuna script, same data, splits, device and wall clock.

Each arm runs as its own process for --budget seconds, counted from the process's start (so its
imports and data loading count), on the same dataset and splits (the seed picks the splits and
the sampler of both). At the deadline the process is killed: a trial still running then is lost to
both sides alike. Afterwards the arm's storage is read: its anytime curve (the best validation score
among the trials complete by time t), trials and epochs done, and for anncnn-tune the climb above
its reference baselines (best minus the best baseline trial, by time t). For each pair the race also
reports the time each side needed to reach the other's final best.

Arms (PLAIN_SCRIPTS and `anncnn:`):
- `plain`: benchmarks/plain_optuna.py, an MLP search in optuna-examples' pytorch_simple.py style;
- `plain-cnn`: benchmarks/plain_optuna_cnn.py, a conv-net search written the same common way
  (a Dataset that crops and flips each sample on the CPU, a DataLoader, `.to(device)` per batch);
- `plain-engine`: benchmarks/plain_same_engine.py, the plain-cnn search (same space, TPE sampler,
  median pruner, 10 epochs) on anncnn-tune's training loop: against plain-cnn it measures the
  engine, against anncnn:W what anncnn-tune's own search adds on the same engine;
- `anncnn:W`: `anncnn-tune optimize --study STUDY --workers W` (W a number or auto; `anncnn:W@FILE`
  races another study file, a variant of the study, beside it).
--dataset is a dataset key (the plain scripts' data; anncnn-tune runs the study's own) or a file or
folder, which every arm gets: the plain scripts load it as anncnn-tune does, and anncnn-tune runs
`optimize --study STUDY --dataset PATH` (stored as STUDY-on-FOLDER). The arms of one seed run one
after another, their order rotating from seed to seed; nothing else of this script runs meanwhile.
Every arm's storage holds one study and is read the same way: trials finished by the deadline,
their epochs (those anncnn-tune recorded, else one per reported epoch), the anytime curve. The
per-seed table sets each arm against each arm before it in --arms.

    python benchmarks/race.py --study fashion-mnist-ann --dataset fashion-mnist --budget 420 --seeds 0,1,2
    python benchmarks/race.py --study churn-ann --dataset churn --arms plain,anncnn:1,anncnn:auto
    python benchmarks/race.py --quick            # digits, 25 s per arm: checks the script only
    # the headline study on a CIFAR-10 JPEG copy (train/<class>/*.jpg, test/<class>/*.jpg), 30 min per arm:
    python benchmarks/race.py --study cifar10-cnn --dataset /path/to/cifar10-jpeg --budget 1800 --seeds 0,1,2 \\
        --arms plain-cnn,plain-engine,anncnn:1
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

from anncnn_tune.data import DATASETS, load_dataset, parse_source
from anncnn_tune.service.records import TrialRecord
from anncnn_tune.training.threads import available_cores

CHECKPOINTS = (30, 60, 120, 240, 420, 600, 900, 1200, 1800)  # seconds at which the anytime curves are tabulated
# The plain Optuna scripts, by arm: each takes --dataset, --timeout, --storage and --seed.
PLAIN_SCRIPTS = {"plain": "plain_optuna.py", "plain-cnn": "plain_optuna_cnn.py", "plain-engine": "plain_same_engine.py"}


def is_plain(arm: str) -> bool:
    return arm in PLAIN_SCRIPTS


def dataset_path(args) -> str | None:
    """--dataset as an absolute path where it is no dataset key (the arms run in the work directory)."""
    return None if args.dataset in DATASETS else str(Path(args.dataset).expanduser().resolve())


def command(arm: str, args, seed: int, storage: str, workdir: Path) -> list[str]:
    python = sys.executable
    if is_plain(arm):
        return [python, str(ROOT / "benchmarks" / PLAIN_SCRIPTS[arm]), "--dataset", dataset_path(args) or args.dataset,
                "--timeout", str(args.budget), "--storage", storage, "--seed", str(seed)]
    workers, study = _anncnn_arm(arm, args)
    extra = ["--epochs", str(args.epochs)] if args.epochs else []
    if dataset_path(args):
        extra += ["--dataset", dataset_path(args)]
    return [python, "-m", "anncnn_tune.cli", "optimize", "--study", study, "--timeout", str(args.budget),
            "--n-trials", "100000", "--storage", storage, "--seed", str(seed), "--workers", workers,
            # Artifacts (and checkpoints) beside the arm's own storage: a trial killed at one arm's deadline
            # leaves a checkpoint that a later arm's trial of the same number must not resume from.
            "--artifacts", storage.removeprefix("sqlite:///").removesuffix(".db") + "-artifacts", "--quiet", *extra]


def _anncnn_arm(arm: str, args) -> tuple[str, str]:
    """`anncnn:W` or `anncnn:W@STUDY`: the worker count and the study (a name or a file; default --study)."""
    workers, _, study = arm.split(":", 1)[1].partition("@")
    if study and Path(study).exists():
        study = str(Path(study).resolve())  # the arms run in the work directory
    return workers, study or args.study


def run_arm(arm: str, args, seed: int, workdir: Path) -> dict:
    """Run one arm for the budget; its trials as (seconds from start, state, value, epochs, baseline)."""
    db = workdir / f"{arm.replace(':', '-').replace('@', '-').replace('/', '_')}-seed{seed}.db"
    storage = f"sqlite:///{db}"
    log = (workdir / f"{db.stem}.log").open("w")
    started = time.time()
    # A process group of its own, so the deadline reaches spawned workers too; in the race's session,
    # so the arm shares the race's scheduler group (with autogroup scheduling, a new session would be
    # a group of its own at nice 0, whatever the race's priority).
    process = subprocess.Popen(command(arm, args, seed, storage, workdir), cwd=workdir, stdout=log,
                               stderr=subprocess.STDOUT, process_group=0, env={**os.environ})
    try:
        process.wait(timeout=args.budget)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()
    return {"arm": arm, "seed": seed, "exit_code": process.returncode, "trials": read_trials(storage, started, args.budget),
            "log_tail": (workdir / f"{db.stem}.log").read_text()[-2000:]}


def read_trials(storage: str, started: float, budget: float) -> list[dict]:
    """An arm's trials finished by started + budget, as (seconds from start, state, value, epochs, baseline),
    read alike for every arm: the storage's one study (none yet: an arm killed before it made its
    study has no trials); epochs as anncnn-tune recorded them (fractions of the first epoch
    included), else one per reported epoch (the plain scripts report after every epoch)."""
    names = optuna.get_all_study_names(storage)
    if not names:
        return []
    if len(names) > 1:
        raise ValueError(f"{storage} holds {len(names)} studies ({', '.join(names)}); an arm's storage holds one")
    deadline = datetime.datetime.fromtimestamp(started + budget)
    trials = []
    for t in optuna.load_study(study_name=names[0], storage=storage).get_trials(deepcopy=False):
        if t.datetime_complete is None or t.datetime_complete > deadline or not t.state.is_finished():
            continue
        record = TrialRecord.read(t)
        recorded = record.epochs_trained is not None or record.epochs_run is not None
        epochs = record.epochs_spent if recorded else len(t.intermediate_values)
        trials.append({"seconds": (t.datetime_complete - datetime.datetime.fromtimestamp(started)).total_seconds(),
                       "state": t.state.name, "value": t.value, "epochs": epochs, "baseline": record.baseline})
    trials.sort(key=lambda t: t["seconds"])
    return trials


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
    climbing = [a for a in arms if not is_plain(a)]  # the plain scripts enqueue no baselines
    if climbing:
        lines += ["", "climb above the best baseline (best minus best baseline trial, median over seeds)", "",
                  "| arm | " + " | ".join(f"t={t:g}s" for t in points) + " |", "|---|" + "---|" * len(points)]
        for arm in climbing:
            mine = [s for s in summaries if s["arm"] == arm]
            lines.append(f"| {arm} | " + " | ".join(fmt(_median(s["climb"][str(t)] for s in mine), "+.4f")
                                                   for t in points) + " |")
    if len(arms) > 1:
        lines += ["", ("per seed, each arm against each arm before it in --arms: final bests, the error ratio, and "
                       "the seconds each needed to reach the other's final best"), "",
                  ("| seed | arm | against | final | its final | error / its error | arm reaches its best at s | "
                   "it reaches arm's best at s |"), "|---|---|---|---|---|---|---|---|"]
        by = {(r["arm"], r["seed"]): r for r in runs}
        found = {(s["arm"], s["seed"]): s for s in summaries}
        for seed in sorted({s["seed"] for s in summaries}):
            for i, arm in enumerate(arms):
                for other in arms[:i]:
                    if (arm, seed) not in found or (other, seed) not in found:
                        continue
                    s, o = found[(arm, seed)], found[(other, seed)]
                    ratio = ((1 - s["final"]) / (1 - o["final"])
                             if s["final"] is not None and o["final"] not in (None, 1.0) else None)
                    lines.append(f"| {seed} | {arm} | {other} | {fmt(s['final'])} | {fmt(o['final'])} | "
                                 f"{fmt(ratio, '.2f')} | "
                                 f"{fmt(time_to_reach(by[(arm, seed)]['trials'], o['final']), '.0f')} | "
                                 f"{fmt(time_to_reach(by[(other, seed)]['trials'], s['final']), '.0f')} |")
    return "\n".join(lines)


def merge(paths: list[Path], parser: argparse.ArgumentParser) -> dict:
    """The report of several runs' JSON files, as if their seeds had run in one: a race of three seeds
    of 30-minute arms is longer than one sitting of this machine."""
    outs = []
    for path in paths:
        try:
            outs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            parser.error(f"--merge {path}: not a race's --json output ({exc})")
    same = ("study", "dataset", "budget_s", "arms")
    first = outs[0]["info"]
    for path, out in zip(paths[1:], outs[1:], strict=True):
        differs = [k for k in same if out["info"][k] != first[k]]
        if differs:
            parser.error(f"--merge {path}: another race ({differs[0]} {out['info'][differs[0]]!r}, not "
                         f"{first[differs[0]]!r}); merge runs of one study, dataset, budget and arms")
    summaries = [s for out in outs for s in out["summaries"]]
    runs = [r for out in outs for r in out["runs"]]
    repeated = sorted({(s["arm"], s["seed"]) for s in summaries if
                       sum((t["arm"], t["seed"]) == (s["arm"], s["seed"]) for t in summaries) > 1})
    if repeated:
        parser.error(f"--merge: arm {repeated[0][0]} ran seed {repeated[0][1]} in more than one file; keep one")
    print(f"# {len(paths)} runs of {first['study']} on {first['dataset']}, {first['budget_s']:g} s per arm: "
          + "; ".join(f"{p.name} ({o['info']['date']}, load {o['info']['load_before'][0]:.1f})"
                      for p, o in zip(paths, outs, strict=True)))
    print("\n" + report(summaries, runs, first["arms"], first["budget_s"]))
    return {"info": {**first, "seeds": sorted({s["seed"] for s in summaries})}, "summaries": summaries, "runs": runs}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="fashion-mnist-ann", help="anncnn-tune's study (default fashion-mnist-ann)")
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="the plain scripts' dataset key (the study's), or a file or folder every arm runs on "
                             "(anncnn-tune: optimize --dataset PATH)")
    parser.add_argument("--budget", type=float, default=420.0, help="wall-clock seconds per arm (default 420)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--arms", default="plain,anncnn:auto",
                        help="comma-separated arms: plain, plain-cnn, plain-engine, anncnn:W with W a worker "
                             "count or auto (default plain,anncnn:auto)")
    parser.add_argument("--epochs", type=int, default=None, help="override the study's epoch budget")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the storages and logs here")
    parser.add_argument("--quick", action="store_true", help="digits, 25 s per arm, one seed: checks the script")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: report together the --json files of earlier runs of one race (the same "
                             "study, dataset, budget and arms; other seeds)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, parser)
    if args.quick:
        args.study, args.dataset, args.budget, args.seeds, args.epochs = "digits-ann", "digits", 25.0, "0", 3
    optuna.logging.set_verbosity(logging.WARNING)
    arms = args.arms.split(",")
    unknown = [a for a in arms if not is_plain(a) and not a.startswith("anncnn:")]
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; arms are {', '.join(PLAIN_SCRIPTS)} and anncnn:W")
    if dataset_path(args) and not Path(dataset_path(args)).exists():
        parser.error(f"--dataset {args.dataset} is neither a dataset key ({', '.join(DATASETS)}) nor an existing path")
    seeds = [int(s) for s in args.seeds.split(",")]
    # Absolute: the arms run in it and get storage URLs of files in it.
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="race-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    info = {"study": args.study, "dataset": args.dataset, "budget_s": args.budget, "seeds": seeds, "arms": arms,
            "cores": available_cores(), "python": platform.python_version(), "optuna": optuna.__version__,
            "date": datetime.datetime.now().isoformat(timespec="minutes"), "load_before": os.getloadavg()}
    print(f"# {' '.join(['python', 'benchmarks/race.py', *(argv if argv is not None else sys.argv[1:])])}")
    print(f"# {info}; storages and logs in {workdir}", flush=True)
    if dataset_path(args):
        # Decode the folder into anncnn-tune's data cache now, untimed: else the first arm alone pays
        # the decoding (about 10 s for CIFAR-10's 60000 JPEGs) and every later arm reads the cache.
        load_dataset(parse_source({"path": dataset_path(args)}, base_dir=Path.cwd(), where="--dataset"), seed=seeds[0])
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
