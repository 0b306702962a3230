"""docs/tour.ipynb is committed with its outputs (tables and figures show on the repository page), and
a fresh run in a real kernel (nbclient) gives those outputs, up to timing and noise (tests/tour.py
says what is masked and the tolerance on numbers). After a change that moves them: `make tour`."""

from __future__ import annotations

import pytest
import tour

NOTEBOOK = tour.NOTEBOOK
# The notebook's lesson, said in its text: these must be in its stored outputs (and so in a fresh run's).
VERDICT = "digits-cnn better than digits-ann by"


def _outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_the_notebook_is_committed_with_the_outputs_that_tell_its_lesson():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # one run, top to bottom
    outputs = _outputs(nb)
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]  # no warnings shown
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 4  # history, learning curves, leaderboard bars, confusion matrix
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("best_value" in t and "digits-ann" in t and "digits-cnn" in t for t in tables)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert VERDICT in text and "ONNX check passed: True" in text and "the ONNX file picks the same digits: True" in text
    # the public API only: no internals reached through attrs or private modules
    source = "\n".join(c.source for c in code)
    assert "anncnn_tune." not in source.replace("anncnn_tune.plots", "") and ".attrs" not in source


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_fresh_run_gives_the_stored_outputs(capsys):
    import nbformat

    stored = nbformat.read(NOTEBOOK, as_version=4)
    fresh, seconds = tour.execute()
    with capsys.disabled():
        print(f"\ndocs/tour.ipynb ran in {seconds:.1f}s")
    assert not [o for o in _outputs(fresh) if o.output_type == "error"]
    assert tour.differences(stored, fresh) == [], "the stored outputs are stale: run `make tour` and commit"


def test_the_comparison_masks_timing_and_tolerates_noise_but_not_a_different_result():
    same = tour.text_difference(tour.mask("digits-ann: test accuracy 0.9593 ± 0.0037, 12.3s, /tmp/anncnn-tour-ab12/x"),
                                tour.mask("digits-ann: test accuracy 0.9630 ± 0.0040, 1m05s, /tmp/anncnn-tour-zz9/x"))
    assert same is None  # one test image flipped (1/270), another duration and folder
    assert tour.text_difference("better by 3.33 points", "better by 1.10 points") is not None
    assert tour.text_difference("digits-cnn better than digits-ann", "no significant difference") is not None
    # A p-value counts by its side of the verdict's level: McNemar's p moved 0.0078 -> 0.021 on another CPU.
    assert tour.text_difference(tour.mask("[2.41, 4.25], p = 0.0078 (3 seeds each)"),
                                tour.mask("[2.41, 4.25], p = 0.021 (3 seeds each)")) is None
    assert tour.text_difference(tour.mask("p = 0.03"), tour.mask("p = 0.2")) is not None
    assert tour.mask("p = 1.2e-05") == "p below 0.05"
    stored = {"output_type": "display_data", "data": {"image/png": _PNG_3x2, "text/plain": "<Figure at 0x7f00aa11bb22>"}}
    fresh = {"output_type": "display_data", "data": {"image/png": _PNG_3x2, "text/plain": "<Figure at 0x7fffffff0000>"}}
    assert tour.normalise(stored) == tour.normalise(fresh)


# a 3x2 PNG's signature and IHDR chunk (what png_size reads), base64
_PNG_3x2 = "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAYAAACddGYaAAAAEklEQVR4nGNgYGD4z8DAwMAAAAj8AQEAp1dnAAAAAElFTkSuQmCC"
