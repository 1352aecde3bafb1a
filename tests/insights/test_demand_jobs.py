"""How `insights demand` runs its fits (insights/_demand.py, "running the fits"): the series fitted
in chunks, here or in forked worker processes, give the very forecasts statsforecast gives in one
loop (to the last digit: AutoTheta's sums depend on where a series lies in memory, and the chunks
are fitted in place); the number of processes; the progress shown, step by step, with what
remains."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from shelfwise.errors import ShelfwiseError
from shelfwise.insights import _demand
from shelfwise.insights._demand import _fitting, _Run, _statsforecast, demand_jobs, forecast_series


def _weekly(n: int, weeks: int, seed: int = 7, period: int = 4) -> pd.DataFrame:
    """`n` seeded weekly series, starting on different weeks (so a series' place in the array
    statsforecast builds is odd or even), half smooth with a `period`-week season, half
    intermittent, with interest tracking sales for some."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-04", periods=weeks, freq="7D")
    parts = []
    for i in range(n):
        start = int(rng.integers(0, weeks // 3))
        k = weeks - start
        lam = (
            (2 + i % 5) * (1 + 0.5 * np.sin(2 * np.pi * np.arange(start, weeks) / period))
            if i % 2 == 0
            else np.full(k, 0.4)
        )
        y = rng.poisson(lam).astype(float)
        interest = (rng.poisson(10 * lam) if i % 4 == 0 else rng.poisson(15, k)).astype(float)
        parts.append(pd.DataFrame({"unique_id": f"S{i:02d}", "ds": ds[start:], "y": y, "interest": interest}))
    return pd.concat(parts, ignore_index=True)


@pytest.mark.parametrize("jobs", [1, 2])
def test_chunked_fits_are_statsforecasts_to_the_last_digit(monkeypatch, jobs):
    """Forecasts and cross-validation of AutoTheta (whose sums depend on a series' alignment in
    memory) and AutoETS on non-integer series (a GroupTheta-like adjusted demand), in chunks of 3
    series, here or in 2 worker processes: exactly statsforecast's own single loop."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta

    d = _weekly(20, 60)[["unique_id", "ds", "y"]]
    d = d.assign(y=d["y"] / (1 + 0.37 * np.sin(d["ds"].dt.day_of_year / 9)))
    monkeypatch.setattr(_demand, "CHUNK_SERIES", 3)

    def models() -> list:
        return [AutoTheta(season_length=1), AutoETS(season_length=1)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = StatsForecast(models=models(), freq="7D", n_jobs=1)
        want_fc = plain.forecast(df=d, h=8)
        want_cv = plain.cross_validation(df=d, h=6, n_windows=2, step_size=6)
        with _fitting(_Run(jobs=jobs)):
            got_fc = _statsforecast(models()).forecast(df=d, h=8)
            got_cv = _statsforecast(models()).cross_validation(df=d, h=6, n_windows=2, step_size=6)
    assert_frame_equal(got_fc, want_fc, check_exact=True)
    assert_frame_equal(got_cv, want_cv, check_exact=True)


def test_forecast_series_is_the_same_whatever_the_processes(monkeypatch):
    """The whole model (a season of 4 with GroupTheta, intermittent series, interest as a
    candidate, the rule chosen by CV and other rules from the same fits): the same forecasts,
    intervals, choices and CV errors in one loop, in chunks of 4 series, and in 2 processes."""
    d = _weekly(16, 56)
    kw = {"season": 4, "select": "auto", "also": ("series", "top2")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, want_info = forecast_series(d, 8, jobs=1, **kw)
        monkeypatch.setattr(_demand, "CHUNK_SERIES", 4)
        for jobs in (1, 2):
            got, info = forecast_series(d, 8, jobs=jobs, **kw)
            assert_frame_equal(got, want, check_exact=True)
            assert info == want_info
    assert {"GroupTheta", "InterestETS"} <= set(want_info["cv_mae"])  # (the paths it covers)
    assert any(c["group"].startswith("intermittent") for c in want_info["calibration"])


def test_processes_follow_the_cpus_and_the_series(monkeypatch):
    """One process per 150 series up to the CPUs the process may use; SHELFWISE_DEMAND_JOBS fixes
    it; a test's few series are fitted here (no worker)."""
    monkeypatch.delenv("SHELFWISE_DEMAND_JOBS", raising=False)
    monkeypatch.setattr("shelfwise._threads.available_cpus", lambda: 4)
    monkeypatch.setattr("threading.active_count", lambda: 1)
    assert [demand_jobs(n) for n in (10, 299, 300, 1500)] == [1, 1, 2, 4]
    # a process running other threads (a server, a notebook) forks no worker unless told to
    monkeypatch.setattr("threading.active_count", lambda: 3)
    assert demand_jobs(1500) == 1
    monkeypatch.setenv("SHELFWISE_DEMAND_JOBS", "3")
    assert demand_jobs(10) == 3
    monkeypatch.setenv("SHELFWISE_DEMAND_JOBS", "many")
    with pytest.raises(ShelfwiseError, match="SHELFWISE_DEMAND_JOBS='many'"):
        demand_jobs(10)


class _Recorder:
    """Stands in for rich's display: every step, its total and its count."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def add_task(self, name: str, total: float | None, remaining: str) -> int:
        self.steps.append({"name": name, "total": total, "done": 0, "remaining": remaining})
        return len(self.steps) - 1

    def update(self, task: int, total: float) -> None:
        self.steps[task]["total"] = total

    def advance(self, task: int, steps: float) -> None:
        self.steps[task]["done"] += steps

    def remove_task(self, task: int) -> None:
        pass

    def refresh(self) -> None:
        """(a frame drawn: the step as it began, and as it ended)"""

    @property
    def task_ids(self) -> list[int]:
        return list(range(len(self.steps)))

    @property
    def tasks(self) -> list:
        return [type("Task", (), {"total": s["total"]}) for s in self.steps]


def test_progress_shows_each_step_its_series_and_what_remains(monkeypatch):
    """A person watching sees each step of fits by name, its series done of the total (all done
    when it ends), and the steps and groups of series after it; nobody watching (the tests, a
    pipe): no display at all."""
    recorder = _Recorder()

    def shown(self, show):
        self._progress, self._task = (recorder if show else None), None

    monkeypatch.setattr(_demand._Progress, "__init__", shown)
    monkeypatch.setattr(_demand._Progress, "__enter__", lambda self: self)
    monkeypatch.setattr(_demand._Progress, "__exit__", lambda self, *exc: None)
    d = _weekly(8, 56)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecast_series(d, 8, season=4, jobs=1)  # (pytest captures stdout: not a terminal)
        assert recorder.steps == []
        forecast_series(d, 8, season=4, jobs=1, progress=True)
    names = [s["name"] for s in recorder.steps]
    assert names == [
        "smooth series, season 4: cross-validation",
        "smooth series, season 4: final fit",
        "smooth series, season 4: GroupTheta",
        "smooth series, season 4: InterestETS",
        "intermittent series, season 4: cross-validation",
        "intermittent series, season 4: final fit",
        "intermittent series, season 4: GroupTheta",
    ]
    assert recorder.steps[0]["remaining"] == (
        "then: final fit, GroupTheta, InterestETS, intermittent series, season 4 (4)"
    )
    assert recorder.steps[4]["remaining"] == "then: final fit, GroupTheta"
    assert recorder.steps[-1]["remaining"] == ""
    assert recorder.steps[0]["total"] == recorder.steps[1]["total"] == 4  # the smooth series
    assert recorder.steps[2]["total"] == 4 * 4  # GroupTheta: 3 windows and the final fit
    assert all(s["done"] == s["total"] for s in recorder.steps)
