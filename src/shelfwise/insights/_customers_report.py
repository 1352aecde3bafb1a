"""reports/customers.{html,json} (issue 18.5): customer profiles summarized for the business.

What it shows: how many customers the profiles cover (and how many were left out for want of the
personalization consent), the segments with their churn risk and expected value, the distribution
of churn risk among buyers, the customers most at risk ranked by the value at stake, the stored
marketing audiences, and the churn model's evaluation on the shop's own data.

Ids: the at-risk list names customers by the warehouse's pseudonyms only. A report is a file that
travels (mail, a shared drive); whoever must contact a customer goes through
`audiences export`, which hands shop ids only to the roles allowed and audits it.
Consent: profiling needs the personalization consent; users without it are left out of every
figure here, exactly as `insights customers` leaves them out (`load_curated(consent=...)`).

Evaluation protocol (`backtest`): the model is fitted as `insights customers` fits it, on the
events up to `as_of - horizon` only, and scored on what each of those customers did in the
`horizon` days up to `as_of` (held out: never seen by the fit): churn AUC (the churn risk against
"no order in the horizon") and the mean absolute error of expected orders, beside BG/NBD fitted on
the same orders (its P(no order) and expected orders). The numbers are out of sample and
reproducible (the fit is seeded). The model fitted at the cut is the one evaluated, and it need
not be the profiles' (fitted at as-of): with too little history before the cut for the trees it
is BG/NBD alone, the anchor itself, and the evaluation says so (`evaluated`) and compares nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ShelfwiseError

CUSTOMERS_REPORT = "customers"
AT_RISK = 0.6  # a buyer whose churn risk is at least this is listed as at risk
AT_RISK_ROWS = 25  # the at-risk list's length (the largest values at stake first)
RISK_BINS = 10  # churn risk histogram: 10 bins of 0.1

__all__ = [
    "AT_RISK",
    "CUSTOMERS_REPORT",
    "backtest",
    "customers_html",
    "customers_summary",
    "evaluated_label",
    "run_customers_report",
]


def _r(v: Any, d: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), d)


def backtest(
    events: pd.DataFrame, products: pd.DataFrame, as_of: datetime, horizon_days: int
) -> dict[str, Any]:
    """The churn model's held-out evaluation (see the module's protocol): fitted at
    `as_of - horizon_days` on the events up to then, scored on the orders in the horizon after.
    `{"computable": False, "reason"}` where the shop's history is too short or every customer
    did the same."""
    from sklearn.metrics import roc_auc_score

    from ._customers import _bgnbd_churn, fit_predict, orders_from_events

    cut = pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)
    protocol = (
        f"fitted on the events up to {cut.date()} (as-of minus the {horizon_days}-day horizon), "
        f"scored on the orders from then to {pd.Timestamp(as_of).date()}, which the fit never saw; "
        "customers: those with an order up to the cut; BG/NBD fitted on the same orders; users "
        "who never bought by the cut (prospects) are scored apart (`prospects`)"
    )
    seen = events[events["timestamp"] <= cut]
    if seen.empty:
        return {"computable": False, "reason": f"no events up to {cut.date()}", "protocol": protocol}
    fitted, info = fit_predict(seen, products, cut.to_pydatetime(), horizon_days)
    orders = orders_from_events(events, products)
    buyers = fitted[fitted["frequency"] > 0]
    future = orders[(orders["ts"] > cut) & (orders["ts"] <= pd.Timestamp(as_of))]
    y = future.groupby("user_id").size().reindex(buyers.index).fillna(0).to_numpy()
    churned = (y == 0).astype(int)
    if len(buyers) < 2 or churned.min() == churned.max():
        why = "fewer than two customers with an order" if len(buyers) < 2 else "every customer did the same"
        return {"computable": False, "reason": f"{why} in the held-out horizon", "protocol": protocol}
    risk = buyers["churn_risk"].to_numpy(dtype=float)
    auc, lo, hi = _auc_interval(churned, risk)
    # the baselines a model must beat to be worth acting on, from what was known at the cut:
    # ranking by days since the last order, and each customer's own past order rate
    recency_auc = float(roc_auc_score(churned, buyers["recency_days"].to_numpy(dtype=float)))
    # (tenure at least the horizon, as the model's own fallback reads it: a first order two
    # hours before the cut is not 90 orders in 90 days)
    own_rate = (
        buyers["frequency"].to_numpy(dtype=float)
        / buyers["age_days"].clip(lower=float(horizon_days)).to_numpy(dtype=float)
    ) * horizon_days
    out: dict[str, Any] = {
        "computable": True,
        "protocol": protocol,
        "cut": cut.isoformat(),
        "customers": len(buyers),
        "churn_rate": _r(churned.mean()),
        "model": info.model,
        "shelfwise": {
            "churn_auc": _r(auc),
            "churn_auc_ci95": [_r(lo), _r(hi)],
            "mae_expected_orders": _r(np.abs(buyers["expected_purchases"].to_numpy() - y).mean()),
            # calibration: the mean predicted against what happened
            "mean_churn_risk": _r(risk.mean()),
            "mean_expected_orders": _r(buyers["expected_purchases"].mean()),
        },
        "actual": {"churn_rate": _r(churned.mean()), "mean_orders": _r(y.mean())},
        "baselines": {
            "recency": {"churn_auc": _r(recency_auc), "how": "days since the last order at the cut"},
            "own_rate": {
                "mae_expected_orders": _r(np.abs(own_rate - y).mean()),
                "how": "each customer's orders per day up to the cut (tenure at least the horizon) x the horizon",
            },
        },
    }
    # no skill: the interval holds chance, or ranking by recency alone does better
    out["skill"] = (
        "none: its churn ranking is no better than chance on held-out customers"
        if lo <= 0.5
        else "below the recency baseline: ranking by days since the last order does better"
        if recency_auc > hi
        else "ok"
    )
    out["prospects"] = _prospects_eval(fitted, orders, cut, pd.Timestamp(as_of))
    bg = _bgnbd_churn(buyers)
    ok = bg.notna().to_numpy() & buyers["bgnbd_expected"].notna().to_numpy()
    # a model that is BG/NBD alone would be compared with itself: the same figures twice
    if info.model != "bgnbd" and ok.sum() >= 2 and churned[ok].min() != churned[ok].max():
        out["bgnbd"] = {
            "churn_auc": _r(roc_auc_score(churned[ok], bg.to_numpy()[ok])),
            "mae_expected_orders": _r(np.abs(buyers["bgnbd_expected"].to_numpy()[ok] - y[ok]).mean()),
            "customers": int(ok.sum()),
        }
    return out


def _auc_interval(y: np.ndarray, score: np.ndarray) -> tuple[float, float, float]:
    """The ROC AUC and its 95% interval from Hanley & McNeil's (1982) standard error: instant and
    deterministic on a million customers, where a bootstrap would refit the AUC hundreds of
    times."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(bool)
    n1, n2 = int(y.sum()), int((~y).sum())
    if not n1 or not n2:
        return 0.5, 0.0, 1.0
    a = float(roc_auc_score(y, score))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a), 0.0) / (n1 * n2))
    return a, max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se)


