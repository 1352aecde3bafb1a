"""Benchmark (`make bench`): customer churn and expected purchases against BG/NBD and Pareto/NBD;
FAQ answers against bm25s by `shelfwise report ask`'s own protocol (see faq_benchmark); weekly demand against statsforecast's
SeasonalNaive, AutoETS, AutoTheta and AutoARIMA (see _demand_bench.py; `--only demand` runs that
part alone and merges it into the existing --out file, its own provenance inside it); search
demand as a forecast input on planted shops (`interest_benchmark`; `--only demand_interest`); the
precision of resolving free-text searches to the product they name, on Home Depot's real queries
(`search_resolution_benchmark`; `--only demand_searches`).

Real order data from ../shared/data (see each folder's SOURCE.md), split in time: at each origin
`as_of`, every model sees only the orders up to it, and is scored on what each customer did in
the `horizon` days after it. Several origins (90 days apart) are averaged. Scored on the
customers with at least one order before `as_of` (the anchors' domain):
- churn AUC: the score of "no order in the horizon" vs what happened (ROC AUC);
- MAE: mean absolute error of expected orders in the horizon, per customer.
Anchors (the `bench` extra; `lifetimes` 0.11.3, archived but the reference implementation):
BG/NBD and Pareto/NBD fitted on the same calibration orders (orders counted per day, as those
models assume); their churn score is P(no order) = exp(-expected orders) and, as a second
score, 1 - P(alive); the better of the two is kept for each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _demand_bench import DEMAND_DATASETS, demand_benchmark, interest_benchmark, search_resolution_benchmark
from _provenance import provenance, write_report
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"

from shelfwise.insights._customers import fit_predict, orders_from_events  # noqa: E402


def superstore() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tableau Superstore order lines -> canonical purchase events (one order = one session)."""
    df = pd.read_csv(DATA / "superstore_sales" / "Sample - Superstore.csv", encoding="cp1252", dtype=str)
    events = pd.DataFrame(
        {
            "user_id": df["Customer ID"],
            "product_id": df["Product ID"],
            "event_type": "purchase",
            "timestamp": pd.to_datetime(df["Order Date"], format="%m/%d/%Y").astype("datetime64[us]"),
            "session_id": df["Order ID"],
            "value": pd.to_numeric(df["Sales"]),
            "quantity": pd.to_numeric(df["Quantity"]),
        }
    )
    products = (
        df.assign(category=df["Category"] + " > " + df["Sub-Category"])
        .drop_duplicates("Product ID")[["Product ID", "category"]]
        .rename(columns={"Product ID": "product_id"})
    )
    products["brand"] = None
    products["price"] = np.nan
    return events.sort_values("timestamp", kind="stable").reset_index(drop=True), products


def magazine() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Amazon 2018 Magazine_Subscriptions 5-core reviews as purchases (a review follows a buy)."""
    df = pd.read_json(
        DATA / "amazon2018_magazine_subscriptions" / "Magazine_Subscriptions_5.json.gz", lines=True
    )
    events = pd.DataFrame(
        {
            "user_id": df["reviewerID"].astype(str),
            "product_id": df["asin"].astype(str),
            "event_type": "purchase",
            "timestamp": pd.to_datetime(df["unixReviewTime"], unit="s").astype("datetime64[us]"),
            "session_id": None,
            "value": np.nan,
            "quantity": 1.0,
        }
    )
    products = pd.DataFrame({"product_id": events["product_id"].unique()})
    products["category"], products["brand"], products["price"] = None, None, np.nan
    return events.sort_values("timestamp", kind="stable").reset_index(drop=True), products


DATASETS = {"superstore_sales": superstore, "amazon2018_magazine_subscriptions": magazine}


def _rfm(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per customer: BG/NBD's frequency (repeat order days), recency and T (days)."""
    days = orders.assign(day=orders["ts"].dt.floor("D")).drop_duplicates(["user_id", "day"])
    g = days.groupby("user_id")["day"]
    first, last, n = g.min(), g.max(), g.size()
    return pd.DataFrame(
        {
            "frequency": (n - 1).astype(float),
            "recency": (last - first).dt.days.astype(float),
            "T": ((as_of.floor("D") - first).dt.days + 1).astype(float),
        }
    )


