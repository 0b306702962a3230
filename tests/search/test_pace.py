"""--timeout and the pace: a trial that cannot finish before the deadline is not started, and the
worker then stops instead of sampling trials only to refuse them."""

from __future__ import annotations

import time

import optuna
import pytest

from anncnn_tune.search.objective import Objective
from anncnn_tune.search.pace import Pace, epoch_flops
from anncnn_tune.search.study import run_worker
from anncnn_tune.service import records
from anncnn_tune.service.budget_lock import StudyLock
from anncnn_tune.service.records import TrialRecord
from anncnn_tune.service.storage import open_storage
from anncnn_tune.training import families


def test_pace_is_flops_over_seconds_of_what_was_measured_per_family():
    pace = Pace()
    assert pace.seconds_for("fastcnn", 1e9) is None  # nothing measured: no estimate, the trial runs
    pace.add("fastcnn", 2e9, 4.0)
    pace.add("fastcnn", 0, 3.0)  # an interrupted trial that trained nothing changes nothing
    assert pace.seconds_for("fastcnn", 1e9) == pytest.approx(2.0)
    # A notebook CNN trains at its own FLOP rate: the fast CNN's pace says nothing about it.
    assert pace.seconds_for("cnn", 1e9) is None
    pace.add("cnn", 1e9, 5.0)
    assert pace.seconds_for("cnn", 1e9) == pytest.approx(5.0)
    assert pace.seconds_for("fastcnn", 1e9) == pytest.approx(2.0)


def test_an_epoch_costs_training_and_every_test_time_view_of_validation():
    shape, params = (3, 16, 16), {"width": 8, "tta": "flip"}
    forward = families.get("fastcnn").flops(params, shape, 10)
    assert epoch_flops("fastcnn", params, shape, 10, n_train=100, n_val=10) == 3 * forward * 100 + forward * 2 * 10


def _objective(deadline_in: float, seconds_per_flop: float) -> Objective:
    objective = Objective.__new__(Objective)  # only the pace and the deadline matter here
    objective.pace, objective.out_of_time = Pace(), False
    objective.pace.add("ann", 1.0, seconds_per_flop)
    objective.deadline = time.monotonic() + deadline_in
    return objective


def test_a_trial_that_would_end_after_the_deadline_is_pruned_with_its_reason():
    study = optuna.create_study()
    trial = study.ask()
    objective = _objective(deadline_in=60, seconds_per_flop=1.0)
    objective._check_time_left(trial, "ann", flops=30, what="its 3 epoch(s)", first_step=True)  # 30 s of 60: it runs
    assert not objective.out_of_time
    with pytest.raises(optuna.TrialPruned, match=r"not started: its 3 epoch\(s\) would take about 90 s"):
        objective._check_time_left(trial, "ann", flops=90, what="its 3 epoch(s)", first_step=True)
    assert objective.out_of_time
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert "not started" in TrialRecord.read(study.trials[0]).reason


def test_the_worker_stops_after_the_first_trial_it_could_not_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)

    class TooSlow:
        on_start = None
        out_of_time = False

        def __call__(self, trial):
            records.write_pruned_reason(trial, "not started: no time left")
            self.out_of_time = True
            raise optuna.TrialPruned("not started")

    result = run_worker(study, TooSlow(), StudyLock(storage, url, "s"), n_trials=50, timeout=600, poll_seconds=0.1)
    assert result.timed_out and result.ran == 1 and len(study.trials) == 1


def test_a_refused_later_rung_prunes_its_trial_but_does_not_stop_the_worker():
    """The recipe's full run refused at minute 11 of 30 must leave the other trials' first rungs (a
    ninth of its cost or less) the 19 minutes left."""
    study = optuna.create_study()
    trial = study.ask()
    objective = _objective(deadline_in=60, seconds_per_flop=1.0)
    with pytest.raises(optuna.TrialPruned, match="its full run"):
        objective._check_time_left(trial, "ann", flops=90, what="its full run of 10 epoch(s)", first_step=False)
    assert not objective.out_of_time
