"""How many threads a LightGBM fit gets, and how many CPUs the process may really use.

OpenMP threads busy-wait between the (tiny) parallel regions of a boosting iteration: on a small
training set a second thread costs more than it gives, and on a busy machine (two training jobs
on two cores) the spinning threads of one starve the other — a 20k-row ranker took 0.2 s of CPU
per iteration with two threads instead of a few milliseconds with one. The count depends only on
the data's size, so a fit stays the same from machine to machine (LightGBM's deterministic mode
holds for a fixed thread count).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = [
    "available_cpus",
    "cgroup_cpu_quota",
    "lightgbm_threads",
    "match_threads_to_quota",
    "quota_threads",
]

SMALL_ROWS = 100_000


def lightgbm_threads(rows: int) -> int:
    """One thread below `SMALL_ROWS` training rows, two from there."""
    return 1 if rows < SMALL_ROWS else 2


def cgroup_cpu_quota(root: Path = Path("/")) -> float | None:
    """The CPUs a cgroup CPU quota grants this process (a container's `--cpus`, Kubernetes'
    `limits.cpu`): the smallest quota / period of its cgroup and the cgroups above it, cgroup v2
    (`cpu.max`) or v1 (`cpu.cfs_quota_us`, `cpu.cfs_period_us`); None without a quota."""
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    found: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2: one unified hierarchy
            base = root / "sys/fs/cgroup"
        elif "cpu" in controllers.split(","):
            base = root / "sys/fs/cgroup" / controllers
            if not base.is_dir():
                base = root / "sys/fs/cgroup/cpu"
        else:
            continue
        # the process's own cgroup and each one above it (a container often sees its own at /)
        rel = Path(path.lstrip("/"))
        for folder in [base / rel, *[base / p for p in rel.parents]]:
            quota = _quota_in(folder)
            if quota is not None:
                found.append(quota)
    return min(found) if found else None


def _quota_in(folder: Path) -> float | None:
    try:
        if (folder / "cpu.max").is_file():  # v2: "max 100000" or "150000 100000"
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():  # v1: -1 when unlimited
            quota_us = int((folder / "cpu.cfs_quota_us").read_text())
            period_us = int((folder / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def _cores() -> int:
    """The cores the process may run on (its CPU affinity), what the libraries size pools by."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_cpus() -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup CPU quota (rounded
    up). Thread pools sized by the machine's cores alone oversubscribe a quota: their threads
    wait at every parallel region for a sibling the quota has parked (a SASRec epoch on 2 cores
    under a 1-CPU quota: 14-15 s with 2 torch threads, 9.5 s with 1)."""
    cores = _cores()
    quota = cgroup_cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def quota_threads() -> int | None:
    """The thread count a pool should take when a CPU quota grants fewer CPUs than the cores
    the process sees; None when nothing caps it (the libraries' own default is then right)."""
    cpus = available_cpus()
    return cpus if cpus < _cores() else None


def match_threads_to_quota() -> None:
    """Under a CPU quota, size the OpenMP and BLAS thread pools (torch, MKL, OpenBLAS), which
    the libraries size by the cores, to the quota: set before they load, and only where the
    user has not set them."""
    cpus = quota_threads()
    if cpus is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(cpus))
