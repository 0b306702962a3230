"""TrialCheckpoint on disk: atomic saves, resume by the retry chain, nothing left once discarded."""

import optuna
import torch

from anncnn_tune.service.checkpoints import TrialCheckpoint


def _study_and_trial():
    study = optuna.create_study(study_name="ckpt", storage=optuna.storages.InMemoryStorage())
    return study, study.ask()


def test_a_saved_state_reads_back_and_records_the_epoch_it_resumes_from(tmp_path):
    study, trial = _study_and_trial()
    checkpoint = TrialCheckpoint(tmp_path, study, trial)
    assert checkpoint.peek() is None and checkpoint.resumed_epoch == 0
    checkpoint.save({"history": [{"epoch": 1.0}, {"epoch": 2.0}], "weights": torch.arange(3.0)})
    again = TrialCheckpoint(tmp_path, study, trial)
    state = again.peek()
    assert again.resumed_epoch == 2 and torch.equal(state["weights"], torch.arange(3.0))
    assert again.load() is state  # peeked once, not read twice


def test_discard_also_removes_what_a_worker_killed_mid_save_left(tmp_path):
    study, trial = _study_and_trial()
    checkpoint = TrialCheckpoint(tmp_path, study, trial)
    checkpoint.save({"history": []})
    # What SIGKILL during save() leaves: a temporary beside the checkpoint, never renamed.
    orphan = checkpoint.path.parent / f".{checkpoint.path.name}.abc123.tmp"
    orphan.write_bytes(b"half a file")
    other_trial = checkpoint.path.parent / ".trial-99.pt.def456.tmp"  # another chain's: not ours to remove
    other_trial.write_bytes(b"in progress")
    checkpoint.discard()
    assert sorted(p.name for p in checkpoint.path.parent.iterdir()) == [other_trial.name]


def test_an_unreadable_checkpoint_costs_its_epochs_not_the_trial(tmp_path):
    study, trial = _study_and_trial()
    checkpoint = TrialCheckpoint(tmp_path, study, trial)
    checkpoint.path.parent.mkdir(parents=True)
    checkpoint.path.write_bytes(b"not a torch file")
    assert checkpoint.peek() is None and checkpoint.resumed_epoch == 0
