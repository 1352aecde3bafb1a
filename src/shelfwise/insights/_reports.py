"""Reports for the business (issue 18.5): reports/demand.{html,json} (weekly demand, forecasts
with their calibrated 80% intervals, stock-out weeks, reorder suggestions) and
reports/audiences.{html,json} (stored audiences: size, lift with its interval, lineage).

The HTML opens offline (inline SVG charts from `reporting._charts`, no script, no CDN); the JSON
is the same content for machines and for the console's insights page, which reads it instead of
forecasting inside a request. Demand is forecast exactly as `insights demand` does (same point in
time, same models and calibration); reorder suggestions appear when the catalog's stock figures
are known at as-of (`load_weekly`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ShelfwiseError
from ._data import curated_inputs, parse_as_of
from ._demand import forecast_demand, load_weekly
from ._replenishment import REPLENISHMENT_FIELDS, replenish

REPORTS_DIR = "reports"
DEMAND_REPORT = "demand"
AUDIENCES_REPORT = "audiences"
TOP_PRODUCTS = 12  # products drawn one by one (the largest sellers over the last 13 weeks)
RECENT_WEEKS = 13

_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
th{background:#f4f4f4}.muted{color:#666}.cards{display:flex;flex-wrap:wrap;gap:1rem}
.card{border:1px solid #ddd;border-radius:8px;padding:1rem;min-width:160px}.card b{font-size:1.6rem;display:block}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.5rem}svg{max-width:100%;height:auto}</style>"""


def _week(ts: Any) -> str:
    return pd.Timestamp(ts).date().isoformat()


def demand_summary(
    workdir: str | Path,
    *,
    as_of: str | None = None,
    horizon_weeks: int = 13,
    service_level: float = 0.95,
    review_days: float = 7.0,
    top: int = TOP_PRODUCTS,
    level: str = "product",
) -> dict[str, Any]:
    """What reports/demand.json holds: the model, the total and the top series' weekly history
    and forecast (products, or categories with `level="category"`), and the reorder suggestions
    (per product: none at the category level, nor when stock is not known at as-of)."""
    if not 1 <= horizon_weeks <= 104:
        raise ShelfwiseError(f"--horizon-weeks {horizon_weeks}: use 1..104")
    if level not in ("product", "category"):
        raise ShelfwiseError(f"--level {level!r}: use product or category")
    weekly, products, at, catalog = load_weekly(workdir, parse_as_of(as_of))
    lead = pd.to_numeric(products["lead_time_days"], errors="coerce").max()
    need = math.ceil(((0.0 if pd.isna(lead) else float(lead)) + review_days) / 7) + 1
    if level == "category":
        need = 1  # (no reorder suggestion reads past the horizon shown)
    fc, info, history = forecast_demand(
        # (one week more: a history ending mid-week starts the forecasts at the week already begun)
        weekly,
        products,
        at,
        horizon_weeks=min(max(horizon_weeks + 1, need), 105),
        level=level,
        catalog=catalog,
    )
    reorders = (
        replenish(
            fc, products, service_level=service_level, review_days=review_days, as_of=at, history=history
        )
        if catalog["stock_known"] and level == "product"
        else []
    )
    # `horizon_weeks` weeks after as-of (what the console sums as the next weeks), with the week
    # already begun at as-of before them when the history ends mid-week
    after = fc["ds"][fc["ds"].dt.normalize() > pd.Timestamp(at).tz_localize(None).normalize()]
    start = after.min() if len(after) else fc["ds"].min()
    shown = fc[fc["ds"] <= start + pd.Timedelta(weeks=horizon_weeks - 1)]
    last = history["ds"].max()
    recent = history[history["ds"] > last - pd.Timedelta(weeks=RECENT_WEEKS)]
    ranked = recent.groupby("unique_id")["y"].sum().sort_values(ascending=False, kind="stable")
    total_h = history.groupby("ds")["y"].sum()
    total_f = _total_band(shown)
    series = []
    for uid in ranked.index[:top]:
        h = history[history["unique_id"] == uid].sort_values("ds")
        f = shown[shown["unique_id"] == uid].sort_values("ds")
        series.append(
            {
                "id": str(uid),
                "model": str(f["model"].iloc[0]) if len(f) else None,
                "recent_units": round(float(ranked[uid]), 3),
                "history": [[_week(r.ds), round(float(r.y), 3)] for r in h.itertuples()],
                "censored": [_week(r.ds) for r in h.itertuples() if getattr(r, "censored", False)],
                "forecast": [
                    [_week(r.ds), round(float(r.units), 3), round(float(r.lo), 3), round(float(r.hi), 3)]
                    for r in f.itertuples()
                ],
            }
        )
    return {
        "as_of": info.as_of,
        "level": level,
        "horizon_weeks": horizon_weeks,
        "model": asdict(info),
        "total": {
            "history": [[_week(d), round(float(v), 3)] for d, v in total_h.items()],
            "forecast": [[_week(d), *(round(float(x), 3) for x in r)] for d, r in total_f.iterrows()],
        },
        "top": series,
        "replenishment": {
            "service_level": service_level,
            "review_days": review_days,
            "stock_known": bool(catalog["stock_known"]),
            "stock_reason": catalog.get("stock_reason"),
            # (the stock, lead times and orders are a product's: none for a category's forecast)
            "per_product_only": level != "product",
            "to_order": sum(1 for r in reorders if (r["order_qty"] or 0) > 0),
            "rows": sorted(reorders, key=lambda r: (-(r["order_qty"] or 0), r["product_id"])),
        },
    }


