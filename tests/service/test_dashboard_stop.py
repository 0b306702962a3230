"""`anncnn-tune dashboard` stops on the first SIGTERM (`docker stop`), as on Ctrl-C: a real process, a
real signal. A worker's handler only records a first signal for its trial loop; the dashboard has none,
so with that handler the first SIGTERM was swallowed and `docker stop` ended in SIGKILL."""

from __future__ import annotations

import re
import signal

import optuna
import pytest
from helpers import exit_code, start_cli, stop_all, wait_for


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("studies", [True, False], ids=["serving", "waiting-for-studies"])
def test_the_first_signal_stops_the_dashboard(tmp_path, signum, studies):
    db = tmp_path / "anncnn-tune.db"
    if studies:
        optuna.create_study(study_name="s", storage=f"sqlite:///{db}").optimize(lambda t: t.suggest_float("x", 0, 1),
                                                                                n_trials=2)
    else:
        db.touch()  # an empty file: the dashboard waits for the first study
    log = tmp_path / "dashboard.log"
    server = start_cli("dashboard", "--storage", f"sqlite:///{db}", "--port", 0, cwd=tmp_path, log=log)
    try:
        ready = r"http://127\.0\.0\.1:\d+/dashboard" if studies else "waiting for the first"
        wait_for(lambda: server.poll() is None and re.search(ready, log.read_text()), 90, "the dashboard to start")
        server.send_signal(signum)  # once
        code = exit_code(server, log, 15, f"one {signum.name}")
    finally:
        stop_all([server])
    output = log.read_text()
    assert code == 0, output
    assert "dashboard stopped" in output and "Traceback" not in output, output
