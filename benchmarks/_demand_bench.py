"""Demand forecasts (`insights demand`'s model) against statsforecast's SeasonalNaive, AutoETS,
AutoTheta and AutoARIMA, side by side in the same run, split in time.

Data (see each folder's SOURCE.md): the Italian grocery store's daily unit sales of 118 pasta
products (real point-of-sale data), summed per product and Monday week; the partial first and
last weeks are dropped. Superstore's order lines (a fictional Tableau dataset: a debugging aid,
not evidence) summed per sub-category and week.
Protocol: at each origin (the last `origins` x 13 weeks, 13 weeks apart) every model sees only
the weeks up to it and forecasts the 13 after; the anchors use a 52-week season. Score: MASE
with the seasonal scale, i.e. the forecast's mean absolute error over the 13 weeks divided by
the in-sample mean absolute error of the 52-week seasonal naive forecast on the training weeks,
per series; averaged over series, then over origins. `ours` is the product's default
configuration (`forecast_series`: its own season detection; per series, the mean of the 4
candidates with the lowest rolling-origin cross-validation error among SeasonalNaive / AutoETS /
AutoTheta / GroupTheta, plus Croston-type models for intermittent series). From the same fits, for
information: `ours_argmin` (each series' single best candidate, their mean included),
`ours_top3` and `ours_top2` (the mean of the 3 or 2 best) and `ours_mean_of_models` (the mean of
the smooth models everywhere); `mase_per_series` per origin. The
80% interval's coverage on the test weeks is reported for ours (`ours_interval80_coverage`,
all origins' test weeks pooled; the interval is calibrated on the training weeks only, see
`calibrate` in insights/_demand.py; per origin `ours_interval_calibration` gives the factor and
the uncalibrated interval's coverage on the last cross-validation window). Every anchor runs on
every series, with the settings in `anchor_settings`: statsforecast's defaults and the 52-week
season, AutoARIMA with `approximation=True` (see `_anchor_model`: forecast::auto.arima's own
default for series this long with a 52-week season); the exact search (`AutoARIMA_exact`) runs
on a seeded subset when asked (`arima_exact_series`; every model is then also scored on it,
`mase_exact_subset`), or on every series (`arima_exact_series: "all"`: it is then one of the
anchors `best_anchor` is the best of). `cpu_seconds`: each model's CPU time (process time, one core) per origin
and in all; the anchors' forecasts are cached under benchmarks/work/anchor-cache (keyed by the
training data, the settings and statsforecast's version; `anchors_from_cache` names those read
back, their CPU time is the fitting run's). Each dataset's entry has the command that made it.
With `--demand-variants`, the candidate pools of
`POOL_VARIANTS` are fitted again and scored beside `ours` (`ours_previous_default`: the pool
without GroupTheta and the mean of its 3 best, the default until session 16; its
`_mean_of_models` from the same fits).
Neither dataset has stock or
browsing data, so the censored-demand correction is not exercised here (tests cover it); nor has
any dataset in ../shared/data a free-text search log with purchases (searches resolved to the
product they name, `insights._searched`): that signal has no number here either (its tests plant
it, tests/insights/test_demand_searches.py), and `forecast_series`, which this benchmark scores,
is unchanged by it (it enters through `load_weekly`'s interest).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / "work" / "anchor-cache"

from shelfwise.insights._demand import forecast_series  # noqa: E402

H = 13
SEASON = 52
ANCHORS = ("SeasonalNaive", "AutoETS", "AutoTheta", "AutoARIMA")  # on every series
EXACT = "AutoARIMA_exact"  # statsforecast's default exact search, on a seeded subset (`_anchor_model`)
# the other selection rules scored from the same fits as `ours` (name -> forecast_series' `also`)
ALSO = {
    "ours_argmin": "series",
    "ours_top3": "top3",
    "ours_top2": "top2",
    "ours_rule_by_cv": "auto",
    "ours_mean_of_models": "Ensemble",
}
# a candidate pool that is not the default, scored side by side when asked (`--demand-variants`):
# name -> (candidates for smooth series, the rule); its other rules come from the same fits. The
# previous default (no GroupTheta, the mean of the 3 best), which the group seasonal index
# (GroupTheta, insights/_demand.py `_group_seasonal`) with the mean of the 4 best replaced after
# winning on Superstore's earlier origins and then on both datasets' evaluation origins
POOL_VARIANTS = {
    "ours_previous_default": (("SeasonalNaive", "AutoETS", "AutoTheta"), "top3"),
}
POOL_ALSO = {"mean_of_models": "Ensemble"}


def italian_grocery() -> pd.DataFrame:
    d = pd.read_csv(
        DATA / "italian_grocery_daily_sales" / "hierarchical_sales_data.csv", parse_dates=["DATE"]
    )
    qty = [c for c in d.columns if c.startswith("QTY_")]
    long = d[["DATE", *qty]].melt(id_vars="DATE", var_name="unique_id", value_name="y")
    long["ds"] = long["DATE"] - pd.to_timedelta(long["DATE"].dt.weekday, unit="D")
    days = (d["DATE"] - pd.to_timedelta(d["DATE"].dt.weekday, unit="D")).value_counts()
    full = days.index[(days.index > days.index.min()) & (days.index < days.index.max())]  # partial ends
    w = long.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
    return w[w["ds"].isin(full)].astype({"y": float}).reset_index(drop=True)


def superstore() -> pd.DataFrame:
    df = pd.read_csv(DATA / "superstore_sales" / "Sample - Superstore.csv", encoding="cp1252", dtype=str)
    day = pd.to_datetime(df["Order Date"], format="%m/%d/%Y")
    w = (
        pd.DataFrame(
            {
                "unique_id": df["Category"] + " > " + df["Sub-Category"],
                "ds": day - pd.to_timedelta(day.dt.weekday, unit="D"),
                "y": pd.to_numeric(df["Quantity"]).astype(float),
            }
        )
        .groupby(["unique_id", "ds"], as_index=False)["y"]
        .sum()
    )
    weeks = pd.date_range(w["ds"].min(), w["ds"].max(), freq="7D")[1:-1]
    grid = pd.MultiIndex.from_product([w["unique_id"].unique(), weeks], names=["unique_id", "ds"])
    return w.set_index(["unique_id", "ds"]).reindex(grid, fill_value=0.0).reset_index()


DEMAND_DATASETS = {"italian_grocery_daily_sales": italian_grocery, "superstore_sales": superstore}


def _anchor_model(name: str) -> Any:
    """The anchor as statsforecast makes it: its defaults and the 52-week season, except
    AutoARIMA's `approximation=True` (the model search by conditional sum of squares, the chosen
    model refitted by maximum likelihood): R's forecast::auto.arima, which statsforecast's
    AutoARIMA follows, makes that its default for series longer than 150 observations or with a
    season over 12, which every series here is; statsforecast's default (False) costs 5-20x the
    CPU here (~9 s per grocery fit, 15-37 s per Superstore fit). The exact search runs as
    `AutoARIMA_exact` on a seeded subset (`arima_exact_series`) to show what the approximation
    costs the anchor."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    make: dict[str, Any] = {
        "SeasonalNaive": lambda: SeasonalNaive(season_length=SEASON),
        "AutoETS": lambda: AutoETS(season_length=SEASON),
        "AutoTheta": lambda: AutoTheta(season_length=SEASON),
        "AutoARIMA": lambda: AutoARIMA(season_length=SEASON, approximation=True),
        "AutoARIMA_exact": lambda: AutoARIMA(season_length=SEASON),
    }
    return make[name]()


