from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# One thread per thread pool (torch, OpenMP, OpenBLAS, onnxruntime), in the test processes and the
# CLIs and servers they start, set before numpy or torch loads: `make test` runs two workers on two
# cores, and a pool's second thread spins while the other worker wants the core (measured: the
# encoder fine-tune test took 44 s of CPU with one thread, 121 s with the defaults). One
# setting for every run, alone or in the suite, so a test's numbers do not depend on how it ran.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SHELFWISE_ENCODER_THREADS"):
    os.environ.setdefault(_pool, "1")

from shelfwise.demo import generate_demo  # noqa: E402
from shelfwise.governance import ingest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHELFWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# test servers do not warm their search cache (seconds of CPU each, on a 2-core machine running
# two test workers); the warm-up itself is tested with `--warm-queries N`
os.environ.setdefault("SHELFWISE_WARM_QUERIES", "0")


def shared(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with a clear message when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared datasets ({path} is absent)")
    return path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "data"
    generate_demo(out, products=800, users=300, events=20_000, seed=11)
    return out


@pytest.fixture(scope="session")
def demo_ingested(tmp_path_factory: pytest.TempPathFactory, demo_data: Path):
    workdir = tmp_path_factory.mktemp("demo-work") / "w"
    report = ingest(demo_data, workdir)
    return workdir, report


@pytest.fixture()
def tiny_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def curated_rows(workdir: Path, sql: str) -> list[tuple]:
    """Rows of a read-only query on a workdir's warehouse."""
    import duckdb

    con = duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def copy_head(src: Path, dst: Path, lines: int) -> Path:
    """The first `lines` lines of a (binary) file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for i, line in enumerate(fi):
            if i >= lines:
                break
            fo.write(line)
    return dst


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory `build` fills once per test run, shared by the xdist workers (a file lock in
    their common temporary root), and a private copy of it for the caller.

    Training a shop is the suite's most expensive step; without this a session- or module-scoped
    fixture trains once per worker that happens to run one of its tests."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's root, common to every worker
    cache = root / f"built-once-{name}"
    with open(root / f"built-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (cache / ".built").exists():
                shutil.rmtree(cache, ignore_errors=True)
                cache.mkdir()
                build(cache)
                (cache / ".built").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    copy = tmp_path_factory.mktemp(name)
    shutil.copytree(cache, copy, symlinks=True, dirs_exist_ok=True)
    return copy


# Modules that share one worker (one xdist work unit): the in-process Spark tests share one
# local[2] session per worker process (the `spark_engine` fixture), so they should all run where it
# was started. Every other module is its own unit.
_TOGETHER = {"tests/storage/test_spark_": "tests/storage/test_spark_*"}


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to under `--dist loadfile`: its module, or its group."""
    module = nodeid.split("::", 1)[0]
    for prefix, unit in _TOGETHER.items():
        if module.startswith(prefix):
            return unit
    return module


# Seconds each long unit took alone (`pytest -n 0 --durations=0 UNIT`, one at a time, the
# building of the shared trained shops included; session 17, a loaded 2-core machine): the order
# the units go out in, longest first. Only the order matters, so rough numbers do; a unit not
# listed goes out after these, those with the most `slow` tests first.
UNIT_SECONDS = {
    "tests/storage/test_spark_*": 268,
    "tests/cli/test_train_cli.py": 112,
    "tests/web/test_console.py": 112,
    "tests/serving/test_http.py": 100,
    "tests/governance/test_deliveries.py": 96,
    "tests/governance/test_workflow.py": 91,
    "tests/serving/test_event_delivery.py": 89,
    "tests/insights/test_demand.py": 47,
    "tests/serving/test_workers.py": 36,
    "tests/web/test_ask_page.py": 16,
}


def unit_order(units: dict[str, int]) -> list[str]:
    """The units (each with its count of `slow` tests, in collection order) in the order they go
    out: those of `UNIT_SECONDS` longest first, then those with the most slow tests, then the rest
    as collected. Longest first, the run does not end on one worker's long unit while the other
    waits: the short units at the end fill in. (The longest, Spark, needs none of the trained
    shops that `built_once` builds, so the second worker does not start by waiting on the first
    worker's build of the one they both need.)"""
    index = {unit: i for i, unit in enumerate(units)}
    return sorted(units, key=lambda u: (-UNIT_SECONDS.get(u, 0), units[u] == 0, -units[u], index[u]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The units in `unit_order` (each module's tests kept together and in order): xdist hands
    them out in this order to whichever worker is free."""
    slow: dict[str, int] = {}
    for item in items:
        unit = work_unit(item.nodeid)
        slow[unit] = slow.get(unit, 0) + (item.get_closest_marker("slow") is not None)
    rank = {unit: r for r, unit in enumerate(unit_order(slow))}
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank[work_unit(item.nodeid)], position[id(item)]))


try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # pytest-xdist is a test extra; plain `pytest` runs without it
    LoadFileScheduling = None
else:

    class UnitScheduling(LoadFileScheduling):
        """`--dist loadfile` with the units of `work_unit` (a module, or the Spark group), handed
        out in collection order (see `pytest_collection_modifyitems`) rather than xdist's default
        of the units with the most tests first.

        One unit per worker means a module's module-scoped fixtures are built once per run, not
        once on each worker that happens to get one of its tests (the workflow module's shop
        took 45 s on each). (`--dist loadgroup` would do it per test, but does nothing with
        pytest 9 and pytest-xdist 3.8: xdist renames `item._nodeid`, which pytest 9 no longer
        reads.)"""

        def __init__(self, config: pytest.Config, log=None) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False  # the order collection gave (slow units first)

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(config: pytest.Config, log):
        """`--dist loadfile` (the Makefile's) runs with `UnitScheduling`; other modes as xdist has them."""
        if config.getvalue("dist") == "loadfile":
            return UnitScheduling(config, log)
        return None


__all__ = [
    "UNIT_SECONDS",
    "built_once",
    "copy_head",
    "curated_rows",
    "shared",
    "shutil",
    "unit_order",
    "work_unit",
]


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def run_async(make: Callable[[], Any], timeout: float = 60.0) -> Any:
    """`asyncio.run(make())` in a thread of its own, its result returned and its failure re-raised
    here: another test of the same worker (Playwright's sync API, the session's browser) may have
    left an event loop running in the test's thread, where `asyncio.run` refuses to start."""
    import asyncio
    import threading

    box: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            box["result"] = asyncio.run(make())
        except BaseException as exc:  # re-raised below, in the test's thread
            box["failure"] = exc

    t = threading.Thread(target=in_thread, daemon=True)  # (one left hanging must not hold pytest's exit)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"the coroutine did not finish in {timeout:.0f} s")
    if "failure" in box:
        raise box["failure"]
    return box.get("result")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (skips with a message when it is not installed)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("needs Debian's chromium (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def events_head(demo_data: Path, directory: Path, lines: int) -> Path:
    """A dataset directory holding the first `lines` lines (header included) of the demo events."""
    directory.mkdir(parents=True, exist_ok=True)
    head = (demo_data / "events.csv").read_bytes().split(b"\n")[:lines]
    (directory / "events.csv").write_bytes(b"\n".join(head) + b"\n")
    return directory
