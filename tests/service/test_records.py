"""service/records.py: studies written with the flat raw attribute layout (every study before the
compact one) read through the records, compact studies read into the same records, the writers write
the layout each study has, and the seed and best-trial rules are the ones every command uses."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from anncnn_tune.service import optuna_private, records
from anncnn_tune.service.records import StudyRecord, TrialRecord

SPEC = {"dataset": "digits", "model": "cnn", "metric": "val_accuracy", "epochs": 4, "seed": 7,
        "sampler": {"type": "tpe"}, "pruner": {"type": "hyperband"}}
DATA = {"dataset": "digits", "task": "multiclass", "fingerprint": "f1ng3r", "split_seed": 7, "n_train": 1000}


def _old_study(tmp_path) -> optuna.Study:
    """A study exactly as anncnn-tune has written them (raw set_user_attr, no records module)."""
    study = optuna.create_study(study_name="old", storage=f"sqlite:///{tmp_path / 'old.db'}", direction="maximize")
    study.set_user_attr("spec", SPEC)
    study.set_user_attr("data", DATA)
    study.set_user_attr("created_by", "anncnn-tune")
    study.set_user_attr("test_metrics", {"1": {"metric": "accuracy", "mean": 0.95, "std": 0.01, "seeds": 3,
                                               "retrained_at": "2026-01-01T00:00:00+00:00"}})
    study.enqueue_trial({"x": 1.0}, user_attrs={"baseline": "keras-ref", "epochs": 2})
    trial = study.ask()
    trial.suggest_float("x", 0, 2)
    for key, value in {"n_params": 1234, "device": "cpu", "seed": 700_021, "worker": "host:1", "epochs_run": 2,
                       "train_seconds": 1.25, "samples_per_second": 1600.0, "compile_seconds": 0.0, "best_epoch": 2,
                       "stopped": "budget", "history": [{"epoch": 1, "train_loss": 0.9, "val_accuracy": 0.8},
                                                        {"epoch": 2, "train_loss": 0.5, "val_accuracy": 0.9}],
                       "resumed_from_trial": 0, "resumed_from_epoch": 1}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.9)
    pruned = study.ask()
    pruned.set_user_attr("pruned_reason", "pruned at epoch 1")
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask()
    failed.set_user_attr("fail_reason", "interrupted by SIGTERM after epoch 0 of 4")
    study.tell(failed, state=TrialState.FAIL)
    return optuna.load_study(study_name="old", storage=f"sqlite:///{tmp_path / 'old.db'}")


def test_a_study_written_before_the_records_module_reads_through_it(tmp_path):
    study = _old_study(tmp_path)
    record = StudyRecord.read(study)
    assert record.is_ours and record.spec == SPEC and record.data == DATA and record.created_by == "anncnn-tune"
    assert record.fingerprint == "f1ng3r" and record.split_seed() == 7
    assert record.test_metrics[1]["mean"] == 0.95  # keyed by trial number, stored as a string
    assert record.fairness() == {"metric": "val_accuracy", "fingerprint": "f1ng3r", "split_seed": 7, "subset": None,
                                 "epochs": 4, "sampler": {"type": "tpe"}, "pruner": {"type": "hyperband"}}
    assert set(record.fairness()) == set(records.FAIR_KEYS)
    done, pruned, failed = study.get_trials()
    first = TrialRecord.read(done)
    assert (first.baseline, first.epochs, first.n_params, first.device, first.seed, first.worker) == (
        "keras-ref", 2, 1234, "cpu", 700_021, "host:1")
    assert (first.epochs_run, first.train_seconds, first.samples_per_second, first.compile_seconds) == (
        2, 1.25, 1600.0, 0.0)
    assert first.best_epoch == 2 and first.stopped == "budget" and first.history[1]["val_accuracy"] == 0.9
    assert (first.resumed_from_trial, first.resumed_from_epoch) == (0, 1)
    assert TrialRecord.read(pruned).reason == "pruned at epoch 1"
    assert TrialRecord.read(failed).reason.startswith("interrupted by SIGTERM")
    assert TrialRecord.read(pruned).baseline is None and TrialRecord.read(pruned).history is None


def test_the_summary_of_a_study_reads_like_the_study(tmp_path):
    _old_study(tmp_path)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'old.db'}")
    (summary,) = optuna.get_all_study_summaries(storage, include_best_trial=False)
    assert StudyRecord.read_summary(summary, storage).spec == SPEC
    with pytest.raises(TypeError, match="read_summary"):  # its user attributes alone miss a compact record
        StudyRecord.read(summary)


def test_a_foreign_study_is_told_apart():
    record = StudyRecord.read(optuna.create_study())
    assert not record.is_ours and record.data == {} and record.test_metrics == {} and record.fingerprint is None


REFERENCE = {"model": "logistic regression", "setting": {"C": 1.0}, "validation": 0.9, "test": 0.91}
TESTED = {"metric": "accuracy", "mean": 0.95, "std": 0.01, "seeds": 1, "retrained_at": "2026-01-01T00:00:00+00:00",
          "correct": records.encode_correct([[1, 0, 1, 1]])}


def _flat_and_compact(tmp_path) -> tuple[str, optuna.Study, optuna.Study]:
    """One record twice in one storage: "flat" as anncnn-tune wrote studies before the compact layout
    (raw set_user_attr, every key), "compact" through today's writers."""
    url = f"sqlite:///{tmp_path / 'both.db'}"
    flat = optuna.create_study(study_name="flat", storage=url, direction="maximize")
    for key, value in {"spec": SPEC, "data": DATA, "created_by": "anncnn-tune", "test_metrics": {"3": TESTED},
                       "test_scorings": 2, "classical_reference": REFERENCE}.items():
        flat.set_user_attr(key, value)
    compact = optuna.create_study(study_name="compact", storage=url, direction="maximize")
    records.write_study_created(compact, SPEC, DATA)
    records.write_test_metrics(compact, 3, TESTED)
    records.write_test_scored(compact)
    assert records.write_test_scored(compact) == 2
    records.write_reference(compact, REFERENCE)
    return url, flat, compact


