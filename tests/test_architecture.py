
"""The architecture as checked rules: the import layers (import-linter) and one home for stored attributes."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "anncnn_tune"


def test_the_import_contracts_hold():
    # pyproject.toml's [tool.importlinter]: cli -> results -> search -> service -> training -> data.
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_only_the_record_module_touches_optuna_attributes():
    # Every study/trial attribute goes through service/records.py (its typed readers and writers),
    # so a new stored fact is added in one place and old studies keep reading. Optuna's own
    # bookkeeping there (a retry chain's system attributes) is read in service/optuna_private.py,
    # which also wraps the storage's study system attributes that records.py keeps a study's record in.
    pattern = re.compile(r"\b(user_attrs|set_user_attr|system_attrs|set_system_attr"
                         r"|(get|set)_(study|trial)_(user|system)_attrs?)\b")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in PACKAGE.rglob("*.py") if path.name not in ("records.py", "optuna_private.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line) and "records." not in line]
    assert offenders == []


def test_no_module_reaches_into_another_modules_private_names():
    # A leading underscore means "this module's own": what another module needs gets a public name
    # (and a docstring), so renaming a private helper never breaks a distant caller. Optuna's private
    # attributes (a study's id, its storage) are reached only in service/optuna_private.py.
    def is_module(dotted: str) -> bool:
        path = REPO / Path(*dotted.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(REPO)
        tree = ast.parse(path.read_text())
        modules = set()  # the names this file binds to a module of the package
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("anncnn_tune")}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anncnn_tune"):
                offenders += [f"{where}:{node.lineno} imports {node.module}.{a.name}" for a in node.names
                              if private(a.name)]
                modules |= {a.asname or a.name for a in node.names if is_module(f"{node.module}.{a.name}")}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name)):
                continue
            owner = node.value.id
            if owner in modules or (path.name != "optuna_private.py" and owner in ("study", "trial", "storage")):
                offenders.append(f"{where}:{node.lineno} {owner}.{node.attr}")
    assert offenders == []


def _module_imports() -> dict[str, set[str]]:
    """Each package module's imports of package modules at module level, `if TYPE_CHECKING:` blocks included."""
    package = REPO / "anncnn_tune"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            for n in node.body if isinstance(node, ast.If) else [node]:
                if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("anncnn_tune"):
                    for alias in n.names:
                        target = f"{n.module}.{alias.name}"
                        edges[name].add(target if target in modules else n.module)
    return {m: {t for t in targets if t in modules} for m, targets in edges.items()}


def test_no_import_cycle_not_even_through_type_checking_imports():
    edges = _module_imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                raise AssertionError(" -> ".join(path[path.index(target):] + [module, target]))
            if target not in state:
                visit(target, path + [module])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