def _cards(items: list[tuple[str, Any]]) -> str:
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(str(v))}</b>{escape(k)}</div>' for k, v in items)
        + "</div>"
    )


def _searched_card(f: dict[str, Any] | None) -> str:
    """The free-text searches (no product_id) resolved to the product they name, of all."""
    if not f or not f.get("searches"):
        return "–"
    return f"{f['resolved_searches']:,} of {f['searches']:,}"


def demand_html(s: dict[str, Any]) -> str:
    from ..reporting._charts import forecast_chart
    from ..reporting._html import html_table

    m = s["model"]
    rep = s["replenishment"]
    total = forecast_chart(
        [tuple(x) for x in s["total"]["history"]],
        [tuple(x) for x in s["total"]["forecast"]],
        "All products: units per week and forecast",
        width=10.0,
        height=3.2,
    )
    small = "".join(
        forecast_chart(
            [tuple(x) for x in p["history"]],
            [tuple(x) for x in p["forecast"]],
            f"{p['id']} ({p['model']})",
            censored=p["censored"],
            width=6.0,
            height=2.4,
        )
        for p in s["top"]
    )
    calib = html_table(
        [
            {
                "series group": c["group"],
                "series": c["series"],
                "factor": c["factor"],
                "held-out weeks": c["held_out_errors"],
                "coverage before calibration": "–"
                if c["held_out_coverage_raw"] is None
                else f"{100 * c['held_out_coverage_raw']:.0f}%",
                "coverage after (window learned on)": "–"
                if c.get("held_out_coverage") is None
                else f"{100 * c['held_out_coverage']:.0f}%"
                + (" (factor at its bound)" if c.get("capped") else ""),
                "coverage, factor learned a window earlier": "–"
                if c.get("out_of_sample_coverage") is None
                else f"{100 * c['out_of_sample_coverage']:.0f}%",
                "held-out MAE: as served / baselines": "–"
                if not c.get("held_out_mae")
                else f"{c['held_out_mae']['served']:g} / "
                + ", ".join(f"{k} {v:g}" for k, v in c["held_out_mae"].items() if k != "served")
                + (
                    f" (the models' / baselines'; {c['served_baseline']} did better and is served instead)"
                    if c.get("served_baseline")
                    else ""
                ),
            }
            for c in m.get("calibration", [])
        ],
        [
            "series group",
            "series",
            "factor",
            "held-out weeks",
            "coverage before calibration",
            "coverage after (window learned on)",
            "coverage, factor learned a window earlier",
            "held-out MAE: as served / baselines",
        ],
        empty="<p>No group was long enough to cross-validate.</p>",
    )
    chosen = ", ".join(f"{k}: {v}" for k, v in sorted(m["chosen"].items(), key=lambda kv: -kv[1]))
    by_category = s.get("level") == "category"
    largest = "categories" if by_category else "sellers"
    if by_category:
        reorder = (
            "<p>No reorder suggestions: stock, lead times and orders are a product's; this report "
            "forecasts categories (<code>shelfwise report demand --level product</code> suggests "
            "orders).</p>"
        )
    elif rep["stock_known"]:
        cols = [c for c in REPLENISHMENT_FIELDS if c not in ("review_days", "service_level")]
        rows = [{c: "–" if r[c] is None else r[c] for c in cols} for r in rep["rows"]]
        reorder = html_table(rows, cols, empty="<p>No product with a stock figure.</p>")
    else:
        why = m.get("stock_reason") or "no products version had been ingested by as-of"
        reorder = f"<p>No reorder suggestions: {escape(why)} (stock is never carried back in time).</p>"
    stock_line = (
        f"products version {m['catalog_version']} (ingested {m['catalog_ingested_at']})"
        if m.get("catalog_version") is not None
        else (
            "the current catalog"
            if m.get("stock_known", True)
            else (m.get("stock_reason") or "none known at as-of")
        )
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise demand</title>
{_STYLE}</head><body>
<h1>Demand and replenishment</h1>
<p class="muted">As of {escape(s["as_of"])}; history up to the week of {escape(m["last_week"])};
season {m["season_length"]} weeks; per series the mean of the 4 best models by rolling-origin
cross-validation, the four default smooth models' plain mean where those are all (SeasonalNaive,
AutoETS, AutoTheta and GroupTheta, Theta on the series adjusted by the group's seasonal index)
({escape(chosen)}); stock figures: {escape(stock_line)}.</p>{_launch_line(m)}
{
        _cards(
            [
                ("series", m["series"]),
                ("stock-out weeks estimated", m["censored_weeks"]),
                ("free-text searches naming a product", _searched_card(m.get("free_text_searches"))),
                ("products to order", rep["to_order"] if rep["stock_known"] and not by_category else "–"),
                ("service level", f"{100 * rep['service_level']:.0f}%"),
            ]
        )
    }
<h2>All products</h2>{total}
<h2>Largest {largest} (last {RECENT_WEEKS} weeks)</h2><div class="grid">{small}</div>
<h2>Reorder suggestions</h2>{reorder}
<h2>80% intervals</h2><p class="muted">Each group's conformal bounds are scaled by a factor learnt on
a held-out cross-validation window, aiming at 80% of held-out weeks inside (the factor is kept
within 0.5-4); the coverage on that window before and after it is shown (after: 80% by
construction, short of it only at the bound), and the out-of-sample check: the coverage on that
window of the factor learned one window earlier (three windows or more). A slow seller's interval
is mostly its weeks without a sale: the reorder suggestions take each week's spread from the
forecast's cross-validation errors where that is wider. The held-out MAE is on the last
cross-validation window, the models chosen on the earlier ones: the forecast as served against
each series' mean of its last 13 weeks and the seasonal naive forecast (the last week's value
for a group without a season).</p>{calib}
</body></html>"""


def _launch_line(m: dict[str, Any]) -> str:
    """What the products first sold in the as-of week were forecast from (`launch_prior`)."""
    n = int(m.get("partial_week_series") or 0)
    if not n:
        return ""
    prior = m.get("launch_prior")
    how = (
        f"their rate so far, shrunk towards how the shop's {prior['launches']} earlier launches sold when "
        f"new (about {prior['mean_orders_per_week']:g} orders a week; the prior weighs as "
        f"{prior['beta']:.2g} weeks of sales)"
        if prior
        else "their rate so far (too few earlier launches to learn a new product's rate from)"
    )
    return f'\n<p class="muted">{n:,} first sold in the as-of week, with no complete week yet: forecast at {escape(how)}.</p>'


def audiences_summary(workdir: str | Path) -> dict[str, Any]:
    from ._audiences import list_audiences

    rows = list_audiences(workdir)
    return {"audiences": rows, "count": len(rows)}


def audiences_html(s: dict[str, Any]) -> str:
    from ..reporting._charts import bar_chart, metric_by_model_chart
    from ..reporting._html import html_table

    rows = s["audiences"]
    if not rows:
        body = "<p>No audience yet (<code>shelfwise audiences build</code>).</p>"
    else:
        sizes = bar_chart([r["name"] for r in rows], [float(r["size"]) for r in rows], "Members now")
        lifted = [r for r in rows if r["lift"] is not None]
        lift_svg = (
            metric_by_model_chart(
                [r["name"] for r in lifted],
                [float(r["lift"]) for r in lifted],
                [tuple(r["lift_ci95"] or (r["lift"], r["lift"])) for r in lifted],
                "Offline lift (holdout conversion / base rate, 95% interval)",
            )
            if lifted
            else "<p>No lift estimate yet.</p>"
        )
        table = html_table(
            [
                {
                    **r,
                    "definition": r["rule"] or r["category"] or ", ".join(r["products"] or []),
                    "lift_ci95": "" if not r["lift_ci95"] else f"[{r['lift_ci95'][0]}, {r['lift_ci95'][1]}]",
                    "data_versions": ", ".join(f"{t} v{v}" for t, v in r["data_versions"].items()),
                }
                for r in rows
            ],
            ["name", "kind", "definition", "size", "built_size", "lift", "lift_ci95", "model",
             "bundle_version", "data_versions", "created_at", "created_by"],
        )  # fmt: skip
        body = f"{sizes}{lift_svg}{table}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise audiences</title>
{_STYLE}</head><body><h1>Marketing audiences</h1>
<p class="muted">{s["count"]} audiences; sizes count the members an export would write now (erased users and those
without marketing or personalization consent leave).</p>
{body}</body></html>"""