def _settings(name: str) -> dict[str, Any]:
    """An anchor's settings as its object holds them (what the JSON states)."""
    model = _anchor_model(name)
    return {
        k: v
        for k, v in sorted(vars(model).items())
        if isinstance(v, (int, float, str, bool, type(None))) and not k.startswith("_")
    }


def _anchors(train: pd.DataFrame, name: str) -> tuple[pd.DataFrame, float, bool]:
    """One anchor's forecasts for every series of `train`, the CPU seconds its fits took, and
    whether they came from the cache. The anchors do not depend on shelfwise's code, so their
    forecasts are kept under benchmarks/work/anchor-cache (git-ignored), keyed by the training
    data, the model's settings and statsforecast's version: a rerun after a change to
    shelfwise's rule does not refit them (AutoARIMA on every series is most of the run's CPU);
    the CPU seconds reported are those of the run that fitted them."""
    import hashlib
    import json

    import statsforecast
    from statsforecast import StatsForecast

    model = _anchor_model(name)
    settings = _settings(name)
    key = hashlib.sha256(
        json.dumps([model.alias, settings, statsforecast.__version__, H, "7D"], default=str).encode()
        + pd.util.hash_pandas_object(train[["unique_id", "ds", "y"]], index=False).to_numpy().tobytes()
    ).hexdigest()[:24]
    path = CACHE / f"{model.alias}-{key}.parquet"
    if path.exists():
        fc = pd.read_parquet(path).rename(columns={model.alias: name})
        return fc, float(json.loads((CACHE / f"{model.alias}-{key}.json").read_text())["cpu_s"]), True
    t = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = StatsForecast(models=[model], freq="7D", n_jobs=1).forecast(df=train, h=H)
    cpu = time.process_time() - t
    fc["unique_id"] = fc["unique_id"].astype(str)
    CACHE.mkdir(parents=True, exist_ok=True)
    fc.to_parquet(path)
    (CACHE / f"{model.alias}-{key}.json").write_text(json.dumps({"cpu_s": cpu, "settings": settings}))
    return fc.rename(columns={model.alias: name}), cpu, False


