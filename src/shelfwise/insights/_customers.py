"""Customer profiles: RFM, expected purchases, churn risk, value, segment and tastes, point in time.

Definitions (the output fields, DESIGN.md):
- a *purchase* is an order: the purchase events of one user that share a session/order id (or,
  without one, a day). `frequency` counts orders up to `as_of`, `recency_days` is the time since
  the last one, `monetary` the total paid (a line's `value`, else the product's price x quantity:
  `monetary_source` says which, in the report and the command's output).
- `expected_purchases`: orders expected in the `horizon_days` after `as_of`; `churn_risk`: the
  probability of no order in that horizon; `expected_value`: expected orders x the user's average
  order value (shrunk towards the shop's for users with few orders).

The model is learned from the shop's own history, as a forecaster is: at several earlier cut
dates, each user's features (RFM, order rhythm, recent browsing, carts and searches) are paired
with what they did in the horizon after that cut; gradient-boosted trees (LightGBM: a binary
model for churn, a Poisson model for the count) learn the mapping and are applied at `as_of`.
Nothing after `as_of` is read. The probabilistic models the field starts from (BG/NBD,
Pareto/NBD) are the anchors it is measured against (benchmarks/insights.py); they use recency
and frequency only, while browsing and the order rhythm carry most of the extra signal.
With too little history for a single cut (less than one horizon plus 30 days), a constant-rate
Poisson estimate per user stands in (`model: "rate"` in the report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ._bgnbd import BGNBD

DAY = np.timedelta64(1, "D")
# event types that are no shopper's activity: a return undoes a purchase, and a no_sale row is
# the shop's record of a product-day (the warehouse reader leaves those out already)
NOT_ACTIVITY = ("purchase", "return", "no_sale")
CUT_STEP_DAYS = 30  # training cuts every 30 days back from as_of - horizon
MAX_CUTS = 12
MIN_HISTORY_DAYS = 30  # a cut needs this much data before it
MIN_TRAIN_ROWS = 50
PRIOR_ORDERS = 2.0
MIN_BGNBD_CUSTOMERS = 20
# the trees learn what a customer does next only from customers: the training cuts must hold
# this many rows of users with an order before their cut (a shop whose only orders came in the
# last weeks trained them on prospects alone, and every buyer of the day read 99.9% churn)
MIN_TRAIN_CUSTOMERS = 20
SEASONAL_CLIP = 2.0
DEFAULT_TREES, MIN_TREES, MAX_TREES, EARLY_STOP = (
    200,
    10,
    1000,
    50,
)  # shrinkage of a user's average order value towards the shop's

FEATURES = (
    "frequency",
    "recency_days",
    "age_days",
    "tenure_days",
    "monetary",
    "avg_order_value",
    "orders_30",
    "orders_90",
    "orders_180",
    "orders_365",
    "mean_gap_days",
    "std_gap_days",
    "gap_ratio",
    "units",
    "n_categories",
    "views_30",
    "views_90",
    "carts_90",
    "searches_90",
    "events_30",
    "days_since_event",
    "days_since_cart",
    "bgnbd_expected",
    "bgnbd_p_alive",
)

# The usual RFM segment map: (recency score, frequency score) in 1..5 -> name
_SEGMENT_MAP: tuple[tuple[str, str, str], ...] = (
    ("12", "12", "hibernating"),
    ("12", "34", "at_risk"),
    ("12", "5", "cant_lose"),
    ("3", "12", "about_to_sleep"),
    ("3", "3", "need_attention"),
    ("34", "45", "loyal"),
    ("4", "1", "promising"),
    ("5", "1", "new"),
    ("45", "23", "potential_loyalist"),
    ("5", "45", "champions"),
)
SEGMENTS = (*sorted({s for _, _, s in _SEGMENT_MAP}), "prospect")


@dataclass
class CustomerModel:
    """What `profile_customers` fitted, for reports and lineage."""

    model: str  # "gbm", "bgnbd" (too little history for cuts) or "rate" (too few customers)
    cuts: list[str] = field(default_factory=list)
    train_rows: int = 0
    as_of: str = ""
    horizon_days: int = 90
    seasonal_factor: float = 1.0
    churn_weight: float = 1.0  # the trees' share against BG/NBD, chosen on the latest cut
    count_weight: float = 1.0
    # users who never bought (segment "prospect") without the trees (model "bgnbd"/"rate"): the
    # base rate of first orders among the non-buyers of a held-out earlier window
    # (`prospect_base_rate`), scaled to the horizon; {} when the trees scored them
    prospects: dict[str, Any] = field(default_factory=dict)
    # profiles whose expected orders were raised to their P(at least one order): P(N >= 1) <=
    # E[N] for a count, and the two are estimated by different models (`consistent`)
    raised_to_churn: int = 0
    # why the trees were not fitted when history had cuts (said in the reports)
    note: str = ""


def orders_from_events(events: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """One row per order: user_id, ts (its first line's time), value, units."""
    p = events[events["event_type"] == "purchase"].copy()
    if p.empty:
        return pd.DataFrame({"user_id": [], "ts": [], "value": [], "units": []}).astype(
            {"ts": "datetime64[us]", "value": float, "units": float}
        )
    price = products.set_index("product_id")["price"] if len(products) else pd.Series(dtype=float)
    qty = pd.to_numeric(p["quantity"], errors="coerce").fillna(1.0)
    listed = p["product_id"].map(price).astype(float) * qty
    p["line_value"] = pd.to_numeric(p["value"], errors="coerce").fillna(listed).fillna(0.0)
    p["units"] = qty
    day = p["timestamp"].dt.strftime("%Y-%m-%d")
    p["order_key"] = p["session_id"].astype("string").fillna("day:" + day)
    g = p.groupby(["user_id", "order_key"], sort=False)
    out = g.agg(ts=("timestamp", "min"), value=("line_value", "sum"), units=("units", "sum")).reset_index()
    return out.drop(columns="order_key").sort_values("ts", kind="stable").reset_index(drop=True)


def money_currency(events: pd.DataFrame, products: pd.DataFrame) -> str | None:
    """The one currency (ISO 4217) of the money a customer's `monetary` sums: each purchase
    line's own `currency`, else its product's (the catalog's price's currency); None where the
    shop's files name none. A line with no currency of its own or its product's is of the one
    currency the other lines name (a live `/v1/events` purchase carries none: `monetary_source`
    counts them). Money in more than one currency is refused, naming them with their counts:
    shelfwise does not convert, and a sum of euros and pounds is no figure. So is money of
    unknown currency beside a known one, counted apart: a line whose currency code was given
    but could not be read (curated as `UNKNOWN_CURRENCY`, `Kč`; never summed "in EUR")."""
    return _line_currencies(events, products)[0]


def _line_currencies(events: pd.DataFrame, products: pd.DataFrame) -> tuple[str | None, int]:
    """`money_currency`, and how many purchase lines name no currency (none of their own or
    their product's) and are taken to be in it."""
    from ..errors import ShelfwiseError
    from ..governance import UNKNOWN_CURRENCY

    p = events[events["event_type"] == "purchase"] if "event_type" in events else events
    own = p["currency"] if "currency" in p else pd.Series(None, index=p.index, dtype=object)
    own = own.astype(object).where(own.notna(), None)
    if "currency" in products and len(products) and "product_id" in p:
        cur = (
            products.dropna(subset=["currency"])
            .drop_duplicates("product_id")
            .set_index("product_id")["currency"]
        )
        listed = p["product_id"].map(cur)
        line = own.where(own.notna(), listed.astype(object).where(listed.notna(), None))
    else:
        line = own
    named = line.dropna().astype(str)
    seen: dict[str, int] = {}
    for c, n in named[named != UNKNOWN_CURRENCY].value_counts().items():
        seen[str(c)] = int(n)
    unknown = int((named == UNKNOWN_CURRENCY).sum())
    if len(seen) > 1 or (seen and unknown):
        said = ", ".join(
            f"{c} {n:,} purchase line(s)" for c, n in sorted(seen.items(), key=lambda x: (-x[1], x[0]))
        )
        if unknown:
            said += (
                f", and {unknown:,} purchase line(s) of unknown currency (a currency code shelfwise cannot "
                f"read, curated as {UNKNOWN_CURRENCY})"
            )
        many = f"money in {len(seen)} currencies" if len(seen) > 1 else "money of more than one currency"
        raise ShelfwiseError(
            f"{many}: {said} - shelfwise does not convert, and will not add "
            "different currencies into one customer's monetary value or one revenue figure: ingest "
            "each currency's (store's) files into its own --workdir"
            + (", with each line's ISO 4217 code in its currency column" if unknown else "")
        )
    return next(iter(seen), None), int(line.isna().sum()) if seen else 0


def monetary_source(events: pd.DataFrame, products: pd.DataFrame) -> str:
    """Where `monetary` (and an order's value) comes from, in words: the purchase lines' `value`
    (what the shop's export says was paid for the line), or the catalog's price x quantity where
    a line has none (the price the catalog says now: not what was paid on sale or at an older
    price), or neither; and the one currency the files name, with how many lines name none and
    are taken to be in it ("in EUR (3 lines name none)")."""
    p = events[events["event_type"] == "purchase"]
    n = len(p)
    if not n:
        return "no purchases"
    currency, unnamed = _line_currencies(events, products)
    if currency:  # (the one currency the files name: said with the figure's source)
        none = f" ({unnamed:,} {'line names' if unnamed == 1 else 'lines name'} none)" if unnamed else ""
        return f"{_monetary_source(p, products, n)}, in {currency}{none}"
    return _monetary_source(p, products, n)


def _monetary_source(p: pd.DataFrame, products: pd.DataFrame, n: int) -> str:
    valued = int(pd.to_numeric(p["value"], errors="coerce").notna().sum())
    priced = set(products.loc[products["price"].notna(), "product_id"]) if len(products) else set()
    if valued == n:
        return "the purchase lines' value (events.value)"
    rest = p[pd.to_numeric(p["value"], errors="coerce").isna()]
    listed = int(rest["product_id"].isin(priced).sum())
    fallback = f"the catalog's current price x quantity for {listed:,} line(s) without a value" + (
        f", 0 for {len(rest) - listed:,} without a price either" if listed < len(rest) else ""
    )
    if not valued:
        return f"{fallback} (no purchase line has a value: map events.value to what a line paid)"
    return f"the purchase lines' value for {valued:,} of {n:,} line(s); {fallback}"


def features_at(
    events: pd.DataFrame, orders: pd.DataFrame, products: pd.DataFrame, cut: Any, horizon_days: int
) -> pd.DataFrame:
    """Per user with any event at or before `cut`: the FEATURES, from those events only (BG/NBD
    fitted on the orders up to `cut`)."""
    cut = np.datetime64(pd.Timestamp(cut).to_datetime64(), "us")
    ev = events[events["timestamp"] <= cut]
    od = orders[orders["ts"] <= cut]
    users = pd.Index(ev["user_id"].unique(), name="user_id")
    f = pd.DataFrame(index=users)

    # ages are counted from the shop's latest event up to the cut, what the default as-of is:
    # `--as-of 2017-12-30` (up to that day's last microsecond) counted from the day's end, and
    # every recency read up to a day more with the date given than without
    anchor = ev["timestamp"].to_numpy(dtype="datetime64[us]").max() if len(ev) else cut

    def days(ts: pd.Series) -> pd.Series:
        return (anchor - ts.to_numpy(dtype="datetime64[us]")) / DAY

    g = od.groupby("user_id")
    f["frequency"] = g.size().reindex(users).fillna(0.0)
    last = g["ts"].max().reindex(users)
    first = g["ts"].min().reindex(users)
    f["recency_days"] = pd.Series(days(last), index=users)
    f["age_days"] = pd.Series(days(first), index=users)
    f["tenure_days"] = pd.Series(days(ev.groupby("user_id")["timestamp"].min().reindex(users)), index=users)
    f["monetary"] = g["value"].sum().reindex(users).fillna(0.0)
    f["avg_order_value"] = f["monetary"] / f["frequency"].where(f["frequency"] > 0)
    od_age = pd.Series(days(od["ts"]), index=od.index)
    for w in (30, 90, 180, 365):
        f[f"orders_{w}"] = od[od_age <= w].groupby("user_id").size().reindex(users).fillna(0.0)
    gaps = od.assign(gap=od.groupby("user_id")["ts"].diff() / pd.Timedelta(days=1)).dropna(subset=["gap"])
    gg = gaps.groupby("user_id")["gap"]
    f["mean_gap_days"] = gg.mean().reindex(users)
    f["std_gap_days"] = gg.std().reindex(users)
    f["gap_ratio"] = f["recency_days"] / f["mean_gap_days"].clip(lower=1.0)
    f["units"] = g["units"].sum().reindex(users).fillna(0.0)
    bought = ev[ev["event_type"] == "purchase"]
    cat = bought["product_id"].map(products.set_index("product_id")["category"]) if len(products) else None
    f["n_categories"] = (
        bought.assign(c=cat).groupby("user_id")["c"].nunique().reindex(users).fillna(0.0)
        if cat is not None
        else 0.0
    )
    ev_age = pd.Series(days(ev["timestamp"]), index=ev.index)
    kinds = ev["event_type"]
    for name, mask, w in (
        ("views_30", kinds.isin(["view", "click"]), 30),
        ("views_90", kinds.isin(["view", "click"]), 90),
        ("carts_90", kinds == "add_to_cart", 90),
        ("searches_90", kinds == "search", 90),
        ("events_30", ~kinds.isin(NOT_ACTIVITY), 30),
    ):
        f[name] = ev[mask & (ev_age <= w)].groupby("user_id").size().reindex(users).fillna(0.0)
    acted = ev[~kinds.isin(NOT_ACTIVITY[1:])]  # a purchase is an action, a return none
    f["days_since_event"] = pd.Series(
        days(acted.groupby("user_id")["timestamp"].max().reindex(users)), index=users
    )
    carts = ev[kinds == "add_to_cart"].groupby("user_id")["timestamp"].max().reindex(users)
    f["days_since_cart"] = pd.Series(days(carts), index=users)
    f["bgnbd_expected"], f["bgnbd_p_alive"] = np.nan, np.nan
    b = f[f["frequency"] > 0]
    x, t_x, T = b["frequency"] - 1, b["age_days"] - b["recency_days"], b["age_days"]
    if len(b) >= MIN_BGNBD_CUSTOMERS and (x > 0).any():
        m = BGNBD.fit(x.to_numpy(), t_x.to_numpy(), T.to_numpy())
        f.loc[b.index, "bgnbd_expected"] = m.expected(
            horizon_days, x.to_numpy(), t_x.to_numpy(), T.to_numpy()
        )
        f.loc[b.index, "bgnbd_p_alive"] = m.p_alive(x.to_numpy(), t_x.to_numpy(), T.to_numpy())
    return f.astype(float)


def labels_after(orders: pd.DataFrame, users: pd.Index, cut: Any, horizon_days: int) -> pd.Series:
    """Orders of each user in (cut, cut + horizon]."""
    cut = pd.Timestamp(cut)
    end = cut + pd.Timedelta(days=horizon_days)
    win = orders[(orders["ts"] > cut) & (orders["ts"] <= end)]
    return win.groupby("user_id").size().reindex(users).fillna(0.0).astype(float)


def training_cuts(first_event: Any, as_of: Any, horizon_days: int) -> list[pd.Timestamp]:
    """Cut dates whose horizon ends by `as_of`, every CUT_STEP_DAYS back, each with history before it."""
    start = pd.Timestamp(first_event) + pd.Timedelta(days=MIN_HISTORY_DAYS)
    cuts: list[pd.Timestamp] = []
    c = pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)
    while c >= start and len(cuts) < MAX_CUTS:
        cuts.append(c)
        c -= pd.Timedelta(days=CUT_STEP_DAYS)
    return cuts