def test_a_compact_study_reads_into_the_record_a_flat_one_does(tmp_path):
    url, flat, compact = _flat_and_compact(tmp_path)
    read = {study.study_name: StudyRecord.read(study) for study in (flat, compact)}
    assert dataclasses.replace(read["compact"], name="flat") == read["flat"]
    assert read["flat"].test_metrics == {3: TESTED} and read["flat"].test_scorings == 2
    assert read["flat"].reference == REFERENCE and read["flat"].fairness()["fingerprint"] == "f1ng3r"
    assert read["compact"].summary == read["flat"].summary == "cnn on digits, val_accuracy, 4 epochs"
    storage = optuna.storages.RDBStorage(url)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    assert {s.study_name: StudyRecord.read_summary(s, storage) for s in summaries} == read
    # what `optuna studies` prints of the compact study: one short row; the record is in system attributes
    assert compact.user_attrs == {"created_by": "anncnn-tune", "summary": "cnn on digits, val_accuracy, 4 epochs"}
    stored = optuna_private.study_system_attrs(compact)
    assert {k for k in stored if k.startswith("anncnn-tune:")} == {
        "anncnn-tune:spec", "anncnn-tune:data", "anncnn-tune:test_metrics", "anncnn-tune:test_scorings",
        "anncnn-tune:classical_reference"}
    assert not any(k.startswith("anncnn-tune:") for k in optuna_private.study_system_attrs(flat))


