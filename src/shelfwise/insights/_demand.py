"""Weekly demand forecasts per product or category, point in time (issue 18.3).

The series: units bought per week (the sum of purchase quantities; weeks start on Monday), from a
product's first event to the last *complete* week up to `as_of` (a partial week would read as a
drop in demand). Nothing after `as_of` is read. A product first sold in the week `as_of` falls
in has no complete week: it is forecast at its rate so far, shrunk towards the rates the shop's
earlier launches sold at when they were new (`forecast_partial_week`, `launch_prior`), not left
out as if it had not sold.

Censored weeks: a week with no sales is not always a week without demand. A zero week is taken
as a stock-out (demand not observed) when it is improbable under the product's local sales rate
(Poisson P(0) < 1%, the rate being the median of the 9 weeks around it) while shoppers still
looked at the product (views, clicks, carts and searches naming it, at least half its usual
weekly interest); and the trailing run of zero weeks of a product the catalog listed as out of
stock at `as_of` (`in_stock` false or `stock` 0, in the products version current then), from
the last version that listed it in stock on (`_in_stock_until`; all of the run when none did). A
censored week's demand is estimated from that week's interest times the product's conversion
(units per interest event in uncensored weeks), else from the local rate or the level before
the stock-out (only for a product with MIN_LEVEL_WEEKS uncensored weeks: one sale is no level),
else it stays unfilled (nothing to read a demand from, flagged all the same): search and browsing
demand is the signal that stands in for sales the shop could not make. A search names a product
by its product_id or, a free-text search without one, by resolving to it (`_searched`, strict:
only a query that clearly names one product): the shopper who searches "bosch drill 18v" while
that drill is out of stock is shown nothing to click, and leaves only the query. Those resolved
searches count in the interest, and apart as `searched` (`free_text_searches` in the model).

The models: the field's maintained library (statsforecast): SeasonalNaive, AutoETS and AutoTheta
(AutoARIMA on request: it costs ~50x AutoETS), GroupTheta (Theta on each series adjusted by its
group total's seasonal index, `_group_seasonal`: for series too short and noisy to estimate a
52-week season alone), plus CrostonOptimized, ADIDA and IMAPA for intermittent series (average interval
between sales > 1.32 weeks, Syntetos-Boylan), and the mean of the smooth models as a combination.
Each series' forecast is the mean of the TOP_K (4) candidates with the lowest error in
rolling-origin cross-validation (`n_windows` origins, `h` = min(horizon, 13) weeks each): on a
few noisy CV windows the single best is mostly chance, and the mean of the best few is the more
robust rule (`top_k`; the single best is `select="series"`). With the four default smooth models
and no other candidate, the top 4 are all of them: a smooth series' forecast is then their
equal-weight mean, and CV chooses only where there are more candidates (intermittent series,
InterestETS, AutoARIMA on request). This pool and rule won on both real datasets
(benchmarks/insights.json `demand`: Superstore and the Italian grocery, against the pool without
GroupTheta and its top-3 mean and against every statsforecast anchor). Search and browsing demand is an input
where it carries the signal: for a product whose weekly interest correlates with its sales,
InterestETS (AutoETS on interest x recent conversion) is one more candidate (on planted shops it
helps where interest tracks the demand level and changes nothing where it is noise:
benchmarks/insights.json `demand_interest`). The 80% interval is conformal: the chosen combination's
10%/90% cross-validation errors around the point forecast (the same for every model, including
the combination and the intermittent ones that have no interval of their own), scaled per group
by a factor learnt on a held-out CV window (`calibrate`).
Series too short to cross-validate get the mean of their last 8 weeks with a Poisson interval.

The season length is detected once per run on the total series (see `detect_season`); a series
shorter than two seasons plus the validation windows is modelled without a season.

The fits (nearly all the time: ~0.3 s of CPU per series with a 52-week season, AutoETS 3/4 of it)
run CHUNK_SERIES series at a time, in worker processes when the series are many (one per CPU the
process may use, `demand_jobs`; `SHELFWISE_DEMAND_JOBS` fixes it), with the same forecasts to the
last digit however they run ("running the fits"); a person watching sees each step's series
fitted of the total and the steps still to come (`_Progress`).
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ShelfwiseError
from ..lifecycle._console import StepDisplay
from ._searched import catalog_names, free_text_searches

WEEK = pd.Timedelta(weeks=1)
SEASON_CANDIDATES = (52, 13, 4)
INTERMITTENT_ADI = 1.32  # Syntetos & Boylan's cut-off on the average inter-demand interval
CENSOR_P0 = 0.01  # a zero week is a stock-out when P(0 | local Poisson rate) is below this
CENSOR_INTEREST = 0.5  # ... and the week's interest is at least this share of the usual
LOCAL_WEEKS = 9  # the centred window of the local sales rate
SHORT_WEEKS = 8  # the window of the fallback mean for series too short to cross-validate
# the uncensored weeks a product needs before a stock-out week nobody looked at is filled with its
# usual level (fewer: only the interest its stock-out weeks drew stands for its demand)
MIN_LEVEL_WEEKS = 4
MAX_CV_H = 13
# the fewest weeks a cross-validation origin leaves a series: AutoETS needs more than its 2
# parameters + 4 ("tiny datasets" otherwise: a 12-week series cut 3 times by 2 weeks kept 6)
MIN_TRAIN = 7
TOP_K = 4  # the forecast is the mean of the TOP_K candidates with the lowest CV error (`top_k`)
# the rules `select="auto"` chooses among, per group, on held-out CV windows (`choose_rule`):
# the top-TOP_K mean (the default, first: it wins ties), the top-2 mean, the single best
RULES = ("combine", "top2", "series")
LEVEL = 80  # the interval's coverage, percent
SMOOTH_MODELS = ("SeasonalNaive", "AutoETS", "AutoTheta", "AutoARIMA", "GroupTheta")
# Theta on each series seasonally adjusted by its group's seasonal index (`_group_seasonal`): a
# 52-week index estimated from one series' 2-3 years is mostly noise; the group total's is not
GROUP_MODEL = "GroupTheta"
# AutoARIMA is left out of the default candidates: ~5 s per short series on a loaded core (50x
# AutoETS) for forecasts that rarely win the cross-validation (benchmarks/insights.py has it).
# GroupTheta is in: with the mean of the 4 best it beat the 3-model pool on both real datasets
# (Superstore 0.990 vs 1.034, grocery 0.747 vs 0.749 MASE) for ~10% more CPU
DEFAULT_MODELS = ("SeasonalNaive", "AutoETS", "AutoTheta", GROUP_MODEL)
INTERMITTENT_MODELS = ("CrostonOptimized", "ADIDA", "IMAPA")
ENSEMBLE = "Ensemble"
# search and browsing demand as a forecast input: AutoETS on a product's weekly interest events
# times its recent conversion (units per interest event, the last CONVERSION_WEEKS up to the
# forecast origin); a candidate like the others, chosen only where it wins the cross-validation
INTEREST_MODEL = "InterestETS"
CONVERSION_WEEKS = 52
INTEREST_TYPES = ("view", "click", "add_to_cart", "search")


MAX_NO_DATA_WEEKS = 13  # --as-of further than this past the last event is refused
# no sale in more than a year of complete weeks before the history's end while other events go
# on, and never so long a quiet spell before: the orders stream looks stopped (served views of
# today over an old sales history), every forecast would be 0. (A seasonal shop is quiet for
# most of a year, every year: its quiet spell is no longer than those it had before.)
SALES_STOPPED_WEEKS = 52
QUIET_SALES_WEEKS = 8  # a quiet spell this long and longer than any before: said beside the forecasts
# a product's trailing run of weeks without a sale this long (or longer), improbable as chance at
# the share of weeks it sold in before (below CENSOR_P0), and longer than any quiet spell it had
# before: its sales stopped (delisted, dead stock, or sales not recorded), forecast at zero
STOPPED_MIN_WEEKS = 4
STOPPED_MODEL = "StoppedSelling"
# a series first sold in the current, partial week: no complete week to model, forecast at the
# rate sold so far (`forecast_partial_week`)
PARTIAL_WEEK_MODEL = "PartialWeekRate"


# what a category's forecast is (`DemandModel.coherence`): its own weekly totals modelled. On the
# walk's Italian grocery (4 brands, 13 weeks held out) it was as accurate as the sum of its
# products' forecasts or more (MAE a week 177.65 vs 177.75 from 2018-09-24, 169.73 vs 193.45 from
# 2018-06-25; the 13-week mean 190.48, 227.20), at 4 series' fits instead of 118: kept, and said
CATEGORY_COHERENCE = (
    "each category's weekly total is modelled as a series of its own: its forecast is not the sum "
    "of its products' forecasts (`--level product`), and the two need not add up"
)


class NoDataWarning(UserWarning):
    """--as-of is weeks after the shop's last event: the weeks between hold no data."""


class BandWarning(UserWarning):
    """Series whose cross-validation errors lay on one side of the forecast (`_residual_bounds`)."""


@dataclass
class DemandModel:
    """What made a demand forecast (the report's `model`)."""

    level: str
    as_of: str
    last_week: str  # the week_start of the last complete week used
    horizon_weeks: int
    season_length: int
    series: int = 0
    censored_weeks: int = 0  # weeks of the series forecast (product or category) with a stock-out
    cv_windows: int = 0
    cv_h: int = 0
    chosen: dict[str, int] = field(default_factory=dict)  # model -> number of series
    # the products version whose stock figures were used (None: none ingested by as-of, or an
    # unversioned table) and when it was ingested; stock_known False: no stock figure at as-of
    catalog_version: int | None = None
    catalog_ingested_at: str | None = None
    stock_known: bool = True
    # why no stock figure is known (stock_known False): no products version by as-of, or one
    # without a stock column
    stock_reason: str | None = None
    # per group of series modelled together: the 80% interval's calibration factor and the
    # held-out coverage of the uncalibrated interval (`calibrate`)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    # the shop's last event up to as-of, and the complete weeks between its week and as-of's
    # (no data: not zero demand; the history ends at the last complete week with data)
    last_event: str | None = None
    no_data_weeks: int = 0
    warning: str | None = None
    cv_mae: dict[str, float] = field(default_factory=dict)  # model -> mean CV MAE over the series
    # free-text searches (no product_id) resolved to the product they name (`_searched`) and
    # counted in its interest: how many, to how many products, how many in censored weeks
    free_text_searches: dict[str, Any] = field(default_factory=dict)
    # series first sold in the week as-of falls in (no complete week yet): forecast at their
    # rate so far, shrunk towards `launch_prior` (PARTIAL_WEEK_MODEL), counted in `series` and `chosen`
    partial_week_series: int = 0
    # the shop's launches that those series' rates are shrunk towards (`launch_prior`): None
    # when it had too few, and the rate so far is used
    launch_prior: dict[str, Any] | None = None
    # series whose forecast was above (or below) the actual in more than 90% of its CV weeks:
    # series -> the median CV error (actual - forecast); their 80% interval is the errors'
    # spread about the forecast (`_residual_bounds`), and the warning names them
    one_sided_bands: dict[str, float] = field(default_factory=dict)
    # series whose sales stopped (`stopped_selling`): series -> its trailing weeks without a sale;
    # forecast at zero (STOPPED_MODEL), named in the warning
    stopped_selling: dict[str, int] = field(default_factory=dict)
    # the weekdays the shop does not trade on (0 Monday .. 6 Sunday, `closed_weekdays`): a week
    # is complete once its last trading day is over
    closed_weekdays: list[int] = field(default_factory=list)
    # product-days the shop recorded as no sale (`no_sale` rows: a purchase line of 0 units) in
    # the history: read as observed zeros (never a stock-out inferred from interest)
    no_sale_days: int = 0
    # units returned (`return` rows) in the history: not subtracted from the demand (a return does
    # not undo the demand its sale met; the units bought are the demand), said here
    returned_units: float = 0.0
    # the category level: how its forecasts relate to its products' (None at the product level)
    coherence: str | None = None


# -- reading -----------------------------------------------------------------------------------
STOCK_COLUMNS = ("in_stock", "stock", "lead_time_days")  # what the catalog says at a point in time


def _catalog_at(con: Any, as_of: datetime | None) -> tuple[str | None, dict[str, Any]]:
    """The relation holding the products version current at `as_of` (None: the newest) and what
    it is: `{"version", "ingested_at", "stock_known"}`. Every curated version stays readable
    (meta.table_versions names it), so a past `--as-of` reads the stock and lead times the shop
    had delivered by then, not today's. No version by then: (None, stock_known False)."""
    rows = _products_versions(con, as_of)[:1]
    if not rows:
        if as_of is None:  # a products table without recorded versions: the current view
            return 'curated."products"', {"version": None, "ingested_at": None, "stock_known": True}
        return None, {"version": None, "ingested_at": None, "stock_known": False}
    version, created, physical = rows[0]
    return version_relation(physical), {
        "version": int(version),
        "ingested_at": str(created),
        "stock_known": True,
    }