def seasonal_factor(orders: pd.DataFrame, as_of: Any, cuts: list[pd.Timestamp], horizon_days: int) -> float:
    """How much busier the horizon after `as_of` was than the training cuts' horizons, one year
    earlier (the shop's orders in each window shifted back 52 weeks). The trees learn the level of
    the windows they were trained on; a shop with a Christmas peak needs that level moved to the
    season being predicted. 1.0 without a full year of history before the earliest window."""
    if not cuts or horizon_days > 364 or orders.empty:
        return 1.0
    year = pd.Timedelta(weeks=52)
    h = pd.Timedelta(days=horizon_days)
    if orders["ts"].min() > min(cuts) - year:
        return 1.0
    ts = orders["ts"]

    def n(start: pd.Timestamp) -> int:
        return int(((ts > start - year) & (ts <= start - year + h)).sum())

    base = float(np.mean([n(c) for c in cuts]))
    if base <= 0:
        return 1.0
    return float(np.clip(n(pd.Timestamp(as_of)) / base, 1 / SEASONAL_CLIP, SEASONAL_CLIP))


def _gbm_params(seed: int) -> dict[str, Any]:
    # small trees, heavy row/feature bagging: a few thousand rows per shop is the common case
    return dict(
        n_estimators=300,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )


def validation_cuts(n_cuts: int) -> int:
    """How many of the latest cuts check the models trained on the earlier ones: two once there
    are six (one cut's verdict on a noisy shop flips from month to month), one from three on."""
    return 2 if n_cuts >= 6 else 1 if n_cuts >= 3 else 0


