"""The console's insights page in Debian's Chromium, over real HTTP: its bar charts start at zero,
so that a bar's height is its value (an audience of 196 is drawn at 196/330 of one of 330).

Two stored audiences written by hand in an otherwise empty workdir, served by the console router
in-process (uvicorn on a free port, single-user mode from the loopback): no warehouse, no bundle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import serve_in_thread

SIZES = {"lapsed": 196, "loyal": 330}

# every uPlot chart the page draws, kept for the test (console.js keeps none)
KEEP_CHARTS = """
(() => {
  let real;
  Object.defineProperty(window, "uPlot", {
    configurable: true,
    get() { return real; },
    set(lib) {
      real = function (opts, data, el) {
        const u = new lib(opts, data, el);
        (window.__charts = window.__charts || []).push(u);
        return u;
      };
      Object.assign(real, lib);
    },
  });
})();
"""


def _audience(work: Path, name: str, size: int) -> None:
    where = work / "audiences" / name
    where.mkdir(parents=True)
    (where / "members.jsonl").write_text(
        "".join(json.dumps({"user": f"u_{name}_{i}", "score": 1.0}) + "\n" for i in range(size))
    )
    meta = {
        "name": name,
        "kind": "rule",
        "spec": {"rule": "frequency >= 1", "products": [], "category": None, "min_size": 50},
        "size": size,
        "created_at": "2026-01-01T00:00:00+00:00",
        "created_by": None,
        "data_versions": {},
        "lift": None,
        "lineage_run_id": None,
    }
    (where / "audience.json").write_text(json.dumps(meta))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    from fastapi import FastAPI

    from shelfwise.web import mount_console

    work = tmp_path / "w"
    for name, size in SIZES.items():
        _audience(work, name, size)
    app = FastAPI()
    mount_console(app, work, lambda: None)
    with serve_in_thread(app) as url:
        yield url


def test_bar_charts_start_at_zero(served: str, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(KEEP_CHARTS)
    try:
        r = page.goto(served + "/console/insights")
        assert r is not None and r.status == 200
        page.wait_for_selector("#audiences .chart canvas")
        assert [page.locator(f'tr[data-audience="{n}"] td.n').first.inner_text() for n in SIZES] == [
            str(s) for s in SIZES.values()
        ]
        charts = page.evaluate(
            """() => window.__charts.map(u => ({
                min: u.scales.y.min, max: u.scales.y.max, values: Array.from(u.data[1]),
                zero: u.valToPos(0, "y"), tops: Array.from(u.data[1]).map(v => u.valToPos(v, "y")),
            }))"""
        )
        assert len(charts) == 1 and charts[0]["values"] == list(SIZES.values())
        (chart,) = charts
        assert chart["min"] == 0 and chart["max"] >= max(SIZES.values())
        heights = [chart["zero"] - top for top in chart["tops"]]  # canvas y grows downwards
        assert heights[0] / heights[1] == pytest.approx(196 / 330, rel=0.01)
        assert not errors, errors
    finally:
        ctx.close()