# the stock figures of a products version delivered this long after the sales history ends are
# not the stock the history's last week had: today's shelf against a forecast of years ago
STOCK_STALE_DAYS = 28


def _stock_after_history(catalog: dict[str, Any], as_of: Any) -> str | None:
    """Why the newest products version's stock cannot be compared with demand as of `as_of` (the
    sales history's end, no --as-of given): it was delivered more than STOCK_STALE_DAYS later.
    None when it can (a catalog delivered with yesterday's events)."""
    at = catalog.get("ingested_at")
    if at is None or as_of is None:
        return None
    gap = (pd.Timestamp(at) - pd.Timestamp(as_of)) / pd.Timedelta(days=1)
    if gap <= STOCK_STALE_DAYS:
        return None
    return (
        f"the stock figures (products version {catalog.get('version')}, delivered "
        f"{pd.Timestamp(at).date()}) are {gap:,.0f} days after the sales history ends "
        f"({pd.Timestamp(as_of).date()}): that shelf is not the one those sales left, and an "
        "--as-of then has no stock known either; deliver the recent sales"
    )


def _products_versions(con: Any, as_of: datetime | None) -> list[tuple[Any, Any, str]]:
    """`(version, created_at, physical_name)` of the products versions ingested by `as_of`
    (None: all), newest first."""
    return list(
        con.execute(
            "SELECT version, created_at, physical_name FROM meta.table_versions "
            "WHERE table_name = 'products' AND (? IS NULL OR created_at <= ?) ORDER BY version DESC",
            [as_of, as_of],
        ).fetchall()
    )


def out_of_stock(products: pd.DataFrame) -> pd.Series:
    """Which catalog rows say the product is out of stock: `in_stock` false or `stock` 0 (a
    missing figure is not a stock-out). The one rule, for the version current at as-of and the
    earlier ones (`_in_stock_until`)."""
    flag = products["in_stock"] if "in_stock" in products else pd.Series(None, products.index)
    stock = products["stock"] if "stock" in products else pd.Series(None, products.index)
    return (flag.astype("boolean") == False).fillna(False) | (  # noqa: E712 (a nullable column)
        pd.to_numeric(stock, errors="coerce") == 0
    )


def _in_stock_until(con: Any, as_of: datetime | None, out: set[str]) -> dict[str, Any]:
    """For products out of stock in the products version current at `as_of` (None: the newest):
    when the catalog last said they were in stock, the ingestion time of the newest earlier
    version listing them with stock (`in_stock` not false, `stock` not 0). A product every
    readable version lists as out of stock (or does not list) is absent: when its stock-out
    began is not known. The stock-out rule of `uncensor` censors the trailing zero weeks only
    after that time: a product set out of stock on the 2nd did sell nothing in the weeks
    before while it was on the shelf, and those weeks are demand, not a stock-out."""
    from ..storage import relation_columns

    pending, until = set(out), {}
    for _, created, physical in _products_versions(con, as_of)[1:]:  # [0]: current at as_of
        if not pending:
            break
        rel = version_relation(physical)
        try:
            have = set(relation_columns(con, rel))
        except Exception:  # noqa: BLE001 (an older version no longer readable: not known before)
            break
        cols = [c for c in ("in_stock", "stock") if c in have]
        if not cols:  # a version that says nothing of stock does not list a product in stock
            continue
        quoted = ", ".join(f'"{c}"' for c in cols)
        listed = con.execute(
            f"SELECT product_id, {quoted} FROM {rel} WHERE product_id IN (SELECT unnest(?))",
            [sorted(pending)],
        ).df()
        for pid in listed.loc[~out_of_stock(listed), "product_id"].astype(str):
            until[pid] = created
            pending.discard(pid)
    return until


def version_relation(physical: str) -> str:
    """The relation reading a curated version by its `meta.table_versions.physical_name`: a
    version another engine wrote is a Parquet location (Warehouse.publish_parquet)."""
    return f"read_parquet('{physical}')" if "/" in physical else f'curated."{physical}"'


def load_weekly(
    workdir: str | Path, as_of: datetime | None
) -> tuple[pd.DataFrame, pd.DataFrame, datetime, dict[str, Any]]:
    """Per product and week up to `as_of`: units bought and interest events, aggregated in the
    warehouse; the catalog's category, stock and lead time; `as_of` itself; and which catalog
    version gave the stock figures (`_catalog_at`). With an explicit `as_of`, stock, in_stock and
    lead_time_days come from the products version current then (null when none was ingested by
    then); the category is the current catalog's (a description, not a quantity in time)."""
    from ..storage import read_only, relation_columns

    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            raise ShelfwiseError(
                f"{workdir}: no curated events (run `shelfwise ingest` with an events table)"
            )
        have = set(relation_columns(con, "curated.events"))
        qty = 'coalesce("quantity", 1)' if "quantity" in have else "1"
        explicit = as_of
        if as_of is None:
            # whether the last date's events carry a time of day: its rows alone decide (a web
            # shop's few timed events of last month beside a till's daily export do not)
            row = con.sql(
                'WITH m AS (SELECT max("timestamp") AS t FROM curated.events) '
                'SELECT any_value(m.t), bool_or(e."timestamp" <> date_trunc(\'day\', e."timestamp")) '
                "FROM m LEFT JOIN curated.events e ON e.\"timestamp\" >= date_trunc('day', m.t)"
            ).fetchone()
            if not row or row[0] is None:
                raise ShelfwiseError(f"{workdir}: the curated events table is empty")
            as_of = row[0]
            if not row[1]:  # dates without a time of day (a daily export): the last date is a
                # whole day, as `--as-of DATE` reads it (its midnight left out the last complete
                # week of a shop whose export ends on a Sunday, and forecast a week already sold)
                whole = pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1, microseconds=-1)
                as_of = whole.to_pydatetime()
        row = con.execute(
            'SELECT max("timestamp") FROM curated.events WHERE "timestamp" <= ?', [as_of]
        ).fetchone()
        last_event = row[0] if row else None
        # the weekdays with a sale in the last CLOSED_WEEKS weeks (`closed_weekdays`)
        sale_days = dict(
            con.execute(
                """SELECT isodow("timestamp") - 1, count(DISTINCT CAST("timestamp" AS DATE))
                FROM curated.events WHERE event_type IN ('purchase', 'no_sale') AND "timestamp" <= ?
                  AND "timestamp" > ? GROUP BY 1""",
                [as_of, pd.Timestamp(as_of) - pd.Timedelta(weeks=CLOSED_WEEKS)],
            ).fetchall()
        )
        interest = ", ".join(f"'{t}'" for t in INTEREST_TYPES)
        weekly = con.execute(
            f"""SELECT product_id, date_trunc('week', "timestamp") AS ds,
                  sum(CASE WHEN event_type = 'purchase' THEN {qty} ELSE 0 END)::DOUBLE AS units,
                  count(*) FILTER (WHERE event_type IN ({interest}))::DOUBLE AS interest,
                  count(*) FILTER (WHERE event_type = 'purchase')::DOUBLE AS orders,
                  count(*) FILTER (WHERE event_type = 'no_sale')::DOUBLE AS no_sale_days,
                  sum(CASE WHEN event_type = 'return' THEN {qty} ELSE 0 END)::DOUBLE AS returned,
                  min("timestamp") AS first_seen
                FROM curated.events
                WHERE "timestamp" <= ? AND product_id IS NOT NULL
                GROUP BY ALL""",
            [as_of],
        ).df()
        columns = ["product_id", "category", *STOCK_COLUMNS]
        catalog: dict[str, Any] = {"version": None, "ingested_at": None, "stock_known": False}
        if "products" in curated:
            have_p = set(relation_columns(con, "curated.products"))
            cat = '"category"' if "category" in have_p else "NULL"
            products = con.sql(f'SELECT product_id, {cat} AS category FROM curated."products"').df()
            rel, catalog = _catalog_at(con, explicit)
            late = _stock_after_history(catalog, as_of) if explicit is None else None
            if late is not None:  # (as an explicit --as-of then is refused: one rule for both)
                catalog = catalog | {"stock_known": False, "stock_reason": late}
            if rel is not None:
                have_v = set(relation_columns(con, rel))
                sel = ", ".join(f'"{c}"' if c in have_v else f"NULL AS {c}" for c in STOCK_COLUMNS)
                stock = con.sql(f"SELECT product_id, {sel} FROM {rel}").df()
                products = products.merge(stock, on="product_id", how="outer")
                if not pd.to_numeric(stock["stock"], errors="coerce").notna().any():
                    # a catalog that states no stock on hand: nothing to reorder from (not "0 to
                    # order" above a list of "no stock figure")
                    where = f"products version {catalog['version']}" if catalog["version"] else "the catalog"
                    catalog = catalog | {
                        "stock_known": False,
                        "stock_reason": f"{where} has no stock figures (a `stock` column of units on hand)",
                    }
            else:
                products = products.assign(**{c: None for c in STOCK_COLUMNS})
                catalog = catalog | {"stock_reason": "no products version had been ingested by as-of"}
            products = products[columns]
            out = products.loc[out_of_stock(products), "product_id"].astype(str)
            until = _in_stock_until(con, explicit, set(out)) if len(out) else {}
            products["in_stock_until"] = pd.to_datetime(
                products["product_id"].astype(str).map(until), errors="coerce"
            ).astype("datetime64[ns]")
        else:
            products = pd.DataFrame(columns=[*columns, "in_stock_until"])
        searches = free_text_searches(con, as_of)
        names: dict[str, str] = {}
        named_from: dict[str, Any] = {"catalog_version": None, "catalog_after_as_of": False}
        if len(searches) and "products" in curated:
            names, named_from = catalog_names(con, explicit)
    assert as_of is not None
    weekly["ds"] = pd.to_datetime(weekly["ds"]).astype("datetime64[ns]")
    weekly, summary = _with_searches(workdir, weekly, searches, names)
    weekly.attrs["searches"] = summary | named_from
    weekly.attrs["last_event"] = last_event
    weekly.attrs["closed_weekdays"] = closed_weekdays({int(k): int(v) for k, v in sale_days.items()})
    return weekly, products, as_of, catalog


