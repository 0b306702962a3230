
"""The benchmarks run end to end in --quick mode and produce well-formed output (never timing checks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

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
        assert run_["reach"]["reached"] or run_["total_epochs"] >= unpruned["total_epochs"] or run_["n_trials"] == 15
    assert unpruned["arm"] == "none" and unpruned["n_trials"] == 3
    assert unpruned["reach"]["reached"]  # a search reaches its own best
    assert "| pruner |" in stdout and stdout.count("| hyperband-ninth |") == 1 and stdout.count("| sh |") == 1


def test_choices_quick_prints_every_section(tmp_path):
    stdout, report = run("choices.py", tmp_path=tmp_path, threads=False)
    assert list(report) == ["optimizer step (CPU)", "batch gather", "translation", "memory format",
                            "validation batch (CPU)", "intra-op threads"]
    for rows in report.values():
        for row in rows:
            values = [v for k, v in row.items() if k not in ("what", "unit")]
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
