"""Charts as inline SVG (matplotlib, Agg backend): reports open offline, with nothing to fetch."""

from __future__ import annotations

import io
import unicodedata
import warnings
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# text stays text in the SVG, drawn by the browser with its own fonts: a label in Chinese (a
# query, a category) shows as written instead of as boxes for the glyphs matplotlib's bundled
# font lacks, and the file is smaller. Measuring such a label still asks that font for glyphs it
# does not have: that warning says nothing about the chart, so it is not printed (`_svg`)
matplotlib.rcParams["svg.fonttype"] = "none"
_NO_GLYPH = r"Glyph \d+ .* missing from font"

BARS_UP_TO = 60  # a time series of more days is drawn as stacked areas
# the most a tick label may take (inches, 10 pt), beyond it cut with an ellipsis: a 120-character
# product title or category pushed the bars off a 7-inch chart (a cropped chart 16 inches wide,
# shrunk to illegible on the page; with `fast` margins, no chart at all: "left cannot be >= right")
LABEL_INCHES = 2.6
NAME_INCHES = 2.2  # a legend entry or a point's name
TITLE_LINES = 2  # a longer title is wrapped onto this many lines, the rest cut with an ellipsis
PALETTE = ["#2563eb", "#f97316", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563"]


def _svg(fig: plt.Figure, margins: tuple[float, float] | None = None) -> str:
    """The figure as SVG, cropped to what is drawn; or, with `margins` (left, bottom, in
    inches), laid out with those margins: cropping draws the figure twice (its extent, then
    the SVG), which is most of a chart's cost (the ingest report's four: 1.3 -> 0.8 s CPU)."""
    buf = io.StringIO()
    with warnings.catch_warnings():  # (here, not once at import: a caller may reset the filters)
        warnings.filterwarnings("ignore", message=_NO_GLYPH, category=UserWarning)
        # a date axis over one week or a few: matplotlib's locator falls back to a plain interval
        # and says so once per chart (six lines on stderr for one demand report)
        warnings.filterwarnings("ignore", message="AutoDateLocator was unable", category=UserWarning)
        if margins is None:
            fig.savefig(buf, format="svg", bbox_inches="tight")
        else:
            w, h = fig.get_size_inches()
            top = 0.4 + sum(_extra_title_inches(ax) for ax in fig.axes[:1])
            if margins[0] + 0.35 + 2.5 > w:  # the plot keeps 2.5 inches: the figure widens instead
                w = margins[0] + 0.35 + 2.5
                fig.set_size_inches(w, h)
            fig.subplots_adjust(
                left=margins[0] / w, bottom=margins[1] / h, right=1 - 0.35 / w, top=1 - top / h
            )
            fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.find("<svg") :]


def _fig(width: float = 7.0, height: float = 3.2) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.25)
    return fig, ax


def _text_inches(text: str, pt: float = 10.0) -> float:
    """About the width of a line of text at `pt` points: an em for a wide character (Chinese,
    Japanese), ~0.7 em for a capital, ~0.6 em for the others (the SVG's text is drawn by the
    browser with its own fonts: an estimate, with room to spare)."""
    em = pt / 72
    wide = sum(unicodedata.east_asian_width(c) in "WF" for c in text)
    caps = sum(c.isupper() for c in text)
    return em * (wide + 0.7 * caps + 0.6 * (len(text) - wide - caps))


def _fit(text: object, inches: float, pt: float = 10.0, lines: int = 1) -> str:
    """`text` in at most `lines` lines of at most `inches` each (wrapped at spaces, a word
    longer than a line cut), what does not fit cut with an ellipsis."""
    s = str(text)
    if "\n" not in s and _text_inches(s, pt) <= inches:
        return s
    out: list[str] = []
    for word in s.split():
        if out and _text_inches(f"{out[-1]} {word}", pt) <= inches:
            out[-1] = f"{out[-1]} {word}"
            continue
        while _text_inches(word, pt) > inches and len(word) > 1:  # a word longer than a line
            k = next(i for i in range(len(word), 0, -1) if _text_inches(word[:i], pt) <= inches or i == 1)
            out.append(word[:k])
            word = word[k:]
        out.append(word)
    if len(out) > lines:
        last = out[lines - 1]
        while last and _text_inches(last + "…", pt) > inches:
            last = last[:-1]
        out = [*out[: lines - 1], last.rstrip() + "…"]
    return "\n".join(out)