def _with_searches(
    workdir: str | Path, weekly: pd.DataFrame, searches: pd.DataFrame, names: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`weekly` with a `searched` column (the free-text searches resolved to each product and
    week, `_searched`) added into its interest, and what was resolved (with the time it took,
    the search engine's loading included)."""
    import time

    from ._searched import resolve_searches, shop_engine

    t0 = time.monotonic()
    engine, bundle = shop_engine(workdir) if len(searches) and names else (None, None)
    resolved, summary = resolve_searches(searches, names, engine)
    summary["bundle"] = bundle
    summary["seconds"] = round(time.monotonic() - t0, 2)
    if resolved.empty:
        return weekly.assign(searched=0.0), summary
    weekly = weekly.merge(resolved, on=["product_id", "ds"], how="outer")
    weekly = weekly.fillna(
        {"units": 0.0, "interest": 0.0, "searched": 0.0, "orders": 0.0, "no_sale_days": 0.0, "returned": 0.0}
    )
    weekly["interest"] = weekly["interest"] + weekly["searched"]
    return weekly, summary


def last_complete_week(as_of: Any, closed: Any = ()) -> pd.Timestamp:
    """The Monday of the last week that ends at or before `as_of` (as_of at the end of a Sunday
    completes that week). `closed`: the weekdays the shop does not trade on (0 Monday .. 6
    Sunday, `closed_weekdays`): a week is complete once its last trading day is over (a shop
    closed on Sundays completes its week on Saturday night)."""
    end = pd.Timestamp(as_of) + pd.Timedelta(microseconds=1)
    monday = end.normalize() - pd.Timedelta(days=end.weekday())
    # the days of end's week not wholly over (end's own day, unless end is its midnight)
    if set(range(end.weekday(), 7)) <= set(closed) and len(set(closed)) < 7:
        return monday
    return monday - WEEK


CLOSED_WEEKS = 8  # the recent weeks whose weekdays without a sale are the shop's closed days


def closed_weekdays(sale_days: dict[int, int]) -> list[int]:
    """The weekdays (0 Monday .. 6 Sunday) a shop does not trade on: `sale_days`, weekday -> the
    days with a sale among that weekday's last CLOSED_WEEKS (up to as-of). A weekday without a
    sale in CLOSED_WEEKS weeks, in a shop that sold on at least CLOSED_WEEKS - 2 of some other
    weekday's days (one that trades most days: a shop selling a few times a month has no
    calendar to read), is closed. A shop closed on Sundays whose export ends on Saturday lost its
    whole last Mon-Sat week: it waited for a Sunday that never trades."""
    if max(sale_days.values(), default=0) < CLOSED_WEEKS - 2:
        return []
    closed = [d for d in range(7) if sale_days.get(d, 0) == 0]
    return closed if len(closed) < 7 else []


# -- the series --------------------------------------------------------------------------------
def days_on_sale(first_seen: Any, week: pd.Timestamp, end: Any) -> float:
    """Days of the week starting `week` that a product first seen at `first_seen` (None: before
    it) was on sale by `end`, at least one: a rate read from the units of a part week."""
    start = week if first_seen is None or pd.isna(first_seen) else max(week, pd.Timestamp(first_seen))
    stop = min(pd.Timestamp(end), week + WEEK)
    return min(max((stop - start) / pd.Timedelta(days=1), 1.0), 7.0)


def weekly_grid(weekly: pd.DataFrame, last_week: pd.Timestamp) -> pd.DataFrame:
    """Every product with a sale, every week from its first event to `last_week`, zeros filled:
    `unique_id, ds, y, interest` (and `searched`, the free-text searches resolved to the product
    and already counted in its interest, when `weekly` has it; `no_sale_days`, the week's rows
    recording a day without a sale, when it has them; `days`, the days of each week
    the product was on sale, `days_on_sale`: 7 but in its first week, when `weekly` has
    `first_seen`)."""
    counts = ["interest", *(c for c in ("searched", "no_sale_days") if c in weekly)]
    w = weekly[weekly["ds"] <= last_week]
    sold = w.groupby("product_id")["units"].sum()
    w = w[w["product_id"].isin(sold.index[sold > 0])]
    if w.empty:
        return pd.DataFrame(columns=["unique_id", "ds", "y", *counts])
    first = w.groupby("product_id")["ds"].min()
    parts = [
        pd.DataFrame({"unique_id": pid, "ds": pd.date_range(start, last_week, freq="7D")})
        for pid, start in first.items()
    ]
    grid = pd.concat(parts, ignore_index=True)
    grid = grid.merge(
        w.rename(columns={"product_id": "unique_id"}), on=["unique_id", "ds"], how="left"
    ).fillna({"units": 0.0, **dict.fromkeys(counts, 0.0)})
    if "first_seen" in grid:  # a product that came in on Saturday sold for 2 days of its first week
        opened = grid["unique_id"].map(w.groupby("product_id")["first_seen"].min())
        grid["days"] = [days_on_sale(f, d, d + WEEK) for f, d in zip(opened, grid["ds"], strict=True)]
        counts.append("days")
    return grid.rename(columns={"units": "y"})[["unique_id", "ds", "y", *counts]]


def uncensor(grid: pd.DataFrame, out_of_stock: set[str] | dict[str, Any]) -> tuple[pd.DataFrame, int]:
    """Replace the demand of censored (stock-out) weeks by its estimate; returns the series with
    a `censored` flag and the number of censored weeks. See the module's docstring.
    `out_of_stock`: the products out of stock at as-of; as a mapping, to when the catalog last
    said each was in stock (`_in_stock_until`; None or NaT: not known), and only the weeks
    ending after that time can be its stock-out."""
    if grid.empty:
        return grid.assign(censored=False), 0
    g = grid.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    by = g.groupby("unique_id", sort=False)
    local = (
        by["y"].transform(lambda s: s.rolling(LOCAL_WEEKS, center=True, min_periods=3).median()).fillna(0.0)
    )
    usual = by["interest"].transform(lambda s: s[s > 0].median() if (s > 0).any() else 0.0)
    improbable = (g["y"] == 0) & (np.exp(-local) < CENSOR_P0)
    # a stock-out needs evidence of interest that week: a product nobody viewed or searched (or
    # a shop whose events carry no views at all) has a quiet week, not an unserved demand
    looked = (g["interest"] > 0) & (g["interest"] >= CENSOR_INTEREST * usual)
    censored = improbable & looked
    if "no_sale_days" in g:  # the shop recorded the product on sale and not sold: an observed
        # zero, not a stock-out to infer (a catalog that says out of stock still says one, below)
        censored &= g["no_sale_days"] == 0
    # the trailing run of zero weeks of a product that is out of stock now
    if out_of_stock:
        rev_nonzero = by["y"].transform(lambda s: (s[::-1] > 0).cumsum()[::-1])
        trailing = g["unique_id"].isin(set(out_of_stock)) & (rev_nonzero == 0)
        if isinstance(out_of_stock, dict):  # weeks over while the catalog said it was in stock
            until = pd.to_datetime(g["unique_id"].map(out_of_stock), errors="coerce")
            trailing &= until.isna() | (g["ds"] + WEEK > until)
        censored |= trailing
    if not censored.any():
        return g.assign(censored=False), 0
    ok = ~censored
    units_ok = g["y"].where(ok, 0.0).groupby(g["unique_id"]).transform("sum")
    interest_ok = g["interest"].where(ok, 0.0).groupby(g["unique_id"]).transform("sum")
    conversion = (units_ok / interest_ok.where(interest_ok > 0)).fillna(0.0)
    # the level before a stock-out: the median of the last uncensored weeks, where there are
    # enough of them to read a level from (one sale in a product's only uncensored week made every
    # week of a long stock-out a sale: 1 unit ever read as 6.7 and a steady seller)
    level = (
        g["y"]
        .where(ok)
        .groupby(g["unique_id"])
        .transform(lambda s: s.ffill().rolling(SHORT_WEEKS, min_periods=1).median())
    ).fillna(0.0)
    weeks_ok = ok.groupby(g["unique_id"]).transform("sum")
    level = level.where(weeks_ok >= MIN_LEVEL_WEEKS, 0.0)
    from_interest = g["interest"] * conversion
    estimate = np.where(from_interest > 0, from_interest, np.maximum(local, level))
    g["y"] = np.where(censored, estimate, g["y"])
    return g.assign(censored=censored.to_numpy()), int(censored.sum())


def _acf(x: np.ndarray, lag: int) -> float:
    a, b = x[lag:] - x[lag:].mean(), x[:-lag] - x[:-lag].mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def detect_season(total: np.ndarray, horizon: int) -> int:
    """The season length of the total weekly series (1: none): among 52, 13 and 4 weeks that the
    series is long enough for (two seasons plus `horizon`), the lags where the autocorrelation of
    the linearly detrended series is significant (> 1.96/sqrt(n)) and a local peak (a smooth or
    persistent series correlates at every short lag; a season peaks at its length); the shortest
    whose peak is at least 0.8 of the highest (a 4-week pattern peaks at 52 weeks too)."""
    y = np.asarray(total, dtype=float)
    n = len(y)
    if n < 12:
        return 1
    t = np.arange(n)
    x = y - np.polyval(np.polyfit(t, y, 1), t)
    peaks: dict[int, float] = {}
    for m in SEASON_CANDIDATES:
        if n < 2 * m + horizon or n <= m + 3:
            continue
        # the peak may sit a week off (noise, 52 vs 52.18 weeks a year)
        acf = max(_acf(x, k) for k in (m - 1, m, m + 1))
        if acf > 1.96 / math.sqrt(n) and acf > max(_acf(x, m - 3), _acf(x, m + 3)):
            peaks[m] = acf
    if not peaks:
        return 1
    top = max(peaks.values())
    return min(m for m, a in peaks.items() if a >= 0.8 * top)


def _adi(y: pd.Series) -> float:
    nz = int((y > 0).sum())
    return len(y) / nz if nz else math.inf


# -- the models --------------------------------------------------------------------------------
def _models(names: tuple[str, ...], season: int) -> list[Any]:
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        AutoARIMA,
        AutoETS,
        AutoTheta,
        CrostonOptimized,
        SeasonalNaive,
    )

    make = {
        "SeasonalNaive": lambda: SeasonalNaive(season_length=season),
        "AutoETS": lambda: AutoETS(season_length=season),
        "AutoTheta": lambda: AutoTheta(season_length=season),
        "AutoARIMA": lambda: AutoARIMA(season_length=season),
        "CrostonOptimized": lambda: CrostonOptimized(),
        "ADIDA": lambda: ADIDA(),
        "IMAPA": lambda: IMAPA(),
    }
    return [make[n]() for n in names if n != GROUP_MODEL]  # (GROUP_MODEL: `_group_seasonal`)


def _group_index(total: np.ndarray, season: int) -> np.ndarray | None:
    """The multiplicative seasonal index of `total` (classical decomposition: the ratio to the
    centred moving average, averaged per position in the season, normalized to mean 1; index
    `j` belongs to the weeks `t` with `t % season == j`, `t` counted from `total`'s first week).
    None where `total` is shorter than two seasons or a position has no ratio."""
    n = len(total)
    if season <= 1 or n < 2 * season:
        return None
    s = pd.Series(np.asarray(total, dtype=float))
    trend = s.rolling(season, center=True).mean()
    if season % 2 == 0:  # the 2 x m moving average centres an even window on a week
        trend = trend.rolling(2).mean().shift(-1)
    ratio = s / trend.where(trend > 0)
    idx = ratio.groupby(np.arange(n) % season).mean().reindex(range(season))
    if idx.isna().any() or not idx.mean() > 0:
        return None
    # (clipped: a week the group sold nothing must not make its series' adjusted values explode)
    return np.clip(idx.to_numpy() / idx.mean(), 0.05, 20.0)


def _group_seasonal(
    df: pd.DataFrame, cutoffs: list[Any], h: int, season: int, horizon: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GROUP_MODEL's cross-validation forecasts (`unique_id, ds, cutoff, GroupTheta`, `h` weeks
    after each of `cutoffs`) and its forecast (`horizon` weeks after the last week).

    Each series is divided by the seasonal index of the group's total weekly series (the sum of
    the series modelled together), forecast by Theta without a season, and multiplied back: the
    group seasonal indices of Withycombe (1989) and Dekker, van Donselaar & Ouwehand (2004). A
    52-week index from one series' few years rests on 2-3 noisy values per week of the year;
    AutoTheta's own decomposition reads that noise as a season; the total's index rests on every
    series at once. Where a series has a season of its own, the cross-validation prefers the
    per-series models. Point in time: at each cutoff the index is estimated from the weeks up to
    it only (a CV window must not have shaped the index it is scored with); a cutoff with fewer
    than two seasons of total has no forecast (NaN: the candidate is not offered there)."""
    from statsforecast.models import AutoTheta

    def upto(end: Any, weeks: int) -> pd.DataFrame:
        part = df[df["ds"] <= end]
        total = part.groupby("ds")["y"].sum().sort_index()
        idx = _group_index(total.to_numpy(), season)
        first = total.index[0]

        def at(ds: pd.Series) -> np.ndarray:
            assert idx is not None
            return idx[((pd.to_datetime(ds) - first).dt.days.to_numpy() // 7) % season]

        x = part[["unique_id", "ds", "y"]]
        if idx is None:  # no index yet: no forecast (and no fit)
            ids = x["unique_id"].astype(str).unique()
            ahead = pd.date_range(end + WEEK, periods=weeks, freq="7D")
            return pd.DataFrame(
                {"unique_id": np.repeat(ids, weeks), "ds": np.tile(ahead, len(ids)), GROUP_MODEL: np.nan}
            )
        x = x.assign(y=x["y"] / at(x["ds"]))
        fc = _statsforecast([AutoTheta(season_length=1, alias=GROUP_MODEL)]).forecast(df=x, h=weeks)
        fc[GROUP_MODEL] = fc[GROUP_MODEL] * at(fc["ds"])
        fc["unique_id"] = fc["unique_id"].astype(str)
        return fc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = [upto(c, h).assign(cutoff=c) for c in cutoffs]
        fc = upto(df["ds"].max(), horizon)
    empty = pd.DataFrame(columns=["unique_id", "ds", GROUP_MODEL, "cutoff"])
    return (pd.concat(cv, ignore_index=True) if cv else empty), fc


def _statsforecast(models: list[Any]) -> Any:
    """statsforecast for `models`, fitting the series CHUNK_SERIES at a time in the processes
    and with the progress display of the run in course (`_fitting`; none: here, silently)."""
    run = _RUN.get()
    return _chunked_class()(models=models, freq="7D", jobs=run.jobs, progress=run.progress)


# -- running the fits --------------------------------------------------------------------------
# statsforecast fits series by series, and a fit is the same wherever it runs but for one thing:
# AutoTheta's sums depend on the series' address in memory (its 16-byte alignment: measured, 1
# ulp apart in 1 of ~30 series), and statsforecast's own n_jobs copies the series into new
# arrays for its workers. So the series are fitted in place instead: in chunks that are views of
# the one array statsforecast made, here or in worker processes forked while it exists (a forked
# worker reads it at the same address): the same numbers to the last digit, whatever the count.
CHUNK_SERIES = 40  # series per task: a progress step (seconds of fits), the workers' balance
SERIES_PER_JOB = 150  # a worker process per this many series at most (fewer: seconds of fits)
JOBS_ENV = "SHELFWISE_DEMAND_JOBS"  # the processes fitting the series, fixed (1: no worker)


def demand_jobs(n_series: int) -> int:
    """The processes that fit `n_series` series: the CPUs this process may use (its CPU
    affinity capped by a cgroup quota, `available_cpus`), at most one per SERIES_PER_JOB series;
    `SHELFWISE_DEMAND_JOBS` fixes it; 1 (no worker: the fits run here) where processes cannot be
    forked (the workers must see the series at their addresses) and, unless fixed, in a process
    running other threads."""
    import multiprocessing

    from .._threads import available_cpus

    fixed = os.environ.get(JOBS_ENV, "").strip()
    if fixed:
        try:
            jobs = int(fixed)
        except ValueError:
            raise ShelfwiseError(f"{JOBS_ENV}={fixed!r}: use a whole number of processes (1: none)") from None
    else:
        import threading

        # forked workers are safe only from a process with one thread: another thread (a
        # server's, a notebook's) may hold a lock at the fork that a worker then waits on forever
        if threading.active_count() > 1:
            return 1
        jobs = min(available_cpus(), n_series // SERIES_PER_JOB)
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, jobs)


class _Progress(StepDisplay):
    """The long steps of a demand forecast on stderr, as `shelfwise train` shows its own
    (`lifecycle._console.StepDisplay`): the step, its series fitted of the total (`expect` as
    fits start, `advance` as they end), the time spent and the steps after it; only for a
    person watching (`show_progress`), gone when done."""


def show_progress() -> bool:
    """Whether a person is watching, as `shelfwise train` decides: stderr and stdout terminals."""
    return sys.stderr.isatty() and sys.stdout.isatty()


@dataclass(frozen=True)
class _Run:
    """How the fits of the forecast in course run (`forecast_series`): in `jobs` processes, the
    progress shown on `progress`, in the step `group` of the steps `later` still to come."""

    jobs: int = 1
    progress: _Progress = field(default_factory=lambda: _Progress(False))
    group: str = ""
    later: tuple[str, ...] = ()


# (the default shows nothing and holds nothing: shared safely)
_RUN: ContextVar[_Run] = ContextVar("shelfwise_demand_run", default=_Run())  # noqa: B039


@contextmanager
def _fitting(run: _Run) -> Iterator[None]:
    token = _RUN.set(run)
    try:
        yield
    finally:
        _RUN.reset(token)


@contextmanager
def _step(steps: list[str], k: int) -> Iterator[None]:
    """The step `k` of `steps` for the group of series in course, shown with the steps after it
    and the groups still to come."""
    run = _RUN.get()
    with run.progress.stage(f"{run.group}: {steps[k]}", [*steps[k + 1 :], *run.later]):
        yield


# the series of a fit, by key, for the worker processes forked while they exist (the workers read
# them where they are: see above)
_SHARED: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def _fit_shared(task: tuple[int, int, int]) -> tuple[int, dict[str, Any]]:
    """In a worker (or here): the fits of the series `start:stop` of the shared fit `key`."""
    key, start, stop = task
    ga, method, kwargs = _SHARED[key]
    return start, getattr(_view(ga, start, stop), method)(**kwargs)


def _view(ga: Any, start: int, stop: int) -> Any:
    """The series `start:stop` of a statsforecast GroupedArray, in place (not a copy)."""
    from statsforecast.core import GroupedArray

    lo, hi = int(ga.indptr[start]), int(ga.indptr[stop])
    return GroupedArray(ga.data[lo:hi], ga.indptr[start : stop + 1] - lo)


_CHUNKED: Any = None


def _chunked_class() -> Any:
    """StatsForecast fitting its series CHUNK_SERIES at a time, in place (`_view`), in `jobs`
    processes forked for the fit (1: here), telling `progress` the series as they start and end.
    (Its n_jobs only sends statsforecast to its parallel path, which this class replaces.)"""
    global _CHUNKED
    if _CHUNKED is not None:
        return _CHUNKED
    from statsforecast import StatsForecast

    class Chunked(StatsForecast):  # type: ignore[misc]
        def __init__(self, *, models: list[Any], freq: str, jobs: int, progress: _Progress):
            super().__init__(models=models, freq=freq, n_jobs=2)
            self.jobs, self.progress = jobs, progress

        def _prepare_fit(self, *args: Any, **kwargs: Any) -> None:
            super()._prepare_fit(*args, **kwargs)
            self.n_jobs = 2 if self.ga.n_groups > 1 else 1  # (one series: statsforecast's own loop)
            self.progress.expect(self.ga.n_groups)
            if self.n_jobs == 1:
                self.progress.advance(self.ga.n_groups)  # (a series: seconds at most)

        def _cross_validation_parallel(
            self,
            h: int,
            test_size: int,
            step_size: int,
            input_size: int | None,
            fitted: bool,
            level: Any,
            refit: Any,
            target_col: str,
        ) -> dict[str, Any]:
            if fitted:
                raise NotImplementedError("fitted values of chunked cross-validation")
            kwargs = dict(
                models=self.models, h=h, test_size=test_size, fallback_model=self.fallback_model,
                step_size=step_size, input_size=input_size, fitted=False, level=level, refit=refit,
                verbose=False, target_col=target_col,
            )  # fmt: skip
            out = self._chunks("cross_validation", kwargs)
            return {"forecasts": np.vstack([r["forecasts"] for r in out]), "cols": out[0]["cols"]}

        def _forecast_parallel(
            self, h: int, fitted: bool, X: Any, level: Any, target_col: str
        ) -> dict[str, Any]:
            if fitted or X is not None:
                raise NotImplementedError("fitted values or exogenous variables in a chunked forecast")
            kwargs = dict(
                models=self.models, h=h, fallback_model=self.fallback_model, fitted=False, X=None,
                level=level, verbose=False, target_col=target_col,
            )  # fmt: skip
            out = self._chunks("forecast", kwargs)
            return {
                "forecasts": np.vstack([r["forecasts"] for r in out]),
                "cols": out[0]["cols"],
                "times": {m: sum(r["times"][m] for r in out) for m in out[0]["times"]},
            }

        def _chunks(self, method: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
            n = self.ga.n_groups
            starts = list(range(0, n, CHUNK_SERIES))
            key = id(self)
            _SHARED[key] = (self.ga, method, kwargs)
            done: dict[int, dict[str, Any]] = {}
            try:
                tasks = [(key, a, min(a + CHUNK_SERIES, n)) for a in starts]
                jobs = min(self.jobs, len(tasks))
                if jobs <= 1:
                    for task in tasks:
                        a, res = _fit_shared(task)
                        done[a] = res
                        self.progress.advance(task[2] - a)
                else:
                    import multiprocessing

                    # forked after _SHARED holds the series: each worker reads them in place
                    with multiprocessing.get_context("fork").Pool(jobs) as pool:
                        for a, res in pool.imap_unordered(_fit_shared, tasks):
                            done[a] = res
                            self.progress.advance(min(a + CHUNK_SERIES, n) - a)
            finally:
                del _SHARED[key]
            return [done[a] for a in starts]

    _CHUNKED = Chunked
    return Chunked


def _cv_mae(cv: pd.DataFrame, candidates: list[str]) -> pd.DataFrame:
    """Per series (rows) and candidate (columns): the mean absolute cross-validation error."""
    err = cv[candidates].sub(cv["y"], axis=0).abs()
    err["unique_id"] = cv["unique_id"]
    return err.groupby("unique_id")[candidates].mean()


def _choose(mae: pd.DataFrame, df: pd.DataFrame, select: str) -> pd.Series:
    """Per series, the candidates whose mean is its forecast (a tuple of names): the TOP_K with
    the lowest CV error ("combine", `top_k`), its own best ("series"), the group's best ("group":
    the lowest mean scaled error) or the one named. See `top_k` for why combining is the default."""
    if select == "combine":
        return top_k(mae)
    if select.startswith("top") and select[3:].isdigit():  # "top2", "top4": the mean of the best n
        return top_k(mae, int(select[3:]))
    if select == "series":
        return mae.idxmin(axis=1).map(lambda m: (m,))
    if select == "group":
        scale = df.groupby("unique_id")["y"].apply(lambda s: s.diff().abs().mean()).replace(0.0, np.nan)
        scale.index = scale.index.astype(str)
        scaled = mae.div(scale.reindex(mae.index), axis=0).mean(skipna=False)  # (a candidate offered to all)
        return pd.Series([(scaled.idxmin(),)] * len(mae), index=mae.index)
    return pd.Series([(select,)] * len(mae), index=mae.index)


def choose_rule(
    cv: pd.DataFrame, candidates: list[str], df: pd.DataFrame, rules: tuple[str, ...] = RULES
) -> tuple[str, dict[str, float]]:
    """The selection rule for a group of series, chosen inside the cross-validation: for each CV
    window after the first, every rule picks its candidates from the windows before it and is
    scored on that window (mean absolute error over the series' one-step naive scale, pooled over
    the group's series and the windows); the lowest wins, ties to the earlier rule in `rules`.
    Returns the rule and each rule's held-out score. One window only: the first rule.

    Why: how many candidates to average is itself a choice the CV windows can make, but only if
    the windows that judge a rule are not those its candidates were picked on (the argmin always
    looks best on its own windows)."""
    cutoffs = np.sort(cv["cutoff"].unique())
    if len(cutoffs) < 2:
        return rules[0], {}
    scale = df.groupby("unique_id")["y"].apply(lambda s: s.diff().abs().mean())
    scale.index = scale.index.astype(str)
    scale = scale.replace(0.0, np.nan)
    scores: dict[str, list[float]] = {r: [] for r in rules}
    for j in range(1, len(cutoffs)):
        early, held = cv[cv["cutoff"] < cutoffs[j]], cv[cv["cutoff"] == cutoffs[j]]
        mae = _cv_mae(early, candidates)
        for r in rules:
            e = (held["y"] - _combined(held, candidates, _choose(mae, df, r))).abs()
            per = e.groupby(held["unique_id"].astype(str).to_numpy()).mean()  # (the scale's ids)
            scores[r].append(float((per / scale.reindex(per.index)).mean()))
    mean = {r: round(float(np.nanmean(v)), 4) for r, v in scores.items()}
    return min(rules, key=lambda r: mean[r]), mean


def top_k(mae: pd.DataFrame, k: int = TOP_K) -> pd.Series:
    """Per series (rows of `mae`, the CV error of each candidate): the `k` candidates with the
    lowest error, best first (ties broken by the column order), leaving out ENSEMBLE (itself a
    mean) and the candidates not offered to the series (NaN error); fewer when fewer are offered.

    Why a combination of the best few rather than the single best: with a few 13-week CV windows
    on noisy weekly series, the ranking of close candidates is mostly noise, and the argmin
    follows it (on Superstore's 17 weekly series the per-series winner lost to AutoTheta
    everywhere: benchmarks/insights.json). Averaging the top few by validation error keeps the
    selection's protection against a bad model while the mean cancels part of each model's
    error; forecast-combination studies (the M4 competition; Kourentzes, Barrow & Petropoulos
    2019, forecast pooling) find it at least as accurate as picking one, and far more robust.
    Where a series has `k` candidates or fewer (a smooth series with the four default models),
    this is their plain mean: no selection happens there."""
    base = [c for c in mae.columns if c != ENSEMBLE]
    values = mae[base].to_numpy(dtype=float)
    order = np.argsort(np.where(np.isnan(values), np.inf, values), axis=1, kind="stable")
    out = []
    for i, row in enumerate(values):
        names = [base[j] for j in order[i] if not np.isnan(row[j])][:k]
        out.append(tuple(names) if names else (ENSEMBLE,))
    return pd.Series(out, index=mae.index)


def _label(names: tuple[str, ...]) -> str:
    """The `model` a series' forecast is reported under: one candidate's name, or the names of
    the candidates averaged, sorted (the mean does not depend on their rank), joined by '+'."""
    return "+".join(sorted(names))


def _combined(frame: pd.DataFrame, candidates: list[str], chosen: pd.Series) -> np.ndarray:
    """Per row of `frame` (CV or forecast rows): the mean of its series' chosen candidates."""
    picks = frame["unique_id"].map(chosen)
    index = {c: i for i, c in enumerate(candidates)}
    weights = np.zeros((len(frame), len(candidates)))
    for row, names in enumerate(picks):
        for m in names:
            weights[row, index[m]] = 1.0 / len(names)
    x = frame[candidates].to_numpy(dtype=float)
    # a chosen candidate without a forecast in a row (search demand offered at some CV origins
    # but not at the last one): the others' mean; none left: the mean of the smooth models
    weights = np.where(np.isnan(x), 0.0, weights)
    total = weights.sum(axis=1)
    mean = (np.nan_to_num(x) * weights).sum(axis=1) / np.where(total > 0, total, 1.0)
    return np.where(total > 0, mean, frame[ENSEMBLE].to_numpy(dtype=float))


def _residuals(cv: pd.DataFrame, candidates: list[str], chosen: pd.Series) -> pd.Series:
    """actual - forecast of each series' chosen candidates (their mean), per CV row."""
    return pd.Series(cv["y"].to_numpy() - _combined(cv, candidates, chosen), index=cv.index)


def _steps(frame: pd.DataFrame) -> np.ndarray:
    """Per row of a CV frame (`ds`, `cutoff`): the forecast step, 1 for the week after the
    origin; of a forecast frame (no `cutoff`, sorted by series and week): the row's rank in its
    series, 1 for the first week forecast."""
    if "cutoff" in frame:
        days = (pd.to_datetime(frame["ds"]) - pd.to_datetime(frame["cutoff"])).dt.days.to_numpy()
        return np.maximum(np.round(days / 7.0), 1.0)
    return frame.groupby("unique_id", sort=False).cumcount().to_numpy(dtype=float) + 1.0


def horizon_growth(cv: pd.DataFrame, errors: pd.Series) -> float:
    """How the CV errors grow with the forecast step h: the power `p` of h^p fitted (least
    squares on logs) to each step's mean absolute error, every series' errors over that series'
    own mean absolute error (a big seller does not set the group's curve), clipped to [0, 1]
    (0: the same at every step, as i.i.d. weeks around a level; 0.5: a random walk's sqrt(h)).
    0 with fewer than 3 steps. The interval of step h is the errors' quantiles scaled by h^p
    (over its mean on the CV steps), not one width for week 1 and week 13."""
    steps = _steps(cv)
    a = errors.abs()
    scale = a.groupby(cv["unique_id"]).transform("mean")
    rel = (a / scale.where(scale > 0)).to_numpy()
    ok = ~np.isnan(rel)
    per = pd.Series(rel[ok]).groupby(steps[ok]).mean()
    per = per[per > 0]
    if len(per) < 3:
        return 0.0
    x, y = np.log(per.index.to_numpy(dtype=float)), np.log(per.to_numpy(dtype=float))
    p = float(np.polyfit(x, y, 1)[0])
    return round(float(np.clip(p, 0.0, 1.0)), 4)


def step_scale(steps: np.ndarray, growth: float, cv_h: int) -> np.ndarray:
    """h^growth over its mean on the CV steps 1..cv_h: 1 on average where the errors were
    measured, growing past them as the fitted power says (`horizon_growth`)."""
    h = np.arange(1, max(int(cv_h), 1) + 1, dtype=float)
    return np.asarray(steps, dtype=float) ** growth / float(np.mean(h**growth))


def _residual_bounds(cv: pd.DataFrame, candidates: list[str], chosen: pd.Series) -> pd.DataFrame:
    """Per series: the 10% and 90% quantiles of the chosen candidate's CV errors (`lo`, `hi`),
    each error divided by its step's scale (`step_scale`; the bound of step h is `lo` / `hi`
    times that scale), and `shift`, the errors' median where one bound is the spread about it (else
    0), `median`, the median error in units. `attrs["growth"]`, `attrs["cv_h"]`: the step scale.

    A series whose errors lie on one side of zero beyond the 10%/90% level (the forecast above
    the actual in more than 90% of its CV weeks, or below) has bounds that do not hold its own
    forecast: a promotion-driven series whose CV origins fell on its spikes was forecast at the
    spike's level (130-340 a week against 5-20 sold; Theta follows the last level), its 90%
    error quantile was -13 and its "80% interval" ended at the forecast once clipped up to it.
    Such a series keeps the bound on the side its errors lie (the forecast too high: `lo` is the
    10% quantile, the CV's own) and, on the other, the errors' spread about their median
    (`q90 - q50` above the forecast, or `q10 - q50` below it): the forecast inside with room on
    both sides, and on the walk's grocery these series' bands held 80% of the next 13 weeks
    (clipped to the forecast, 77%); `median` says how far off its forecasts were, where material
    (`one_sided_bands`, and the warning that names them)."""
    q = (1 - LEVEL / 100) / 2
    r = _residuals(cv, candidates, chosen)
    growth = horizon_growth(cv, r)
    cv_h = int(_steps(cv).max()) if len(cv) else 1
    z = r / step_scale(_steps(cv), growth, cv_h)
    b = z.groupby(cv["unique_id"]).quantile([q, 0.5, 1 - q]).unstack()
    b = b.set_axis(["lo", "mid", "hi"], axis=1)
    one_sided = ((b["hi"] < 0) | (b["lo"] > 0)) & (b["mid"] - b["lo"] > 0) & (b["hi"] - b["mid"] > 0)
    shift = b["mid"].where(one_sided, 0.0)
    # named only where the bias matters: half a unit a week and a tenth of what the series sold
    # in its CV weeks (a seasonal shop's off weeks forecast at 0.03 are no biased forecast)
    median = r.groupby(cv["unique_id"]).median()
    sold = cv["y"].abs().groupby(cv["unique_id"]).mean()
    material = median.abs() >= np.maximum(0.5, 0.1 * sold.reindex(median.index))
    out = pd.DataFrame(
        {
            "lo": b["lo"].where(~one_sided | (b["lo"] <= 0), b["lo"] - shift),
            "hi": b["hi"].where(~one_sided | (b["hi"] >= 0), b["hi"] - shift),
            "shift": shift,
            "median": median.where(one_sided & material, 0.0),
            # a week's spread for stock decisions (`forecast_group`'s `sd`), in the same units
            "rms": z.pow(2).groupby(cv["unique_id"]).mean().pow(0.5),
        }
    )
    out.attrs["growth"], out.attrs["cv_h"] = growth, cv_h
    return out


def _conversion(df: pd.DataFrame, upto: Any) -> pd.Series:
    """Per series: units per interest event over the last CONVERSION_WEEKS weeks up to `upto`."""
    recent = df[df["ds"] <= upto].groupby("unique_id").tail(CONVERSION_WEEKS)
    s = recent.groupby("unique_id")[["y", "interest"]].sum()
    out = (s["y"] / s["interest"].where(s["interest"] > 0)).fillna(0.0)
    out.index = out.index.astype(str)
    return out


def _with_interest(
    df: pd.DataFrame, cv: pd.DataFrame, fc: pd.DataFrame, h: int, windows: int, season: int, horizon: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`cv` and `fc` with the INTEREST_MODEL column: interest forecast x conversion, both from
    the weeks up to each origin only (the same CV origins as the other candidates)."""
    from statsforecast.models import AutoETS

    x = df[["unique_id", "ds", "interest"]].rename(columns={"interest": "y"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cvx = _statsforecast([AutoETS(season_length=season)]).cross_validation(
            df=x, h=h, n_windows=windows, step_size=h
        )
        fcx = _statsforecast([AutoETS(season_length=season)]).forecast(df=x, h=horizon)
    for frame in (cvx, fcx):
        frame["unique_id"] = frame["unique_id"].astype(str)
    # offered only where interest moves with sales: the weekly correlation significant (> 2 /
    # sqrt(n)); elsewhere it is a long-run mean by another name, and choosing among more
    # candidates on a few CV windows costs accuracy (measured: benchmarks/insights.json). Like
    # the conversion, judged from the weeks up to each origin only: a CV window must not have
    # helped offer the candidate it then scores
    cvx[INTEREST_MODEL] = np.nan
    for cutoff in cvx["cutoff"].unique():
        at = (cvx["cutoff"] == cutoff) & cvx["unique_id"].isin(_moves_with_sales(df[df["ds"] <= cutoff]))
        if not at.any():  # (an empty string-typed selection would not multiply)
            continue
        conv = _conversion(df, cutoff)
        cvx.loc[at, INTEREST_MODEL] = cvx.loc[at, "AutoETS"] * cvx.loc[at, "unique_id"].map(conv).fillna(0.0)
    fcx[INTEREST_MODEL] = fcx["AutoETS"] * fcx["unique_id"].map(_conversion(df, df["ds"].max())).fillna(0.0)
    fcx.loc[~fcx["unique_id"].isin(_moves_with_sales(df)), INTEREST_MODEL] = np.nan
    keys = ["unique_id", "ds", "cutoff"]
    cv = cv.merge(cvx[[*keys, INTEREST_MODEL]], on=keys, how="left")
    fc = fc.merge(fcx[["unique_id", "ds", INTEREST_MODEL]], on=["unique_id", "ds"], how="left")
    return cv, fc


def _moves_with_sales(df: pd.DataFrame) -> set[str]:
    """The series whose weekly interest and sales correlate significantly (> 2 / sqrt(n))."""
    n = df.groupby("unique_id").size()
    corr = df.groupby("unique_id")[["y", "interest"]].apply(lambda g: g["y"].corr(g["interest"])).fillna(0.0)
    return set((corr.index[corr > 2 / np.sqrt(n.reindex(corr.index))]).astype(str))


def calibrate(
    cv: pd.DataFrame, candidates: list[str], df: pd.DataFrame, select: str
) -> tuple[float, dict[str, Any]]:
    """The factor that scales every series' conformal bounds so that 80% of held-out errors fall
    inside, for the group, and the coverage held out before and after it.

    Raw conformal bounds under-cover (0.69-0.71 on the grocery benchmark): the chosen model is the
    one whose CV errors were smallest on the very windows the bounds come from (a selection
    bias), and a few dozen errors per series put the 10%/90% quantiles too close in. The factor is
    learned the same way the final interval is made, one step earlier: the model chosen and the
    bounds taken from the CV windows before the last, the last window's errors held out; each
    held-out error needs the factor |e| / bound on its side; the factor is the 80% quantile of
    those needs (pooled over the group's series: one factor per group, not per series, so it rests
    on hundreds of errors). Clipped to [0.5, 4]; 1 (no calibration) with a single CV window.

    The coverage the factor gives on the window it was learned from is 80% by construction
    (`held_out_coverage`, as before; short of it only when the factor hit its bound);
    `out_of_sample_coverage` is the procedure's check: the factor learned one window earlier
    (bounds from the windows before that one), applied to the last window (None with fewer than
    3 windows)."""
    cutoffs = np.sort(cv["cutoff"].unique())
    if len(cutoffs) < 2:
        return 1.0, {"held_out_errors": 0, "held_out_coverage_raw": None}
    early, last = cv[cv["cutoff"] < cutoffs[-1]], cv[cv["cutoff"] == cutoffs[-1]]
    chosen = _choose(_cv_mae(early, candidates), df, select)
    need = _needs(early, last, candidates, chosen)
    if not len(need):
        return 1.0, {"held_out_errors": 0, "held_out_coverage_raw": None}
    wanted = float(np.quantile(need, LEVEL / 100, method="higher"))
    factor = float(np.clip(wanted, 0.5, 4.0))
    before = None
    if len(cutoffs) >= 3:  # the factor as the window before would have learned it
        earlier, mid = cv[cv["cutoff"] < cutoffs[-2]], cv[cv["cutoff"] == cutoffs[-2]]
        prev = _needs(earlier, mid, candidates, _choose(_cv_mae(earlier, candidates), df, select))
        if len(prev):
            before = float(np.clip(np.quantile(prev, LEVEL / 100, method="higher"), 0.5, 4.0))
    return round(factor, 4), {
        "held_out_mae": _held_out_mae(last, candidates, chosen, df, cutoffs[-1]),
        "held_out_errors": len(need),
        "held_out_coverage_raw": round(float((need <= 1.0).mean()), 4),
        # on the window the factor was learned from: 80% by construction, short of it when it
        # hit its bound (slow sellers: most weeks without a sale put the 90% error quantile
        # below the forecast)
        "held_out_coverage": round(float((need <= factor).mean()), 4),
        # out of sample: the factor learned one window earlier, on this window's errors
        "out_of_sample_coverage": None if before is None else round(float((need <= before).mean()), 4),
        "capped": wanted != factor,
    }


def _needs(fit: pd.DataFrame, held: pd.DataFrame, candidates: list[str], chosen: pd.Series) -> np.ndarray:
    """Per error of the `held` window: the factor its side's conformal bound (from the `fit`
    windows, the chosen model's) needs to hold it (|e| / bound; 0 for no error)."""
    bounds = _residual_bounds(fit, candidates, chosen)
    e = _residuals(held, candidates, chosen).to_numpy()
    side = np.where(e >= 0, held["unique_id"].map(bounds["hi"]), -held["unique_id"].map(bounds["lo"]))
    # (the bound of the error's own step: the fit windows' step scale)
    scale = step_scale(_steps(held), bounds.attrs["growth"], bounds.attrs["cv_h"])
    side = np.asarray(side, dtype=float) * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(np.abs(e) < 1e-9, 0.0, np.abs(e) / np.where(side > 0, side, 0.0))
    return need[~np.isnan(need)]


RECENT_MEAN_WEEKS = 13  # the plain baseline: each series' mean of its last quarter
# the baseline served instead of the models for a group where it did better held out
# (`_serve_baseline`): each series' mean of its last RECENT_MEAN_WEEKS weeks
BASELINE_MODEL = f"RecentMean{RECENT_MEAN_WEEKS}w"
BASELINE_KEY = f"recent_mean_{RECENT_MEAN_WEEKS}w"  # its name in `held_out_mae`
# the models' held-out error over the recent mean's above which the mean is served instead
BASELINE_MARGIN = 1.25


def _recent_means(df: pd.DataFrame, cut: Any) -> pd.Series:
    """Each series' mean of its last RECENT_MEAN_WEEKS weeks up to `cut` (by unique_id as str)."""
    cut = pd.Timestamp(cut)
    recent = df[(df["ds"] <= cut) & (df["ds"] > cut - pd.Timedelta(weeks=RECENT_MEAN_WEEKS))]
    return recent.groupby(recent["unique_id"].astype(str))["y"].mean()


def _serve_baseline(
    df: pd.DataFrame, cv: pd.DataFrame, fc: pd.DataFrame, candidates: list[str], chosen: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], pd.Series]:
    """The group's frames with BASELINE_MODEL as a candidate (at each CV origin, the mean of
    the weeks before it; in the forecast, of the history's last weeks), and every series' choice
    set to it: the forecast, its conformal interval and its calibration are then the baseline's
    own, from its own CV errors."""
    cv, fc = cv.copy(), fc.copy()
    cv[BASELINE_MODEL] = np.nan
    for cut in cv["cutoff"].unique():
        at = (cv["cutoff"] == cut).to_numpy()
        cv.loc[at, BASELINE_MODEL] = (
            cv.loc[at, "unique_id"].map(_recent_means(df, cut)).fillna(0.0).to_numpy()
        )
    fc[BASELINE_MODEL] = fc["unique_id"].map(_recent_means(df, df["ds"].max())).fillna(0.0)
    return (
        cv,
        fc,
        [*candidates, BASELINE_MODEL],
        pd.Series([(BASELINE_MODEL,)] * len(chosen), index=chosen.index),
    )


def _held_out_mae(
    last: pd.DataFrame, candidates: list[str], chosen: pd.Series, df: pd.DataFrame, cutoff: Any
) -> dict[str, float]:
    """Mean absolute error on the last CV window of the forecast as served (the selection made
    on the earlier windows only: out of sample) beside the baselines a merchandiser would
    otherwise use: each series' mean of its last RECENT_MEAN_WEEKS weeks before the window, and
    the seasonal naive forecast where it is a candidate (a season of 1: the last week's)."""
    y = last["y"].to_numpy(dtype=float)
    out = {"served": round(float(np.abs(y - _combined(last, candidates, chosen)).mean()), 4)}
    base = last["unique_id"].astype(str).map(_recent_means(df, cutoff)).fillna(0.0).to_numpy(dtype=float)
    out[BASELINE_KEY] = round(float(np.abs(y - base).mean()), 4)
    if "SeasonalNaive" in last:  # (the last week's value for a group without a season)
        out["seasonal_naive"] = round(
            float(np.abs(y - last["SeasonalNaive"].to_numpy(dtype=float)).mean()), 4
        )
    return out


def forecast_group(
    df: pd.DataFrame,
    horizon: int,
    season: int,
    models: tuple[str, ...],
    *,
    select: str = "combine",
    interest: bool = False,
    also: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validate `models` (and their mean) on each series of `df` (`unique_id, ds, y`; all
    long enough), average the TOP_K per series (`select` "combine", `top_k`), the top n
    ("top2", "top3", ...), or pick the best per series ("series"), the best for the whole group ("group"), a
    named candidate (e.g. "Ensemble"), or let held-out CV windows choose among RULES for the
    group ("auto", `choose_rule`; the choice and the scores in the returned frame's
    `attrs["rule"]`), refit on the whole series and forecast `horizon` weeks with a conformal 80%
    interval. `also`: other selections whose point forecasts come as `units_<select>` columns
    from the same fits (the benchmark compares rules without fitting again).
    Returns the forecasts (`unique_id, ds, units, lo, hi, model`) and the per-series CV MAE of
    every candidate (`unique_id` x model)."""
    n_min = int(df.groupby("unique_id").size().min())
    h = min(horizon, MAX_CV_H)
    # every origin leaves each series MIN_TRAIN weeks to fit on (statsforecast refuses fewer)
    windows = max(1, min(3, (n_min - max(season, 1) - 4) // h, (n_min - MIN_TRAIN) // h))
    smooth = [m for m in models if m in SMOOTH_MODELS]
    steps = [  # of fits, each shown with the steps after it (`_step`)
        "cross-validation",
        "final fit",
        *([GROUP_MODEL] if GROUP_MODEL in models and season > 1 else []),
        *([INTEREST_MODEL] if interest else []),
    ]
    with warnings.catch_warnings():
        # statsforecast's fits warn per series (e.g. a constant series); the CV error judges them
        warnings.simplefilter("ignore")
        with _step(steps, 0):
            cv = _statsforecast(_models(models, season)).cross_validation(
                df=df[["unique_id", "ds", "y"]], h=h, n_windows=windows, step_size=h
            )
        with _step(steps, 1):
            fc = _statsforecast(_models(models, season)).forecast(df=df[["unique_id", "ds", "y"]], h=horizon)
    for frame in (cv, fc):
        frame["unique_id"] = frame["unique_id"].astype(str)
    if GROUP_MODEL in models:
        if season > 1:
            with _step(steps, 2):
                gcv, gfc = _group_seasonal(df, sorted(cv["cutoff"].unique()), h, season, horizon)
            keys = ["unique_id", "ds", "cutoff"]
            cv = cv.merge(gcv[[*keys, GROUP_MODEL]], on=keys, how="left")
            fc = fc.merge(gfc[["unique_id", "ds", GROUP_MODEL]], on=["unique_id", "ds"], how="left")
        else:  # without a season it is AutoTheta again: not offered
            cv[GROUP_MODEL], fc[GROUP_MODEL] = np.nan, np.nan
    for frame in (cv, fc):
        offered = [m for m in smooth if frame[m].notna().any()]
        frame[ENSEMBLE] = frame[offered].mean(axis=1) if offered else frame[list(models)].mean(axis=1)
    candidates = [*models, ENSEMBLE]
    if interest:
        with _step(steps, len(steps) - 1):
            cv, fc = _with_interest(df, cv, fc, h, windows, season, horizon)
        candidates.append(INTEREST_MODEL)
    mae = _cv_mae(cv, candidates)
    rule, rule_scores = choose_rule(cv, candidates, df) if "auto" in (select, *also) else ("", {})
    chosen = _choose(mae, df, rule if select == "auto" else select)
    # conformal interval: the chosen model's CV errors (actual - forecast), 10% and 90%, widened
    # (or narrowed) by the group's calibration factor (see `calibrate`)
    bounds = _residual_bounds(cv, candidates, chosen)
    factor, held_out = calibrate(cv, candidates, df, rule if select == "auto" else select)
    held = held_out.get("held_out_mae") or {}
    if baseline_clearly_better(held):
        # the plain mean did clearly better than the models on the window their choice never
        # saw: it is served for the group (with its own interval), and said (`served_baseline`).
        # Clearly: on one window a mean ties the models on a level that drifts, and serving it
        # there threw away the search interest that led it (the planted benchmark: with
        # interest 0.912 -> 0.930 MASE when any win counted)
        cv, fc, candidates, chosen = _serve_baseline(df, cv, fc, candidates, chosen)
        bounds = _residual_bounds(cv, candidates, chosen)
        factor, again = calibrate(cv, candidates, df, BASELINE_MODEL)
        held_out = held_out | {k: v for k, v in again.items() if k != "held_out_mae"}
        held_out["served_baseline"] = BASELINE_KEY
    out = fc[["unique_id", "ds"]].copy()
    out["units"] = _combined(fc, candidates, chosen)
    out["model"] = fc["unique_id"].map(chosen.map(_label)).to_numpy()
    for alt in also:
        out[f"units_{alt}"] = _combined(fc, candidates, _choose(mae, df, rule if alt == "auto" else alt))
    # the step's scale: the errors grow with the horizon as the CV errors did (`horizon_growth`)
    scale = step_scale(_steps(out), bounds.attrs["growth"], bounds.attrs["cv_h"])
    out["lo"] = out["units"] + factor * out["unique_id"].map(bounds["lo"]).to_numpy() * scale
    out["hi"] = out["units"] + factor * out["unique_id"].map(bounds["hi"]).to_numpy() * scale
    # a week's spread for stock decisions: the root mean square of the chosen forecast's CV errors
    # (out of sample), at the step's scale. For a slow seller the 80% interval is mostly the weeks
    # without a sale and its width says nothing of the 7 or 14 units a sale week brings; the errors do
    out["sd"] = out["unique_id"].map(bounds["rms"]).to_numpy() * scale
    mae.attrs["calibration"] = {"factor": factor, "horizon_growth": bounds.attrs["growth"], **held_out}
    mae.attrs["one_sided"] = {str(k): round(float(v), 3) for k, v in bounds["median"].items() if v != 0.0}
    mae.attrs["windows"], mae.attrs["h"] = windows, h
    if rule:
        mae.attrs["rule"] = {"rule": rule, "held_out_scores": rule_scores}
    return out, mae


def baseline_clearly_better(held_out_mae: dict[str, float]) -> bool:
    """Whether the recent mean's held-out error is below the models' by `BASELINE_MARGIN`."""
    return BASELINE_MARGIN * held_out_mae.get(BASELINE_KEY, math.inf) < held_out_mae.get("served", -math.inf)


DISPERSION_WEEKS = 13  # the recent weeks of the cross-validated series whose spread a new one borrows


def shop_dispersion(series: pd.DataFrame) -> float:
    """How much more a week's units vary than a Poisson count (the index of dispersion, variance
    over mean) for this shop's products: the median over the series with DISPERSION_WEEKS weeks
    or more of their last DISPERSION_WEEKS weeks' ratio, at least 1 (1: Poisson, or no series
    long enough to read it from). Grocery weeks move with promotions, customers buy several
    units at a time: a new product's weeks spread as its neighbours' do, not as a Poisson's."""
    tail = series.sort_values(["unique_id", "ds"]).groupby("unique_id").tail(DISPERSION_WEEKS)
    n = tail.groupby("unique_id")["y"].size()
    stats = tail.groupby("unique_id")["y"].agg(["mean", "var"])[n >= DISPERSION_WEEKS]
    stats = stats[stats["mean"] > 0]
    if stats.empty:
        return 1.0
    return max(1.0, float((stats["var"] / stats["mean"]).median()))


