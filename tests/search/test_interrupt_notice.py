"""Ctrl-C during a search: the process says at once what will happen, and the trial it stops is shown
as interrupted and re-queued, in the log and in the final summary, never counted among the failed.
A real process and a real SIGINT."""

from __future__ import annotations

import re
import signal
import time

import optuna
import pytest
from helpers import exit_code, start_cli, stop_all, study_file, wait_for


def _running_after_an_epoch(db):
    try:
        study = optuna.load_study(study_name="quick-cnn", storage=f"sqlite:///{db}")
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    except Exception:  # noqa: BLE001 - not created yet, or its schema half-made by the CLI at this moment
        return None
    return next((t.number for t in trials if t.intermediate_values), None)


@pytest.mark.timeout(240)
def test_sigint_says_what_will_happen_and_the_trial_is_interrupted_not_failed(tmp_path):
    study_file(tmp_path, epochs=30)  # long enough that the signal lands inside a trial
    db = tmp_path / "anncnn-tune.db"
    log = tmp_path / "run.log"
    process = start_cli("optimize", "--study", "quick-cnn.yaml", "--n-trials", 5, "--device", "cpu",
                        "--threads", 1, cwd=tmp_path, log=log)
    try:
        number = wait_for(lambda: _running_after_an_epoch(db), 120, "a trial past its first epoch")
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        notice = f"SIGINT: stopping after the current epoch; trial {number} will resume from its checkpoint"
        wait_for(lambda: notice in log.read_text(), 10, "the notice")
        said_after = time.monotonic() - sent
        code = exit_code(process, log, 60, "SIGINT")
    finally:
        stop_all([process])
    output = log.read_text()
    assert code == 130, output
    assert said_after < 10, output
    lines = output.splitlines()
    said = next(i for i, line in enumerate(lines) if notice in line)
    stopped = next(i for i, line in enumerate(lines) if re.match(rf"trial +{number} interrupted ", line))
    assert said < stopped, output  # said first, then done at the epoch's end
    assert "re-queued" in lines[stopped] and "resumes from its checkpoint" in lines[stopped], lines[stopped]
    (summary,) = [line for line in lines if line.startswith("study quick-cnn: ")]
    assert "1 interrupted" in summary and "fail" not in summary, summary
    assert "Traceback" not in output, output
