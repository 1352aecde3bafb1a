"""The report charts (`reporting._charts`, inline SVG) with long labels and titles: a product
title or category of 120 characters is cut with an ellipsis and every text of the chart stays
inside it, measured in Debian's Chromium with its own fonts (the SVG's text is drawn by the
browser: `svg.fonttype` none)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import pytest

from shelfwise.reporting import _charts

_TITLE_OF_A_PRODUCT = (
    "Organic cotton duvet cover with hidden zip closure and corner ties, king size, stone washed "
)
LONG = _TITLE_OF_A_PRODUCT + "x" * (120 - len(_TITLE_OF_A_PRODUCT))  # 120 characters
TITLE = (
    "Top products by revenue in the last quarter across every storefront and marketplace channel we sell in"
)


LABELS = [LONG, "mug", LONG[:60] + " and a second long one, different from the first"]
VALUES = [120.0, 40.0, 75.0]
CHARTS: dict[str, Callable[[], str]] = {
    **{
        f"bar fast={f} horizontal={h}": functools.partial(
            _charts.bar_chart, LABELS, VALUES, TITLE, "units", horizontal=h, fast=f
        )
        for f in (False, True)
        for h in (True, False)
    },
    **{
        f"missing fast={f}": functools.partial(
            _charts.missing_chart, [(LONG, 0.3), ("price", 0.1)], TITLE, fast=f
        )
        for f in (False, True)
    },
    "by model": lambda: _charts.metric_by_model_chart(
        [LONG, "popularity"], [0.3, 0.2], [(0.25, 0.35), (0.15, 0.25)], TITLE
    ),
    "scatter": lambda: _charts.scatter_chart({LONG: (1.0, 2.0), "b": (2.0, 1.0)}, TITLE, "x", "y"),
    "long title fast=True": lambda: _charts.bar_chart(["mug", "pot"], [1.0, 2.0], TITLE, fast=True),
}


def _width_pt(svg: str) -> float:
    m = re.search(r'<svg[^>]*\bwidth="([\d.]+)pt"', svg)
    assert m is not None, svg[:300]
    return float(m.group(1))


def test_a_long_label_is_cut_with_an_ellipsis_and_the_chart_keeps_its_width() -> None:
    """A 120-character label made the cropped chart 16 inches wide (its bars shrunk to a sliver
    on the page) and a chart laid out with `fast` margins failed ("left cannot be >= right")."""
    for name, draw in CHARTS.items():
        svg = draw()
        texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)  # (text stays text: svg.fonttype none)
        assert LONG not in texts, name
        if not name.startswith(("scatter", "long title")):
            cut = [t for t in texts if t.endswith("…") and LONG.startswith(t[:-1].rstrip())]
            assert cut, (name, texts)
        assert _width_pt(svg) <= 9.5 * 72, (name, _width_pt(svg))


def test_the_title_is_wrapped_not_cut_off() -> None:
    svg = _charts.bar_chart(["mug", "pot"], [1.0, 2.0], TITLE, fast=True)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    shown = " ".join(t for t in texts if t and t in TITLE)
    assert shown == TITLE, texts  # every word of it, on two lines


def test_short_labels_are_kept_as_they_are() -> None:
    assert _charts._labels(["open", "withheld", "图书"]) == ["open", "withheld", "图书"]
    # two labels cut to the same text stay two bars (a category each)
    a, b = _charts._labels([LONG, LONG + " v2"])
    assert a != b and a.rstrip("\u200b") == b.rstrip("\u200b")


@pytest.mark.parametrize("name", CHARTS)
def test_every_text_of_a_chart_is_inside_it_in_a_browser(browser: Any, name: str) -> None:
    svg = CHARTS[name]()
    page = browser.new_page()
    try:
        page.set_content(f"<!doctype html><html><body style='margin:0'>{svg}</body></html>")
        outside = page.evaluate(
            """() => {
              const s = document.querySelector('svg').getBoundingClientRect();
              return [...document.querySelectorAll('svg text')].filter(t => t.textContent.trim()).map(t => {
                const r = t.getBoundingClientRect();
                return {text: t.textContent, left: r.left - s.left, right: s.right - r.right,
                        top: r.top - s.top, bottom: s.bottom - r.bottom};
              }).filter(r => Math.min(r.left, r.right, r.top, r.bottom) < -0.5);
            }"""
        )
    finally:
        page.close()
    assert outside == [], outside
