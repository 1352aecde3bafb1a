"""Matrix factorization (implicit's ALS and BPR) and EASE, a closed-form linear item model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..features import Interactions
from ._base import Recommender


class _ImplicitMF(Recommender):
    """Shared scoring for implicit's factor models: user factors are recomputed from the
    query-time history when it differs from the training one (a user who just acted)."""

    holds_user_state = True  # a factor vector per training user

    def _make(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, interactions: Interactions) -> None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's own threads; BLAS threads would oversubscribe
            model = self._make()  # (inside: implicit checks the BLAS threads when it is made)
            model.fit(self._matrix(interactions), show_progress=False)
        self.model_ = model
        self.user_factors_ = np.asarray(model.user_factors, np.float32)
        self.fitted_steps_ = len(interactions)  # the factors describe exactly this history
        self.item_factors_ = np.asarray(model.item_factors, np.float32)

    def _matrix(self, interactions: Interactions) -> sp.csr_matrix:
        return interactions.to_csr(weighted=True)

    def _forget(self, users: np.ndarray) -> None:
        # the user's factors, ours and implicit's copy (what a refit of the user would start
        # from); zero is what a user with no history gets
        users = users[users < len(self.user_factors_)]
        self.user_factors_[users] = 0.0
        inner = getattr(getattr(self, "model_", None), "user_factors", None)
        if isinstance(inner, np.ndarray):
            inner[users[users < len(inner)]] = 0

    def _fresh(self, history: Interactions) -> bool:
        """Whether the fitted user factors describe `history` (not so for a bundle serving
        a longer history than the one the model was fitted on)."""
        return history is self.interactions_ and getattr(self, "fitted_steps_", -1) == len(history)

    def _user_vectors(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        if self._fresh(history):
            return self.user_factors_[users]
        rows = self._matrix(history)[users]
        return np.asarray(self.model_.recalculate_user(np.arange(len(users)), rows), np.float32)

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        return self._user_vectors(users, history) @ self.item_factors_.T


class ALS(_ImplicitMF):
    """Implicit-feedback ALS (Hu, Koren, Volinsky); confidence = 1 + alpha * weight, the
    weight decayed by age when `half_life_days` is set (halved every half-life before the
    newest step of the history)."""

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        seed: int = 0,
        half_life_days: float | None = None,
    ):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.half_life_days = half_life_days

    def _matrix(self, interactions: Interactions) -> sp.csr_matrix:
        return interactions.to_csr(weighted=True, half_life_days=self.half_life_days)

    def _make(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=0,
        )


class BPR(_ImplicitMF):
    """Bayesian personalized ranking (implicit); the query-time history re-fits the user by
    least squares on the item factors, since BPR has no closed-form user update."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.001,
        iterations: int = 100,
        seed: int = 0,
    ):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.seed = seed

    def _make(self):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=1,  # BPR's parallel SGD is racy (Hogwild): one thread keeps a seed's result
        )

    def _matrix(self, interactions: Interactions) -> sp.csr_matrix:
        return interactions.seen()

    def _user_vectors(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        if self._fresh(history):
            return self.user_factors_[users]
        # BPR scores with a bias column in the item factors; the mean of the history items'
        # factors is a stable user embedding for histories unseen at fit time.
        rows = self._matrix(history)[users]
        cnt = np.maximum(np.asarray(rows.sum(axis=1)).ravel(), 1.0)
        return np.asarray((rows @ self.item_factors_) / cnt[:, None], np.float32)


class EASE(Recommender):
    """EASE (Steck 2019): B = I - P diagMat(1/diag(P)), P = (X'X + l2 I)^-1; scores = X B.

    The Gram matrix is items x items, so the model keeps the `max_items` most popular items
    (the rest score 0): 20k items is 1.6 GB in float32 and about a minute on 2 cores.
    With `half_life_days`, the Gram matrix is made of age-decayed cells (see
    `Interactions.decayed_seen`): recent co-occurrences weigh more.
    """

    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 20000, half_life_days: float | None = None):
        self.l2 = l2
        self.max_items = max_items
        self.half_life_days = half_life_days

    def _fit(self, interactions: Interactions) -> None:
        self.__dict__.pop("weights_", None)  # a refit: free the old items x items matrix first
        x = interactions.decayed_seen(self.half_life_days)
        counts = np.asarray(interactions.seen().sum(axis=0)).ravel()  # popularity, not decayed
        keep = np.argsort(-counts, kind="stable")[: self.max_items]
        keep = np.sort(keep[counts[keep] > 0])
        xs = x[:, keep]
        # in place: one items x items matrix less at the peak
        p = _spd_inverse(_ridge_gram(xs, self.l2))
        if p is None:  # not positive definite in floating point (a tiny l2): LU, as before
            p = scipy.linalg.inv(_ridge_gram(xs, self.l2), overwrite_a=True, check_finite=False)
        del xs
        p /= -np.diag(p)  # in place: B = -P / diag(P), each column by its diagonal
        p[np.diag_indices_from(p)] = 0.0
        self.items_ = keep
        # row-major (LU's inverse comes column-major; Cholesky's already is): scoring (sparse
        # history @ B) given a column-major B had scipy copy all of it, transposed, at every
        # call (items^2 floats per batch of users)
        self.weights_ = _row_major_in_place(p)

    @classmethod
    def load(cls, path: str | Path, interactions: Interactions) -> Self:
        model = super().load(path, interactions)
        w = getattr(model, "weights_", None)
        if isinstance(w, np.ndarray) and not w.flags.c_contiguous:
            # saved column-major (before 0.1.0's fix): made row-major once here, not copied and
            # transposed by every scoring call (in memory then, no longer mapped from the file)
            model.weights_ = np.ascontiguousarray(w)
        return model

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        h = history.seen()[users][:, self.items_]
        out = np.zeros((len(users), self.n_items_), np.float32)
        out[:, self.items_] = h @ self.weights_
        return out


