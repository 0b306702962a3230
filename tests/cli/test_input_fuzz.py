"""Property-based: mutated study files, run files and command lines never end in a traceback.

For every generated case the CLI (run in process) either gets past validation, or exits 2 with
exactly one `error:` line; on error nothing in the working folder has changed. Validation is all
that runs: optimize stops where it would first touch the storage (check_reachable) and retrain
where it would load data, so thousands of cases take seconds.
"""

from __future__ import annotations

import copy
import io
import math
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from anncnn_tune.cli.main import main
from anncnn_tune.results import export as export_mod
from anncnn_tune.results import retrain as retrain_mod
from anncnn_tune.search import launcher as optimize_mod

STUDY = {
    "description": "fuzz base",
    "dataset": "digits",
    "model": "cnn",
    "metric": "val_accuracy",
    "epochs": 3,
    "seed": 1,
    "subset": 0.5,
    "sampler": {"type": "tpe", "multivariate": True, "n_startup_trials": 2},
    "pruner": {"type": "hyperband", "min_resource": 1, "reduction_factor": 3},
    "params": {
        "blocks": {"type": "int", "low": 1, "high": 2},
        "kernel": {"type": "categorical", "choices": [3, 5]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3, "step": 0.1},
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 0.25]},
        "residual": False,
        "optimizer": "adam",
    },
    "baselines": [{"name": "ref", "epochs": 2, "note": "a note",
                   "params": {"blocks": 1, "kernel": 3, "dropout": 0.1, "lr": 1.0e-3, "batch_size": 32}}],
}
RUN = {"format": export_mod.FORMAT, "dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 2,
       "seed": 7, "subset": 100, "params": {"lr": 0.01, "layers": 1, "batch_size": 0.5, "batch_norm": True},
       "data": {"fingerprint": "f" * 64, "split_seed": 0},
       "source": {"study": "digits-ann", "trial": 3, "value": 0.9}, "versions": {"torch": "2.13.0"}}

WEIRD_NUMBERS = [0, -1, 1, 2, 2**31, 2**32, 2**63, 2**64, 10**30, 10**400, -(10**400), 0.0, -0.0, 1.0, 2.0,
                 0.5, 1e-300, 1e308, math.nan, math.inf, -math.inf]
WEIRD_TEXT = ["nan", "inf", "-inf", ".nan", "1e-4", "1e400", "", " ", "∞", "ünïcödé", "\u202e", "0x10", "1_000",
              "~", "null", "yes", "adam", "digits", "cnn", "tpe", "-", "a\nb", "𝟘", "٣"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(WEIRD_NUMBERS),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(WEIRD_TEXT))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.booleans()), inner,
                                        max_size=3), max_leaves=6)
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)


class Validated(Exception):
    """Raised where the command would start real work: validation passed."""


@pytest.fixture(scope="module", autouse=True)
def stop_after_validation():
    mp = pytest.MonkeyPatch()

    def stop(*_args, **_kwargs):
        raise Validated

    mp.setattr(optimize_mod, "check_reachable", stop)
    mp.setattr(retrain_mod, "load_dataset", stop)
    yield
    mp.undo()


WORK = Path(tempfile.mkdtemp(prefix="anncnn-fuzz-"))
DB = WORK / "store.db"


def snapshot() -> dict:
    return {p.relative_to(WORK): p.read_bytes() for p in sorted(WORK.rglob("*")) if p.is_file()}


def check_cli(argv: list[str]) -> str:
    """Run the CLI in process; 'ok' (validation passed) or 'error' (one line, exit 2). Anything else fails."""
    before = snapshot()
    out, err = io.StringIO(), io.StringIO()
    outcome = "ok"
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(argv)
        except Validated:
            pass
        except SystemExit as exc:
            outcome = "error"
            assert exc.code == 2, (argv, exc.code, err.getvalue())
    text = err.getvalue()
    assert "Traceback" not in text, text
    if outcome == "error":
        lines = text.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, text)
        assert snapshot() == before, argv  # nothing written, nothing changed
    return outcome