def forecast_short(
    df: pd.DataFrame, horizon: int, last_week: pd.Timestamp, dispersion: float = 1.0
) -> pd.DataFrame:
    """Series too short to cross-validate: the mean of their last weeks, with the 80% interval
    of a gamma-Poisson (negative binomial) predictive: the weekly rate is known from a few weeks
    only (its Jeffreys posterior after `y` units in `t` weeks), and a week's units spread
    `dispersion` times a Poisson's (`shop_dispersion`): the counts are read in lumps of
    `dispersion` units, NB(y / d + 1/2, t / (t + 1)) x d. One week of 13 units gave the Poisson
    band [9, 18] to a grocery product that then sold 2 to 61 a week; and `sd`, its standard
    deviation (a week's spread for replenishment), sqrt(d x mean x (1 + 1 / t)), not sqrt(mean).
    With `days` (`weekly_grid`), the weekly rate over the days on sale: a product in since
    Sunday noon sold its first week's units in half a day, not in seven."""
    from scipy.stats import nbinom

    d = max(float(dispersion), 1.0)
    rows = []
    for uid, s in df.groupby("unique_id", sort=False):
        tail = s.tail(SHORT_WEEKS)
        weeks = float(tail["days"].sum() / 7.0) if "days" in tail else float(len(tail))
        weeks = max(weeks, 1.0 / 7.0)
        total = float(tail["y"].sum())
        mean = total / weeks
        if mean > 0:
            lo, hi = (float(v) * d for v in nbinom.ppf([0.1, 0.9], total / d + 0.5, weeks / (weeks + 1.0)))
            sd = float(np.sqrt(d * mean * (1.0 + 1.0 / weeks)))
        else:
            lo, hi, sd = 0.0, 0.0, 0.0
        for k in range(1, horizon + 1):
            rows.append((str(uid), last_week + k * WEEK, mean, lo, hi, "RecentMean", sd))
    return pd.DataFrame(rows, columns=["unique_id", "ds", "units", "lo", "hi", "model", "sd"])