def _fit_gbm(
    cls: Any, objective: str, parts: list[tuple[pd.DataFrame, pd.Series]], target: Any, seed: int
) -> tuple[Any, np.ndarray | None]:
    """A model fitted on every cut, with as many trees as predicting the latest cut from the
    earlier ones wanted (early stopping), and that probe's predictions for the latest cut (None
    with fewer than 3 cuts)."""
    from .._lazy import lightgbm

    lgb = lightgbm(sklearn_api=True)

    cols = list(FEATURES)
    x = pd.concat([p[0] for p in parts])[cols]
    y = target(pd.concat([p[1] for p in parts]))
    n_trees, val = DEFAULT_TREES, None
    nv = validation_cuts(len(parts))
    if nv:
        xa = pd.concat([p[0] for p in parts[nv:]])[cols]
        ya = target(pd.concat([p[1] for p in parts[nv:]]))
        xv = pd.concat([p[0] for p in parts[:nv]])[cols]
        yv = target(pd.concat([p[1] for p in parts[:nv]]))
        if ya.nunique() > 1 and yv.nunique() > 1:
            probe = cls(objective=objective, **{**_gbm_params(seed), "n_estimators": MAX_TREES})
            probe.fit(
                xa, ya, eval_X=(xv,), eval_y=(yv,), callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)]
            )
            n_trees = max(MIN_TREES, int(probe.best_iteration_ or DEFAULT_TREES))
            val = probe.predict_proba(xv)[:, 1] if objective == "binary" else probe.predict(xv)
    model = cls(objective=objective, **{**_gbm_params(seed), "n_estimators": n_trees})
    model.fit(x, y)
    return model, val