def paths(node, prefix=()):
    """Every key path inside a document (mapping keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def mutate(base: dict, path: tuple, operation: str, value, key) -> object:
    doc = copy.deepcopy(base)  # plain dicts, lists and scalars (a YAML round trip cost a third of each case)
    if not path:
        return value if operation == "set" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "set":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif operation == "wrap":
        parent[last] = [parent[last]]
    elif operation == "add" and isinstance(parent, dict):
        parent[key] = value
    elif operation == "nest":
        parent[last] = {key: parent[last]}
    return doc


def dump(doc) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        assume(False)


OPERATIONS = st.sampled_from(["set", "set", "set", "delete", "wrap", "add", "nest"])


def write(name: str, content) -> str:
    path = WORK / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return str(path)


def optimize_argv(study: str) -> list[str]:
    return ["optimize", "--study", study, "--storage", f"sqlite:///{DB}", "--artifacts", str(WORK / "art"),
            "--device", "cpu", "--quiet"]


def retrain_argv(run: str) -> list[str]:
    return ["retrain", run, "--out", str(WORK / "out"), "--device", "cpu", "--no-record"]


def test_the_unmutated_files_pass_validation():
    assert check_cli(optimize_argv(write("study.yaml", dump(STUDY)))) == "ok"
    assert check_cli(retrain_argv(write("run.yaml", dump(RUN)))) == "ok"


@SETTINGS
@given(path=st.sampled_from(list(paths(STUDY))), operation=OPERATIONS, value=VALUES, key=st.text(max_size=8))
def test_mutated_study_files(path, operation, value, key):
    check_cli(optimize_argv(write("study.yaml", dump(mutate(STUDY, path, operation, value, key)))))


@SETTINGS
@given(path=st.sampled_from(list(paths(RUN))), operation=OPERATIONS, value=VALUES, key=st.text(max_size=8))
def test_mutated_run_files(path, operation, value, key):
    check_cli(retrain_argv(write("run.yaml", dump(mutate(RUN, path, operation, value, key)))))




@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(which=st.sampled_from(["study", "run"]), index=st.integers(min_value=0), blob=st.binary(max_size=6),
       cut=st.integers(min_value=0), kind=st.sampled_from(["duplicate", "bytes", "truncate"]))
def test_damaged_text(which, index, blob, cut, kind):
    text = dump(STUDY if which == "study" else RUN)
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("- ")]
    if kind == "duplicate":  # the same key twice in one mapping: always refused
        i = candidates[index % len(candidates)]
        content = "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    elif kind == "bytes":
        raw = text.encode()
        at = cut % (len(raw) + 1)
        content = raw[:at] + b"\xff" + blob + raw[at:]  # 0xff is never valid UTF-8
    else:
        content = text[: cut % (len(text) + 1)]
    argv = optimize_argv(write("study.yaml", content)) if which == "study" else retrain_argv(write("run.yaml", content))
    outcome = check_cli(argv)
    if kind in ("duplicate", "bytes"):
        assert outcome == "error"


OPTIONS = ["--n-trials", "--timeout", "--device", "--epochs", "--seed", "--subset", "--heartbeat-interval",
           "--threads", "--workers", "--devices", "--data-dir", "--study"]
OPTION_VALUES = st.one_of(st.sampled_from(WEIRD_TEXT + ["1", "0", "-1", "0.2", "2.0", "50", "1e9", "cpu", ",,",
                                                        "cpu,cpu", "cuda:7", "digits-ann", "10" * 30]),
                          st.text(max_size=10), st.integers().map(str),
                          st.floats(allow_nan=True, allow_infinity=True).map(repr))


@SETTINGS
@given(options=st.lists(st.tuples(st.sampled_from(OPTIONS), OPTION_VALUES), max_size=4),
       flags=st.lists(st.sampled_from(["--quiet", "--compile", "--bogus", "-x"]), max_size=2))
def test_mutated_command_lines(options, flags):
    argv = ["optimize", "--study", "digits-ann", "--storage", f"sqlite:///{DB}", "--artifacts", str(WORK / "art")]
    for option, value in options:
        argv += [option, value]
    check_cli(argv + flags)
