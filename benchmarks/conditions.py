"""What conditional parameters (`when`) save the sampler: the same study space sampled with and without them.

For each space, N trials are drawn by Optuna's RandomSampler through anncnn_tune's own
`spec.suggest` (no training: the objective returns 0), once as the code runs and once with every
condition removed (`Spec.conditions` patched to return none, so every searched parameter is
suggested in every trial, as before conditions existed). Counted over the N trials:

- stored entries: (trial, parameter) values in the storage, i.e. what TPE's density estimators are fed;
- inert entries: those whose parameter did not apply to its trial (no effect on the model or the
  training, so noise to the sampler);
- distinct (parameter, value) pairs, and those of the int and categorical parameters alone (a float
  is almost never drawn twice, so there every stored entry is a distinct pair);
- parameters per trial (mean): the dimensions the sampler models for one trial;
- subspaces: distinct sets of parameter names, the groups `TPESampler(group=True)` models apart.

Spaces: the built-in `digits-cnn` (growth only with blocks >= 2; head_width and head_dropout only with
head_layers >= 1) and `churn-ann` (shrink only with layers >= 2), and `churn-ann+sgd`, churn-ann that
also searches momentum and nesterov (declared only for optimizer sgd).

    python benchmarks/conditions.py                # N = 500, seeds 0 1 2: a few seconds
    python benchmarks/conditions.py --quick        # N = 20, one seed: checks the script only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anncnn_tune.search import spec as spec_mod
from anncnn_tune.training import params as P


def spaces() -> dict[str, spec_mod.Spec]:
    churn = spec_mod.load_spec("churn-ann")
    sgd_space = {**churn.space, "momentum": spec_mod.ParamSpace("momentum", "float", 0.8, 0.99),
                 "nesterov": spec_mod.ParamSpace("nesterov", "categorical", choices=(False, True))}
    churn_sgd = replace(churn, name="churn-ann+sgd",
                        space=spec_mod._dependency_order(sgd_space, churn.family.declared(), "churn-ann+sgd"))
    return {"digits-cnn": spec_mod.load_spec("digits-cnn"), "churn-ann": churn, "churn-ann+sgd": churn_sgd}


def conditional(spec: spec_mod.Spec) -> list[str]:
    return [f"{n} ({' and '.join(c.text() for c in spec.conditions(n))})" for n in spec.space if spec.conditions(n)]


def sample(spec: spec_mod.Spec, n: int, seed: int) -> list[dict]:
    """The stored params of n RandomSampler trials, plus, for each, the names that applied."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        full = spec_mod.suggest(spec, trial)
        study.tell(trial, 0.0)
        applied = {name for name in spec.space if P.active(spec.conditions(name), full)}
        out.append({"params": dict(trial.params), "applied": applied})
    return out


def eval_value(text: str):
    import ast

    return ast.literal_eval(text)


def count(trials: list[dict]) -> dict:
    entries = sum(len(t["params"]) for t in trials)
    inert = sum(len(set(t["params"]) - t["applied"]) for t in trials)
    pairs = {(k, repr(v)) for t in trials for k, v in t["params"].items()}
    discrete = {(k, v) for k, v in pairs if not isinstance(eval_value(v), float)}
    return {"stored_entries": entries, "inert_entries": inert, "distinct_pairs": len(pairs),
            "distinct_discrete_pairs": len(discrete),
            "params_per_trial": entries / len(trials),
            "subspaces": len({frozenset(t["params"]) for t in trials})}


def measure(spec: spec_mod.Spec, n: int, seeds: list[int]) -> dict:
    rows = {"with": [], "without": []}
    for seed in seeds:
        rows["with"].append(count(sample(spec, n, seed)))
        with mock.patch.object(spec_mod.Spec, "conditions", lambda self, name, model=None: ()):
            plain = sample(spec, n, seed)
        # "applied" was computed without conditions above; recompute it with the real ones.
        for t in plain:
            full = {**spec.family.defaults(), **spec.fixed, **t["params"]}
            t["applied"] = {name for name in spec.space if P.active(spec.conditions(name), full)}
        rows["without"].append(count(plain))
    median = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in rows.items()}
    return {"space": spec.name, "searched": len(spec.space), "conditional": conditional(spec), "n": n,
            "seeds": seeds, "per_seed": rows, "median": median}


def drop(a: float, b: float) -> str:
    return f"{(1 - a / b) * 100:.0f}%" if b else "—"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="20 trials, one seed: checks the script only")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--threads", help="ignored (no training); accepted like the other scripts")
    args = parser.parse_args(argv)
    n, seeds = (20, [0]) if args.quick else (args.trials, args.seeds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    results = [measure(spec, n, seeds) for spec in spaces().values()]
    machine = {"python": platform.python_version(), "optuna": optuna.__version__, "cpu": platform.processor()
               or platform.machine(), "cores": os.cpu_count(), "load": os.getloadavg(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"{n} RandomSampler trials per space, seeds {seeds}, medians over seeds "
          f"({time.perf_counter() - started:.1f}s; optuna {optuna.__version__})\n")
    print("| space | searched | conditional | conditions | stored entries | inert entries | distinct (param, value) "
          "| of them int/categorical | params / trial | subspaces |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w, wo = r["median"]["with"], r["median"]["without"]
        for side, m in (("without", wo), ("with", w)):
            print(f"| {r['space']} | {r['searched']} | {len(r['conditional'])} | {side} | {m['stored_entries']:.0f} "
                  f"| {m['inert_entries']:.0f} | {m['distinct_pairs']:.0f} "
                  f"| {m['distinct_discrete_pairs']:.0f} | {m['params_per_trial']:.2f} "
                  f"| {m['subspaces']:.0f} |")
    print()
    for r in results:
        w, wo = r["median"]["with"], r["median"]["without"]
        print(f"{r['space']}: conditional {', '.join(r['conditional']) or 'none'}; with conditions "
              f"{drop(w['stored_entries'], wo['stored_entries'])} fewer stored entries, "
              f"{drop(w['distinct_pairs'], wo['distinct_pairs'])} fewer distinct pairs "
              f"({drop(w['distinct_discrete_pairs'], wo['distinct_discrete_pairs'])} of the int/categorical ones), "
              f"{drop(w['params_per_trial'], wo['params_per_trial'])} fewer parameters per trial; "
              f"{wo['inert_entries']:.0f} inert entries without conditions, {w['inert_entries']:.0f} with")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "results": results}, indent=1, default=list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