def _bgnbd_churn(f: pd.DataFrame) -> pd.Series:
    """BG/NBD's P(no order in the horizon): P(dead) + P(alive) x the Poisson chance of zero."""
    alive = f["bgnbd_p_alive"].clip(lower=1e-6)
    return (1 - alive) + alive * np.exp(-f["bgnbd_expected"] / alive)


def _blend_weight(y: np.ndarray, ours: np.ndarray, anchor: np.ndarray, score: Any) -> float:
    """The weight of the trees against BG/NBD that scores best on the latest cut (predicted by
    models trained on the earlier ones): where the data hold little beyond recency and frequency
    (a shop whose customers all buy at random) the blend leans on BG/NBD's shrinkage."""
    ok = np.isfinite(anchor)
    if ok.sum() < MIN_BGNBD_CUSTOMERS or len(np.unique(y[ok])) < 2:
        return 1.0
    grid = np.linspace(0.0, 1.0, 11)
    scores = np.round([score(y[ok], w * ours[ok] + (1 - w) * anchor[ok]) for w in grid], 6)
    return float(grid[scores == scores.max()].max())  # ties: the trees


def prospect_base_rate(
    events: pd.DataFrame, orders: pd.DataFrame, as_of: Any, horizon_days: int
) -> dict[str, Any]:
    """What a user who never bought does in the horizon, read from the shop's own history: at a
    cut one window before `as_of` (the horizon, or half the history when it is shorter), the
    users with events but no order by then, and the share of them who ordered in the window
    after it (and their mean orders), scaled to `horizon_days` as a constant rate would be.
    `p_order` None where no user without an order is known at the cut."""
    as_of = pd.Timestamp(as_of)
    first = pd.Timestamp(events["timestamp"].min()) if len(events) else as_of
    window = min(float(horizon_days), (as_of - first) / pd.Timedelta(days=1) / 2)
    out: dict[str, Any] = {"window_days": round(window, 2), "non_buyers": 0, "p_order": None}
    if window < 1:
        return out | {"reason": "less than two days of history: no earlier window to learn from"}
    cut = as_of - pd.Timedelta(days=window)
    seen = set(events.loc[events["timestamp"] <= cut, "user_id"])
    bought = set(orders.loc[orders["ts"] <= cut, "user_id"])
    non_buyers = seen - bought
    out |= {"cut": cut.isoformat(), "non_buyers": len(non_buyers)}
    if not non_buyers:
        return out | {"reason": f"no user without an order by {cut.date()}"}
    after = orders[(orders["ts"] > cut) & (orders["ts"] <= as_of) & orders["user_id"].isin(non_buyers)]
    n = after.groupby("user_id").size()
    p_w, m_w = len(n) / len(non_buyers), float(n.sum()) / len(non_buyers)
    k = horizon_days / window
    return out | {
        "ordered_in_window": len(n),
        "p_order": float(1 - (1 - p_w) ** k),
        "expected_orders": m_w * k,
    }


