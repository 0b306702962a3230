"""`anncnn-tune dashboard` serves the workers' storage and artifacts: its JSON API lists the study,
its trials and their files, and headless Chromium renders the trials page with them."""

from __future__ import annotations

import dataclasses
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
        # A trial pruned inside its first epoch (digits-ann's first rung is 1/9 of one) has no epoch to
        # draw: its values are in the dashboard's own intermediate-value plot, and drawing a PNG would
        # cost more than its training did.
        whole_epochs = max(v["step"] for v in trial["intermediate_values"]) >= 9
        expected = {"learning-curve.png", "model.txt"} if whole_epochs else {"model.txt"}
        assert {a["filename"] for a in trial["artifacts"]} == expected
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


def _rename(app, study_id: int, name: str) -> str:
    """POST the dashboard's own rename request to a WSGI app; its status line."""
    import io
    from wsgiref.util import setup_testing_defaults

    body = json.dumps({"study_name": name}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": f"/api/studies/{study_id}/rename",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    status = []
    b"".join(app(environ, lambda line, headers, exc_info=None: status.append(line)))
    return status[-1]


def test_renaming_a_study_in_the_dashboard_keeps_its_record(tmp_path):
    """optuna-dashboard's rename copies user attributes and notes, not the system attributes where a
    compact study keeps its record; `anncnn-tune dashboard` carries the record over."""
    import optuna
    import optuna_dashboard

    from anncnn_tune.service import optuna_private, records
    from anncnn_tune.service.dashboard import make_dashboard_server
    from anncnn_tune.service.readonly import close_readonly
    from anncnn_tune.service.records import StudyRecord

    url = f"sqlite:///{tmp_path / 'r.db'}"
    spec = {"dataset": "digits", "model": "cnn", "metric": "val_accuracy", "epochs": 3}
    storage = optuna.storages.RDBStorage(url)
    for name in ("ours", "bare"):
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        records.write_study_created(study, spec, {"dataset": "digits", "fingerprint": "f"})
        records.write_test_metrics(study, 0, {"mean": 0.9})
        study.tell(study.ask(), 0.5)
    before = StudyRecord.read(optuna.load_study(study_name="ours", storage=storage))

    bare = optuna_private.study_id(optuna.load_study(study_name="bare", storage=storage))
    assert _rename(optuna_dashboard.wsgi(storage), bare, "bare-renamed").startswith("201")
    assert not StudyRecord.read(optuna.load_study(study_name="bare-renamed", storage=storage)).is_ours  # why

    server = make_dashboard_server(url, "127.0.0.1", 0, None)
    try:
        ours = optuna_private.study_id(optuna.load_study(study_name="ours", storage=storage))
        assert _rename(server.get_app(), ours, "renamed").startswith("201")
        missing = _rename(optuna_dashboard.wsgi(storage), 10_000, "nothing")  # the dashboard's own answer
        assert _rename(server.get_app(), 10_000, "nothing") == missing and not missing.startswith("2")
    finally:
        server.server_close()
        close_readonly()
    renamed = StudyRecord.read(optuna.load_study(study_name="renamed", storage=storage))
    assert renamed == dataclasses.replace(before, name="renamed") and renamed.test_metrics == {0: {"mean": 0.9}}
    assert "ours" not in optuna.get_all_study_names(storage)
