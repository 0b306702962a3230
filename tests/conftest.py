"""Fixtures shared by the test files, and how the suite runs on several cores; plain helpers are in helpers.py."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

# One torch intra-op thread per test process, set before anything imports torch; the subprocesses the
# tests start (CLI runs, workers, the notebook's kernel) inherit it, as start_cli's already did. Two
# threads on this 2-core machine shared with other work make each training step wait for a
# descheduled thread (benchmarks/RESULTS.md, "Threads"): the digits demo search the results tests
# share (digits-cnn, 6 trials of 4 epochs) took 11-16 s with one thread and 140-167 s with two,
# alternated at a load of 2-3. Tests of the default thread count set it themselves (test_fit.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from helpers import ADMIN, SERVER, run_cli

from anncnn_tune.service import storage as storage_mod


def pytest_configure(config):
    if "torch" in sys.modules:  # imported before this file (by a plugin): the variable came too late for it
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one test process per core this process may use, at most 4 (each test trains, and
    some start several training processes of their own). PYTEST_XDIST_AUTO_NUM_WORKERS overrides it."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def pg_url():
    """A fresh database on the local server, dropped afterwards (skips where there is no server)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(ADMIN + " connect_timeout=3", autocommit=True)
    except psycopg.OperationalError as exc:
        message = (f"PostgreSQL is not reachable at '{ADMIN}' ({str(exc).strip().splitlines()[0]}); start it with "
                   "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
        if os.environ.get("ANNCNN_TUNE_REQUIRE_POSTGRES"):  # CI: a missing server must not pass as skipped
            pytest.fail(message)
        pytest.skip(message)
    name = f"anncnn_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        storage_mod.close_all()  # this process's pooled connections, or DROP would wait for them
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# -- the order and grouping of tests on several cores (pytest-xdist) ---------------------------------
#
# pyproject.toml runs the suite with `-n auto --dist loadgroup --no-loadscope-reorder`: a free test
# process takes the next test in the order set below, except that the tests of one group go to one
# process, in one piece. A group is the tests of a module that share a module-scoped fixture of
# that module (a real study, a retrain, a served dashboard), so the fixture is built once, and its
# tests run in their file order, as without xdist. (xdist's own loadgroup reads `xdist_group`
# marks through item._nodeid, which pytest 9 no longer has; the test processes compute the groups
# here and hand them to the scheduler below in a file, which also honours `xdist_group` marks.)

# Modules whose fixtures share one storage: helpers.build_digits_demo searches it once per test
# process, so its users go to one process.
SAME_GROUP = {"tests/results/test_compare.py": "digits-demo", "tests/results/test_export_retrain.py": "digits-demo",
              "tests/results/test_flat_studies.py": "digits-demo"}


def _group(item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    autouse = set(info.initialnames) - set(info.argnames)  # cheap patches, not shared state
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if name in autouse or not defs or defs[-1].scope not in ("module", "package", "session"):
            continue
        where = defs[-1].baseid.split("::")[0]
        if where.endswith(".py"):  # defined in a test module, not in a conftest.py
            return SAME_GROUP.get(where, where)
    return None


def _rank(item) -> int:
    """Longest first, so that no long test starts last while the other process idles: the slow
    end-to-end tests, then the groups and the tests that run real processes (PostgreSQL, or a
    timeout of their own), then the rest in file order."""
    if item.get_closest_marker("slow"):
        return 3
    if item.get_closest_marker("postgres") or item.get_closest_marker("timeout"):
        return 2
    return 0


@pytest.hookimpl(trylast=True)  # after -k/-m deselection
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        group = _group(item)
        if group:
            groups.setdefault(group, []).append(item)
    # A group is scheduled as one piece: it ranks as its longest member, and at least as a long test.
    rank = {id(item): _rank(item) for item in items}
    for members in groups.values():
        top = max(2, *(rank[id(m)] for m in members))
        rank.update((id(m), top) for m in members)
    items.sort(key=lambda item: -rank[id(item)])  # stable: file order within a rank
    target = getattr(config, "workerinput", {}).get("anncnn_groups")
    if target:  # a test process of xdist: hand the groups to the scheduler (it sees only node ids)
        mine, partial = Path(f"{target}.{config.workerinput['workerid']}"), Path(f"{target}.tmp-{os.getpid()}")
        partial.write_text(json.dumps({item.nodeid: group for group, members in groups.items() for item in members}))
        partial.replace(mine)


def pytest_configure_node(node):
    """xdist, in the controlling process: where each test process writes its groups."""
    config = node.config
    if not hasattr(config, "_anncnn_groups"):
        config._anncnn_groups = Path(tempfile.mkdtemp(prefix="anncnn-xdist-")) / "groups"
    node.workerinput["anncnn_groups"] = str(config._anncnn_groups)


def pytest_unconfigure(config):
    if hasattr(config, "_anncnn_groups"):
        shutil.rmtree(config._anncnn_groups.parent, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """loadgroup, with the groups the test processes computed (_group)."""

        def schedule(self):
            if self.collection is None:  # the first call: every test process has collected (and written)
                written = [Path(f"{config._anncnn_groups}.{node.gateway.id}") for node in self.registered_collections]
                self.groups = next((json.loads(p.read_text()) for p in written if p.exists()), {})
            super().schedule()

        def _split_scope(self, nodeid):
            return getattr(self, "groups", {}).get(nodeid, nodeid)

    return GroupScheduling(config, log)