def _prospects_eval(fitted: pd.DataFrame, orders: pd.DataFrame, cut: Any, as_of: Any) -> dict[str, Any]:
    """The held-out check of what the profiles say of users who never bought (segment
    "prospect"): the share of them who ordered in the horizon against the mean predicted
    P(order), the MAE of expected orders, and the churn AUC where the predictions differ among
    them (a base rate gives every prospect the same figure: no ranking to score)."""
    from sklearn.metrics import roc_auc_score

    pros = fitted[fitted["frequency"] == 0]
    if pros.empty:
        return {"computable": False, "reason": "no user without an order by the cut"}
    future = orders[(orders["ts"] > cut) & (orders["ts"] <= as_of)]
    y = future.groupby("user_id").size().reindex(pros.index).fillna(0).to_numpy()
    churned = (y == 0).astype(int)
    out: dict[str, Any] = {
        "computable": True,
        "prospects": len(pros),
        "ordered_share": _r(1 - churned.mean()),
        "predicted_order_probability": _r(float((1 - pros["churn_risk"]).mean())),
        "mae_expected_orders": _r(np.abs(pros["expected_purchases"].to_numpy() - y).mean()),
        "churn_auc": None,
    }
    if churned.min() != churned.max() and pros["churn_risk"].nunique() > 1:
        out["churn_auc"] = _r(roc_auc_score(churned, pros["churn_risk"]))
    return out


