"""Issue 12: a SQLite file damaged in the middle gives one line naming the file and `sqlite3 FILE
.recover`, never tracebacks, for studies, compare, export and optimize; a checkpoint that loads but
holds the wrong contents costs its epochs, not the trial."""

from __future__ import annotations

import optuna
import pytest
import torch
from conftest import run_cli

from anncnn_tune.search.objective import TrialObserver  # noqa: F401 - the objective's module imports cleanly
from anncnn_tune.service.checkpoints import TrialCheckpoint

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module")
def damaged_db(tmp_path_factory):
    """A real study's storage with garbage written over pages in the middle (the header intact)."""
    root = tmp_path_factory.mktemp("damaged")
    db = root / "anncnn-tune.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    for i in range(300):
        study.add_trial(optuna.trial.create_trial(value=float(i), params={"x": float(i)},
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 1e3)},
                                                  user_attrs={"note": "n" * 200}))
    del study
    size = db.stat().st_size
    with open(db, "r+b") as f:
        for offset in range(size // 4, 3 * size // 4, 4096):
            f.seek(offset)
            f.write(b"\xde\xad\xbe\xef" * 256)
    return db


@pytest.mark.parametrize("command", [("studies",), ("compare",), ("export", "--study", "s"),
                                     ("optimize", "--study", "digits-ann", "--n-trials", "1")])
def test_a_damaged_sqlite_file_is_one_line_with_the_recover_command(damaged_db, command):
    result = run_cli(*command, "--storage", f"sqlite:///{damaged_db}", cwd=damaged_db.parent)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(damaged_db) in lines[0] and f"sqlite3 {damaged_db} .recover" in lines[0], lines[0]


def test_a_checkpoint_with_the_wrong_contents_is_ignored(tmp_path):
    study = optuna.create_study(study_name="c")
    trial = study.ask()
    checkpoint = TrialCheckpoint(tmp_path, study, trial)
    checkpoint.path.parent.mkdir(parents=True)
    torch.save({"something": "else"}, checkpoint.path)  # loads fine, but it is no training state
    assert checkpoint.peek() is None and checkpoint.resumed_epoch == 0
    torch.save([1, 2, 3], checkpoint.path)
    assert checkpoint.load() is None
    # A training state, but of another model (another trial's file copied over this one).
    other, model = torch.nn.Linear(3, 2), torch.nn.Linear(4, 2)
    state = {"model": other.state_dict(), "optimizer": {}, "generator": torch.Generator().get_state(),
             "history": [{"epoch": 1}], "best_value": 0.5, "best_epoch": 1, "since_best": 0, "elapsed": 1.0}
    torch.save(state, checkpoint.path)
    assert checkpoint.peek(model) is None and checkpoint.resumed_epoch == 0
    torch.save({**state, "model": model.state_dict()}, checkpoint.path)
    assert checkpoint.peek(model) is not None and checkpoint.resumed_epoch == 1