def _ridge_gram(xs: Any, l2: float) -> np.ndarray:
    """X'X + l2 I, dense. float32 throughout: the ridge term keeps the system well
    conditioned, and it halves memory and time (12k items: 0.6 GB per matrix instead of 1.2)."""
    g = (xs.T @ xs).toarray().astype(np.float32)
    g[np.diag_indices_from(g)] += np.float32(l2)
    return np.asarray(g)


def _spd_inverse(g: np.ndarray, block: int = 512) -> np.ndarray | None:
    """The inverse of a symmetric positive definite matrix (EASE's Gram matrix plus its ridge),
    in `g`'s own buffer, row-major: Cholesky (LAPACK potrf + potri, half the arithmetic of
    the LU inverse: 12k items 7.5 s instead of 15 s on 2 cores), whose one computed triangle
    is mirrored into the other block by block. None when Cholesky refuses it (not positive
    definite in floating point): `g` is then overwritten."""
    from scipy.linalg import lapack

    if len(g) == 0:
        return g
    # symmetric: a row-major buffer read column-major is the same matrix (no copy for LAPACK)
    a = g if g.flags.f_contiguous else g.T
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (a,))
    c, info = potrf(a, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        c, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        return None
    # `c` holds the inverse's upper triangle column-major: its row-major view `b` holds the
    # lower triangle; copy it over the upper one
    b = c.T
    n = len(b)
    for i in range(0, n, block):
        d = b[i : i + block, i : i + block]
        d[...] = np.tril(d) + np.tril(d, -1).T
        for j in range(i + block, n, block):
            b[i : i + block, j : j + block] = b[j : j + block, i : i + block].T
    return b


def _row_major_in_place(a: np.ndarray, block: int = 512) -> np.ndarray:
    """A square matrix's values in row-major (C) order, in its own buffer: a column-major
    matrix is transposed in place block by block (no second matrix at the peak). The values
    are moved, never computed: the result equals `np.ascontiguousarray(a)` bit for bit."""
    if a.flags.c_contiguous or not a.flags.f_contiguous or a.shape[0] != a.shape[1]:
        return np.ascontiguousarray(a)
    b = a.T  # row-major view of the same buffer: b[i, j] = a[j, i]
    n = len(b)
    for i in range(0, n, block):
        d = b[i : i + block, i : i + block]
        d[...] = d.T.copy()
        for j in range(i + block, n, block):
            upper = b[i : i + block, j : j + block].copy()
            b[i : i + block, j : j + block] = b[j : j + block, i : i + block].T
            b[j : j + block, i : i + block] = upper.T
    return b  # now b[i, j] is the old a[i, j]