def _anchor(name: str, rfm: pd.DataFrame, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    from lifetimes import BetaGeoFitter, ParetoNBDFitter
    from lifetimes.utils import ConvergenceError

    cls = BetaGeoFitter if name == "bgnbd" else ParetoNBDFitter
    for pen in (0.0, 0.001, 0.01, 0.1):
        try:
            # lifetimes prints the optimizer's state when a fit fails to converge: kept off the log
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                m = cls(penalizer_coef=pen).fit(rfm["frequency"], rfm["recency"], rfm["T"])
                exp = m.conditional_expected_number_of_purchases_up_to_time(
                    horizon, rfm["frequency"], rfm["recency"], rfm["T"]
                )
                alive = m.conditional_probability_alive(rfm["frequency"], rfm["recency"], rfm["T"])
            exp, alive = np.asarray(exp, float), np.asarray(alive, float)
            if np.isfinite(exp).all() and np.isfinite(alive).all():
                return exp, np.exp(-exp), 1 - alive
        except (ConvergenceError, ValueError, FloatingPointError, ZeroDivisionError):
            continue
    return f"{name}: did not converge at any penalizer"


BOOTSTRAP = 1000  # paired resamples of the customers (seeded) for the intervals of the differences


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged, as sklearn's): fast enough to resample."""
    from scipy.stats import rankdata

    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((rankdata(score)[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _differences(scored: list[dict], anchor: str, seed: int = 0) -> dict:
    """Ours minus `anchor` (its kept churn score) per origin and on the mean over the origins:
    churn AUC and MAE, each with a 95% interval from BOOTSTRAP paired resamples of each origin's
    customers (the same customers for both models; origins resampled independently, though they
    share customers: the interval of the mean is approximate)."""
    rng = np.random.default_rng(seed)
    per = [s for s in scored if anchor in s["anchors"]]
    if not per:
        return {}
    auc = np.full((BOOTSTRAP, len(per)), np.nan)
    mae = np.full((BOOTSTRAP, len(per)), np.nan)
    point_auc, point_mae = [], []
    for j, s in enumerate(per):
        y, ours_r, ours_e = s["churned"], s["risk"], s["expected"]
        a_score, a_exp = s["anchors"][anchor]
        point_auc.append(_auc(y, ours_r) - _auc(y, a_score))
        point_mae.append(np.abs(ours_e - s["y_orders"]).mean() - np.abs(a_exp - s["y_days"]).mean())
        for b in range(BOOTSTRAP):
            i = rng.integers(0, len(y), len(y))
            mae[b, j] = np.abs(ours_e[i] - s["y_orders"][i]).mean() - np.abs(a_exp[i] - s["y_days"][i]).mean()
            if y[i].min() != y[i].max():
                auc[b, j] = _auc(y[i], ours_r[i]) - _auc(y[i], a_score[i])

    def ci(v: np.ndarray) -> list[float]:
        v = v[np.isfinite(v)]
        return [round(float(np.quantile(v, 0.025)), 4), round(float(np.quantile(v, 0.975)), 4)]

    return {
        "per_origin": [
            {
                "as_of": s["as_of"],
                "churn_auc_diff": round(point_auc[j], 4),
                "churn_auc_ci95": ci(auc[:, j]),
                "mae_diff": round(float(point_mae[j]), 4),
                "mae_ci95": ci(mae[:, j]),
            }
            for j, s in enumerate(per)
        ],
        "mean": {
            "churn_auc_diff": round(float(np.mean(point_auc)), 4),
            "churn_auc_ci95": ci(np.nanmean(auc, axis=1)),
            "mae_diff": round(float(np.mean(point_mae)), 4),
            "mae_ci95": ci(mae.mean(axis=1)),
        },
    }


def customer_signal(orders_all: pd.DataFrame, as_of: pd.Timestamp) -> dict:
    """Whether a customer's past tells anything about their future at all, from the two years
    before `as_of` only (the earliest origin: nothing scored is read). Among the customers whose
    first order is over two years before it: the Spearman correlation of their order counts in
    the first and in the second year, and the index of dispersion (variance / mean) of their
    two-year counts, 1 when every customer buys at one common Poisson rate (then nothing tells
    one customer from another, and every model's churn AUC is 0.5 but for noise)."""
    year = pd.Timedelta(days=365)
    o = orders_all[(orders_all["ts"] <= as_of)]
    old = o.groupby("user_id")["ts"].min()
    users = old[old <= as_of - 2 * year].index
    if len(users) < 20:
        return {"customers": int(len(users)), "note": "too few customers with two years of history"}

    def count(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Series:
        w = o[(o["ts"] > lo) & (o["ts"] <= hi)]
        return w.groupby("user_id").size().reindex(users).fillna(0.0)

    y1, y2 = count(as_of - 2 * year, as_of - year), count(as_of - year, as_of)
    both = y1 + y2
    return {
        "as_of": as_of.date().isoformat(),
        "customers": int(len(users)),
        "orders_per_customer_2y": round(float(both.mean()), 3),
        "dispersion_index_2y": round(float(both.var() / both.mean()), 3) if both.mean() > 0 else None,
        "year_to_year_spearman": round(float(y1.corr(y2, method="spearman")), 3),
    }


def evaluate(events: pd.DataFrame, products: pd.DataFrame, horizon: int, origins: int) -> dict:
    orders_all = orders_from_events(events, products)
    end = events["timestamp"].max()
    rows = []
    scored: list[dict] = []
    for k in range(origins):
        as_of = pd.Timestamp(end) - pd.Timedelta(days=horizon + 90 * k)
        seen = events[events["timestamp"] <= as_of]
        orders = orders_all[orders_all["ts"] <= as_of]
        rfm = _rfm(orders, as_of)
        future = orders_all[
            (orders_all["ts"] > as_of) & (orders_all["ts"] <= as_of + pd.Timedelta(days=horizon))
        ]
        # the truth in the anchors' unit (order days) and in ours (orders); on these data they agree
        # almost everywhere; each model is scored in its own unit
        y_orders = future.groupby("user_id").size().reindex(rfm.index).fillna(0).to_numpy()
        y_days = (
            future.assign(day=future["ts"].dt.floor("D"))
            .drop_duplicates(["user_id", "day"])
            .groupby("user_id")
            .size()
            .reindex(rfm.index)
            .fillna(0)
            .to_numpy()
        )
        churned = (y_orders == 0).astype(int)
        if churned.min() == churned.max():
            continue
        t0 = time.perf_counter()
        ours, info = fit_predict(seen, products, as_of.to_pydatetime(), horizon)
        ours = ours.reindex(rfm.index)
        row = {
            "as_of": as_of.date().isoformat(),
            "customers": len(rfm),
            "churn_rate": round(float(churned.mean()), 4),
            "shelfwise_gbm": {
                "churn_weight": info.churn_weight,
                "count_weight": info.count_weight,
                "seasonal_factor": round(info.seasonal_factor, 3),
                "churn_auc": roc_auc_score(churned, ours["churn_risk"]),
                "mae": float(np.abs(ours["expected_purchases"] - y_orders).mean()),
                "model": info.model,
                "train_rows": info.train_rows,
                "fit_s": round(time.perf_counter() - t0, 2),
            },
        }
        s = {
            "as_of": row["as_of"],
            "churned": churned,
            "y_orders": y_orders,
            "y_days": y_days,
            "risk": ours["churn_risk"].to_numpy(float),
            "expected": ours["expected_purchases"].to_numpy(float),
            "anchors": {},
        }
        for name in ("bgnbd", "pareto_nbd"):
            t0 = time.perf_counter()
            got = _anchor(name, rfm, horizon)
            if isinstance(got, str):
                row[name] = {"error": got}
                continue
            exp, p_none, p_dead = got
            auc_none, auc_dead = roc_auc_score(churned, p_none), roc_auc_score(churned, p_dead)
            row[name] = {
                "churn_auc": max(auc_none, auc_dead),
                "churn_auc_p_no_purchase": auc_none,
                "churn_auc_1_minus_p_alive": auc_dead,
                "mae": float(np.abs(exp - y_days).mean()),
                "fit_s": round(time.perf_counter() - t0, 2),
            }
            s["anchors"][name] = (p_none if auc_none >= auc_dead else p_dead, exp)
        rows.append(row)
        scored.append(s)
    models = ("shelfwise_gbm", "bgnbd", "pareto_nbd")
    mean = {
        m: {
            k: round(float(np.mean([r[m][k] for r in rows if k in r[m]])), 4)
            for k in ("churn_auc", "mae")
            if any(k in r[m] for r in rows)
        }
        for m in models
    }
    for r in rows:
        for m in models:
            for k, v in list(r[m].items()):
                if isinstance(v, float):
                    r[m][k] = round(v, 4)
    earliest = pd.Timestamp(end) - pd.Timedelta(days=horizon + 90 * (origins - 1))
    return {
        "horizon_days": horizon,
        "origins": rows,
        "mean": mean,
        # ours minus each anchor with 95% intervals (paired bootstrap over customers): a
        # difference whose interval holds 0 is not one the data can tell from noise
        "shelfwise_minus_anchor": {a: _differences(scored, a) for a in ("bgnbd", "pareto_nbd")},
        "signal": customer_signal(orders_all, earliest),
    }


def faq_split(seed: int = 0) -> dict:
    """Bitext customer-support utterances as an FAQ task: one FAQ entry per intent (its first
    utterance as the question, its response as the answer), 7 of the 27 intents held out (their
    utterances must be left unanswered), other utterances as the shoppers' questions: 20 per
    intent for development (where _faq.py's weights and threshold were chosen), the next 30 per
    intent scored here. `faq`: faq_id, question, answer (the canonical faq table)."""
    df = pd.read_csv(DATA / "bitext_customer_support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
    rng = np.random.default_rng(seed)
    held_out = set(rng.choice(sorted(df["intent"].unique()), 7, replace=False))
    faq = df.groupby("intent").head(1)
    faq = faq[~faq["intent"].isin(held_out)]
    pool = df.drop(faq.index).sample(frac=1, random_state=1).groupby("intent").head(50)
    test = pool.drop(pool.groupby("intent").head(20).index)
    truth = [None if i in held_out else i for i in test["intent"]]
    return {
        "data": "bitext_customer_support",
        "faq": pd.DataFrame(
            {"faq_id": faq["intent"], "question": faq["instruction"], "answer": faq["response"]}
        ).reset_index(drop=True),
        "questions": test["instruction"].tolist(),
        "truth": truth,
        "held_out": sorted(held_out),
    }


TYPO_SEED = 20
TYPO_MIN_LETTERS = 4  # typos go into words of 4+ letters ("do" with a typo is another word)


def with_typos(questions: list[str], seed: int = TYPO_SEED) -> list[str]:
    """Each question with 1 or 2 seeded character edits, each in a different word of at least
    TYPO_MIN_LETTERS letters (a question without one is left as it is): a letter dropped, two
    neighbours swapped, or a letter replaced by another (a-z), equally likely, at a random place.
    Deterministic for a seed; the words' case and the separators are kept."""
    import re
    import string

    rng = np.random.default_rng(seed)
    out = []
    for q in questions:
        toks = re.split(r"(\W+)", q)
        cand = [i for i, t in enumerate(toks) if t.isalpha() and len(t) >= TYPO_MIN_LETTERS]
        n = int(rng.integers(1, 3))
        if not cand:
            out.append(q)
            continue
        for i in rng.choice(cand, size=min(n, len(cand)), replace=False):
            w, op, p = toks[i], int(rng.integers(0, 3)), int(rng.integers(0, len(toks[i])))
            j = min(p, len(w) - 2)
            if op == 1 and w[j] != w[j + 1]:
                w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
            elif op == 2:
                other = [c for c in string.ascii_lowercase if c != w[p].lower()]
                w = w[:p] + other[int(rng.integers(0, len(other)))] + w[p + 1 :]
            else:  # a letter dropped (also instead of swapping two equal letters: no change)
                w = w[:p] + w[p + 1 :]
            toks[i] = w
        out.append("".join(toks))
    return out


def faq_benchmark(split: dict | None = None) -> dict:
    """The FAQ matcher against bm25s by the product's own protocol (`shelfwise report ask
    --questions`, insights._ask.PROTOCOL): the split's FAQ is ingested into a scratch workdir
    and `Shop.ask_report` scores the labeled questions there, so the number here is the number
    `report ask` gives on the same FAQ and questions. `split`: faq_split()'s form (default:
    the Bitext split). `typos`: the same protocol on the same questions with seeded typos
    (`with_typos`), next to the clean score (each model with its threshold as above)."""
    import tempfile

    from shelfwise import Shop

    sp = split if split is not None else faq_split()
    faq, qs, truth = sp["faq"], sp["questions"], sp["truth"]
    out: dict = {
        "data": sp.get("data"),
        "faq_entries": len(faq),
        "held_out_intents": sp.get("held_out", []),
        "protocol": "shelfwise report ask --questions (Shop.ask_report) on a scratch workdir the FAQ was ingested into",
    }
    with tempfile.TemporaryDirectory(prefix="shelfwise-faq-bench-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        faq[["faq_id", "question", "answer"]].to_csv(data / "faq.csv", index=False)
        # a one-product catalog: ingest wants a catalog; products attach only to unanswered questions
        (data / "products.csv").write_text("product_id,title\nP1,placeholder\n")
        labeled, typoed = Path(tmp) / "labeled.csv", Path(tmp) / "typos.csv"
        for path, texts in ((labeled, qs), (typoed, with_typos(qs))):
            pd.DataFrame(
                {"question_id": [f"q{i}" for i in range(len(qs))], "question": texts, "faq_id": truth}
            ).to_csv(path, index=False)
        shop = Shop(Path(tmp) / "w")
        with contextlib.redirect_stdout(io.StringIO()):
            shop.ingest(data)
        t0 = time.perf_counter()
        doc = shop.ask_report(labeled)
        s = round(time.perf_counter() - t0, 1)
        typo_doc = shop.ask_report(typoed)
    ev = {k: v for k, v in doc["evaluation"].items() if k != "file"}
    typo_ev = {k: v for k, v in typo_doc["evaluation"].items() if k != "file"}
    if doc["faq_entries"] != len(faq) or ev["questions"] != len(qs):
        raise RuntimeError(
            f"ingest changed the FAQ task: {doc['faq_entries']} entries and {ev['questions']} questions "
            f"read back, {len(faq)} and {len(qs)} written"
        )
    out.update(ev)
    # the whole report: the FAQ and every question through shelfwise AND both bm25s baselines
    # (it was `shelfwise.s`, which read as shelfwise's own time)
    out["report_seconds"] = s
    out["typos"] = {
        "questions": f"the same questions, each with 1-2 seeded character edits (benchmarks/insights.py with_typos, seed {TYPO_SEED})",
        **{
            k: typo_ev[k]
            for k in ("shelfwise", "bm25s_question", "bm25s_question_answer", "margin_points_over_best_bm25s")
        },
    }
    # clean and typo'd side by side: accuracy (abstentions included), each model at its threshold
    out["clean_vs_typos"] = {
        m: {"clean": ev[m]["accuracy"], "typos": typo_ev[m]["accuracy"]}
        for m in ("shelfwise", "bm25s_question", "bm25s_question_answer")
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/insights.json")
    ap.add_argument("--horizons", default="90,180")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--origins", type=int, default=4, help="as_of dates, 90 days apart, back from the end")
    ap.add_argument(
        "--only",
        choices=("demand", "demand_interest", "demand_searches", "faq"),
        help="run only this part; merge it into the existing --out file",
    )
    ap.add_argument("--demand-origins", type=int, default=2, help="forecast origins, 13 weeks apart")
    ap.add_argument(
        "--demand-arima-exact-series",
        type=int,
        default=0,
        help="a seeded subset of series the exact AutoARIMA search also runs on (-1: all, 0: none)",
    )
    ap.add_argument(
        "--demand-variants",
        action="store_true",
        help="also the group-choice rule and the candidate pools of _demand_bench.POOL_VARIANTS (a second fit of ours)",
    )
    ap.add_argument("--demand-series", type=int, default=0, help="a seeded sample of series (0: all)")
    ap.add_argument("--demand-datasets", default=",".join(DEMAND_DATASETS))
    args = ap.parse_args()
    demand_sets = [d for d in args.demand_datasets.split(",") if d]
    if args.only == "faq":
        out = Path(args.out)
        made_by = provenance()  # as the run starts (the checkout may move while it runs)
        faq = faq_benchmark()
        merged = json.loads(out.read_text()) if out.exists() else {"provenance": made_by}
        merged["faq"] = {**faq, "provenance": made_by}  # this part's own (the file's is older)
        write_report(out, merged)
        return
    if args.only == "demand_interest":
        out = Path(args.out)
        interest = interest_benchmark()  # (then read the file: another part may have written it meanwhile)
        merged = json.loads(out.read_text()) if out.exists() else {"provenance": provenance()}
        merged["demand_interest"] = interest
        write_report(out, merged)
        return
    if args.only == "demand_searches":
        out = Path(args.out)
        made_by = provenance()
        resolution = search_resolution_benchmark()
        merged = json.loads(out.read_text()) if out.exists() else {"provenance": made_by}
        merged["demand_searches"] = {**resolution, "provenance": made_by}
        write_report(out, merged)
        return
    if args.only == "demand":
        out = Path(args.out)
        rep = demand_benchmark(
            demand_sets,
            args.demand_origins,
            args.demand_arima_exact_series,
            args.demand_variants,
            args.demand_series,
        )
        # the datasets run replace theirs and keep the others' (each entry carries the command
        # that made it): the two datasets can run as two processes. Read just before writing.
        merged = json.loads(out.read_text()) if out.exists() else {"provenance": provenance()}
        kept = (merged.get("demand") or {}).get("datasets", {})
        merged["demand"] = {**rep, "datasets": {**kept, **rep["datasets"]}}
        write_report(out, merged)
        return
    # a whole run takes a CPU-hour on a loaded machine: each part is written into --out as it ends
    # (the parts not re-run yet keep their own provenance there; demand entries carry theirs)
    out = Path(args.out)
    customers: dict[str, dict] = {}
    report: dict = {"provenance": provenance(), "protocol": __doc__.strip(), "customers": customers}
    if (DATA / "bitext_customer_support").exists():
        report["faq"] = faq_benchmark()
        print("faq:", {k: v for k, v in report["faq"].items() if k not in ("held_out_intents",)})
    else:
        report["faq"] = {"skipped": f"{DATA / 'bitext_customer_support'} is absent"}
    _merge_into(out, report)
    for name in [d for d in args.datasets.split(",") if d]:
        load = DATASETS[name]
        if not (DATA / name).exists():
            customers[name] = {"skipped": f"{DATA / name} is absent"}
            continue
        events, products = load()
        customers[name] = {
            str(h): evaluate(events, products, int(h), args.origins) for h in args.horizons.split(",")
        }
        for h, res in customers[name].items():
            print(name, f"horizon {h} d:", res["mean"])
        _merge_into(out, report)
    # the cheaper parts first: Superstore's demand, search demand on planted shops, then the grocery
    order = sorted(demand_sets, key=lambda d: d != "superstore_sales")
    for i, name in enumerate(order):
        rep = demand_benchmark(
            [name],
            args.demand_origins,
            args.demand_arima_exact_series,
            args.demand_variants,
            args.demand_series,
        )
        if i == 0:
            report["demand"] = rep
        else:
            report["demand"]["datasets"].update(rep["datasets"])
        _merge_into(out, report, keep_demand=True)
        if i == 0:
            report["demand_interest"] = interest_benchmark()
            _merge_into(out, report, keep_demand=True)
    if not order:
        report["demand_interest"] = interest_benchmark()
    report["demand_searches"] = search_resolution_benchmark()
    # merged as the partial writes were: a run of some demand datasets keeps the file's others
    _merge_into(out, report, keep_demand=True)


def _merge_into(out: Path, report: dict, keep_demand: bool = False) -> None:
    """Write `report`'s parts into `out` over the file's (read just before writing); with
    `keep_demand`, the file's demand datasets this run has not reached yet stay."""
    merged = json.loads(out.read_text()) if out.exists() else {}
    old = (merged.get("demand") or {}).get("datasets", {})
    merged.update(report)
    if keep_demand and "demand" in report:
        merged["demand"] = {**report["demand"], "datasets": {**old, **report["demand"]["datasets"]}}
    write_report(out, merged)


if __name__ == "__main__":
    main()