def consistent(now: pd.DataFrame) -> int:
    """Make `expected_purchases` at least the probability of an order (1 - churn_risk): for a
    count of orders, P(at least one) cannot exceed the expected number. The churn model (a
    classifier, the better judge of "any order") keeps its answer; the count is raised. Returns
    how many profiles were raised."""
    p_any = 1.0 - now["churn_risk"]
    low = now["expected_purchases"] < p_any - 1e-9
    now.loc[low, "expected_purchases"] = p_any[low]
    return int(low.sum())


def fit_predict(
    events: pd.DataFrame,
    products: pd.DataFrame,
    as_of: datetime,
    horizon_days: int = 90,
    *,
    seed: int = 0,
) -> tuple[pd.DataFrame, CustomerModel]:
    """Features at `as_of` with `expected_purchases` and `churn_risk` for every user with an event
    up to `as_of` (the events must already be cut there)."""
    from sklearn.metrics import roc_auc_score

    from .._lazy import lightgbm

    lgb = lightgbm(sklearn_api=True)  # (its estimator classes)

    events = events[events["timestamp"] <= pd.Timestamp(as_of)]
    orders = orders_from_events(events, products)
    now = features_at(events, orders, products, as_of, horizon_days)
    info = CustomerModel("rate", as_of=pd.Timestamp(as_of).isoformat(), horizon_days=horizon_days)
    parts = []
    if len(events):
        for cut in training_cuts(events["timestamp"].min(), as_of, horizon_days):
            x = features_at(events, orders, products, cut, horizon_days)
            parts.append((x, labels_after(orders, x.index, cut, horizon_days)))
            info.cuts.append(cut.isoformat())
    rows = sum(len(x) for x, _ in parts)
    ys = pd.concat([y for _, y in parts]) if parts else pd.Series(dtype=float)
    bg_churn = _bgnbd_churn(now)
    customer_rows = sum(int((x["frequency"] > 0).sum()) for x, _ in parts)
    if parts and customer_rows < MIN_TRAIN_CUSTOMERS:
        info.note = (
            f"the training cuts hold {customer_rows} row(s) of customers (an order before the cut), "
            f"fewer than {MIN_TRAIN_CUSTOMERS}: nothing to learn what a customer does next from; "
            "BG/NBD (or, where it cannot be fitted, a constant order rate per customer) stands in"
        )
    if rows >= MIN_TRAIN_ROWS and 0 < (ys > 0).mean() < 1 and customer_rows >= MIN_TRAIN_CUSTOMERS:
        clf, churn_val = _fit_gbm(lgb.LGBMClassifier, "binary", parts, lambda y: (y == 0).astype(int), seed)
        reg, count_val = _fit_gbm(lgb.LGBMRegressor, "poisson", parts, lambda y: y, seed)
        xn = now[list(FEATURES)]
        churn, count = clf.predict_proba(xn)[:, 1], reg.predict(xn)
        nv = validation_cuts(len(parts))
        latest = pd.concat([p[0] for p in parts[:nv]]) if nv else parts[0][0]
        y_latest = pd.concat([p[1] for p in parts[:nv]]).to_numpy() if nv else parts[0][1].to_numpy()
        if churn_val is not None:
            info.churn_weight = _blend_weight(
                (y_latest == 0).astype(int), churn_val, _bgnbd_churn(latest).to_numpy(), roc_auc_score
            )
        if count_val is not None:
            info.count_weight = _blend_weight(
                y_latest, count_val, latest["bgnbd_expected"].to_numpy(), lambda y, p: -np.abs(y - p).mean()
            )
        now["churn_risk"] = np.where(
            bg_churn.notna(), info.churn_weight * churn + (1 - info.churn_weight) * bg_churn.fillna(0), churn
        )
        bg_count = now["bgnbd_expected"]
        now["expected_purchases"] = np.where(
            bg_count.notna(), info.count_weight * count + (1 - info.count_weight) * bg_count.fillna(0), count
        )
        info.model, info.train_rows = "gbm", rows
        info.seasonal_factor = seasonal_factor(
            orders, as_of, [pd.Timestamp(c) for c in info.cuts], horizon_days
        )
        # Poisson: scaling the rate by s scales expected orders by s and raises P(none) to the s
        now["expected_purchases"] *= info.seasonal_factor
        now["churn_risk"] = now["churn_risk"] ** info.seasonal_factor
    else:
        # too little history to learn from: BG/NBD alone (a constant order rate per user where it
        # could not be fitted)
        rate = now["frequency"] / now["tenure_days"].clip(lower=horizon_days)
        now["expected_purchases"] = now["bgnbd_expected"].fillna(rate * horizon_days)
        now["churn_risk"] = bg_churn.fillna(np.exp(-rate * horizon_days))
        info.model = "bgnbd" if now["bgnbd_expected"].notna().any() else "rate"
        # users who never bought have no rate of their own: neither "certain to churn" nor
        # "0 orders", but what the non-buyers of an earlier window did
        info.prospects = prospect_base_rate(events, orders, as_of, horizon_days)
        never = now["frequency"] == 0
        if info.prospects["p_order"] is not None and never.any():
            now.loc[never, "churn_risk"] = 1.0 - info.prospects["p_order"]
            now.loc[never, "expected_purchases"] = info.prospects["expected_orders"]
    info.raised_to_churn = consistent(now)
    shop_aov = float(orders["value"].mean()) if len(orders) else 0.0
    aov = (now["monetary"] + PRIOR_ORDERS * shop_aov) / (now["frequency"] + PRIOR_ORDERS)
    now["expected_value"] = now["expected_purchases"] * aov
    return now, info