# the launches (products first sold within the history, with that week and the next complete)
# a shop needs before its new products' rates are shrunk towards theirs (`launch_prior`)
MIN_LAUNCHES = 5
MAX_PRIOR_WEEKS = 52.0  # the prior's weight, in weeks of sales seen: at most a year's
# a launch's orders so far this improbable under the launches' prior (its predictive tail): it is
# not one of them, and its own rate stands
PRIOR_CONFLICT_P = 0.001


def launch_prior(weekly: pd.DataFrame, last_week: pd.Timestamp) -> dict[str, Any] | None:
    """How the shop's products sold when they were new: a Gamma prior on a new series' weekly
    order rate, `{"alpha", "beta", "launches", "mean_orders_per_week"}` (beta in weeks), fitted by
    maximum likelihood (a negative binomial of each launch's orders over its days on sale) to
    every series first sold after the history's first week (before it, a series was not new:
    the history just starts there) whose first sale week and the next are complete by
    `last_week`: orders of those two weeks over their days on sale. None with fewer than
    MIN_LAUNCHES launches: nothing to learn a new product's rate from. `weekly`: as
    `forecast_partial_week` reads it (`orders` when known, else units are orders)."""
    from scipy.optimize import minimize
    from scipy.stats import nbinom

    w = weekly[weekly["ds"] <= last_week]
    if w.empty:
        return None
    sold = w[w["units"] > 0]
    launch = sold.groupby("unique_id")["ds"].min()
    launch = launch[(launch > w["ds"].min()) & (launch + WEEK <= last_week)]
    if len(launch) < MIN_LAUNCHES:
        return None
    two = w[w["unique_id"].isin(launch.index)].merge(
        launch.rename("launch"), left_on="unique_id", right_index=True
    )
    two = two[(two["ds"] >= two["launch"]) & (two["ds"] <= two["launch"] + WEEK)]
    count = "orders" if "orders" in two else "units"
    orders = two.groupby("unique_id")[count].sum().reindex(launch.index).to_numpy(float).round()
    first = (
        two[two["ds"] == two["launch"]].groupby("unique_id")["first_seen"].min()
        if "first_seen" in two
        else pd.Series(dtype=object)
    )
    weeks = np.array(
        [(days_on_sale(first.get(u), d, d + WEEK) + 7.0) / 7.0 for u, d in launch.items()], float
    )

    def nll(theta: np.ndarray) -> float:
        a, b = np.exp(theta)
        return -float(nbinom.logpmf(orders, a, b / (b + weeks)).sum())

    mean = float(orders.sum() / weeks.sum())
    start = np.log([max(mean, 1e-3), 1.0])
    fit = minimize(nll, start, method="L-BFGS-B", bounds=[(-9.0, 9.0), (-9.0, math.log(MAX_PRIOR_WEEKS))])
    alpha, beta = (float(v) for v in np.exp(fit.x))
    return {
        "alpha": round(alpha, 6),
        "beta": round(beta, 6),
        "launches": int(len(launch)),
        "mean_orders_per_week": round(alpha / beta, 4),
    }


