"""The verdict compares the best study of each side: the notebook CNN and the fast CNN are one side."""

from __future__ import annotations

from anncnn_tune.results.verdict import _best_of_each_side


def row(study, model, test=None, best=None, direction="maximize"):
    return {"study": study, "model": model, "test_value": test, "best_value": best, "direction": direction}


def test_the_best_retrained_study_of_each_side_ann_first():
    rows = [row("d-cnn", "cnn", test=0.72, best=0.75), row("d-fastcnn", "fastcnn", test=0.90, best=0.88),
            row("d-ann", "ann", test=0.55, best=0.56)]
    assert [r["study"] for r in _best_of_each_side(rows)] == ["d-ann", "d-fastcnn"]


def test_a_retrained_study_beats_an_unretrained_one_and_direction_counts():
    rows = [row("a", "ann", test=0.3, direction="minimize"), row("fast", "fastcnn", best=0.1, direction="minimize"),
            row("nb", "cnn", test=0.5, direction="minimize"), row("nb2", "cnn", test=0.4, direction="minimize")]
    assert [r["study"] for r in _best_of_each_side(rows)] == ["a", "nb2"]


def test_one_side_only_keeps_the_first_two():
    rows = [row("x", "cnn", test=0.7), row("y", "fastcnn", test=0.9)]
    assert _best_of_each_side(rows) == rows[:2]