def evaluated_label(evaluated: str, profiles: str) -> str:
    """Which churn model the held-out evaluation scored (`evaluated`: fitted at the cut), said
    beside the model behind the profiles (`profiles`: fitted at as-of, on more history)."""
    if evaluated == "bgnbd":
        label = "BG/NBD alone, the anchor itself (too little history before the cut for the trees)"
    elif evaluated == "gbm":
        label = "gbm (trees blended with BG/NBD) fitted at the cut"
    else:
        label = f"{evaluated} (a constant order rate per customer: BG/NBD could not be fitted at the cut)"
    if evaluated != profiles:
        label += f"; not the profiles' model ({profiles}), which needs more history than the cut leaves"
    return label


def customers_summary(
    workdir: str | Path, *, as_of: str | None = None, horizon_days: int = 90, audiences: bool = True
) -> dict[str, Any]:
    """What reports/customers.json holds (pseudonyms only; users without the personalization
    consent left out)."""
    from ._customers import monetary_source, money_currency, profile_customers
    from ._data import (
        count_customers,
        load_curated,
        no_customer_events,
        parse_as_of,
        require_purchase,
        stale_as_of,
    )

    if not 1 <= horizon_days <= 3650:
        raise ShelfwiseError(f"--horizon-days {horizon_days}: use 1..3650")
    at = parse_as_of(as_of)
    events, products, at = load_curated(workdir, at, consent="personalization")
    if events.empty:
        raise ShelfwiseError(no_customer_events(workdir, at))
    require_purchase(events, at, workdir)
    warning = stale_as_of(events, at)
    prof, info = profile_customers(events, products, at, horizon_days)
    # the customers of the same events whatever their consent (anonymous sessions are none),
    # counted in the warehouse: those the consent left out are the difference
    left_out = count_customers(workdir, at) - int(events["user_id"].nunique())
    buyers = prof[prof["frequency"] > 0]
    segs = (
        prof.groupby("segment")
        .agg(
            customers=("churn_risk", "size"),
            mean_churn_risk=("churn_risk", "mean"),
            expected_purchases=("expected_purchases", "sum"),
            expected_value=("expected_value", "sum"),
            monetary=("monetary", "sum"),
        )
        .sort_values("customers", ascending=False, kind="stable")
    )
    hist, _ = np.histogram(buyers["churn_risk"].clip(0, 1), bins=RISK_BINS, range=(0.0, 1.0))
    # compared as the profiles file shows it (4 decimals): a 0.59996 shown as 0.6000 is at risk
    risky = buyers[buyers["churn_risk"].round(4) >= AT_RISK]
    # the value at stake: what the customer has been worth per order times the orders a year at
    # their rhythm is not known to every shop; what they paid so far is, and ranks the same way
    risky = risky.assign(at_stake=risky["monetary"] * risky["churn_risk"]).sort_values(
        ["at_stake", "churn_risk"], ascending=False, kind="stable"
    )
    at_risk = [
        {
            "pseudonym": str(uid),
            "segment": r.segment,
            "recency_days": _r(r.recency_days, 1),
            "frequency": int(r.frequency),
            "monetary": _r(r.monetary, 2),
            "churn_risk": _r(r.churn_risk),
            "expected_value": _r(r.expected_value, 2),
            "value_at_stake": _r(r.at_stake, 2),
        }
        for uid, r in risky.head(AT_RISK_ROWS).iterrows()
    ]
    evaluation = backtest(events, products, at, horizon_days)
    if evaluation.get("computable"):
        evaluation["evaluated"] = evaluated_label(evaluation["model"], info.model)
    aud: list[dict[str, Any]] | None = None
    if audiences:
        from ._audiences import list_audiences

        aud = [
            {k: a[k] for k in ("name", "kind", "size", "lift", "lift_ci95", "rule", "category", "model")}
            for a in list_audiences(workdir)
        ]
    return {
        "as_of": pd.Timestamp(at).isoformat(),
        "monetary_source": monetary_source(events, products),
        # (the one currency the money is in; None where the files name none)
        "currency": money_currency(events, products),
        # when the report was made (as_of is the data's time): a page showing it says how old its
        # counts are (erasures and consent withdrawals since are not in them)
        "made_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "horizon_days": horizon_days,
        "warning": warning,
        "model": asdict(info),
        "customers": len(prof),
        "buyers": len(buyers),
        "left_out_without_consent": left_out,
        "expected_purchases": _r(prof["expected_purchases"].sum(), 2),
        "expected_value": _r(prof["expected_value"].sum(), 2),
        "mean_churn_risk_buyers": _r(buyers["churn_risk"].mean()) if len(buyers) else None,
        "segments": [
            {"segment": str(s), **{k: _r(v, 4) if k != "customers" else int(v) for k, v in row.items()}}
            for s, row in segs.iterrows()
        ],
        "churn_risk_histogram": {
            "bins": [round(i / RISK_BINS, 2) for i in range(RISK_BINS + 1)],
            "buyers": [int(x) for x in hist],
        },
        "at_risk_threshold": AT_RISK,
        "at_risk_count": len(risky),
        "at_risk": at_risk,
        "audiences": aud,
        "evaluation": evaluation,
    }