def _labels(labels: Sequence[object], inches: float = LABEL_INCHES) -> list[str]:
    """Tick labels on one line each, a long one cut with an ellipsis (two equal cuts of
    different labels stay two bars: a bar chart's labels are its categories)."""
    out: list[str] = []
    for s in labels:
        cut = _fit(s, inches)
        while cut != str(s) and cut in out:  # (one cut of two labels would merge their bars)
            cut += "\u200b"
        out.append(cut)
    return out


def _label_inches(labels: Sequence[str]) -> float:
    """About the width of the longest tick label (10 pt) and its tick."""
    return 0.25 + max((_text_inches(s) for s in labels), default=0.0)


def _title(ax: plt.Axes, title: str, left: float = 0.9, fontsize: float = 11) -> None:
    """The chart's title over the plot (from its left edge, `left` inches from the figure's),
    wrapped to the figure's width: a long one ran off the chart's right edge."""
    width = float(ax.figure.bbox.width / ax.figure.dpi)
    text = _fit(title, max(width - left - 0.45, 2.0), fontsize, TITLE_LINES)
    ax.set_title(text, loc="left", fontsize=fontsize)


def _extra_title_inches(ax: plt.Axes, fontsize: float = 11) -> float:
    """The height a title's second line adds above the plot (`fast` margins)."""
    return ax.get_title(loc="left").count("\n") * fontsize * 1.25 / 72


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    xlabel: str = "",
    horizontal: bool = True,
    *,
    fast: bool = False,
) -> str:
    """`fast`: laid out with margins from the labels' length, not cropped to what is drawn.
    A long label is cut with an ellipsis; under vertical bars, labels wider than a bar's slot
    are slanted."""
    labels = _labels(labels, LABEL_INCHES if horizontal else 1.6)
    fig, ax = _fig(7.0, max(1.6, 0.32 * len(labels) + 0.8) if horizontal else 3.2)
    if horizontal:
        ax.barh(labels[::-1], list(values)[::-1], color=PALETTE[0])
        ax.set_xlabel(xlabel)
        for y, v in enumerate(list(values)[::-1]):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        fit = (_label_inches(labels), 0.55)
    else:
        ax.bar(labels, list(values), color=PALETTE[0])
        ax.set_ylabel(xlabel)
        widest = max((_text_inches(s) for s in labels), default=0.0)
        fit = (0.8, 0.55)
        if widest > 5.8 / max(len(labels), 1):  # wider than its bar's slot: they would overlap
            ax.tick_params(axis="x", labelrotation=30)
            for t in ax.get_xticklabels():
                t.set_horizontalalignment("right")
                t.set_rotation_mode("anchor")
            fit = (max(0.8, 0.87 * widest - 5.8 / max(len(labels), 1) / 2 + 0.2), 0.55 + 0.5 * widest)
    _title(ax, title, fit[0])
    return _svg(fig, fit if fast else None)