def test_a_flat_study_stays_flat_when_retrain_and_reference_write_to_it(tmp_path):
    """Older anncnn-tune versions read a flat study's user attributes: new entries go there too."""
    study = _old_study(tmp_path)
    records.write_test_metrics(study, 2, {"mean": 0.5})
    assert records.write_test_scored(study) == 1
    records.write_reference(study, REFERENCE)
    attrs = study.user_attrs
    assert set(attrs["test_metrics"]) == {"1", "2"} and attrs["test_metrics"]["1"]["mean"] == 0.95
    assert attrs["test_scorings"] == 1 and attrs["classical_reference"] == REFERENCE and "summary" not in attrs
    assert not any(k.startswith("anncnn-tune:") for k in optuna_private.study_system_attrs(study))
    record = StudyRecord.read(study)
    assert set(record.test_metrics) == {1, 2} and record.test_scorings == 1 and record.reference == REFERENCE
    assert records.compact_record(study._storage, optuna_private.study_id(study)) == {}


def test_a_compact_record_carries_over_to_a_copy_of_the_study(tmp_path):
    url, _, compact = _flat_and_compact(tmp_path)
    copy = optuna.create_study(study_name="copy", storage=url, direction="maximize")
    for key, value in compact.user_attrs.items():  # what optuna-dashboard's rename copies by itself
        copy.set_user_attr(key, value)
    assert not StudyRecord.read(copy).is_ours
    records.restore_compact_record(copy, records.compact_record(compact._storage, optuna_private.study_id(compact)))
    assert dataclasses.replace(StudyRecord.read(copy), name="compact") == StudyRecord.read(compact)


def test_the_summary_is_one_short_line_for_any_dataset():
    assert records.summary_line(SPEC, DATA) == "cnn on digits, val_accuracy, 4 epochs"
    own = {**SPEC, "model": "ann", "dataset": {"path": "data/" + "x" * 200 + ".csv"}, "epochs": 1, "subset": 0.1}
    assert records.summary_line(own, {"dataset": "housing"}) == "ann on housing, val_accuracy, 1 epoch, subset 0.1"
    line = records.summary_line(own, {})  # no recorded key: the file's name, cut short
    assert line.startswith("ann on xxx") and line.endswith("…, val_accuracy, 1 epoch, subset 0.1") and len(line) < 90


def test_the_writers_write_the_layout_the_readers_expect():
    study = optuna.create_study(direction="maximize")
    records.write_study_created(study, SPEC, DATA)
    assert study.user_attrs == {"created_by": "anncnn-tune", "summary": "cnn on digits, val_accuracy, 4 epochs"}
    assert optuna_private.study_system_attrs(study) == {"anncnn-tune:spec": SPEC, "anncnn-tune:data": DATA}
    study.enqueue_trial({}, user_attrs=records.baseline_attrs("ref", 3))
    study.enqueue_trial({}, user_attrs=records.baseline_attrs("ref2"))
    trial = study.ask()
    records.write_setup(trial, n_params=10, device="cpu", seed=5, worker="h:1")
    records.write_timing(trial, epochs_run=3, train_seconds=1.234567, compile_seconds=0.123456, n_train=100)
    records.write_result(trial, best_epoch=2, stopped="early_stopping",
                         history=[{"epoch": 1, "train_loss": 0.123456789}])
    records.write_resumed(trial, from_trial=0, from_epoch=2)
    study.tell(trial, 0.5)
    attrs = study.trials[0].user_attrs
    assert attrs == {"baseline": "ref", "epochs": 3, "n_params": 10, "device": "cpu", "seed": 5, "worker": "h:1",
                     "epochs_run": 3, "epochs_trained": 3, "train_seconds": 1.2346, "samples_per_second": 243.0, "compile_seconds": 0.1235,
                     "best_epoch": 2, "stopped": "early_stopping", "history": [{"epoch": 1, "train_loss": 0.123457}],
                     "resumed_from_trial": 0, "resumed_from_epoch": 2}
    second = study.ask()
    assert second.user_attrs == {"baseline": "ref2"}  # no epochs override where the baseline sets none
    records.write_timing(second, epochs_run=0, train_seconds=0.0, compile_seconds=0.0, n_train=100,
                         epochs_trained=1 / 9)
    records.write_partial_epochs(second, [{"epoch": 1 / 9, "samples": 12, "val_accuracy": 0.1234567}])
    assert second.user_attrs["samples_per_second"] == 0.0
    stored = TrialRecord.read(second)
    assert stored.epochs_trained == 0.111111 and stored.epochs_run == 0
    assert stored.partial_epochs == [{"epoch": 0.111111, "samples": 12, "val_accuracy": 0.123457}]
    records.write_test_metrics(study, 0, {"mean": 0.4})
    records.write_test_metrics(study, 1, {"mean": 0.6})
    assert optuna_private.study_system_attrs(study)["anncnn-tune:test_metrics"] == {"0": {"mean": 0.4},
                                                                                   "1": {"mean": 0.6}}
    assert StudyRecord.read(study).test_metrics == {0: {"mean": 0.4}, 1: {"mean": 0.6}}


