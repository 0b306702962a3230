
"""docs/tour.ipynb runs top to bottom in a real kernel (nbclient): any cell that raises fails the test."""

from __future__ import annotations

import os

import pytest
from helpers import REPO

NOTEBOOK = REPO / "docs" / "tour.ipynb"


def test_the_notebook_is_committed_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_tour_executes_and_shows_the_leaderboard_and_figures(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits the environment
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ANNCNN_TUNE_OFFLINE", "1")
    monkeypatch.delenv("ANNCNN_TUNE_STORAGE", raising=False)
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # the notebook's working folder (tempfile.mkdtemp) lands here
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # raises CellExecutionError, with the cell and its traceback, on the first cell that fails
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # bars, two optimization histories, learning curves, confusion matrix
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("best_value" in t and "ann" in t and "cnn" in t for t in tables)  # the leaderboard DataFrame
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "ONNX check passed: True" in text and "test accuracy" in text
    assert list(cwd.iterdir()) == []  # everything went into the notebook's own temporary folder
    (work,) = tmp.glob("anncnn-tour-*")
    assert (work / "tour.db").is_file() and (work / "retrained-ann" / "model.onnx").is_file()
