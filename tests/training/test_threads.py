"""The cores a worker may keep busy: CPU affinity lowered to a cgroup's CPU quota (containers)."""

from __future__ import annotations

import os

import pytest

from anncnn_tune.training.threads import available_cores, cpu_quota

AFFINITY = len(os.sched_getaffinity(0))


def _tree(root, files: dict[str, str], proc: str):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "proc").write_text(proc)
    return root, root / "proc"


def test_a_cgroup_v2_quota_of_one_and_a_half_cores_means_one_busy_core(tmp_path):
    root, proc = _tree(tmp_path, {"cgroup.controllers": "cpu", "cpu.max": "150000 100000\n"}, "0::/\n")
    assert cpu_quota(root, proc) == 1.5
    assert available_cores(root, proc) == 1  # two threads at 75% each are throttled every period


def test_the_tightest_limit_on_the_way_up_the_v2_hierarchy_counts(tmp_path):
    root, proc = _tree(tmp_path, {"cgroup.controllers": "cpu", "cpu.max": "max 100000",
                                  "kube/pod/cpu.max": "max 100000", "kube/cpu.max": "300000 100000"},
                       "0::/kube/pod\n")
    assert cpu_quota(root, proc) == 3.0
    assert available_cores(root, proc) == min(AFFINITY, 3)


def test_a_cgroup_v1_cfs_quota_in_a_hybrid_layout(tmp_path):
    root, proc = _tree(tmp_path, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000",
                                  "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
                                  "unified/cgroup.procs": ""},
                       "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/docker/abc\n")
    assert cpu_quota(root, proc) == 2.0
    assert available_cores(root, proc) == min(AFFINITY, 2)


@pytest.mark.parametrize("files, proc", [
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "1:cpu:/\n"),  # v1: no quota
    ({"cgroup.controllers": "cpu", "cpu.max": "max 100000"}, "0::/\n"),  # v2: no quota
    ({}, "0::/\n"),  # no cpu controller files at all (macOS-like, or not mounted)
])
def test_no_quota_leaves_the_affinity(tmp_path, files, proc):
    root, proc_file = _tree(tmp_path, files, proc)
    assert cpu_quota(root, proc_file) is None
    assert available_cores(root, proc_file) == AFFINITY


def test_an_unreadable_proc_file_is_no_quota(tmp_path):
    assert cpu_quota(tmp_path, tmp_path / "missing") is None


def test_this_machine_is_never_given_more_cores_than_its_affinity():
    assert 1 <= available_cores() <= AFFINITY