def _scale(train: pd.DataFrame) -> pd.Series:
    """Per series: the in-sample MAE of the 52-week seasonal naive forecast."""
    return train.groupby("unique_id")["y"].apply(lambda s: s.diff(SEASON).abs().mean())


def evaluate(
    weekly: pd.DataFrame, origins: int, exact_series: int, variants: bool, seed: int = 0
) -> dict[str, Any]:
    weeks = np.sort(weekly["ds"].unique())
    ids = sorted(weekly["unique_id"].unique())
    rng = np.random.default_rng(seed)
    n_exact = len(ids) if exact_series < 0 else min(exact_series, len(ids))
    subset = ids if n_exact == len(ids) else sorted(rng.choice(ids, size=n_exact, replace=False).tolist())
    anchors = (*ANCHORS, EXACT) if subset else ANCHORS
    out: dict[str, Any] = {
        "series": len(ids),
        "weeks": len(weeks),
        "anchor_settings": {a: _settings(a) for a in anchors},
        "arima_exact_series": "all" if subset == ids else subset,
        "origins": [],
    }
    per: dict[str, list[pd.Series]] = {}
    covered: list[pd.Series] = []
    cpu_total: dict[str, float] = {}
    for k in range(origins, 0, -1):
        origin = weeks[-k * H - 1]
        train = weekly[weekly["ds"] <= origin]
        test = weekly[(weekly["ds"] > origin) & (weekly["ds"] <= origin + np.timedelta64(7 * H, "D"))]
        scale = _scale(train).replace(0.0, np.nan)
        truth = test.set_index(["unique_id", "ds"])["y"]
        preds: dict[str, pd.Series] = {}
        cpu: dict[str, float] = {}
        cached: list[str] = []
        t = time.process_time()
        # the other selection rules' point forecasts come from the same fits (`also`)
        also = dict(ALSO)
        if variants:
            also["ours_group_choice"] = "group"
        ours, info = forecast_series(train, H, also=tuple(also.values()))
        cpu["ours"] = round(time.process_time() - t, 1)
        ours = ours.set_index(["unique_id", "ds"])
        preds["ours"] = ours["units"]
        for name, rule in also.items():
            preds[name] = ours[f"units_{rule}"]
        for name, (pool, select) in POOL_VARIANTS.items() if variants else ():
            t = time.process_time()
            var, _ = forecast_series(train, H, models=pool, select=select, also=tuple(POOL_ALSO.values()))
            cpu[name] = round(time.process_time() - t, 1)
            var = var.set_index(["unique_id", "ds"])
            preds[name] = var["units"]
            for suffix, rule in POOL_ALSO.items():
                preds[f"{name}_{suffix}"] = var[f"units_{rule}"]
        for a in anchors:
            part = train[train["unique_id"].isin(subset)] if a == EXACT else train
            fc, seconds, hit = _anchors(part, a)
            cpu[a] = round(seconds, 1)
            if hit:
                cached.append(a)
            preds[a] = fc.set_index(["unique_id", "ds"])[a].clip(lower=0.0)
        for name, v in cpu.items():
            cpu_total[name] = round(cpu_total.get(name, 0.0) + v, 1)
        res: dict[str, Any] = {"origin": str(pd.Timestamp(origin).date()), "cpu_seconds": cpu}
        if cached:
            res["anchors_from_cache"] = cached
        for name, p in preds.items():
            err = (p.reindex(truth.index) - truth).abs().groupby(level="unique_id").mean()
            got = p.index.get_level_values("unique_id").unique()
            err = err[err.index.isin(got)]
            per.setdefault(name, []).append((err / scale.reindex(err.index)).dropna())
        inside = (truth >= ours["lo"].reindex(truth.index)) & (truth <= ours["hi"].reindex(truth.index))
        res["ours_interval80_coverage"] = round(float(inside.mean()), 4)
        covered.append(inside)
        # what `calibrate` saw: the uncalibrated interval's coverage on the last CV window
        res["ours_interval_calibration"] = info["calibration"]
        res["ours_season_length"] = info["season_length"]
        res["ours_chosen"] = info["chosen"]
        if "rules" in info:
            res["ours_rule_by_group"] = info["rules"]
        res["mase"] = {n: round(float(v[-1].mean()), 4) for n, v in per.items()}
        res["mase_per_series"] = {
            n: {str(u): round(float(x), 4) for u, x in v[-1].items()} for n, v in per.items()
        }
        out["origins"].append(res)
        print(f"  origin {res['origin']}: {res['mase']} cpu {cpu}", flush=True)

    def mean(name: str, only: list[str] | None = None) -> float:
        vals = [v[v.index.isin(only)] if only is not None else v for v in per[name]]
        return round(float(np.mean([x.mean() for x in vals])), 4)

    out["cpu_seconds"] = cpu_total
    out["ours_interval80_coverage"] = round(float(pd.concat(covered).mean()), 4)
    everywhere = [n for n in per if n != EXACT or subset == ids]
    out["mase"] = {n: mean(n) for n in everywhere}
    # the anchors run on every series: the exact AutoARIMA too when it ran on all of them
    # (statsforecast's own default; it was left out of the best anchor before)
    full = [a for a in (*ANCHORS, EXACT) if a in everywhere]
    best = min(full, key=lambda a: out["mase"][a])
    out["best_anchor"] = best
    out["ours_vs_best_anchor"] = round(out["mase"]["ours"] / out["mase"][best] - 1, 4)
    out["ours_vs_best_anchor_by_origin"] = [
        round(r["mase"]["ours"] / min(r["mase"][a] for a in full) - 1, 4) for r in out["origins"]
    ]
    if subset and subset != ids:  # the exact AutoARIMA on a seeded subset: every model scored on it too
        out["mase_exact_subset"] = {n: mean(n, subset) for n in per}
        best_sub = min(anchors, key=lambda a: out["mase_exact_subset"][a])
        out["best_anchor_exact_subset"] = best_sub
        out["ours_vs_best_anchor_exact_subset"] = round(
            out["mase_exact_subset"]["ours"] / out["mase_exact_subset"][best_sub] - 1, 4
        )
    return out