def _eval_html(e: dict[str, Any]) -> str:
    from ..reporting._html import html_table

    head = f'<p class="muted">Protocol: {escape(e["protocol"])}.</p>'
    if not e.get("computable"):
        return head + f"<p>Not computable on this shop: {escape(e['reason'])}.</p>"
    anchor_only = e["model"] == "bgnbd"
    name = "BG/NBD (the anchor itself)" if anchor_only else f"shelfwise {e['model']}, fitted at the cut"
    rows = [{"model": name, **e["shelfwise"], "customers": e["customers"]}]
    if "bgnbd" in e and not anchor_only:
        rows.append({"model": "BG/NBD (anchor)", **e["bgnbd"]})
    base = e.get("baselines") or {}
    if base:
        rows.append(
            {
                "model": "baseline: recency (churn) / own past rate (orders)",
                "churn_auc": base["recency"]["churn_auc"],
                "mae_expected_orders": base["own_rate"]["mae_expected_orders"],
                "customers": e["customers"],
            }
        )
    table = html_table(rows, ["model", "churn_auc", "mae_expected_orders", "customers"])
    sw = e["shelfwise"]
    calib = (
        f"<p>Calibration: mean churn risk {sw['mean_churn_risk']} against {e['actual']['churn_rate']} "
        f"churned; mean expected orders {sw['mean_expected_orders']} against {e['actual']['mean_orders']} "
        f"placed. Churn AUC 95% interval {sw['churn_auc_ci95'][0]}-{sw['churn_auc_ci95'][1]}.</p>"
        if "churn_auc_ci95" in sw
        else ""
    )
    skill = e.get("skill", "ok")
    warn = (
        f'<p class="warn"><strong>Skill: {escape(skill)}. Do not act on the churn risks of this report.</strong></p>'
        if skill != "ok"
        else ""
    )
    return head + (
        f"<p>Model evaluated: {escape(e['evaluated'])}.</p>"
        f"<p>{e['customers']} customers with an order by {escape(e['cut'][:10])}; "
        f"{100 * e['churn_rate']:.1f}% of them placed no order in the held-out horizon.</p>{warn}{table}{calib}"
        + _prospects_html(e.get("prospects") or {})
    )


def _prospects_html(p: dict[str, Any]) -> str:
    if not p.get("computable"):
        return ""
    auc = "" if p["churn_auc"] is None else f"; churn AUC among them {p['churn_auc']}"
    return (
        f"<p>Users who had never bought by the cut (prospects, not in the table above): "
        f"{p['prospects']:,}; {100 * p['ordered_share']:.1f}% of them ordered in the held-out horizon, "
        f"against a predicted {100 * p['predicted_order_probability']:.1f}% (MAE of expected orders "
        f"{p['mae_expected_orders']}{auc}).</p>"
    )


