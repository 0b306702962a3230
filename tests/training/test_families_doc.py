"""docs/architecture.md's diffs stay true: each applies to the current code, the model family it adds
(tests/training/tiny_family.py, registered by the doc's own FAMILIES line) runs a study end to end,
and the conditional parameter it adds reaches validation, suggest, baselines, the build and the README."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import REPO

import anncnn_tune
from anncnn_tune.errors import UserError
from anncnn_tune.search import spec as spec_mod
from anncnn_tune.training import families

DOC = REPO / "docs" / "architecture.md"
FIXTURE = Path(__file__).with_name("tiny_family.py")


def doc_diffs() -> list[tuple[str, str, list[list[str]]]]:
    """(old path, new path, hunks) of every ```diff block of the doc; a hunk is its lines, prefix kept."""
    out = []
    for block in re.findall(r"```diff\n(.*?)\n```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL):
        lines = block.split("\n")
        i = 0
        while i < len(lines):
            assert lines[i].startswith("--- ") and lines[i + 1].startswith("+++ "), lines[i : i + 2]
            old, new = lines[i][4:], lines[i + 1][4:]
            i += 2
            hunks: list[list[str]] = [[]]
            while i < len(lines) and not lines[i].startswith("--- "):
                if lines[i].startswith("@@"):
                    hunks.append([])
                else:
                    hunks[-1].append(lines[i])
                i += 1
            out.append((old, new, [h for h in hunks if h]))
    return out


def apply(text: str, hunks: list[list[str]], where: str) -> str:
    """The text with each hunk's context and '-' lines replaced by its context and '+' lines."""
    lines = text.split("\n")
    for hunk in hunks:
        before = [line[1:] for line in hunk if line[:1] in (" ", "-")]
        after = [line[1:] for line in hunk if line[:1] in (" ", "+")]
        assert all(line[:1] in (" ", "-", "+") for line in hunk), hunk
        at = next((k for k in range(len(lines) - len(before) + 1) if lines[k : k + len(before)] == before), None)
        assert at is not None, f"{where}: the doc's hunk no longer matches the code:\n" + "\n".join(before)
        lines[at : at + len(before)] = after
    return "\n".join(lines)


def diff_for(path: str, containing: str) -> list[list[str]]:
    found = [h for _, new, h in doc_diffs() if new == f"b/{path}" and containing in "\n".join(map("\n".join, h))]
    assert len(found) == 1, f"{DOC.name} should show one diff of {path} with {containing!r}, found {len(found)}"
    return found[0]


def module_from(text: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    # The code under test is our own source with the doc's diff applied: running it is the point.
    exec(compile(text, f"<{name} as the doc patches it>", "exec"), module.__dict__)  # noqa: S102
    return module


def test_every_diff_of_the_doc_applies_to_the_current_code():
    checked = 0
    for old, new, hunks in doc_diffs():
        if old == "/dev/null":
            continue
        path = REPO / old.removeprefix("a/")
        apply(path.read_text(encoding="utf-8"), hunks, str(path.relative_to(REPO)))
        checked += 1
    assert checked >= 5


def test_the_family_module_of_the_doc_is_the_fixture_module():
    (hunks,) = [h for old, new, h in doc_diffs() if new == "b/anncnn_tune/training/families/linear.py"]
    shown = "\n".join(line[1:] for hunk in hunks for line in hunk) + "\n"
    assert shown == FIXTURE.read_text(encoding="utf-8")


@pytest.fixture
def linear_registered(monkeypatch):
    """FAMILIES as the doc's patched training/families/__init__.py builds it, with the fixture as `linear`."""
    import tiny_family

    init = Path(families.__file__)
    patched = apply(init.read_text(encoding="utf-8"), diff_for("anncnn_tune/training/families/__init__.py",
                                                               "linear.FAMILY"), "families/__init__.py")
    monkeypatch.setitem(sys.modules, "anncnn_tune.training.families.linear", tiny_family)
    monkeypatch.setattr(families, "linear", tiny_family, raising=False)
    table = module_from(patched, "anncnn_tune.training.families").FAMILIES
    assert list(table) == [*families.FAMILIES, "linear"] and table["linear"] is tiny_family.FAMILY
    for name, family in table.items():
        monkeypatch.setitem(families.FAMILIES, name, family)
    return tiny_family.FAMILY


def test_a_family_registered_by_the_doc_line_runs_a_study_end_to_end(tmp_path, linear_registered):
    study = {"dataset": "digits", "model": "linear", "metric": "val_accuracy", "epochs": 1, "subset": 200,
             "pruner": {"type": "none"},
             "params": {"hidden": {"type": "int", "low": 0, "high": 64},
                        "lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1, "log": True}, "batch_size": 64},
             "baselines": [{"name": "logistic", "params": {"hidden": 0, "lr": 1.0e-2}}]}
    path = tmp_path / "digits-linear.yaml"
    path.write_text(yaml.safe_dump(study))
    storage = f"sqlite:///{tmp_path / 'linear.db'}"
    result = anncnn_tune.optimize(str(path), storage=storage, n_trials=2, device="cpu", threads=1, quiet=True,
                                  artifacts=str(tmp_path / "artifacts"))
    trials = result.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) == 2 and all(0.0 < t.value <= 1.0 for t in trials)
    assert trials[0].params == {"hidden": 0, "lr": 1.0e-2}  # the baseline: a logistic regression
    board = anncnn_tune.compare(storage)
    (row,) = board.to_dict("records")
    assert row["study"] == "digits-linear" and row["model"] == "linear" and row["n_params"] > 0
    run = anncnn_tune.export("digits-linear", storage=storage)
    assert run.run["model"] == "linear" and run.run["params"]["hidden"] == result.best_params["hidden"]


@pytest.fixture
def mlp_with_min_width(monkeypatch):
    """The MLP family as the doc's conditional-parameter diff patches training/families/mlp.py."""
    from anncnn_tune.training.families import mlp

    patched = apply(Path(mlp.__file__).read_text(encoding="utf-8"),
                    diff_for("anncnn_tune/training/families/mlp.py", "min_width"), "families/mlp.py")
    family = module_from(patched, "anncnn_tune.training.families.mlp").FAMILY
    assert [p.name for p in family.params if p.when and p.when[0].name == "layers"] == ["shrink", "min_width"]
    monkeypatch.setitem(families.FAMILIES, "ann", family)
    return family


RAW = {"dataset": "digits", "model": "ann", "metric": "val_accuracy", "epochs": 1,
       "params": {"min_width": {"type": "int", "low": 8, "high": 32},
                  "layers": {"type": "int", "low": 1, "high": 3},
                  "width": {"type": "int", "low": 16, "high": 64},
                  "shrink": {"type": "float", "low": 0.25, "high": 1.0}}}


def spec_of(raw) -> spec_mod.Spec:
    return spec_mod.spec_from_dict(yaml.safe_load(yaml.safe_dump(raw)), source="s.yaml", name="s")


def test_a_conditional_parameter_of_the_doc_reaches_validation_suggest_and_build(mlp_with_min_width):
    spec = spec_of(RAW)
    order = list(spec.space)
    assert order.index("min_width") > order.index("layers")  # listed first, decided after what it reads
    one = optuna.trial.FixedTrial({"layers": 1, "width": 16})
    spec_mod.suggest(spec, one)
    assert set(one.params) == {"layers", "width"}
    three = optuna.trial.FixedTrial({"layers": 3, "width": 64, "shrink": 0.25, "min_width": 32})
    params = spec_mod.suggest(spec, three)
    assert three.params["min_width"] == 32
    widths = [m.out_features for m in mlp_with_min_width.build(params, (64,), 10) if hasattr(m, "out_features")]
    assert widths == [64, 32, 32, 10]  # 64 * 0.25**i floored at 32
    # Validation: the declaration's range, and baselines need it only where it applies.
    with pytest.raises(UserError, match=r"^s\.yaml\.params\.min_width\.low"):
        spec_of({**RAW, "params": {**RAW["params"], "min_width": {"type": "int", "low": 0, "high": 8}}})
    spec_of({**RAW, "baselines": [{"name": "one", "params": {"layers": 1, "width": 32}}]})
    with pytest.raises(UserError, match="missing searchable parameter 'min_width'"):
        spec_of({**RAW, "baselines": [{"name": "two", "params": {"layers": 2, "width": 32, "shrink": 0.5}}]})
    # The README's list says when it applies.
    line = next(x for x in families.markdown().splitlines() if x.startswith("- `min_width`"))
    assert "only when layers >= 2" in line
