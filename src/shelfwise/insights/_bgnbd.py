"""The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way"), fitted by
maximum likelihood with scipy.

Why it is written out here: its maintained implementation is pymc-marketing, which brings PyMC
and a sampler into a runtime that needs three closed-form expressions (the likelihood, the
conditional expected purchases and P(alive)); `lifetimes` is archived. The benchmark
(benchmarks/insights.py) fits `lifetimes`' BetaGeoFitter on the same data as the anchor, so a
slip here would show there. It serves as a feature of the churn model (what a customer's
recency and frequency alone predict) and as the whole model when the history is too short to
learn from.

Inputs per customer, in days: `x` repeat purchases (orders after the first), `t_x` the time of
the last order after the first, `T` the time from the first order to the cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

PENALIZER = 0.001  # a small L2 penalty on the log-parameters, as lifetimes': keeps the fit finite


@dataclass(frozen=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBD:
        x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
        scale = max(float(T.max()), 1.0)  # fit in units of the longest T: a well-scaled alpha
        t_s, T_s = t_x / scale, T / scale

        def nll(log_p: np.ndarray) -> float:
            r, alpha, a, b = np.exp(log_p)
            a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
            a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
            a3 = -(r + x) * np.log(alpha + T_s)
            with np.errstate(divide="ignore", invalid="ignore"):
                a4 = np.where(
                    x > 0,
                    np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_s),
                    -np.inf,
                )
            ll = a1 + a2 + np.logaddexp(a3, a4)
            return float(-ll.mean() + PENALIZER * np.sum(log_p**2))

        res = minimize(nll, np.zeros(4), method="L-BFGS-B", bounds=[(-10, 10)] * 4)
        r, alpha, a, b = np.exp(res.x)
        return cls(float(r), float(alpha * scale), float(a), float(b))

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            odds = np.where(
                x > 0,
                self.a / (self.b + x - 1) * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x),
                0.0,
            )
        return 1.0 / (1.0 + odds)

    def expected(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected purchases in the next `t` days."""
        x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            head = (a + b + x - 1) / (a - 1)
            body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
            out = head * body * self.p_alive(x, t_x, T)
        # a < 1 makes the closed form unstable for some customers: fall back to the population rate
        bad = ~np.isfinite(out) | (out < 0)
        if bad.any():
            out = np.where(bad, r / alpha * t * self.p_alive(x, t_x, T), out)
        return out


__all__ = ["BGNBD"]
