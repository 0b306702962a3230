
"""The benchmarks run end to end in --quick mode and produce well-formed output (never timing checks)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO


def run(script: str, *args, tmp_path: Path, threads: bool = True) -> tuple[str, dict]:
    out = tmp_path / f"{Path(script).stem}.json"
    command = [sys.executable, str(REPO / "benchmarks" / script), "--quick", "--json", str(out), *args]
    if threads:
        command += ["--threads", "1"]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_throughput_quick_reports_every_model_against_the_reference(tmp_path):
    stdout, report = run("throughput.py", tmp_path=tmp_path)
    names = ["mnist-ann", "mnist-cnn", "cifar10-cnn", "churn-mlp"]
    assert [r["model"] for r in report["results"]] == names
    assert positive(report["matmul_gflops"])
    assert {"cpu", "cores", "torch", "torch_threads", "date"} <= set(report["machine"])
    for r in report["results"]:
        for key in ("fit_epoch_s", "ref_epoch_s", "fit_samples_per_s", "ref_samples_per_s", "speedup",
                    "fit_gflops", "matmul_fraction", "forward_mflops_per_sample"):
            assert positive(r[key]), (r["model"], key)
        assert r["speedup"] == r["ref_epoch_s"] / r["fit_epoch_s"]
    # 784-512-256-10: 2 * (784*512 + 512*256 + 256*10) FLOPs per sample forward.
    assert report["results"][0]["forward_mflops_per_sample"] * 1e6 == 2 * (784 * 512 + 512 * 256 + 256 * 10)
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| model |"))
    rows = lines[header + 2 : header + 2 + len(names)]
    assert [row.split("|")[1].strip() for row in rows] == names
    assert all(row.count("|") == lines[header].count("|") for row in rows)
    assert "GFLOP/s" in stdout


def test_search_quick_compares_the_pruning_arms(tmp_path):
    stdout, report = run("search.py", "--trials", "3", "--arms", "median,hyperband-ninth", "--extra-arm",
                         'sh={"type": "successive_halving", "min_resource": 0.25}', tmp_path=tmp_path)
    assert [row["arm"] for row in report["summary"]] == ["none", "median", "hyperband-ninth", "sh"]
    assert report["info"]["study"] == "digits-ann"
    unpruned = report["runs"][0]
    for run_ in report["runs"]:
        assert run_["total_epochs"] == sum(t["epochs"] for t in run_["trials"]) > 0
        assert run_["n_trials"] == len(run_["trials"]) >= 3 and positive(run_["wall_seconds"])
        assert 0 <= run_["best_value"] <= 1 and run_["epochs_at_n"] <= run_["total_epochs"]
        # A pruned search stops once it reached the unpruned best or spent the unpruned search's epochs.
        assert run_["reach"]["reached"] or run_["total_epochs"] >= unpruned["total_epochs"] or run_["n_trials"] == 75
    assert unpruned["arm"] == "none" and unpruned["n_trials"] == 3
    assert unpruned["reach"]["reached"]  # a search reaches its own best
    assert "| pruner |" in stdout and stdout.count("| hyperband-ninth |") == 1 and stdout.count("| sh |") == 1


def test_choices_quick_prints_every_section(tmp_path):
    stdout, report = run("choices.py", tmp_path=tmp_path, threads=False)
    assert list(report) == ["optimizer step (CPU)", "batch gather", "translation", "memory format",
                            "validation batch (CPU)", "intra-op threads", "bf16 autocast (CPU, all cores)",
                            "convolution peak (CPU, all cores)", "folded batch norm at evaluation (CPU, all cores)",
                            "torch.compile against eager (CPU, all cores)"]
    for rows in report.values():
        for row in rows:
            # compiling that never pays breaks even after infinitely many steps
            assert row.get("break-even (steps)", 1) > 0, row
            values = [v for k, v in row.items() if k not in ("what", "unit", "break-even (steps)")]
            assert len(values) >= 2 and all(positive(v) for v in values), row
    assert sum(line.startswith("|---|") for line in stdout.splitlines()) == len(report)


def test_storage_load_quick_keeps_the_budget_exact_on_sqlite(tmp_path):
    out = tmp_path / "storage_load.json"
    command = [sys.executable, str(REPO / "benchmarks" / "storage_load.py"), "--quick", "--storage",
               "sqlite:///load.db", "--json", str(out)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workers"] == 2 and report["finished"] == report["budget"] == 6
    assert report["states"] == {"COMPLETE": 6} and report["deadlocked_workers"] == 0
    assert positive(report["trials_per_second"]) and 0 <= report["lock_wait_share"] <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage_load.json"]  # the study and file are gone


def test_workers_quick_times_both_ways_of_using_the_cores(tmp_path):
    stdout, report = run("workers.py", tmp_path=tmp_path, threads=False)
    (row,) = report["rows"]
    assert positive(row["threads_s"]) and positive(row["processes_s"]) and positive(row["step_flops"])
    assert row["ratio"] == row["threads_s"] / row["processes_s"]
    assert f"| {row['model']} |" in stdout


def test_the_plain_optuna_script_runs_trials_on_anncnn_tunes_splits(tmp_path):
    storage = f"sqlite:///{tmp_path / 'plain.db'}"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "plain_optuna.py"), "--dataset", "digits",
                           "--timeout", "3", "--storage", storage], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    import optuna

    trials = optuna.load_study(study_name="plain", storage=storage).trials
    assert trials and {"n_layers", "optimizer", "lr"} <= set(trials[0].params)
    assert all(0 <= v <= 1 for t in trials for v in t.intermediate_values.values())


def test_the_race_report_reads_anytime_curves_climbs_and_times_to_reach():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import race

    def trial(seconds, value, baseline=None, state="COMPLETE"):
        return {"seconds": seconds, "state": state, "value": value, "epochs": 2, "baseline": baseline}

    plain = {"arm": "plain", "seed": 0, "trials": [trial(20, 0.80), trial(50, 0.85), trial(70, 0.6, state="PRUNED")]}
    ours = {"arm": "anncnn:1", "seed": 0, "trials": [trial(10, 0.86, baseline="ref"), trial(40, 0.90)]}
    summaries = [race.summarise(r, 60) for r in (plain, ours)]
    assert summaries[0]["curve"] == {"30": 0.80, "60": 0.85} and summaries[0]["pruned"] == 1
    assert summaries[1]["curve"] == {"30": 0.86, "60": 0.90}
    assert summaries[1]["climb"] == {"30": 0.0, "60": pytest.approx(0.04)}
    assert race.time_to_reach(ours["trials"], 0.85) == 10 and race.time_to_reach(plain["trials"], 0.90) is None
    text = race.report(summaries, [plain, ours], ["plain", "anncnn:1"], 60)
    assert "| 0 | anncnn:1 | plain | 0.9000 | 0.8500 | 0.67 | 10 | - |" in text  # error 0.10 vs 0.15


def test_the_race_merges_seeds_run_at_different_times_and_refuses_other_races(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import race

    def out(seed, value, budget=60):
        runs = [{"arm": arm, "seed": seed, "trials": [{"seconds": 30, "state": "COMPLETE", "value": v, "epochs": 1,
                                                       "baseline": None}]}
                for arm, v in (("plain", 0.8), ("anncnn:1", value))]
        info = {"study": "s", "dataset": "d", "budget_s": budget, "arms": ["plain", "anncnn:1"], "date": "today",
                "load_before": [1.0, 1.0, 1.0]}
        return {"info": info, "summaries": [race.summarise(r, budget) for r in runs], "runs": runs}

    files = []
    for name, content in (("0", out(0, 0.90)), ("1", out(1, 0.84)), ("other", out(2, 0.9, budget=30)),
                          ("again", out(1, 0.95))):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(content))
    merged = race.main(["--merge", str(files[0]), str(files[1])])
    text = capsys.readouterr().out
    assert merged["info"]["seeds"] == [0, 1]
    assert "| anncnn:1 | 0.8700 | 0.8700 |" in text  # the median of the two seeds' bests at 30 s and at the end
    assert "| 0 | anncnn:1 | plain | 0.9000 |" in text and "| 1 | anncnn:1 | plain | 0.8400 |" in text
    for second, message in ((files[2], "another race (budget_s 30"), (files[3], "ran seed 1 in more than one")):
        with pytest.raises(SystemExit) as exit_:
            race.main(["--merge", str(files[1]), str(second)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_ceiling_study_is_the_fashion_mnist_ann_space_with_long_trained_baselines():
    from anncnn_tune.search.spec import load_spec

    ceiling = load_spec(str(REPO / "benchmarks" / "fashion-mnist-mlp-ceiling.yaml"))
    study = load_spec("fashion-mnist-ann")
    # Its figures speak for the study's space only while the two spaces are the same.
    assert {n: s.as_dict() for n, s in ceiling.space.items()} == {n: s.as_dict() for n, s in study.space.items()}
    assert (ceiling.dataset, ceiling.model, ceiling.metric, ceiling.seed) == (study.dataset, "ann", study.metric, 0)
    assert len(ceiling.baselines) == 5 and all(b.get("epochs", ceiling.epochs) > study.epochs for b in ceiling.baselines)


def test_the_16px_variant_is_cifar10_cnn_but_for_its_first_rung_side():
    from anncnn_tune.search.spec import load_spec

    variant = load_spec(str(REPO / "benchmarks" / "cifar10-cnn-16px.yaml"))
    study = load_spec("cifar10-cnn")
    # The race between the two measures the 16x16 first rung only while nothing else differs.
    assert variant.pruner == {**study.pruner, "first_rung_side": 16} and study.first_rung_side is None
    assert {n: s.as_dict() for n, s in variant.space.items()} == {n: s.as_dict() for n, s in study.space.items()}
    same = ("dataset", "model", "metric", "epochs", "seed", "sampler", "fixed", "baselines", "description")
    assert [getattr(variant, k) for k in same] == [getattr(study, k) for k in same]


def test_conditions_quick_counts_fewer_entries_with_conditions_and_none_inert(tmp_path):
    stdout, report = run("conditions.py", tmp_path=tmp_path)
    assert [r["space"] for r in report["results"]] == ["digits-cnn", "churn-ann", "churn-ann+sgd"]
    for r in report["results"]:
        with_, without = r["median"]["with"], r["median"]["without"]
        assert r["conditional"] and with_["inert_entries"] == 0 < without["inert_entries"]
        assert with_["stored_entries"] < without["stored_entries"] == r["n"] * r["searched"]
        assert without["subspaces"] == 1 < with_["subspaces"]
    assert "| digits-cnn | 17 | 3 | with |" in stdout


def write_tiny_image_folder(root: Path, *, classes=("cat", "dog", "ship"), per_class=20, size=16) -> Path:
    """60 small PNGs in class folders (ImageFolder layout), each class brighter in its own channel."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] += 55
            Image.fromarray(pixels, "RGB").save(root / name / f"{i}.png")
    return root


