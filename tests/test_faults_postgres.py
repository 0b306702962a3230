"""Issue 12: a PostgreSQL restart during a two-worker study (a private cluster started by the test,
not the machine's server) no longer crashes the workers: they wait, go on, and finish the budget."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from test_service_postgres import finished, start_cli, stop_all, study_file, wait_for

pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"), pytest.mark.postgres]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_cluster():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins or not shutil.which("runuser"):
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) or runuser here")
    pg = bins[-1]
    # Its own directory under /tmp: pytest's tmp_path is private to root, and initdb runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="anncnn-pg-"))
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres")
    port = _free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"

    def pg_ctl(*args):
        return subprocess.run(["runuser", "-u", "postgres", "--", f"{pg}/pg_ctl", "-D", str(root / "data"),
                               "-l", str(root / "log"), "-o", opts, "-w", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    made = subprocess.run(["runuser", "-u", "postgres", "--", f"{pg}/initdb", "-D", str(root / "data"), "-U",
                           "postgres", "--auth=trust"], capture_output=True, text=True, timeout=120, check=False)
    if made.returncode != 0 or pg_ctl("start").returncode != 0:
        pytest.skip(f"cannot start a private PostgreSQL cluster: {made.stderr.strip()[:200]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", pg_ctl
    finally:
        pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_database_restart_during_a_two_worker_study(private_cluster, tmp_path):
    pytest.importorskip("psycopg")
    url, pg_ctl = private_cluster
    path = study_file(tmp_path, epochs=8)
    log = tmp_path / "workers.log"
    process = start_cli("optimize", "--study", path, "--n-trials", 4, "--workers", 2, "--storage", url,
                        "--heartbeat-interval", 2, "--artifacts", tmp_path / "artifacts", cwd=tmp_path, log=log)
    try:
        wait_for(lambda: log.read_text().count("trials finished; training on") >= 2, 120, "both workers")
        time.sleep(1.0)
        assert pg_ctl("-m", "fast", "restart").returncode == 0
        code = process.wait(timeout=180)
    finally:
        stop_all([process])
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output, output
    study = optuna.load_study(study_name="quick-cnn", storage=url)
    assert len(finished(study)) >= 4, [t.state.name for t in study.get_trials()]