def stacked_time_chart(
    days: Sequence[str], series: Mapping[str, Sequence[float]], title: str, *, fast: bool = False
) -> str:
    import numpy as np

    fig, ax = _fig(7.5, 3.2)
    x = np.arange(len(days))
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    if len(days) <= BARS_UP_TO:
        bottom = np.zeros(len(days))
        for (name, vals), color in zip(series.items(), colors, strict=True):
            v = np.asarray(vals, dtype=float)
            ax.bar(x, v, bottom=bottom, label=_fit(name, NAME_INCHES, 8), color=color, width=1.0)
            bottom += v
    else:  # one area per series, not a bar per day and series (an SVG of thousands of shapes)
        ax.stackplot(
            x,
            *[np.asarray(v, dtype=float) for v in series.values()],
            labels=[_fit(name, NAME_INCHES, 8) for name in series],
            colors=colors,
        )
        ax.set_xlim(0, len(days) - 1)
    step = max(1, len(days) // 8)
    ax.set_xticks(x[::step], [d for d in days][::step], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("events per day")
    ax.legend(fontsize=8, ncols=3, frameon=False)
    _title(ax, title)
    return _svg(fig, (0.8, 0.85) if fast else None)


def long_tail_chart(counts: Sequence[int], title: str, *, fast: bool = False) -> str:
    import numpy as np

    fig, ax = _fig(7.0, 3.2)
    c = np.sort(np.asarray(counts))[::-1]
    # drawn through at most ~500 ranks spaced evenly on the log axis (the same curve to the eye;
    # every product a point made a 200k-point SVG path)
    n = len(c)
    ranks = np.arange(1, n + 1) if n <= 500 else np.unique(np.rint(np.geomspace(1, n, 500)).astype(np.int64))
    ax.plot(ranks, c[ranks - 1], color=PALETTE[1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    if fast:  # ticks as plain numbers (1, 10, 1,000; the minor ticks labelled where the
        # default labels them: 4, 20 over a short range): a log axis's default 10^n labels are
        # TeX, which matplotlib's mathtext parses first (~0.1 s CPU of the ingest report)
        from matplotlib.ticker import FuncFormatter, LogFormatter

        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
            axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    ax.set_xlabel("product rank")
    ax.set_ylabel("events")
    total = c.sum() or 1
    head = max(1, len(c) // 5)
    _title(ax, f"{title} - top 20% of products: {c[:head].sum() / total:.0%} of events")
    return _svg(fig, (0.8, 0.55) if fast else None)


def missing_chart(rows: list[tuple[str, float]], title: str, *, fast: bool = False) -> str:
    fig, ax = _fig(7.0, max(1.6, 0.28 * len(rows) + 0.8))
    labels = _labels([r[0] for r in rows])[::-1]
    vals = [100 * r[1] for r in rows][::-1]
    ax.barh(labels, vals, color=PALETTE[4])
    ax.set_xlim(0, 100)
    ax.set_xlabel("% missing (curated)")
    _title(ax, title, _label_inches(labels))
    return _svg(fig, (_label_inches(labels), 0.55) if fast else None)


def metric_by_model_chart(
    models: Sequence[str], values: Sequence[float], errors: Sequence[tuple[float, float]], title: str
) -> str:
    """Horizontal bars with 95% confidence whiskers."""
    fig, ax = _fig(7.0, max(1.8, 0.4 * len(models) + 0.8))
    ys = list(range(len(models)))[::-1]
    lo = [max(v - e[0], 0) for v, e in zip(values, errors, strict=True)]
    hi = [max(e[1] - v, 0) for v, e in zip(values, errors, strict=True)]
    ax.barh(ys, values, xerr=[lo, hi], color=PALETTE[0], ecolor="#374151", capsize=3)
    ax.set_yticks(ys, _labels(models))
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f"  {v:.4f}", va="bottom", fontsize=8)
    _title(ax, title, _label_inches(_labels(models)))
    return _svg(fig)


def lines_chart(
    xs: Sequence[float], series: Mapping[str, Sequence[float]], title: str, xlabel: str, ylabel: str
) -> str:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _fig()
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(
            list(xs), list(ys), marker="o", label=_fit(name, NAME_INCHES, 8), color=PALETTE[i % len(PALETTE)]
        )
    if len(xs) <= 12:  # cutoffs and load numbers: tick exactly where the points are
        ax.set_xticks(list(xs))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if series:  # (no series, no legend: matplotlib warns about a legend with nothing in it)
        ax.legend(fontsize=8, frameon=False)
    _title(ax, title)
    return _svg(fig)


def scatter_chart(points: Mapping[str, tuple[float, float]], title: str, xlabel: str, ylabel: str) -> str:
    fig, ax = _fig()
    for i, (name, (x, y)) in enumerate(points.items()):
        ax.scatter([x], [y], color=PALETTE[i % len(PALETTE)], s=40)
        ax.annotate(_fit(name, NAME_INCHES, 8), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(ax, title)
    return _svg(fig)


def forecast_chart(
    history: Sequence[tuple[str, float]],
    forecast: Sequence[tuple[str, float, float, float]],
    title: str,
    *,
    censored: Sequence[str] = (),
    width: float = 7.0,
    height: float = 2.8,
) -> str:
    """Weekly history (`week, units`) and a forecast (`week, units, lo, hi`) with its interval
    as a band; `censored` weeks (stock-outs, demand estimated) marked."""
    import pandas as pd

    fig, ax = _fig(width, height)
    hx = pd.to_datetime([h[0] for h in history])
    ax.plot(hx, [h[1] for h in history], color=PALETTE[0], lw=1.4, label="sold (estimated in stock-outs)")
    if censored:
        at = {pd.Timestamp(c) for c in censored}
        pts = [(x, y) for x, (_, y) in zip(hx, history, strict=True) if x in at]
        if pts:
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], color=PALETTE[3], s=12, zorder=3, label="stock-out"
            )
    if forecast:
        fx = pd.to_datetime([f[0] for f in forecast])
        ax.fill_between(
            fx,
            [f[2] for f in forecast],
            [f[3] for f in forecast],
            color=PALETTE[1],
            alpha=0.25,
            lw=0,
            label="80% interval",
        )
        ax.plot(fx, [f[1] for f in forecast], color=PALETTE[1], lw=1.6, label="forecast")
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(maxticks=7 if width >= 8 else 5)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.set_ylabel("units / week")
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=7, frameon=False, ncols=4, loc="upper left")
    _title(ax, title, fontsize=10)
    return _svg(fig)