def write_report(workdir: str | Path, name: str, summary: dict[str, Any], html: str) -> tuple[Path, Path]:
    """reports/<name>.html and .json in the workdir."""
    out = Path(workdir) / REPORTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    js = out / f"{name}.json"
    js.write_text(json.dumps(summary, indent=1, default=str))
    page = out / f"{name}.html"
    page.write_text(html)
    return page, js


def read_report(workdir: str | Path, name: str) -> dict[str, Any] | None:
    """A report's JSON as last written, None when there is none (the console's pages)."""
    path = Path(workdir) / REPORTS_DIR / f"{name}.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _report_outputs(page: Path, js: Path) -> list[Any]:
    from ..governance import DatasetRef

    return [DatasetRef("file", str(f.resolve()), size_bytes=f.stat().st_size) for f in (page, js)]


def curated_report(
    workdir: str | Path,
    kind: str,
    name: str,
    build: Callable[[], tuple[dict[str, Any], str]],
    audit: Callable[[dict[str, Any]], dict[str, Any]],
    actor: str | None = None,
    tables: tuple[str, ...] = ("events", "products"),
    files: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """A report on the curated tables as a governed job (the caller has checked the permission):
    `build()` gives the summary and its page, written as reports/`name`.{html,json}; a lineage
    run from the curated versions of `tables` read (and `files`) to the two files and an audit
    entry `report.<kind>` with `audit(summary)`'s fields. Returns the summary with `html`, `json`
    and `lineage_run_id`."""
    from ..governance import AuditLog, DatasetRef, LineageRun

    if not (Path(workdir) / "warehouse.duckdb").exists():
        raise ShelfwiseError(
            f"{workdir}: not a shelfwise workdir (no warehouse.duckdb; ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
        )
    inputs, versions = curated_inputs(workdir, tables)
    inputs += [DatasetRef("file", str(f.resolve())) for f in files]
    lineage = LineageRun(workdir, f"shelfwise.report.{kind}", inputs).start()
    try:
        s, html = build()
        page, js = write_report(workdir, name, s, html)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete(_report_outputs(page, js))
    AuditLog(workdir).append(
        f"report.{kind}", actor=actor, html=str(page), json=str(js), data_versions=versions,
        lineage_run_id=lineage.run_id, **audit(s),
    )  # fmt: skip
    return {**s, "html": str(page), "json": str(js), "lineage_run_id": lineage.run_id}


def run_demand_report(
    workdir: str | Path,
    *,
    as_of: str | None = None,
    horizon_weeks: int = 13,
    service_level: float = 0.95,
    review_days: float = 7.0,
    level: str = "product",
    actor: str | None = None,
) -> dict[str, Any]:
    """reports/demand.{html,json} (`level="category"`: reports/demand-category.{html,json}) as a
    governed job (`curated_report`, audited `report.demand`)."""

    def build() -> tuple[dict[str, Any], str]:
        s = demand_summary(
            workdir, as_of=as_of, horizon_weeks=horizon_weeks, service_level=service_level,
            review_days=review_days, level=level,
        )  # fmt: skip
        return s, demand_html(s)

    def audit(s: dict[str, Any]) -> dict[str, Any]:
        m = s["model"]
        return {
            "as_of": s["as_of"],
            "level": level,
            "series": m["series"],
            "horizon_weeks": horizon_weeks,
            "catalog_version": m["catalog_version"],
            "to_order": s["replenishment"]["to_order"],
        }

    # (the category report beside the product one, not over it: the console's reorder
    # suggestions are the product report's)
    name = DEMAND_REPORT if level == "product" else f"{DEMAND_REPORT}-{level}"
    return curated_report(workdir, "demand", name, build, audit, actor)


def run_audiences_report(workdir: str | Path, *, actor: str | None = None) -> dict[str, Any]:
    """reports/audiences.{html,json} as a governed job: a lineage run from each stored audience's
    members file (rows held now, content hash) to the two files, and an audit entry
    (`report.audiences`) naming each audience with the data versions and build run behind it."""
    import hashlib

    from ..governance import AuditLog, DatasetRef, LineageRun
    from ._audiences import MEMBERS_FILE, audience_dir, read_members

    s = audiences_summary(workdir)
    inputs = []
    for a in s["audiences"]:
        f = audience_dir(workdir, a["name"]) / MEMBERS_FILE
        if f.exists():
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            # the file's rows (its size counts those of them an export may write now)
            held = len(read_members(f.parent))
            inputs.append(DatasetRef("file", str(f.resolve()), rows=held, content_hash=digest))
    lineage = LineageRun(workdir, "shelfwise.report.audiences", inputs).start()
    try:
        page, js = write_report(workdir, AUDIENCES_REPORT, s, audiences_html(s))
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete(_report_outputs(page, js))
    AuditLog(workdir).append(
        "report.audiences",
        actor=actor,
        html=str(page),
        json=str(js),
        audiences={
            a["name"]: {
                "size": a["size"],
                "data_versions": a["data_versions"],
                "bundle_version": a["bundle_version"],
                "lineage_run_id": a.get("lineage_run_id"),
            }
            for a in s["audiences"]
        },
        lineage_run_id=lineage.run_id,
    )
    return {**s, "html": str(page), "json": str(js), "lineage_run_id": lineage.run_id}


__all__ = [
    "AUDIENCES_REPORT",
    "DEMAND_REPORT",
    "audiences_html",
    "audiences_summary",
    "demand_html",
    "demand_summary",
    "read_report",
    "run_audiences_report",
    "run_demand_report",
    "write_report",
]


def _total_band(fc: pd.DataFrame) -> pd.DataFrame:
    """The weekly total of every product with its 80% interval, the products' errors taken as
    independent (as replenishment's protection demand takes the weeks'): each side's standard
    deviation from that side's half-width, summed in variance. Summing the bounds themselves
    would assume every product misses in the same direction at once (several times too wide)."""
    from ._replenishment import Z80

    parts = fc.assign(
        up=((fc["hi"] - fc["units"]).clip(lower=0) / Z80) ** 2,
        down=((fc["units"] - fc["lo"]).clip(lower=0) / Z80) ** 2,
    )
    g = parts.groupby("ds")[["units", "up", "down"]].sum()
    return pd.DataFrame(
        {
            "units": g["units"],
            "lo": (g["units"] - Z80 * g["down"] ** 0.5).clip(lower=0),
            "hi": g["units"] + Z80 * g["up"] ** 0.5,
        }
    )
