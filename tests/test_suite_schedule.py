"""How `make test` spreads the suite over two workers (tests/conftest.py): under
`pytest -n 2 --dist loadfile` each module is one unit of work, so a module-scoped fixture is built
once per run; the in-process Spark modules are one unit together (they share a Spark session per
process); the units with the most `slow` tests are handed out first.

Checked on a small generated suite that uses this conftest's hooks, run through xdist for real."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, UNIT_SECONDS, unit_order, work_unit

pytest.importorskip("xdist")

CONFTEST = """
import os
import pytest
from tests.conftest import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401

@pytest.fixture(scope="module")
def built(request):
    # one line per build of a module's fixture: the module and the worker that built it
    with open(os.environ["BUILDS"], "a") as fh:
        fh.write(f"{request.module.__name__} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")
"""

MODULE = """
import os
import pytest
{mark}

@pytest.mark.parametrize("i", range({n}))
def test_it(built, i):
    with open(os.environ["RAN"], "a") as fh:
        fh.write(f"{{__name__}} {{os.environ.get('PYTEST_XDIST_WORKER')}}\\n")
"""


def test_work_units_are_modules_and_the_spark_group():
    assert work_unit("tests/storage/test_spark_cli.py::test_x") == "tests/storage/test_spark_*"
    assert work_unit("tests/storage/test_spark_parity.py::test_y[a::b]") == "tests/storage/test_spark_*"
    assert work_unit("tests/storage/test_sources.py::test_z") == "tests/storage/test_sources.py"
    assert work_unit("tests/cli/test_cli.py::TestX::test_y") == "tests/cli/test_cli.py"


def test_the_longest_units_go_out_first_then_those_with_the_most_slow_tests():
    spark, http = "tests/storage/test_spark_*", "tests/serving/test_http.py"
    assert UNIT_SECONDS[spark] > UNIT_SECONDS[http]
    units = {"tests/a.py": 0, http: 37, "tests/b.py": 2, "tests/c.py": 0, spark: 11, "tests/d.py": 5}
    assert unit_order(units) == [spark, http, "tests/d.py", "tests/b.py", "tests/a.py", "tests/c.py"]
    # the longest unit needs none of the shops that `built_once` trains (it trains its own)
    assert "built_once" not in "".join(p.read_text() for p in (ROOT / "tests" / "storage").glob("*.py"))


def test_loadfile_builds_each_modules_fixture_once_and_starts_with_the_slow_units(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    modules = {"test_a": ("", 6), "test_b": ("pytestmark = pytest.mark.slow", 3), "test_c": ("", 6)}
    modules |= {f"test_d{i}": ("", 4) for i in range(4)}
    for name, (mark, n) in modules.items():
        (suite / f"{name}.py").write_text(MODULE.format(mark=mark, n=n))
    (suite / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n")
    builds, ran = tmp_path / "builds.txt", tmp_path / "ran.txt"
    # (not this run's xdist worker name: when the suite itself runs under xdist)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
    env = dict(
        env,
        BUILDS=str(builds),
        RAN=str(ran),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist",
            "loadfile",
            "--basetemp",  # its own, inside this test's: not a numbered one that rotates the run's away
            str(tmp_path / "basetemp"),
            str(suite),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=suite,
        timeout=900,  # a few seconds alone; minutes on a 2-core machine shared by several runs
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = builds.read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in built) == sorted(modules)  # once per module, not per worker
    lines = [line.split() for line in ran.read_text().splitlines()]
    workers_of: dict[str, set[str]] = {}
    first_of: dict[str, str] = {}  # each worker's first module
    for module, worker in lines:
        workers_of.setdefault(module, set()).add(worker)
        first_of.setdefault(worker, module)
    assert all(len(w) == 1 for w in workers_of.values()), workers_of  # a module runs whole on one worker
    assert len(first_of) == 2  # and both workers had work
    # the unit with slow tests went out first (xdist's own loadfile hands out the biggest first)
    assert "test_b" in first_of.values(), first_of