def demand_benchmark(
    datasets: list[str], origins: int, exact_series: int = 0, variants: bool = False, series: int = 0
) -> dict[str, Any]:
    from _provenance import provenance

    rep: dict[str, Any] = {"provenance": provenance(), "protocol": (__doc__ or "").strip(), "datasets": {}}
    for name in datasets:
        if not (DATA / name).exists():
            rep["datasets"][name] = {"skipped": f"{DATA / name} is absent"}
            continue
        print(f"demand: {name}", flush=True)
        weekly = DEMAND_DATASETS[name]()
        if series:  # a seeded sample of the series (the whole run is CPU-bound: ~1 min per AutoARIMA fit)
            ids = sorted(weekly["unique_id"].unique())
            keep = np.random.default_rng(1).choice(ids, size=min(series, len(ids)), replace=False)
            weekly = weekly[weekly["unique_id"].isin(keep)]
        rep["datasets"][name] = {
            "provenance": provenance(),
            **evaluate(weekly, origins, exact_series, variants),
        }
        print(f"demand: {name}: {rep['datasets'][name]['mase']}", flush=True)
    return rep


def planted_interest_shop(
    kind: str, seed: int, n: int = 30, weeks: int = 80
) -> tuple[pd.DataFrame, pd.Series]:
    """A planted shop for search demand as a forecast input: each product's weekly demand level
    drifts (a log random walk, sd 0.08 a week, from 2-6 units); sales ~ Poisson(level). `leading`:
    interest (views, searches) ~ Poisson(15 x level), a denser reading of the same level; `noise`:
    interest ~ Poisson(60) whatever the level. Returns the training weeks and the 13 test weeks."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2022-01-03", periods=weeks + H, freq="7D")
    parts = []
    for i in range(n):
        level = np.exp(np.log(rng.uniform(2, 6)) + np.cumsum(rng.normal(0, 0.08, weeks + H)))
        y = rng.poisson(level).astype(float)
        x = rng.poisson(15 * level) if kind == "leading" else rng.poisson(60, weeks + H)
        parts.append(pd.DataFrame({"unique_id": f"P{i}", "ds": ds, "y": y, "interest": x.astype(float)}))
    d = pd.concat(parts, ignore_index=True)
    cut = ds[weeks - 1]
    return d[d["ds"] <= cut], d[d["ds"] > cut].set_index(["unique_id", "ds"])["y"]


def interest_benchmark(seeds: tuple[int, ...] = (5, 6, 7)) -> dict[str, Any]:
    """MASE (non-seasonal scale) of `forecast_series` with and without the interest column on the
    planted shops (season 1, 13 weeks ahead): does search demand help where it carries the signal,
    and cost nothing where it is noise?"""
    from _provenance import provenance

    out: dict[str, Any] = {
        "provenance": provenance(),
        "protocol": (planted_interest_shop.__doc__ or "").strip()
        + " "
        + (interest_benchmark.__doc__ or "").strip(),
        "runs": [],
    }
    for kind in ("leading", "noise"):
        for seed in seeds:
            train, truth = planted_interest_shop(kind, seed)
            scale = train.groupby("unique_id")["y"].apply(lambda s: s.diff().abs().mean())
            row: dict[str, Any] = {"kind": kind, "seed": seed}
            for name, frame in (("sales_only", train[["unique_id", "ds", "y"]]), ("with_interest", train)):
                fc, info = forecast_series(frame, H, season=1)
                p = fc.set_index(["unique_id", "ds"])["units"].reindex(truth.index)
                mase = ((p - truth).abs().groupby(level="unique_id").mean() / scale).mean()
                row[name] = round(float(mase), 4)
                row[f"{name}_chosen"] = info["chosen"]
            out["runs"].append(row)
            print(f"  interest {kind} seed {seed}: {row['sales_only']} -> {row['with_interest']}", flush=True)
    for kind in ("leading", "noise"):
        rs = [r for r in out["runs"] if r["kind"] == kind]
        a, b = np.mean([r["sales_only"] for r in rs]), np.mean([r["with_interest"] for r in rs])
        out[kind] = {
            "sales_only": round(float(a), 4),
            "with_interest": round(float(b), 4),
            "change": round(float(b / a - 1), 4),
        }
    return out


def search_resolution_benchmark(coverages: tuple[float, ...] = (1.0, 0.75)) -> dict[str, Any]:
    """How precise is the rule that resolves a free-text search to the product it names
    (`insights._searched`), on real shopper queries? The Home Depot development split: the
    catalog is every judged product's title, each distinct search term is resolved (no search
    engine: the catalog's names), and where the named product was judged for that query its
    relevance (raters' mean, 1-3) is read. Scored: how many queries name a product, the named
    product's mean relevance and its shares rated >= 2.67 and <= 1.67, beside every judged pair's
    (the rate a product shown for such a query gets). No search log with purchases is at hand,
    so the demand effect itself has no number here (tests plant it)."""
    import shelfwise.insights._searched as searched

    path = DATA / "homedepot_search_relevance" / "train_dev.csv"
    if not path.exists():
        return {"skipped": f"{path} is absent"}
    df = pd.read_csv(path, encoding="latin-1")
    titles = df.drop_duplicates("product_uid").set_index("product_uid")["product_title"]
    names = {str(k): str(v) for k, v in titles.items()}
    df["q"] = df["search_term"].astype(str).str.lower().str.strip()
    judged = df.set_index(["q", df["product_uid"].astype(str)])["relevance"]
    queries = sorted(df["q"].unique())

    def rates(r: pd.Series) -> dict[str, float]:
        return {
            "mean_relevance": round(float(r.mean()), 4),
            "share_ge_2.67": round(float((r >= 2.67).mean()), 4),
            "share_le_1.67": round(float((r <= 1.67).mean()), 4),
        }

    out: dict[str, Any] = {
        "protocol": (search_resolution_benchmark.__doc__ or "").strip(),
        "dataset": "homedepot_search_relevance/train_dev.csv",
        "products": len(names),
        "queries": len(queries),
        "every_judged_pair": {"pairs": len(df), **rates(df["relevance"])},
        "rules": {},
    }
    default = searched.COVERAGE
    try:
        for cov in coverages:
            searched.COVERAGE = cov
            t0 = time.process_time()
            resolver = searched.QueryResolver(names)
            named = {q: p for q in queries if (p := resolver.resolve(q)) is not None}
            cpu = time.process_time() - t0
            rel = pd.Series([judged.get((q, p)) for q, p in named.items()], dtype=float).dropna()
            out["rules"][f"coverage_{cov:g}"] = {
                "default": cov == default,
                "min_words": searched.MIN_WORDS,
                "named": len(named),
                "named_share": round(len(named) / len(queries), 4),
                "named_and_judged": len(rel),
                **rates(rel),
                "cpu_seconds": round(cpu, 1),
            }
            print(f"  search resolution, coverage {cov:g}: {out['rules'][f'coverage_{cov:g}']}", flush=True)
    finally:
        searched.COVERAGE = default
    return out


__all__ = ["DEMAND_DATASETS", "demand_benchmark", "interest_benchmark", "search_resolution_benchmark"]