def customers_html(s: dict[str, Any]) -> str:
    from ..reporting._charts import bar_chart
    from ..reporting._html import html_table
    from ._reports import _STYLE, _cards

    h = s["churn_risk_histogram"]
    labels = [f"{a:.1f}–{b:.1f}" for a, b in zip(h["bins"][:-1], h["bins"][1:], strict=True)]
    hist_svg = (
        bar_chart(labels, h["buyers"], "Buyers by churn risk", "buyers", horizontal=False)
        if s["buyers"]
        else "<p>No buyer yet.</p>"
    )
    segs = s["segments"]
    seg_svg = bar_chart([r["segment"] for r in segs], [r["customers"] for r in segs], "Customers per segment")
    seg_table = html_table(
        segs, ["segment", "customers", "mean_churn_risk", "expected_purchases", "expected_value", "monetary"]
    )
    risk_table = html_table(
        s["at_risk"],
        ["pseudonym", "segment", "recency_days", "frequency", "monetary", "churn_risk", "expected_value",
         "value_at_stake"],
        empty="<p>No buyer at or above the threshold.</p>",
    )  # fmt: skip
    if s["audiences"] is None:
        aud = "<p>Audiences are for roles that may read them.</p>"
    else:
        aud = html_table(
            [
                {
                    **a,
                    "definition": a["rule"] or a["category"] or a["model"] or "",
                    "lift_ci95": "" if not a["lift_ci95"] else f"[{a['lift_ci95'][0]}, {a['lift_ci95'][1]}]",
                }
                for a in s["audiences"]
            ],
            ["name", "kind", "definition", "size", "lift", "lift_ci95"],
            empty="<p>No audience yet (<code>shelfwise audiences build</code>).</p>",
        )
    m = s["model"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise customers</title>
{_STYLE}</head><body>
<h1>Customers: profiles, churn risk and audiences</h1>
<p class="muted">As of {escape(s["as_of"])}; horizon {s["horizon_days"]} days; model {escape(m["model"])}
({len(m["cuts"])} training cuts, {m["train_rows"]:,} rows; trees' weight against BG/NBD: churn
{m["churn_weight"]:g}, orders {m["count_weight"]:g}). Customers are named by the warehouse's
pseudonyms; {s["left_out_without_consent"]:,} users without the personalization consent are left out
of every figure. Monetary (total paid) from: {escape(s.get("monetary_source") or "")}.</p>
{
        _cards(
            [
                ("customers profiled", f"{s['customers']:,}"),
                ("buyers", f"{s['buyers']:,}"),
                ("churn risk ≥ " + f"{s['at_risk_threshold']:g} (model)", f"{s['at_risk_count']:,}"),
                (f"orders expected in {s['horizon_days']} d", s["expected_purchases"]),
                ("expected value", s["expected_value"]),
            ]
        )
    }
<h2>Segments</h2>{seg_svg}{seg_table}
<h2>Churn risk</h2><p class="muted">Probability of no order in the next {s["horizon_days"]} days,
among customers with at least one order (mean {s["mean_churn_risk_buyers"]}).</p>{hist_svg}
<h2>At risk</h2><p class="muted">Buyers with a churn risk of at least {s["at_risk_threshold"]:g} by the
churn model, the largest value at stake (paid so far x churn risk) first; the {len(s["at_risk"])}
first of {s["at_risk_count"]:,}. (The RFM segment "at_risk" above is another thing: customers with
low recency and middling frequency scores, whatever the model says.)</p>{risk_table}
<h2>Audiences</h2>{aud}
<h2>How good the churn model is</h2>{_eval_html(s["evaluation"])}
</body></html>"""


def run_customers_report(
    workdir: str | Path, *, as_of: str | None = None, horizon_days: int = 90, actor: str | None = None
) -> dict[str, Any]:
    """reports/customers.{html,json} as a governed job (the caller has checked the
    `insights.customers` permission): a lineage run from the curated versions read to the two
    files and an audit entry (`report.customers`). Returns the JSON with `html`, `json` and
    `lineage_run_id`."""
    from ._reports import curated_report

    def build() -> tuple[dict[str, Any], str]:
        s = customers_summary(workdir, as_of=as_of, horizon_days=horizon_days)
        return s, customers_html(s)

    def audit(s: dict[str, Any]) -> dict[str, Any]:
        e = s["evaluation"]
        return {
            "as_of": s["as_of"],
            "horizon_days": horizon_days,
            "customers": s["customers"],
            "at_risk": s["at_risk_count"],
            "left_out_without_consent": s["left_out_without_consent"],
            "churn_auc": (e.get("shelfwise") or {}).get("churn_auc"),
            "churn_skill": e.get("skill"),
        }

    return curated_report(workdir, "customers", CUSTOMERS_REPORT, build, audit, actor)