def forecast_partial_week(
    weekly: pd.DataFrame,
    week: pd.Timestamp,
    end: Any,
    horizon: int,
    known: set[str],
    prior: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Series first sold in the part week starting `week` (the data end at `end`, inside it; a
    series in `known` has a complete week and is forecast from it): `horizon` weeks from
    `week` on at its rate, PARTIAL_WEEK_MODEL. The rate is read over the days on sale
    (`days_on_sale`: from the later of that Monday and the series' first event to `end`, at
    least one day: a product that came in on Thursday has sold for 2 days by Saturday, not 5).
    With the shop's `launch_prior` (Gamma(alpha, beta) on a new series' weekly orders), the
    rate is the posterior mean, (alpha + o) / (beta + days / 7) orders a week for the o orders
    in those days: one order on a launch's first day is not read as seven a week when the
    shop's launches sell one a week; a series that sells far above its peers still moves
    towards its own rate as fast as the launches' spread says it may, and one whose orders the
    prior makes improbable (below PRIOR_CONFLICT_P: a breakout among launches that all sell
    alike) keeps its own. Without one, the rate so far (o / days x 7). Either way times the units per order. The 80% interval is the
    Gamma-Poisson predictive (negative binomial; Jeffreys prior without the shop's) of a week's
    orders, times the units per order: wide when few orders came, however many units each (one
    order of 500 units is one observation). The current week is never forecast below the
    units it has sold already. `weekly`: `unique_id, ds, units` and, when known, `orders` and
    `first_seen` (the first event per series and week)."""
    from scipy.stats import nbinom

    cols = ["unique_id", "ds", "units", "lo", "hi", "model"]
    now = weekly[(weekly["ds"] == week) & ~weekly["unique_id"].astype(str).isin(known)]
    sums = now.groupby("unique_id")[["units", *(["orders"] if "orders" in now else [])]].sum()
    sums = sums[sums["units"] > 0]
    if sums.empty:
        return pd.DataFrame(columns=cols)
    first = weekly.groupby("unique_id")["first_seen"].min() if "first_seen" in weekly else pd.Series()
    alpha, beta = (0.5, 0.0) if prior is None else (float(prior["alpha"]), float(prior["beta"]))
    rows = []
    for uid, r in sums.iterrows():
        n = float(r["units"])
        orders = float(r["orders"]) if "orders" in r and r["orders"] > 0 else n
        per_order = n / orders
        days = days_on_sale(first.get(uid), week, pd.Timestamp(end) + pd.Timedelta(microseconds=1))
        a, b = alpha, beta
        if prior is not None and nbinom.sf(orders - 1, a, b / (b + days / 7.0)) < PRIOR_CONFLICT_P:
            # more orders than the shop's launches make plausible (a breakout among launches that
            # all sell alike, whose tight prior would pull 140 a week down to 4): its own rate
            a, b = 0.5, 0.0
        seen = b + days / 7.0  # weeks of evidence: the prior's and the days on sale
        lo, hi = (float(v) * per_order for v in nbinom.ppf([0.1, 0.9], orders + a, seen / (seen + 1.0)))
        mean = n * 7.0 / days if b == 0.0 else (a + orders) / seen * per_order
        for k in range(horizon):
            # (the current week has sold n already: neither it nor its low bound is below that)
            units = max(mean, n) if k == 0 else mean
            low = max(min(lo, units), n) if k == 0 else min(lo, units)
            rows.append((str(uid), week + k * WEEK, units, low, max(hi, units), PARTIAL_WEEK_MODEL))
    return pd.DataFrame(rows, columns=cols)


def forecast_series(
    series: pd.DataFrame,
    horizon: int,
    *,
    season: int | None = None,
    models: tuple[str, ...] = DEFAULT_MODELS,
    select: str = "combine",
    also: tuple[str, ...] = (),
    jobs: int | None = None,
    progress: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Forecast every series of `series` (`unique_id, ds, y`, weekly, no gaps; with an
    `interest` column, search and browsing demand is a candidate input too) `horizon` weeks
    past its last week: `unique_id, ds, units, lo, hi, model` (units and bounds >= 0), and what
    was chosen (`also`: see `forecast_group`). Used by `insights demand` and by the benchmark,
    on any weekly data. `jobs`: the processes fitting the series (None: `demand_jobs`; the same
    forecasts whatever the count); `progress`: show the fits' progress on stderr (None: when a
    person is watching, `show_progress`)."""
    series = series.sort_values(["unique_id", "ds"])
    last_week = series["ds"].max()
    total = series.groupby("ds")["y"].sum().sort_index().to_numpy()
    h_cv = min(horizon, MAX_CV_H)
    m = detect_season(total, h_cv) if season is None else season
    length = series.groupby("unique_id").size()
    adi = series.groupby("unique_id")["y"].apply(_adi)
    parts: list[pd.DataFrame] = []
    maes: list[pd.DataFrame] = []
    info: dict[str, Any] = {"season_length": m, "cv_windows": 0, "cv_h": 0, "calibration": []}
    seasonal_ok = length >= 2 * m + h_cv + 4 if m > 1 else length < 0
    plain_ok = (length >= 2 * h_cv + 8) & ~seasonal_ok
    groups = []  # (season, intermittent, the series, their kind)
    for ok, s in ((seasonal_ok, m), (plain_ok, 1)):
        for intermittent in (False, True):
            ids = length.index[ok & ((adi > INTERMITTENT_ADI) == intermittent)]
            if len(ids):
                groups.append((s, intermittent, ids, "intermittent" if intermittent else "smooth"))
    jobs = demand_jobs(int((seasonal_ok | plain_ok).sum())) if jobs is None else jobs
    with _Progress(show_progress() if progress is None else progress) as shown:
        for k, (s, intermittent, ids, kind) in enumerate(groups):
            names = (*models, *INTERMITTENT_MODELS) if intermittent else models
            part = series[series["unique_id"].isin(ids)]
            with_interest = "interest" in part and bool((part["interest"] > 0).any()) and not intermittent
            later = tuple(f"{g[3]} series, season {g[0]} ({len(g[2]):,})" for g in groups[k + 1 :])
            with _fitting(_Run(jobs=jobs, progress=shown, group=f"{kind} series, season {s}", later=later)):
                fc, mae = forecast_group(
                    part, horizon, s, names, select=select, interest=with_interest, also=also
                )
            parts.append(fc.assign(band_group=f"{kind}, season {s}"))
            maes.append(mae)
            info["cv_windows"] = max(info["cv_windows"], mae.attrs["windows"])
            info["cv_h"] = max(info["cv_h"], mae.attrs["h"])
            group = f"{kind}, season {s}"
            info["calibration"].append({"group": group, "series": len(ids)} | mae.attrs["calibration"])
            if "rule" in mae.attrs:
                info.setdefault("rules", []).append({"group": group, **mae.attrs["rule"]})
            info.setdefault("one_sided_bands", {}).update(mae.attrs.get("one_sided", {}))
    short = length.index[~seasonal_ok & ~plain_ok]
    if len(short):
        parts.append(
            forecast_short(
                series[series["unique_id"].isin(short)], horizon, last_week, shop_dispersion(series)
            )
        )
    out = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["unique_id", "ds", "units", "lo", "hi", "model"])
    )
    for alt in also:  # series too short to cross-validate have one forecast whatever the rule
        out[f"units_{alt}"] = (
            out[f"units_{alt}"].fillna(out["units"]) if f"units_{alt}" in out else out["units"]
        )
    for c in ("units", "lo", "hi", *(f"units_{alt}" for alt in also)):
        out[c] = out[c].astype(float).clip(lower=0.0)
    out["lo"] = np.minimum(out["lo"], out["units"])
    out["hi"] = np.maximum(out["hi"], out["units"])
    info["chosen"] = {
        str(k): int(v) for k, v in out.groupby("unique_id")["model"].first().value_counts().items()
    }
    if maes:
        allmae = pd.concat(maes)
        info["cv_mae"] = {str(k): round(float(v), 4) for k, v in allmae.mean().dropna().items()}
    else:
        info["cv_mae"] = {}
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True), info