def test_the_plain_cnn_script_and_its_engine_twin_search_one_space_and_race_alike(tmp_path):
    """Both plain CNN scripts run on a folder of PNGs (anncnn-tune's splits of it), record trials of the
    same space, and the race reads their storages into one report."""
    import optuna

    sys.path.insert(0, str(REPO / "benchmarks"))
    import race

    folder = write_tiny_image_folder(tmp_path / "tiny")
    env = {**os.environ, "ANNCNN_TUNE_DATA": str(tmp_path / "cache")}
    runs, params = [], {}
    for arm in ("plain-cnn", "plain-engine"):
        storage = f"sqlite:///{tmp_path / arm}.db"
        started = time.time()
        # --timeout 1: Optuna always starts the first trial, so each script records at least one.
        done = subprocess.run([sys.executable, str(REPO / "benchmarks" / race.PLAIN_SCRIPTS[arm]), "--dataset",
                               str(folder), "--timeout", "1", "--storage", storage, "--seed", "0", "--device", "cpu"],
                              check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        (study,) = optuna.get_all_study_summaries(storage)
        assert study.study_name == arm
        trials = optuna.load_study(study_name=arm, storage=storage).trials
        assert trials and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        for t in trials:  # a report after every epoch, 10 epochs unless pruned, accuracies
            steps = sorted(t.intermediate_values)
            assert steps == list(range(len(steps))) and 1 <= len(steps) <= 10
            assert t.state.name == "PRUNED" or (len(steps) == 10 and t.value == t.intermediate_values[9])
            assert all(0 <= v <= 1 for v in t.intermediate_values.values())
        params[arm] = set(trials[0].params)
        read = race.read_trials(storage, started - 1, 3600)
        assert len(read) == len(trials)
        assert sum(x["epochs"] for x in read) == sum(len(t.intermediate_values) for t in trials)
        runs.append({"arm": arm, "seed": 0, "trials": read})
    assert params["plain-cnn"] == params["plain-engine"] == {
        "n_blocks", "filters", "convs", "dropout", "head_units", "head_dropout", "optimizer", "lr", "weight_decay"}
    summaries = [race.summarise(r, 3600) for r in runs]
    text = race.report(summaries, runs, ["plain-cnn", "plain-engine"], 3600)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| plain-")}
    assert set(rows) == {"plain-cnn", "plain-engine"}
    for s in summaries:
        assert s["trials"] >= 1 and f"| {s['trials']} |" in rows[s["arm"]]
    assert "| 0 | plain-engine | plain-cnn |" in text and "climb" not in text  # plain arms have no baselines


def test_the_engine_twin_builds_the_plain_scripts_network():
    import optuna
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    import plain_optuna_cnn
    import plain_same_engine

    from anncnn_tune.training import families, models

    for blocks, filters, convs, dropout in ((2, 16, 1, 0.0), (4, 64, 2, 0.3), (3, 32, 2, 0.1)):
        plain = {"n_blocks": blocks, "filters": filters, "convs": convs, "dropout": dropout, "head_units": 100,
                 "head_dropout": 0.2, "optimizer": "SGD", "lr": 0.01, "weight_decay": 1e-4}
        assert plain_optuna_cnn.suggest(optuna.trial.FixedTrial(plain), (3, 32, 32)) == plain
        ours = models.build("cnn", families.get("cnn").full(plain_same_engine.to_engine_params(plain)), (3, 32, 32), 10)
        theirs = plain_optuna_cnn.define_model(plain, (3, 32, 32), 10)
        def layers(model):
            return [(type(m).__name__, tuple(p.shape for p in m.parameters(recurse=False)), getattr(m, "p", None))
                    for m in model.modules() if not list(m.children()) and not isinstance(m, torch.nn.Identity)]

        assert layers(ours) == layers(theirs)
        theirs.load_state_dict(dict(zip(theirs.state_dict(), ours.state_dict().values())))
        x = torch.randn(2, 3, 32, 32)
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


def test_the_race_gives_a_folder_to_every_arm(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import argparse

    import race

    folder = write_tiny_image_folder(tmp_path / "tiny", per_class=1)
    args = argparse.Namespace(study="cifar10-cnn", dataset=os.path.relpath(folder), budget=60.0, epochs=None)
    for arm in ("plain", "plain-cnn", "plain-engine", "anncnn:1"):
        command = race.command(arm, args, 0, "sqlite:///x.db", tmp_path)
        assert command[command.index("--dataset") + 1] == str(folder.resolve())  # absolute: arms run elsewhere
    assert race.command("anncnn:1", args, 0, "sqlite:///x.db", tmp_path)[4:6] == ["--study", "cifar10-cnn"]
    args.dataset = "fashion-mnist"  # a key: the plain scripts' data, anncnn-tune runs the study's own
    assert "--dataset" not in race.command("anncnn:1", args, 0, "sqlite:///x.db", tmp_path)
    assert race.read_trials(f"sqlite:///{tmp_path / 'empty.db'}", time.time(), 60) == []  # killed before its study


def test_tables_quick_puts_the_tuned_ann_beside_tuned_gradient_boosting(tmp_path):
    stdout, report = run("tables.py", "--work", str(tmp_path / "work"), tmp_path=tmp_path)
    assert [r["table"] for r in report["results"]] == ["wine", "diabetes"]
    for r, metrics in zip(report["results"], (("accuracy", "balanced_accuracy", "macro_f1"), ("mse",))):
        assert r["metric"] in metrics, r  # the study's own metric, which init chooses
        assert len(r["ann"]["per_seed"]) == len(r["gb"]["per_seed"]) == 2
        assert all(math.isfinite(v) for v in r["ann"]["per_seed"] + r["gb"]["per_seed"])
        assert r["gb"]["trials"] == 10  # the net's 2 trials, raised to the reference's minimum
        assert r["vs_gb"]["word"] in ("better", "worse", "not significant", "no verdict")
        assert r["realmlp"] == {"skipped": "no --realmlp-python"}
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| table |"))
    rows = lines[header + 2 : header + 4]
    assert [row.split("|")[1].strip() for row in rows] == ["wine", "diabetes"]
    assert all(row.count("|") == lines[header].count("|") for row in rows)


def test_ensemble_quick_pairs_each_seed_with_and_without_members(tmp_path):
    stdout, report = run("ensemble.py", tmp_path=tmp_path)
    rows = report["rows"]
    assert sorted(r["members"] for r in rows) == [1, 8] and {r["seed"] for r in rows} == {0}
    assert all(0.5 <= r["best_val"] <= 1 and positive(r["seconds"]) for r in rows)  # digits' accuracy
    assert "| digits-mlp | val_accuracy |" in stdout


def test_resolution_rungs_quick_trains_each_configuration_at_both_sides(tmp_path):
    stdout, report = run("resolution_rungs.py", tmp_path=tmp_path)
    assert [r["config"] for r in report["rows"]] == ["airbench94-recipe", "draw 1"]
    assert all(0 <= r[f"value_{side}"] <= 1 and r[f"seconds_{side}"] > 0 for r in report["rows"] for side in ("32", "16"))
    assert -1 <= report["spearman"] <= 1 and "Spearman" in stdout


def test_split_spread_quick_reproduces_the_studys_own_split_and_draws_others(tmp_path):
    """Draw 0 is the study's own split: the net retrained there and the reference refit there give
    exactly what the study recorded (same configuration, seed and rows); the next draw holds other
    test rows, so it scores otherwise."""
    stdout, report = run("split_spread.py", tmp_path=tmp_path, threads=False)
    first, second = report["rows"]
    own = report["recorded_on_own_split"]
    assert first["net"] == pytest.approx(own["net"], abs=1e-6)
    assert first["reference"] == pytest.approx(own["reference"], abs=1e-9)
    assert second["split_seed"] == first["split_seed"] + 1
    assert (second["net"], second["reference"]) != (first["net"], first["reference"])
    assert report["net_minus_reference"]["mean"] == pytest.approx(
        (first["net"] + second["net"] - first["reference"] - second["reference"]) / 2)
    assert "is the study's own split" in stdout


def test_housing_gap_scores_each_study_on_its_own_test_rows(tmp_path, capsys):
    """housing_gap.py compares the built-in California study and housing.csv's `init` study on each
    other's splits: the rows it takes as a study's test split must be that study's, as its loader
    splits them (the same targets in the same order), and train+validation the rest."""
    from helpers import SHARED_DATASETS, main_in_process

    folder = SHARED_DATASETS / "california-housing"
    if not (folder / "housing.csv").is_file() or not (folder / "cal_housing.tgz").is_file():
        pytest.skip(f"{folder} lacks housing.csv or cal_housing.tgz; set ANNCNN_TUNE_SHARED_DATASETS")
    code, _, err = main_in_process(capsys, "init", folder / "housing.csv", "--target", "median_house_value",
                                   "--name", "housing", "--out-dir", tmp_path)
    assert code == 0, err
    sys.path.insert(0, str(REPO / "benchmarks"))
    import housing_gap
    import numpy as np

    from anncnn_tune.data import load_dataset
    from anncnn_tune.data.source import load_source
    from anncnn_tune.search.spec import load_spec

    sets, y = housing_gap.feature_sets(folder)
    assert all(x.shape[0] == len(y) == 20640 for x in sets.values())
    parts = housing_gap.study_splits(tmp_path / "housing-ann.yaml", y)
    builtin = load_dataset("california-housing", data_dir=SHARED_DATASETS, seed=0)
    housing = load_source(load_spec(str(tmp_path / "housing-ann.yaml")).data_source, seed=0)
    for (fit, test), study_test in zip(parts.values(), (builtin.y_test, housing.y_test / 1e5)):
        assert sorted(np.concatenate([fit, test]).tolist()) == list(range(len(y)))
        np.testing.assert_allclose(y[test], study_test, rtol=1e-6)
    assert not np.array_equal(parts["built-in study's split"][1], parts["housing.csv study's split"][1])


def test_housing_gaps_net_learner_learns_from_the_fit_rows():
    """housing_gap's `--learner net` trains the built-in study's mlp-plr baseline on the fit rows
    (missing values and a 0/1 column among them, as in housing.csv): on a target that is a smooth
    function of the features it scores far below the target's spread on rows it did not see, and
    better with more epochs."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import housing_gap
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4))
    x[:, 3] = rng.integers(0, 2, size=1200)
    x[rng.random(1200) < 0.05, 1] = np.nan
    y = np.sin(x[:, 0]) + 0.5 * x[:, 2] ** 2 + x[:, 3] + 0.05 * rng.normal(size=1200)
    fit, test = np.arange(1000), np.arange(1000, 1200)
    one, eight = (housing_gap.net_rmse(x, y, fit, test, epochs=e) for e in (1, 8))
    assert np.isfinite(one) and eight < min(one, 0.3 * y[test].std())
