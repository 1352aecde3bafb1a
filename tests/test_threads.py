"""Thread pools sized to a container's CPU quota: the quota read from cgroup v1 and v2 files
(on a fake root), and the pools' variables set only under a quota and never over the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shelfwise import _threads


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_process_or_above_it(tmp_path):
    _write(tmp_path, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n")
    _write(tmp_path, "sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n")  # limits.cpu: 1.5
    assert _threads.cgroup_cpu_quota(tmp_path) == 1.5


def test_cgroup_v1_quota_and_an_unlimited_one(tmp_path):
    _write(tmp_path, "proc/self/cgroup", "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert _threads.cgroup_cpu_quota(tmp_path) == 0.5


@pytest.mark.parametrize(
    "files",
    [
        {},  # no /proc (not Linux)
        {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"},
        {"proc/self/cgroup": "1:cpu:/\n", "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n"},
        {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "garbage\n"},
    ],
)
def test_no_quota(tmp_path, files):
    for rel, text in files.items():
        _write(tmp_path, rel, text)
    assert _threads.cgroup_cpu_quota(tmp_path) is None


def test_pools_follow_a_quota_below_the_cores_and_never_override_the_user(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, "-")  # (recorded, so that what the test sets is undone after it)
        monkeypatch.delenv(var)
    monkeypatch.setattr(_threads, "cgroup_cpu_quota", lambda root=Path("/"): None)
    assert _threads.available_cpus() == cores and _threads.quota_threads() is None
    _threads.match_threads_to_quota()
    assert "OMP_NUM_THREADS" not in os.environ
    if cores < 2:
        pytest.skip("one core: no quota can be below it")
    monkeypatch.setattr(_threads, "cgroup_cpu_quota", lambda root=Path("/"): 0.4)  # rounded up: 1
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    assert _threads.available_cpus() == 1 and _threads.quota_threads() == 1
    _threads.match_threads_to_quota()
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["MKL_NUM_THREADS"] == "3"
