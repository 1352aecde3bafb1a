"""Reorder suggestions from demand forecasts, stock on hand and lead times (issue 18.3).

The policy is the periodic review order-up-to (R, S) policy: every `review_days` the stock is
looked at, and an order placed now arrives after `lead_time_days`; it must cover the demand until
the order after next can arrive, the protection period P = lead time + review period. With D the
forecast demand over P from as-of on (the weekly forecasts, part weeks pro rata; the first
forecast week starts on the Monday of the as-of week, so its days already past are skipped) and
sigma its standard deviation (each week's the larger of its 80% interval's width / (2 x 1.2816)
and the root mean square of the forecast's cross-validation errors, `sd`: a slow seller's interval
is mostly its weeks without a sale, its errors hold the sale weeks' lumps; the variances added pro
rata as if days were independent), the safety stock is z(service level) x sigma, the reorder point (the
order-up-to level S) is D + safety stock, and the suggested order is what brings the stock up to
it, in whole units. Stock on order is not known to shelfwise (no purchase-order table), so the
suggestion assumes none is on the way. Weeks past the forecast horizon repeat its last week.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from ._demand import PARTIAL_WEEK_MODEL, STOPPED_MODEL

Z80 = float(norm.ppf(0.9))  # the half-width of an 80% interval in standard deviations

REPLENISHMENT_FIELDS = (
    "product_id",
    "stock",
    "lead_time_days",
    "review_days",
    "weekly_demand",
    "demand_lead_time",
    "demand_sd",
    "safety_stock",
    "reorder_point",
    "order_qty",
    "weeks_of_cover",
    "service_level",
    "reason",
    # weeks without a sale of a product whose sales stopped (`_demand.stopped_selling`), else null
    "stopped_selling_weeks",
    # when the protection period starts: as-of, or the stock figures' delivery when later
    "protection_from",
    # the demand band's calibration warning (its factor at its bound, under 80% held out; a
    # forecast one-sided in cross-validation), carried from the forecast (`band_warnings`)
    "interval_warning",
)


def protection_demand(weeks: pd.DataFrame, days: float, start: float = 0.0) -> tuple[float, float]:
    """Demand over the `days` that follow day `start` of the first forecast week, and its
    standard deviation, from weekly forecasts in order (`units`, `lo`, `hi`). `start` is how
    much of that week had passed at as-of: the first forecast week begins on the Monday of the
    as-of week, so a window read from its start would count demand that can no longer be served
    from the stock counted at as-of (up to 6 days too early)."""
    units = weeks["units"].to_numpy(dtype=float)
    sd = (weeks["hi"].to_numpy(dtype=float) - weeks["lo"].to_numpy(dtype=float)) / (2 * Z80)
    if "sd" in weeks:  # the forecast's own spread (its CV errors), where it is wider
        sd = np.fmax(sd, weeks["sd"].to_numpy(dtype=float))
    total = var = 0.0
    lo, hi = start / 7.0, (start + days) / 7.0  # the window, in weeks from the first forecast week
    k = int(math.floor(lo))
    while hi - k > 1e-12:
        frac = min(hi, k + 1.0) - max(lo, float(k))  # the share of week k inside the window
        if frac > 0:
            i = min(k, len(units) - 1)  # past the horizon: its last week again
            total += frac * units[i]
            var += frac * sd[i] ** 2
        k += 1
    return total, math.sqrt(var)


# a product without a sale in this share of its recent weeks sells in lumps: a normal
# approximation of its protection-period demand (mean + z sd) falls short of a sale week
LUMPY_ZERO_SHARE = 0.3
LUMPY_WEEKS = 52  # the recent weeks whose spans are read


def lumpy_protection(sold: np.ndarray | None, days: float, service_level: float) -> float | None:
    """For a slow seller (no sale in >= LUMPY_ZERO_SHARE of its last LUMPY_WEEKS weeks; None
    otherwise, or with fewer than 13 weeks): the `service_level` quantile of its sales over
    every span of `days` among them (whole weeks, the last one pro rata), an empirical
    distribution of its protection-period demand. A product selling 10 units in one week of
    twelve needs 10 on hand for a two-week period at 95%; mean + 1.645 sd says 7.9."""
    if sold is None:
        return None
    y = np.asarray(sold, dtype=float)[-LUMPY_WEEKS:]
    # (a period under a week is read as one: a lump lands whole in it or not at all, and a
    # week's sale pro rata would put the reorder point below it)
    weeks = max(days / 7, 1.0)
    whole, part = int(weeks), weeks - int(weeks)
    span = whole + (1 if part > 1e-9 else 0)
    if len(y) < max(13, span + 1) or float((y <= 0).mean()) < LUMPY_ZERO_SHARE:
        return None
    # each span of `whole` weeks and the share `part` of the week after it (a 10-day period is
    # one week and 3/7 of the next, not two weeks)
    windows = len(y) - span + 1
    cs = np.concatenate([[0.0], np.cumsum(y)])
    sums = cs[whole : whole + windows] - cs[:windows]
    if part > 1e-9:
        sums = sums + part * y[whole : whole + windows]
    return float(np.quantile(sums, service_level, method="higher"))


def elapsed_days(first_week: Any, as_of: Any) -> float:
    """Days of the first forecast week (starting `first_week`, a Monday) already past at
    `as_of`, in [0, 7): the replenishment window starts at as-of, not on that Monday."""
    gone = (pd.Timestamp(as_of) + pd.Timedelta(microseconds=1) - pd.Timestamp(first_week)) / pd.Timedelta(
        days=1
    )
    return float(min(max(gone, 0.0), 7.0))


def band_warnings(forecasts: pd.DataFrame, info: Any) -> dict[str, str]:
    """Per product: what the demand forecast warned of its 80% band, for the suggestion that
    sizes a safety stock on it. `info`: the forecast's DemandModel. A group whose calibration
    factor hit its bound, or whose calibrated band held under 80% of the held-out weeks (a x4
    factor learnt on promotion-driven products stretched the smooth sellers' bands beside them,
    and still covered 77%), and a product whose forecast was one-sided in cross-validation."""
    out: dict[str, str] = {}
    groups = {str(c["group"]): c for c in getattr(info, "calibration", []) or []}
    if "band_group" in forecasts:
        first = forecasts.groupby("unique_id", sort=False)["band_group"].first().dropna()
        for pid, group in first.items():
            c = groups.get(str(group))
            if not c:
                continue
            after, oos = c.get("held_out_coverage"), c.get("out_of_sample_coverage")
            if not (c.get("capped") or (after is not None and after < 0.8)):
                continue
            said = f"its 80% band (group {group}) is scaled x{c['factor']:g}"
            said += ", the factor's bound," if c.get("capped") else ""
            said += f" and held {after:.0%} of held-out weeks" if after is not None else ""
            said += f" ({oos:.0%} out of sample)" if oos is not None else ""
            out[str(pid)] = said + ": the safety stock rests on a band under 80%"
    for pid, median in (getattr(info, "one_sided_bands", {}) or {}).items():
        side = "above" if median < 0 else "below"
        said = (
            f"its forecast was {side} the actual in more than 90% of its cross-validation weeks "
            f"(median error {median:+.1f} a week)"
        )
        out[str(pid)] = f"{out[str(pid)]}; {said}" if str(pid) in out else said
    return out


def _number(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def replenish(
    forecasts: pd.DataFrame,
    products: pd.DataFrame,
    *,
    service_level: float = 0.95,
    review_days: float = 7.0,
    as_of: Any = None,
    history: pd.DataFrame | None = None,
    stock_at: Any = None,
    warnings: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One suggestion per catalog product and per product with a forecast. `forecasts`:
    `unique_id, ds, units, lo, hi` per product and week; `products`: `product_id, stock,
    lead_time_days` (as they were at `as_of`). The protection period starts at `as_of` (None:
    at the first forecast week's Monday). `history` (`unique_id, ds, y`: the weekly sales the
    forecasts learnt from): a slow seller's reorder point is at least the `service_level`
    quantile of what its recent protection periods sold (`lumpy_protection`). `stock_at`: when
    the stock figures were counted (the products version's delivery): the protection period
    starts then when that is after `as_of` (a stock counted on Monday covers no demand of the
    Saturday before it). `warnings`: per product, the band's calibration warning
    (`band_warnings`), in `interval_warning` and the reason."""
    if not 0.5 <= service_level < 1.0:
        raise ValueError(f"--service-level {service_level}: use a probability in [0.5, 1)")
    z = float(norm.ppf(service_level))
    warnings = warnings or {}
    if as_of is not None and stock_at is not None and pd.Timestamp(stock_at) > pd.Timestamp(as_of):
        as_of = pd.Timestamp(stock_at)  # the days between are over before the stock was counted
    if as_of is not None and len(forecasts):
        # weeks over before as-of (forecasts that start at the last week with data, weeks before
        # as-of: `forecast_demand`) are no part of the protection period
        forecasts = forecasts[pd.to_datetime(forecasts["ds"]) + pd.Timedelta(days=7) > pd.Timestamp(as_of)]
    by_product = {str(k): g.sort_values("ds") for k, g in forecasts.groupby("unique_id", sort=False)}
    sold = (
        {
            str(k): g.sort_values("ds")["y"].to_numpy(dtype=float)
            for k, g in history.groupby("unique_id", sort=False)
        }
        if history is not None and len(history)
        else {}
    )
    catalog = {str(r.product_id): r for r in products.itertuples(index=False)}
    # every catalog product (with its reason when nothing can be suggested) and every product
    # with a forecast
    ids = sorted(set(by_product) | set(catalog))
    out: list[dict[str, Any]] = []
    for pid in ids:
        row = catalog.get(pid)
        stock = _number(row.stock) if row is not None else None
        lead = _number(row.lead_time_days) if row is not None else None
        weeks = by_product.get(pid)
        weekly = float(weeks["units"].head(4).mean()) if weeks is not None else 0.0
        stopped = (
            _number(weeks["stopped_selling_weeks"].iloc[0])
            if weeks is not None and "stopped_selling_weeks" in weeks
            else None
        )
        rec: dict[str, Any] = {
            "product_id": pid,
            "stock": None if stock is None else int(stock),
            "lead_time_days": lead,
            "review_days": review_days,
            "weekly_demand": round(weekly, 3),
            "demand_lead_time": None,
            "demand_sd": None,
            "safety_stock": None,
            "reorder_point": None,
            "order_qty": None,
            "weeks_of_cover": round(stock / weekly, 2) if stock is not None and weekly > 0 else None,
            "service_level": service_level,
            "stopped_selling_weeks": None if stopped is None else int(stopped),
            "protection_from": None if as_of is None else pd.Timestamp(as_of).isoformat(),
            "interval_warning": warnings.get(pid),
        }
        if row is None:
            rec["reason"] = "not in the catalog: sold up to as-of, but no stock figure or lead time is known"
        elif stock is None:
            rec["reason"] = "no stock figure in the catalog: nothing to compare the demand with"
        elif lead is None:
            rec["reason"] = "no lead_time_days in the catalog: the protection period is unknown"
        elif stopped is not None:
            # forecast at zero (`_demand.stopped_selling`): no reorder point from its old sales
            rec.update(demand_lead_time=0.0, demand_sd=0.0, safety_stock=0.0, reorder_point=0.0, order_qty=0)
            rec["reason"] = (
                f"stopped selling: no sale in the last {int(stopped)} weeks (longer than any quiet spell "
                f"before, improbable at the rate it sold): forecast at zero ({STOPPED_MODEL}), no order "
                f"suggested; delisted, dead stock ({int(stock)} on hand), or sales not recorded? If it is "
                "to sell again, order by hand"
            )
        elif weeks is None:
            rec.update(demand_lead_time=0.0, demand_sd=0.0, safety_stock=0.0, reorder_point=0.0, order_qty=0)
            rec["reason"] = "no sales up to as-of: no demand to cover"
        else:
            days = lead + review_days
            start = 0.0 if as_of is None else elapsed_days(weeks["ds"].iloc[0], as_of)
            demand, sd = protection_demand(weeks, days, start)
            safety = z * sd
            rop = demand + safety
            lumpy = lumpy_protection(sold.get(pid), days, service_level)
            lumped = False  # (the reorder point is the slow seller's lumps, not mean + z sd)
            if lumpy is not None and lumpy > rop:
                rop, safety, lumped = lumpy, lumpy - demand, True
            qty = max(0, math.ceil(rop - stock - 1e-9))
            rec.update(
                demand_lead_time=round(demand, 3),
                demand_sd=round(sd, 3),
                safety_stock=round(safety, 3),
                reorder_point=round(rop, 3),
                order_qty=qty,
            )
            span = f"{lead:g} d lead time + {review_days:g} d review"
            if "model" in weeks and str(weeks["model"].iloc[0]) == PARTIAL_WEEK_MODEL:
                span += ", at its rate since it first sold this week"
            if lumped:
                span += (
                    f"; a slow seller: the reorder point is what {service_level:.0%} of its last "
                    f"{LUMPY_WEEKS} weeks' {days:g}-day spans sold at most"
                )
            if pid in warnings:
                span += f"; {warnings[pid]}"
            if qty > 0:
                rec["reason"] = (
                    f"stock {int(stock)} is below the reorder point {rop:.1f} (demand {demand:.1f} over "
                    f"{span}, safety stock {safety:.1f} for a {service_level:.0%} service level): order {qty}"
                )
            else:
                rec["reason"] = (
                    f"stock {int(stock)} covers the reorder point {rop:.1f} (demand {demand:.1f} over "
                    f"{span}, safety stock {safety:.1f}): no order"
                )
        out.append(rec)
    return out


__all__ = [
    "REPLENISHMENT_FIELDS",
    "band_warnings",
    "Z80",
    "elapsed_days",
    "lumpy_protection",
    "protection_demand",
    "replenish",
]
