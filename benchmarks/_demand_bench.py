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
configuration (`forecast_series`: its own season detection; per series, the mean of the 3
candidates with the lowest rolling-origin cross-validation error among SeasonalNaive / AutoETS /
AutoTheta, plus Croston-type models for intermittent series). From the same fits, for
information: `ours_argmin` (each series' single best candidate, their mean included: the
default until this run) and `ours_mean_of_models` (the mean of the smooth models everywhere). The
80% interval's coverage on the test weeks is reported for ours (`ours_interval80_coverage`,
all origins' test weeks pooled; the interval is calibrated on the training weeks only, see
`calibrate` in insights/_demand.py; per origin `ours_interval_calibration` gives the factor and
the uncalibrated interval's coverage on the last cross-validation window). AutoARIMA with a 52-week season
takes about a minute per series and fit here, so it runs on a seeded subset of series
(`arima_subset`, all of them when it lists every series), and every model is also scored on that
subset (`mase_arima_subset`); each dataset's entry has the command that made it. Neither dataset has stock or
browsing data, so the censored-demand correction is not exercised here (tests cover it).
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

from shelfwise.insights._demand import forecast_series  # noqa: E402

H = 13
SEASON = 52
ANCHORS = ("SeasonalNaive", "AutoETS", "AutoTheta", "AutoARIMA")


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


def _anchors(train: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    make = {
        "SeasonalNaive": SeasonalNaive(season_length=SEASON),
        "AutoETS": AutoETS(season_length=SEASON),
        "AutoTheta": AutoTheta(season_length=SEASON),
        "AutoARIMA": AutoARIMA(season_length=SEASON),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = StatsForecast(models=[make[n] for n in names], freq="7D", n_jobs=1).forecast(df=train, h=H)
    fc["unique_id"] = fc["unique_id"].astype(str)
    return fc


def _scale(train: pd.DataFrame) -> pd.Series:
    """Per series: the in-sample MAE of the 52-week seasonal naive forecast."""
    return train.groupby("unique_id")["y"].apply(lambda s: s.diff(SEASON).abs().mean())


def evaluate(
    weekly: pd.DataFrame, origins: int, arima_series: int, variants: bool, seed: int = 0
) -> dict[str, Any]:
    weeks = np.sort(weekly["ds"].unique())
    ids = sorted(weekly["unique_id"].unique())
    rng = np.random.default_rng(seed)
    subset = sorted(rng.choice(ids, size=min(arima_series, len(ids)), replace=False).tolist())
    out: dict[str, Any] = {
        "series": len(ids),
        "weeks": len(weeks),
        "arima_subset": subset,
        "origins": [],
    }
    per: dict[str, list[pd.Series]] = {}
    covered: list[pd.Series] = []
    for k in range(origins, 0, -1):
        origin = weeks[-k * H - 1]
        train = weekly[weekly["ds"] <= origin]
        test = weekly[(weekly["ds"] > origin) & (weekly["ds"] <= origin + np.timedelta64(7 * H, "D"))]
        scale = _scale(train).replace(0.0, np.nan)
        truth = test.set_index(["unique_id", "ds"])["y"]
        preds: dict[str, pd.Series] = {}
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        # the other selection rules' point forecasts come from the same fits (`also`)
        also = {"ours_argmin": "series", "ours_mean_of_models": "Ensemble"}
        if variants:
            also["ours_group_choice"] = "group"
        ours, info = forecast_series(train, H, also=tuple(also.values()))
        seconds["ours"] = round(time.perf_counter() - t, 1)
        ours = ours.set_index(["unique_id", "ds"])
        preds["ours"] = ours["units"]
        for name, rule in also.items():
            preds[name] = ours[f"units_{rule}"]
        for a in ANCHORS:
            t = time.perf_counter()
            part = train[train["unique_id"].isin(subset)] if a == "AutoARIMA" else train
            fc = _anchors(part, (a,)).set_index(["unique_id", "ds"])
            seconds[a] = round(time.perf_counter() - t, 1)
            preds[a] = fc[a].clip(lower=0.0)
        res: dict[str, Any] = {"origin": str(pd.Timestamp(origin).date()), "seconds": seconds}
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
        res["mase"] = {n: round(float(v[-1].mean()), 4) for n, v in per.items() if n != "AutoARIMA"}
        out["origins"].append(res)
        print(f"  origin {res['origin']}: {res['mase']} {seconds}", flush=True)

    def mean(name: str, only: list[str] | None = None) -> float:
        vals = [v[v.index.isin(only)] if only is not None else v for v in per[name]]
        return round(float(np.mean([x.mean() for x in vals])), 4)

    out["ours_interval80_coverage"] = round(float(pd.concat(covered).mean()), 4)
    all_models = [n for n in per if n != "AutoARIMA"]
    out["mase"] = {n: mean(n) for n in all_models}
    out["mase_arima_subset"] = {n: mean(n, subset) for n in per}
    best = min((a for a in ANCHORS if a != "AutoARIMA"), key=lambda a: out["mase"][a])
    out["best_anchor"] = best
    out["ours_vs_best_anchor"] = round(out["mase"]["ours"] / out["mase"][best] - 1, 4)
    best_sub = min(ANCHORS, key=lambda a: out["mase_arima_subset"][a])
    out["best_anchor_arima_subset"] = best_sub
    out["ours_vs_best_anchor_arima_subset"] = round(
        out["mase_arima_subset"]["ours"] / out["mase_arima_subset"][best_sub] - 1, 4
    )
    return out


def demand_benchmark(
    datasets: list[str], origins: int, arima_series: int = 8, variants: bool = False, series: int = 0
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
            **evaluate(weekly, origins, arima_series, variants),
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


__all__ = ["DEMAND_DATASETS", "demand_benchmark", "interest_benchmark"]
