"""The governed jobs behind `insights demand` and `insights replenishment`: point-in-time read,
forecast, the output file, an OpenLineage run and an audit entry. The caller
(`shelfwise.Shop`) has checked the permission; `actor` is who the audit entry names."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ShelfwiseError
from ._data import curated_inputs, parse_as_of
from ._demand import forecast_demand, load_weekly
from ._replenishment import REPLENISHMENT_FIELDS, band_warnings, replenish
from ._run import write_records

# (stopped_selling_weeks: the weeks without a sale of a series whose sales stopped, forecast at
# zero, `_demand.stopped_selling`; null for the others)
DEMAND_FIELDS = ("product_id", "week_start", "units", "lo", "hi", "model", "stopped_selling_weeks")
CATEGORY_FIELDS = ("category", "week_start", "units", "lo", "hi", "model", "stopped_selling_weeks")


def _check(workdir: Path, out: Path) -> None:
    if out.suffix not in (".jsonl", ".csv"):
        raise ShelfwiseError(f"{out}: unknown output format {out.suffix!r} (use .jsonl or .csv)")
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(
            f"{workdir}: not a shelfwise workdir (no warehouse.duckdb; ingest data first: `Shop.ingest(DIR)` or `shelfwise ingest`)"
        )


def stock_unknown(workdir: Path, at: Any) -> str:
    """Why a replenishment at `at` is refused: no products version had been ingested by then."""
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        row = con.sql(
            "SELECT min(created_at) FROM meta.table_versions WHERE table_name = 'products'"
        ).fetchone()
    first = row[0] if row else None
    since = (
        f"the first products version was ingested on {pd.Timestamp(first).isoformat(timespec='seconds')}"
        if first is not None
        else "no products table has been ingested"
    )
    return (
        f"--as-of {pd.Timestamp(at).isoformat()}: the stock on hand and lead times at that date are not "
        f"known ({since}; stock figures are never carried back in time). Drop --as-of to suggest "
        "orders for now, or use a date after a products delivery."
    )


def quarantined_products(
    workdir: Path, catalog: Iterable[str] = (), in_use: int | None = None
) -> dict[str, Any]:
    """The products rows held in quarantine (open), counted by reason. A product the catalog
    (`catalog`: its ids) has is suggested from the products version in use (`in_use`); a row of
    it quarantined by the load that made that version, or after it, was meant to replace its
    stock figure (a stock feed's `-3` quarantined left yesterday's 10 in use, and this said "not
    in the catalog"): those ids are `stale_stock` (a row quarantined before the version in use is
    older than the stock read). The other rows' products are not in the catalog, so not in the
    suggestions unless they sold (then listed as "not in the catalog")."""
    from ..storage import read_only

    rows: list[tuple[str, str, Any, Any]] = []
    made: tuple[Any, Any] | None = None  # (run, created_at) of the version in use
    if (Path(workdir) / "warehouse.duckdb").exists():
        with read_only(workdir) as (con, _):
            if con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = 'quarantine' AND table_name = 'rows'"
            ).fetchone()[0]:
                rows = con.execute(
                    "SELECT trim(coalesce(json_extract_string(raw, '$.product_id'), '')), reason, "
                    "quarantined_at, run_id FROM quarantine.rows "
                    "WHERE table_name = 'products' AND status = 'open'"
                ).fetchall()
            if in_use is not None:
                made = con.execute(
                    "SELECT run_id, created_at FROM meta.table_versions "
                    "WHERE table_name = 'products' AND version = ?",
                    [in_use],
                ).fetchone()

    def later(at: Any, run: Any) -> bool:
        """Quarantined by the load that made the version in use (its row failed while the
        others were published: the version's time comes after the row's) or after it."""
        if made is None:
            return True
        return run == made[0] or at is None or made[1] is None or pd.Timestamp(at) > pd.Timestamp(made[1])

    known = set(catalog)
    stale = sorted({p for p, _, at, run in rows if p in known and later(at, run)})
    by_reason: dict[str, int] = {}
    for _, reason, _, _ in rows:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    new = sorted({p for p, _, _, _ in rows if p and p not in known})
    said = []
    if stale:
        said.append(
            f"{len(stale):,} product(s) of the catalog have a later products row in quarantine: their "
            f"suggestions use the earlier row's stock and lead time ({', '.join(stale[:5])}"
            f"{', ...' if len(stale) > 5 else ''})"
        )
    if new:
        said.append(f"{len(new):,} product(s) are not in the catalog, so no stock figure")
    n = len(rows)
    return {
        "quarantined_product_rows": n,
        "by_reason": by_reason,
        "stale_stock": stale,
        "reason": (
            f"{n} products rows are in quarantine (open)"
            + (f": {'; '.join(said)}" if said else "")
            + "; fix them (`shelfwise quarantine list --table products`)"
            if n
            else None
        ),
    }


def demand_records(
    workdir: str | Path, as_of: str | None = None, horizon_weeks: int = 13, level: str = "product"
) -> tuple[list[dict[str, Any]], dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The forecasts as JSON-ready dicts, what made them, the forecast frame and the catalog."""
    if not 1 <= horizon_weeks <= 104:
        raise ShelfwiseError(f"--horizon-weeks {horizon_weeks}: use 1..104")
    weekly, products, at, catalog = load_weekly(workdir, parse_as_of(as_of))
    fc, info, history = forecast_demand(
        weekly, products, at, horizon_weeks=horizon_weeks, level=level, catalog=catalog
    )
    key = "product_id" if level == "product" else "category"
    records = [
        {
            key: r.unique_id,
            "week_start": pd.Timestamp(r.ds).date().isoformat(),
            "units": round(float(r.units), 3),
            "lo": round(float(r.lo), 3),
            "hi": round(float(r.hi), 3),
            "model": r.model,
            "stopped_selling_weeks": None
            if pd.isna(r.stopped_selling_weeks)
            else int(r.stopped_selling_weeks),
        }
        for r in fc.itertuples(index=False)
    ]
    meta = {"as_of": info.as_of, "weeks_of_history": int(history["ds"].nunique()), "model": asdict(info)}
    return records, meta, fc, products