def forecast_demand(
    weekly: pd.DataFrame,
    products: pd.DataFrame,
    as_of: Any,
    *,
    horizon_weeks: int = 13,
    level: str = "product",
    catalog: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, DemandModel, pd.DataFrame]:
    """Weekly forecasts per product (or category) after the last complete week up to `as_of`,
    from `load_weekly`'s aggregates; returns the forecasts (`unique_id, ds, units, lo, hi,
    model`), what made them, and the (uncensored) history. `catalog`: which products version
    gave the stock figures (`load_weekly`), recorded in the returned model."""
    if level not in ("product", "category"):
        raise ShelfwiseError(f"--level {level!r}: use product or category")
    closed = set(weekly.attrs.get("closed_weekdays") or ())
    last_week = last_complete_week(as_of, closed)
    gap, last_event = 0, weekly.attrs.get("last_event")
    if last_event is not None:
        data_week = last_complete_week(last_event, closed)
        # the week of the last event is read when the data reach its last trading day (its
        # Sunday, or its Saturday in a shop closed on Sundays: a week cut short on a Wednesday
        # would read as a drop in demand)
        after = set(range(pd.Timestamp(last_event).weekday() + 1, 7))
        if after <= closed and last_week > data_week:
            data_week = data_week + WEEK
        gap = max(0, int((last_week - data_week) / WEEK))
    warning = None
    if gap:
        at, last = pd.Timestamp(as_of), pd.Timestamp(last_event)
        days = int((at.normalize() - last.normalize()) / pd.Timedelta(days=1))
        said = (
            f"--as-of {at.date()} is {days} day{'s' if days != 1 else ''} after the shop's last event "
            f"({last.isoformat(timespec='seconds')}): the {gap} complete week{'s' if gap > 1 else ''} "
            "since hold no data, not zero demand"
        )
        if gap > MAX_NO_DATA_WEEKS:
            raise ShelfwiseError(
                f"{said}; forecasting more than {MAX_NO_DATA_WEEKS} weeks past the data is refused: "
                "ingest the newer events or use an --as-of up to the last event"
            )
        last_week -= gap * WEEK
        horizon_weeks += gap  # the forecasts start after the data and still reach as-of + horizon
        warning = (
            f"{said}; the history ends in the week of {last_week.date()} and the forecasts start "
            "there: ingest the newer events for forecasts that know them"
        )
        warnings.warn(warning, NoDataWarning, stacklevel=2)
    sold = pd.to_datetime(pd.Series(weekly.loc[weekly["units"] > 0, "ds"].unique())).sort_values()
    if len(sold):
        last_sale = pd.Timestamp(sold.iloc[-1])  # (the Monday of the last week with a sale)
        quiet = int((last_week - last_sale) / WEEK)  # complete weeks after it, up to the history's end
        # the longest quiet spell between two weeks with a sale: a season's off months
        before = int(sold.diff().max() / WEEK) - 1 if len(sold) > 1 else 0
        if quiet > max(SALES_STOPPED_WEEKS, before):
            raise ShelfwiseError(
                f"no sale in the {quiet} complete weeks up to the week of {last_week.date()} (the last in the "
                f"week of {last_sale.date()}, and never so long without one before) while other events go "
                "on: the orders look missing, and every forecast would be zero; ingest the newer orders, "
                f"or forecast from the sales history with --as-of {(last_sale + WEEK - pd.Timedelta(days=1)).date()}"
            )
        if quiet > max(QUIET_SALES_WEEKS, before):
            said = (
                f"no sale in the {quiet} complete weeks up to the week of {last_week.date()} (the last in the "
                f"week of {last_sale.date()}; never so long before): the forecasts read those weeks as zero "
                "demand; if orders are missing, ingest them"
            )
            warning = f"{warning}; {said}" if warning else said
            warnings.warn(said, NoDataWarning, stacklevel=2)
    info = DemandModel(
        level=level,
        as_of=pd.Timestamp(as_of).isoformat(),
        last_week=last_week.date().isoformat(),
        horizon_weeks=horizon_weeks,
        season_length=1,
        last_event=None if last_event is None else pd.Timestamp(last_event).isoformat(),
        no_data_weeks=gap,
        warning=warning,
        closed_weekdays=sorted(closed),
    )
    if catalog is not None:
        info.catalog_version, info.catalog_ingested_at = catalog["version"], catalog["ingested_at"]
        info.stock_known = bool(catalog["stock_known"])
        info.stock_reason = catalog.get("stock_reason")
    grid = weekly_grid(weekly, last_week)
    held = weekly[weekly["ds"] <= last_week]
    if "no_sale_days" in held:
        info.no_sale_days = int(held["no_sale_days"].fillna(0).sum())
    if "returned" in held:
        info.returned_units = round(float(held["returned"].fillna(0).sum()), 3)
    if grid.empty:
        raise ShelfwiseError(f"no purchases in complete weeks up to {pd.Timestamp(as_of).date()}")
    out_now = products[out_of_stock(products)]
    since = out_now["in_stock_until"] if "in_stock_until" in out_now else pd.Series(pd.NaT, out_now.index)
    series, info.censored_weeks = uncensor(
        grid, dict(zip(out_now["product_id"].astype(str), since, strict=True))
    )
    # the searches naming a product in its stock-out weeks (a category's: its products')
    hit = series.loc[series["censored"], ["unique_id", "ds", *(["searched"] if "searched" in series else [])]]
    if level == "category":
        cat = products.set_index("product_id")["category"].dropna().astype(str)
        series = series.assign(unique_id=series["unique_id"].map(cat)).dropna(subset=["unique_id"])
        summed = ["y", "interest", *(["searched"] if "searched" in series else [])]
        series = series.groupby(["unique_id", "ds"], as_index=False).agg(
            **{c: (c, "sum") for c in summed},
            censored=("censored", "any"),
            # a category's week is on sale as long as its longest-listed product's
            **({"days": ("days", "max")} if "days" in series else {}),
        )
        if series.empty:
            raise ShelfwiseError("--level category: no product with a sale has a category")
        info.coherence = CATEGORY_COHERENCE
        # counted at the level forecast: a category's week is a stock-out week when one of its
        # products' weeks is (the product-level count would say one week once per product)
        info.censored_weeks = int(series["censored"].sum())
        hit = hit.assign(unique_id=hit["unique_id"].map(cat)).dropna(subset=["unique_id"])
        hit = hit.groupby(["unique_id", "ds"], as_index=False).sum()
    searched = weekly.attrs.get("searches")
    if searched is not None:
        per_week = hit["searched"] if "searched" in hit else pd.Series(dtype=float)
        info.free_text_searches = dict(searched) | {
            "in_censored_weeks": int(per_week.sum()),
            "censored_weeks_with_searches": int((per_week > 0).sum()),
        }
    try:
        fc, meta = forecast_series(
            series[["unique_id", "ds", "y", "interest", *(["days"] if "days" in series else [])]],
            horizon_weeks,
        )
    except (NotImplementedError, ValueError) as exc:  # the library's own refusals, in one line
        raise ShelfwiseError(
            f"demand: the forecasting library could not fit the {series['unique_id'].nunique()} series "
            f"up to the week of {last_week.date()} ({type(exc).__name__}: {exc})"
        ) from None
    # sold only in the part week after the history (as-of's, or the data's last when they end
    # before as-of): forecast at the rate so far, up to the last event
    end = pd.Timestamp(as_of) if last_event is None else min(pd.Timestamp(as_of), pd.Timestamp(last_event))
    now = weekly.assign(unique_id=weekly["product_id"].astype(str))
    if level == "category":
        now = now.assign(unique_id=now["product_id"].map(cat)).dropna(subset=["unique_id"])
    known = set(series["unique_id"].astype(str))
    prior = launch_prior(now, last_week)
    new = forecast_partial_week(now, last_week + WEEK, end, horizon_weeks, known, prior)
    if len(new):
        info.launch_prior = prior
        fc = pd.concat([fc, new], ignore_index=True).sort_values(["unique_id", "ds"], ignore_index=True)
        info.partial_week_series = int(new["unique_id"].nunique())
        meta["chosen"][PARTIAL_WEEK_MODEL] = info.partial_week_series
    info.series = int(series["unique_id"].nunique()) + info.partial_week_series
    info.season_length = int(meta["season_length"])
    info.cv_windows, info.cv_h = int(meta["cv_windows"]), int(meta["cv_h"])
    info.chosen, info.cv_mae = meta["chosen"], meta["cv_mae"]
    info.calibration = meta["calibration"]
    info.stopped_selling = stopped_selling(series)
    if info.stopped_selling:
        stop = fc["unique_id"].astype(str).map(info.stopped_selling)
        gone = stop.notna().to_numpy()
        fc.loc[gone, ["units", "lo", "hi"]] = 0.0
        if "sd" in fc:
            fc.loc[gone, "sd"] = 0.0
        fc.loc[gone, "model"] = STOPPED_MODEL
        meta["chosen"] = (
            fc.groupby("unique_id")["model"].first().value_counts().rename(str).astype(int).to_dict()
        )
        info.chosen = meta["chosen"]
        said = stopped_warning(info.stopped_selling)
        info.warning = f"{info.warning}; {said}" if info.warning else said
        warnings.warn(said, NoDataWarning, stacklevel=2)
    fc["stopped_selling_weeks"] = fc["unique_id"].astype(str).map(info.stopped_selling)
    info.one_sided_bands = dict(sorted(meta.get("one_sided_bands", {}).items()))
    if info.one_sided_bands:
        said = one_sided_warning(info.one_sided_bands)
        info.warning = f"{info.warning}; {said}" if info.warning else said
        warnings.warn(said, BandWarning, stacklevel=2)
    return fc, info, series