def rfm_segments(f: pd.DataFrame) -> pd.Series:
    """Named RFM segments from recency and frequency quintile scores among buyers; non-buyers are
    'prospect'."""
    buyers = f["frequency"] > 0
    out = pd.Series("prospect", index=f.index, dtype=object)
    if not buyers.any():
        return out
    b = f[buyers]
    # rank first: quintiles of tied values (many users with one order) stay well defined
    r = np.ceil(5 * (-b["recency_days"]).rank(method="average", pct=True)).clip(1, 5).astype(int)
    fr = np.ceil(5 * b["frequency"].rank(method="average", pct=True)).clip(1, 5).astype(int)
    for uid, rs, fs in zip(b.index, r.astype(str), fr.astype(str), strict=True):
        for rset, fset, name in _SEGMENT_MAP:
            if rs in rset and fs in fset:
                out[uid] = name
                break
    return out


def tastes(events: pd.DataFrame, products: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Per user: top categories and brands (purchases weigh 5, carts 3, views/clicks 1) and the
    price level (where the products they engage with sit in their category's price range)."""
    ev = events[events["event_type"].isin(["purchase", "add_to_cart", "view", "click", "rating"])]
    ev = ev[ev["product_id"].notna()]
    weight = ev["event_type"].map({"purchase": 5.0, "add_to_cart": 3.0}).fillna(1.0)
    p = products.drop_duplicates("product_id").set_index("product_id")
    if p.empty:
        idx = pd.Index(events["user_id"].unique(), name="user_id")
        return pd.DataFrame(
            {
                "top_categories": [[]] * len(idx),
                "top_brands": [[]] * len(idx),
                "price_level": [None] * len(idx),
            },
            index=idx,
        )
    top_cat = p["category"].astype("string").str.split(" > ").str[0]
    pct = pd.to_numeric(p["price"], errors="coerce").groupby(top_cat).rank(pct=True)
    d = pd.DataFrame(
        {
            "user_id": ev["user_id"].to_numpy(),
            "w": weight.to_numpy(),
            "category": ev["product_id"].map(p["category"]).to_numpy(),
            "brand": ev["product_id"].map(p["brand"]).to_numpy(),
            "pct": ev["product_id"].map(pct).to_numpy(),
        }
    )

    def top_of(col: str) -> pd.Series:
        s = d.dropna(subset=[col]).groupby(["user_id", col])["w"].sum().reset_index()
        s = s.sort_values(["user_id", "w", col], ascending=[True, False, True], kind="stable")
        return s.groupby("user_id")[col].apply(lambda v: [str(x) for x in v.head(top)])

    out = pd.DataFrame(index=pd.Index(events["user_id"].unique(), name="user_id"))
    out["top_categories"] = top_of("category").reindex(out.index)
    out["top_brands"] = top_of("brand").reindex(out.index)
    dp = d.dropna(subset=["pct"])
    level = (dp["pct"] * dp["w"]).groupby(dp["user_id"]).sum() / dp["w"].groupby(dp["user_id"]).sum()
    level = level.reindex(out.index)
    out["price_level"] = pd.cut(level, [0, 1 / 3, 2 / 3, 1.0001], labels=["budget", "mid", "premium"]).astype(
        object
    )
    for c in ("top_categories", "top_brands"):
        out[c] = out[c].map(lambda v: v if isinstance(v, list) else [])
    out["price_level"] = out["price_level"].where(out["price_level"].notna(), None)
    return out


# the days of browsing `viewed_categories` holds: what a retargeting audience ("looked at, did
# not buy") reaches while the interest is fresh
RETARGET_DAYS = 30
CATEGORY_HISTORY = ("viewed_categories", "bought_categories")


def category_history(
    events: pd.DataFrame, products: pd.DataFrame, as_of: Any, days: int = RETARGET_DAYS
) -> pd.DataFrame:
    """Per user with an event up to `as_of`: `viewed_categories`, the categories of the products
    they viewed, clicked or put in a cart in the `days` up to `as_of`, and `bought_categories`,
    those of every product they bought up to `as_of`; each category with its ancestors ('Bikes'
    and 'Bikes > Road' for a road bike), sorted. What a "looked at, did not buy" audience reads:
    `'Bikes' in viewed_categories and 'Bikes' not in bought_categories`."""
    at = pd.Timestamp(as_of)
    ev = events[(events["timestamp"] <= at) & events["product_id"].notna()]
    users = pd.Index(events.loc[events["timestamp"] <= at, "user_id"].unique(), name="user_id")
    out = pd.DataFrame(index=users)
    cat = products.drop_duplicates("product_id").set_index("product_id")["category"]
    looked = ev["event_type"].isin(["view", "click", "add_to_cart"]) & (
        ev["timestamp"] > at - pd.Timedelta(days=days)
    )
    for col, rows in (
        ("viewed_categories", ev[looked]),
        ("bought_categories", ev[ev["event_type"] == "purchase"]),
    ):
        pairs = pd.DataFrame(
            {"user_id": rows["user_id"].to_numpy(), "category": rows["product_id"].map(cat).to_numpy()}
        )
        pairs = pairs.dropna().drop_duplicates()
        pairs = pairs[pairs["category"].astype(str).str.strip() != ""]
        paths = pairs["category"].astype(str).unique()
        # each path with its ancestors, from the distinct paths (few) rather than per event
        with_parents = {
            p: [" > ".join(parts[: i + 1]) for i in range(len(parts))]
            for p in paths
            for parts in [[x.strip() for x in p.split(">")]]
        }
        pairs = pairs.assign(category=pairs["category"].astype(str).map(with_parents)).explode("category")
        per_user = pairs.groupby("user_id")["category"].agg(lambda v: sorted(set(v)))
        out[col] = per_user.reindex(users).map(lambda v: v if isinstance(v, list) else [])
    return out


# a profile's columns, in the order written (the shop's user id comes first, added by the caller)
PROFILE_COLUMNS = (
    "recency_days",
    "frequency",
    "monetary",
    "expected_purchases",
    "churn_risk",
    "expected_value",
    "segment",
    "top_categories",
    "top_brands",
    "price_level",
)


def check_horizon_days(horizon_days: Any) -> int:
    """`horizon_days` as an int: a whole number of days in 1..3650 (the CLI's bounds; 90.0 and
    numpy's integers are whole numbers), else a ShelfwiseError."""
    from ..errors import whole_number

    return whole_number(horizon_days, "horizon_days", "the days ahead", minimum=1, maximum=3650)


def profile_customers(
    events: pd.DataFrame,
    products: pd.DataFrame,
    as_of: datetime,
    horizon_days: int = 90,
    *,
    seed: int = 0,
) -> tuple[pd.DataFrame, CustomerModel]:
    """The profile table (index: the warehouse's user ids), one row per user with an event up to
    `as_of`. `horizon_days`: a whole number of days >= 1 (0 or -5 gave churn risks above 1 and
    negative expected values)."""
    horizon_days = check_horizon_days(horizon_days)
    money_currency(events, products)  # money in several currencies: refused, not summed
    f, info = fit_predict(events, products, as_of, horizon_days, seed=seed)
    f["segment"] = rfm_segments(f)
    t = tastes(events[events["timestamp"] <= pd.Timestamp(as_of)], products)
    f = f.join(t)
    return f[list(PROFILE_COLUMNS)], info


__all__ = [
    "FEATURES",
    "CATEGORY_HISTORY",
    "PROFILE_COLUMNS",
    "RETARGET_DAYS",
    "category_history",
    "SEGMENTS",
    "CustomerModel",
    "features_at",
    "fit_predict",
    "labels_after",
    "consistent",
    "orders_from_events",
    "profile_customers",
    "prospect_base_rate",
    "rfm_segments",
    "tastes",
    "training_cuts",
]