def run_demand(
    workdir: str | Path,
    out: str | Path,
    *,
    as_of: str | None = None,
    horizon_weeks: int = 13,
    level: str = "product",
    actor: str | None = None,
) -> dict[str, Any]:
    """Weekly demand forecasts per product (or category) from events up to `as_of`, to `out`."""
    from ..governance import AuditLog, DatasetRef, LineageRun

    workdir, out = Path(workdir), Path(out)
    _check(workdir, out)
    if level not in ("product", "category"):
        raise ShelfwiseError(f"--level {level!r}: use product or category")
    fields = DEMAND_FIELDS if level == "product" else CATEGORY_FIELDS
    inputs, versions = curated_inputs(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.insights.demand",
        inputs,
    ).start()
    try:
        records, meta, _, _ = demand_records(workdir, as_of, horizon_weeks, level)
        write_records(records, out, fields)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete([DatasetRef("file", str(out.resolve()), rows=len(records), columns=fields)])
    series = meta["model"]["series"]
    rep = {"series": series, "rows": len(records), "out": str(out), "lineage_run_id": lineage.run_id, **meta}
    AuditLog(workdir).append(
        "insights.demand",
        actor=actor,
        out=str(out),
        level=level,
        series=series,
        as_of=meta["as_of"],
        catalog_version=meta["model"]["catalog_version"],
        horizon_weeks=horizon_weeks,
        data_versions=versions,
        lineage_run_id=lineage.run_id,
    )
    return rep


def run_replenishment(
    workdir: str | Path,
    out: str | Path,
    *,
    as_of: str | None = None,
    service_level: float = 0.95,
    review_days: float = 7.0,
    actor: str | None = None,
) -> dict[str, Any]:
    """Reorder suggestions per product from the demand forecast at `as_of`, the catalog's stock
    and lead times, to `out`."""
    from ..governance import AuditLog, DatasetRef, LineageRun

    workdir, out = Path(workdir), Path(out)
    _check(workdir, out)
    if not 0.5 <= service_level < 1.0:
        raise ShelfwiseError(f"--service-level {service_level}: use a probability in [0.5, 1)")
    if review_days < 0:
        raise ShelfwiseError(f"--review-days {review_days}: must be >= 0")
    inputs, versions = curated_inputs(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.insights.replenishment",
        inputs,
    ).start()
    try:
        weekly, products, at, catalog = load_weekly(workdir, parse_as_of(as_of))
        if not catalog["stock_known"]:
            if catalog.get("version") is not None or as_of is None:  # a catalog without stock
                raise ShelfwiseError(
                    f"no reorder suggestions: {catalog.get('stock_reason') or 'no stock figures'}; "
                    "replenishment needs the units on hand per product (`stock`, and `lead_time_days`)"
                )
            raise ShelfwiseError(stock_unknown(workdir, at))
        lead = pd.to_numeric(products["lead_time_days"], errors="coerce").max()
        # the stock was counted when its products version came in: the protection period starts
        # then when that is after as-of (the forecasts reach that far too)
        stock_at = catalog.get("ingested_at") if catalog.get("version") is not None else None
        later = (
            0.0 if stock_at is None else (pd.Timestamp(stock_at) - pd.Timestamp(at)) / pd.Timedelta(days=1)
        )
        days = (0.0 if pd.isna(lead) else float(lead)) + review_days + max(later, 0.0)
        weeks = max(13, math.ceil(days / 7) + 1)
        fc, info, series = forecast_demand(
            weekly, products, at, horizon_weeks=min(weeks, 104), catalog=catalog
        )
        records = replenish(
            fc,
            products,
            service_level=service_level,
            review_days=review_days,
            as_of=at,
            history=series,
            stock_at=stock_at,
            warnings=band_warnings(fc, info),
        )
        left_out = quarantined_products(workdir, products["product_id"].astype(str), catalog.get("version"))
        stale = set(left_out["stale_stock"])
        for r in records:  # (said where the number is read, not only in the run's summary)
            if r["product_id"] in stale:
                r["reason"] = (
                    f"{r['reason']} (a later products row for it is in quarantine: this is the earlier "
                    "row's stock)"
                )
        write_records(records, out, REPLENISHMENT_FIELDS)
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete(
        [DatasetRef("file", str(out.resolve()), rows=len(records), columns=REPLENISHMENT_FIELDS)]
    )
    to_order = sum(1 for r in records if (r["order_qty"] or 0) > 0)
    rep = {
        "products": len(records),
        "to_order": to_order,
        "left_out": left_out,
        "out": str(out),
        "lineage_run_id": lineage.run_id,
        "as_of": info.as_of,
        "protection_from": records[0]["protection_from"] if records else info.as_of,
        "interval_warnings": sum(1 for r in records if r.get("interval_warning")),
        "model": asdict(info),
    }
    AuditLog(workdir).append(
        "insights.replenishment",
        actor=actor,
        out=str(out),
        products=len(records),
        to_order=to_order,
        as_of=info.as_of,
        catalog_version=info.catalog_version,
        service_level=service_level,
        data_versions=versions,
        lineage_run_id=lineage.run_id,
    )
    return rep


__all__ = [
    "CATEGORY_FIELDS",
    "DEMAND_FIELDS",
    "demand_records",
    "quarantined_products",
    "run_demand",
    "run_replenishment",
    "stock_unknown",
]