ONE_SIDED_NAMED = 10  # the series a warning names (then how many more)


def stopped_selling(series: pd.DataFrame) -> dict[str, int]:
    """The series whose sales stopped, to their trailing weeks without a sale: at least
    STOPPED_MIN_WEEKS of them, improbable as chance (the share p of weeks the series sold in over
    the year before the run: (1 - p)^weeks < CENSOR_P0) and longer than any earlier quiet spell
    of the series (a seasonal product's off months are not a stop). Stock-out weeks (`censored`,
    their demand estimated) are no quiet weeks: a product out of stock is not one that stopped
    selling. A product sold every week for 4.7 years then nothing for 11 weeks was forecast at
    6.5 a week (upper bound 72) and kept "covered" by its stock."""
    out: dict[str, int] = {}
    cols = ["unique_id", "ds", "y", *(["censored"] if "censored" in series else [])]
    for uid, g in series[cols].sort_values(["unique_id", "ds"]).groupby("unique_id", sort=False):
        sold = (g["y"].to_numpy(dtype=float) > 0) | (
            g["censored"].to_numpy(dtype=bool) if "censored" in g else False
        )
        if not sold.any():
            continue
        last = int(np.flatnonzero(sold)[-1])
        quiet = len(sold) - 1 - last
        if quiet < STOPPED_MIN_WEEKS:
            continue
        before = sold[: last + 1]
        runs = np.diff(np.flatnonzero(before)) - 1 if before.sum() > 1 else np.array([0])
        if quiet <= int(runs.max(initial=0)):
            continue
        share = float(before[-52:].mean())
        if (1.0 - share) ** quiet < CENSOR_P0:
            out[str(uid)] = quiet
    return dict(sorted(out.items()))


def stopped_warning(stopped: dict[str, int]) -> str:
    """The warning naming the series whose sales stopped (`stopped_selling`)."""
    names = sorted(stopped, key=lambda k: (-stopped[k], k))
    shown = ", ".join(f"{k} ({stopped[k]} weeks)" for k in names[:ONE_SIDED_NAMED])
    more = f" and {len(names) - ONE_SIDED_NAMED} more" if len(names) > ONE_SIDED_NAMED else ""
    return (
        f"{len(names)} series stopped selling: no sale in their last weeks, longer than any quiet "
        f"spell before and improbable at the rate they sold: {shown}{more}; forecast at zero "
        f"({STOPPED_MODEL}): delisted, dead stock, or sales not recorded?"
    )


def one_sided_warning(shifts: dict[str, float]) -> str:
    """The warning naming the series whose CV errors lay on one side of their forecast
    (`_residual_bounds`): `shifts`, series -> the median CV error (actual - forecast)."""
    over = sorted((k for k, v in shifts.items() if v < 0), key=lambda k: shifts[k])
    under = sorted((k for k, v in shifts.items() if v > 0), key=lambda k: -shifts[k])
    parts = []
    for names, side in ((over, "above"), (under, "below")):
        if not names:
            continue
        shown = ", ".join(f"{k} ({shifts[k]:+.1f})" for k in names[:ONE_SIDED_NAMED])
        more = f" and {len(names) - ONE_SIDED_NAMED} more" if len(names) > ONE_SIDED_NAMED else ""
        parts.append(
            f"{len(names)} series forecast {side} the actual in more than 90% of their "
            f"cross-validation weeks (median error, units a week): {shown}{more}"
        )
    return (
        "; ".join(parts) + ": their 80% intervals reach past the forecast by their errors' spread about "
        "its median (the errors' own 10%-90% range left the forecast outside it); read those forecasts "
        "as biased"
    )


__all__ = [
    "MAX_NO_DATA_WEEKS",
    "BandWarning",
    "PARTIAL_WEEK_MODEL",
    "STOPPED_MODEL",
    "DemandModel",
    "NoDataWarning",
    "detect_season",
    "closed_weekdays",
    "forecast_demand",
    "forecast_partial_week",
    "launch_prior",
    "stopped_selling",
    "forecast_series",
    "last_complete_week",
    "load_weekly",
    "uncensor",
    "weekly_grid",
]
