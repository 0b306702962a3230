"""`anncnn-tune dashboard` serves the workers' storage and artifacts: its JSON API lists the study,
its trials and their files, and headless Chromium renders the trials page with them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest
from helpers import run_cli, start_cli, stop_all, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
N_TRIALS = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real three-trial study and the dashboard command serving it on a free port."""
    cwd = tmp_path_factory.mktemp("dashboard")
    ran = run_cli("optimize", "--study", "digits-ann", "--n-trials", N_TRIALS, "--epochs", 2, cwd=cwd, timeout=120,
                  env={"OMP_NUM_THREADS": "1"})
    assert ran.returncode == 0, ran.stderr
    log = cwd / "dashboard.log"
    server = start_cli("dashboard", "--storage", f"sqlite:///{cwd / 'anncnn-tune.db'}", "--port", 0,
                       "--artifacts", cwd / "anncnn-tune-artifacts", cwd=cwd, log=log)
    try:
        def address():
            assert server.poll() is None, log.read_text()
            found = re.search(r"http://(127\.0\.0\.1:\d+)/dashboard", log.read_text())
            return found and found.group(1)

        yield f"http://{wait_for(address, 60, 'the dashboard to listen')}", cwd
    finally:
        stop_all([server])


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body


@pytest.mark.timeout(200)
def test_the_api_lists_the_study_its_trials_note_and_artifacts(served):
    base, _ = served
    (summary,) = get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "digits-ann"
    detail = get(f"{base}/api/studies/{summary['study_id']}")
    assert len(detail["trials"]) == N_TRIALS
    assert "keras-mlp-128-64" in detail["note"]["body"] and "digits" in detail["note"]["body"]
    for trial in detail["trials"]:
        assert {a["filename"] for a in trial["artifacts"]} == {"learning-curve.png", "model.txt"}
        assert trial["intermediate_values"]
    first = detail["trials"][0]
    png = next(a for a in first["artifacts"] if a["filename"] == "learning-curve.png")
    image = get(f"{base}/artifacts/{summary['study_id']}/{first['trial_id']}/{png['artifact_id']}")
    assert image.startswith(b"\x89PNG")
    text = next(a for a in first["artifacts"] if a["filename"] == "model.txt")
    assert b"parameters:" in get(f"{base}/artifacts/{summary['study_id']}/{first['trial_id']}/{text['artifact_id']}")


def chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="anncnn-chromium-") as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                               "--no-first-run", "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                               *args], capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_chromium_renders_the_trials_with_their_learning_curves(served, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (CI: apt-get install -y chromium)")
    base, _ = served
    (summary,) = get(f"{base}/api/studies")["study_summaries"]
    page = f"{base}/dashboard/studies/{summary['study_id']}/trials"
    dom = chromium("--dump-dom", page).stdout
    assert "digits-ann" in dom and f"{N_TRIALS} Trials" in dom, dom[-2000:]
    assert all(f"Trial {n}" in dom for n in range(N_TRIALS))
    assert "learning-curve.png" in dom and "model.txt" in dom  # the first trial's artifacts, shown
    screenshot = tmp_path / "dashboard-trials.png"
    shot = chromium("--window-size=1400,1200", f"--screenshot={screenshot}", page)
    assert screenshot.is_file(), shot.stderr[-2000:]
    data = Path(screenshot).read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000  # a rendered page, not a blank one