def test_trial_seed_and_its_default_for_trials_without_a_recorded_seed():
    assert records.trial_seed(7, 3) == 7 * 100_003 + 3
    assert TrialRecord(number=3).seed_or_default(7) == records.trial_seed(7, 3)
    assert TrialRecord(number=3, seed=11).seed_or_default(7) == 11  # a retry's seed is its original's


def test_epochs_a_retrain_takes_and_a_baselines_budget():
    assert TrialRecord(number=0, best_epoch=3, epochs_run=5).epochs_to_retrain(10) == 3
    assert TrialRecord(number=0, epochs_run=5).epochs_to_retrain(10) == 5
    assert TrialRecord(number=0).epochs_to_retrain(10) == 10
    assert TrialRecord(number=0, epochs=4).epoch_budget(10) == 4
    assert TrialRecord(number=0, epochs=40).epoch_budget(10) == 10  # never above the study's budget
    assert TrialRecord(number=0).epoch_budget(10) == 10


@pytest.mark.parametrize("direction, values, expected", [
    ("maximize", [0.5, 0.9, 0.9, 0.1], 1),
    ("minimize", [0.5, 0.2, 0.9, 0.2], 1),
])
def test_the_best_trial_is_the_best_value_and_ties_go_to_the_earlier_trial(direction, values, expected):
    study = optuna.create_study(direction=direction)
    for value in values:
        study.tell(study.ask(), value)
    pruned = study.ask()
    pruned.report(100.0 if direction == "maximize" else -100.0, 1)
    study.tell(pruned, state=TrialState.PRUNED)  # a pruned trial's last value never counts
    assert records.study_best_trial(study).number == expected
    assert records.best_trial(study.trials, direction == "maximize").number == expected
    assert records.study_best_trial(optuna.create_study(direction=direction)) is None


def test_a_trial_seed_stays_in_the_range_every_seed_is_checked_against():
    from anncnn_tune.service.records import trial_seed

    assert trial_seed(0, 7) == 7 and trial_seed(3, 2) == 3 * 100_003 + 2  # unchanged where it fitted
    assert 0 <= trial_seed(2**32 - 1, 10**6) < 2**32


def test_the_learning_curve_draws_validation_loss_beside_training_loss():
    from anncnn_tune.service.figures import learning_curves

    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]
    loss_ax, _ = learning_curves([{"label": "trial 0", "history": rows}], "val_accuracy").axes
    lines = {line.get_label(): list(line.get_ydata()) for line in loss_ax.lines}
    assert lines == {"trial 0": [r["train_loss"] for r in rows], "trial 0, validation": [r["val_loss"] for r in rows]}
    retrain = [{"epoch": 1, "train_loss": 0.9}]  # train+val retraining: no validation columns
    loss_ax, _ = learning_curves([{"label": "retrain", "history": retrain}], "val_accuracy").axes
    assert [line.get_label() for line in loss_ax.lines] == ["retrain"]
