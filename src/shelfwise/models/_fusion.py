"""Learning-to-rank fusion: LightGBM lambdarank over the union of every generator's candidates.

Each generator (transitions, ItemKNN, EASE, SASRec, ...) proposes its top `candidates` items;
the ranker sees, per (user, candidate), every generator's score and rank plus item and user
features, and is trained on a validation fold (what users did next, which the generators were
not fitted on). It is what `shelfwise train` serves when it beats its parts on held-out users.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from .._threads import lightgbm_threads
from ..features import Fold, Interactions
from ._base import Recommender, top_ids
from ._neighbours import step_pairs


class NoRankerData(ValueError):
    """The validation fold gives the ranker nothing to learn from (no user's next item is
    among the generators' candidates): a shop with a handful of users."""


class Fusion(Recommender):
    """`fit(interactions, generators=..., validation=...)` computes the item statistics from the
    training interactions and trains the ranker on the validation fold (`ranker_report_` holds
    its held-out comparison with the generators, `holdout_gains_` the per-user NDCG@10 it is the
    mean of); `fit(interactions)` alone on a fitted fusion
    refreshes the item statistics and keeps the ranker and generators (the refit for serving).
    A loaded fusion is given its (loaded) generators: `load(path, interactions, generators=...)`."""

    name = "fusion"
    scoring_batch_size = 512
    transient = ("interactions_", "generators_", "ranker_report_", "holdout_gains_")

    def __init__(
        self,
        candidates: int = 50,
        trees: int = 400,
        learning_rate: float = 0.05,
        leaves: int = 31,
        min_child_samples: int = 50,
        holdout: float = 0.2,
        seed: int = 0,
        bag: int = 3,
    ):
        self.candidates = candidates
        self.trees = trees
        self.learning_rate = learning_rate
        self.leaves = leaves
        self.min_child_samples = min_child_samples
        self.holdout = holdout
        self.seed = seed
        self.bag = bag

    def fit(
        self,
        interactions: Interactions,
        *,
        generators: Mapping[str, Recommender] | None = None,
        validation: Fold | None = None,
        item_category: np.ndarray | None = None,
        item_price: np.ndarray | None = None,
        item_brand: np.ndarray | None = None,
        item_attributes: Any | None = None,
    ) -> Self:
        """`generators`: fitted models (all on the same item index) whose candidates the ranker
        re-ranks; `validation`: the fold the ranker learns from (what users did next, which the
        generators were not fitted on); optional category and brand code (-1 unknown) and price
        (nan unknown) per item, and the items' attribute values (`attribute_matrix`: items x
        values, rows of unit length). Raises `NoRankerData` when the fold gives nothing to
        learn."""
        if generators is None:
            if not hasattr(self, "ranker_"):
                raise ValueError("Fusion.fit needs generators= and validation= (fitted models and a fold)")
            return super().fit(interactions)  # a refit: new item statistics, the same ranker
        if validation is None:
            raise ValueError(
                "Fusion.fit with generators= needs validation= (the fold the ranker learns from)"
            )
        self._set_side_inputs(generators, item_category, item_price, item_brand, item_attributes)
        super().fit(interactions)
        self.ranker_report_ = self._fit_ranker(validation)
        return self

    @classmethod
    def load(
        cls,
        path: str | Path,
        interactions: Interactions,
        *,
        generators: Mapping[str, Recommender] | None = None,
    ) -> Self:
        """A saved fusion with its generators (loaded on the same interactions); without them it
        can be saved again (erasure) but not asked for recommendations."""
        from .._lazy import lightgbm

        lightgbm()  # (its boosters unpickle through LightGBM: imported without scikit-learn)
        model = super().load(path, interactions)
        model.generators_ = dict(generators or {})
        return model

    def _set_side_inputs(
        self,
        generators: Mapping[str, Recommender],
        item_category: np.ndarray | None,
        item_price: np.ndarray | None,
        item_brand: np.ndarray | None,
        item_attributes: Any | None = None,
    ) -> None:
        self.generators_ = dict(generators)
        self.item_category_ = item_category
        self.item_brand_ = item_brand
        self.item_attributes_ = item_attributes
        self.item_log_price_ = None
        if item_price is not None:
            price = np.asarray(item_price, float)
            self.item_log_price_ = np.where(
                np.isfinite(price) & (price > 0), np.log1p(np.abs(price)), 0.0
            ).astype(np.float32)

    def feature_names(self) -> list[str]:
        """Every feature `_candidate_features` computes, in its column order."""
        names = []
        for g in self.generators_:
            names += [f"{g}_score", f"{g}_rank"]
        return names + _ITEM_USER_FEATURES + _ADDED_FEATURES

    def _used_features(self) -> list[str]:
        """The features the ranker was trained on (bundles from before a feature was added
        keep scoring with the features they knew)."""
        used = getattr(self, "features_", None)
        if used is not None:
            return list(used)
        return [n for n in self.feature_names() if n not in _ADDED_FEATURES]

    def _fit(self, interactions: Interactions) -> None:
        counts = interactions.item_counts().astype(np.float64)
        self.item_log_count_ = np.log1p(counts).astype(np.float32)
        # funnel rates from the training steps only (a step keeps its strongest event's weight:
        # >= 2 clicked, >= 4 carted, >= 8 purchased), shrunk towards 0 for rare items
        rates = []
        for w in (2.0, 4.0, 8.0):
            hit = np.bincount(
                interactions.item_idx,
                weights=(interactions.weight >= w).astype(np.float64),
                minlength=interactions.n_items,
            )
            rates.append(hit / (counts + 5.0))
        self.item_rates_ = np.stack(rates, axis=1).astype(np.float32)  # (n_items, 3)
        # freshness: days from the item's last step to the end of the training data, and the
        # share of its steps in the last 7 days (what is trending when the model was trained)
        ts = interactions.timestamp.astype(np.int64)
        end = int(ts.max()) if len(ts) else 0
        last = np.full(interactions.n_items, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(last, interactions.item_idx, ts)
        days = np.where(last > np.iinfo(np.int64).min, (end - last) / 86400.0, 1e4)
        self.item_log_days_since_last_ = np.log1p(np.clip(days, 0, 1e4)).astype(np.float32)
        recent = np.bincount(
            interactions.item_idx,
            weights=(ts >= end - 7 * 86400).astype(np.float64),
            minlength=interactions.n_items,
        )
        self.item_recent_share_ = (recent / (counts + 5.0)).astype(np.float32)
        (self.next_counts_, self.next_out_degree_, self.window_counts_, self.user_cosine_) = _step_statistics(
            interactions
        )

    def _candidate_features(
        self, users: np.ndarray, history: Interactions
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat (rows, cols, features): candidate item `cols[j]` for batch row `rows[j]`."""
        n, v = len(users), self.n_items_
        c = min(self.candidates, v)
        seen = history.seen()[users]
        seen_rows = np.repeat(np.arange(n), np.diff(seen.indptr))
        # each generator's top c per user, as flat keys row * v + item (no users x items rank
        # or mark matrices: on an 18k-item catalog those dominated the cost)
        tops = []
        for g in self.generators_.values():
            s = np.array(g.score(users, history), dtype=np.float32, copy=True)
            s[seen_rows, seen.indices] = -np.inf
            if c < v:
                top = top_ids(s, c)
            else:
                top = np.tile(np.arange(v), (n, 1))
                order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
                top = np.take_along_axis(top, order, axis=1)
            keys = (np.arange(n, dtype=np.int64)[:, None] * v + top).ravel()
            finite = np.isfinite(np.take_along_axis(s, top, axis=1)).ravel()
            tops.append((s, keys, finite))
        cand = np.unique(np.concatenate([k[f] for _, k, f in tops]))  # sorted: row-major order
        rows, cols = (cand // v).astype(np.int64), (cand % v).astype(np.int64)
        in_top = np.tile(np.arange(1, c + 1, dtype=np.float32), n)
        feats = []
        n_gen = np.zeros(len(cand), np.float32)
        for s, keys, _ in tops:
            rank = np.full(len(cand), self.candidates + 1, np.float32)
            pos = np.searchsorted(cand, keys)
            hit = pos < len(cand)
            hit[hit] = cand[pos[hit]] == keys[hit]
            rank[pos[hit]] = in_top[hit]
            n_gen += rank <= self.candidates
            feats += [s[rows, cols], rank]
        feats.append(n_gen)
        feats.append(self.item_log_count_[cols])
        off = history.offsets
        lengths = (off[users + 1] - off[users]).astype(np.float32)
        feats.append(np.log1p(lengths)[rows])
        # each user's most recent item (-1: no history), for the "same as last" features
        last = np.array([history.item_idx[off[u + 1] - 1] if off[u + 1] > off[u] else -1 for u in users])
        # category codes compare as they are (an unknown category matches an unknown one, as
        # before brands came); brand codes ignore unknown brands
        feats += _code_affinity(self.item_category_, users, rows, cols, history, last, known_only=False)
        rates = getattr(self, "item_rates_", None)
        for j in range(3):
            feats.append(rates[cols, j] if rates is not None else np.zeros(len(rows), np.float32))
        lp = getattr(self, "item_log_price_", None)
        if lp is not None:
            # the user's price level: mean log price of the priced items in their history
            level = _history_means(lp, users, history, priced_only=True)
            feats.append(lp[cols])
            feats.append(np.where((lp[cols] > 0) & (level[rows] > 0), lp[cols] - level[rows], 0.0))
        else:
            feats += [np.zeros(len(rows), np.float32), np.zeros(len(rows), np.float32)]
        feats += _code_affinity(
            getattr(self, "item_brand_", None), users, rows, cols, history, last, known_only=True
        )
        for name in ("item_log_days_since_last_", "item_recent_share_"):
            arr = getattr(self, name, None)
            feats.append(arr[cols] if arr is not None else np.zeros(len(rows), np.float32))
        feats += _attribute_affinity(
            getattr(self, "item_attributes_", None), users, rows, cols, history, last
        )
        feats += _step_affinity(self, users, rows, cols, history, last)
        # the user's taste for popular or niche items: the mean log count of their history's
        # items, and the candidate's own log count less it
        lc = self.item_log_count_
        level = _history_means(lc, users, history)
        feats += [level[rows], lc[cols] - level[rows]]
        x = np.column_stack(feats).astype(np.float32)
        x[~np.isfinite(x)] = -1e9
        used = self._used_features()
        if len(used) != x.shape[1]:
            x = x[:, [self.feature_names().index(f) for f in used]]
        return rows, cols, x

    def _fit_ranker(self, fold: Fold) -> dict[str, Any]:
        """Train the ranker on `fold` (a validation fold), keeping `holdout` of its users aside;
        returns NDCG@10 on those held-out users for the fusion and for each generator."""
        from .._lazy import lightgbm

        lgb = lightgbm()

        self._check_fitted()
        self.features_ = self.feature_names()
        rng = np.random.default_rng(self.seed)
        is_hold = rng.random(len(fold.users)) < self.holdout
        hold_rows: list[tuple[bool, np.ndarray, np.ndarray, np.ndarray]] = []
        for lo in range(0, len(fold.users), self.scoring_batch_size):
            users = fold.users[lo : lo + self.scoring_batch_size]
            rows, cols, x = self._candidate_features(users, fold.history)
            tgt = fold.targets[lo : lo + self.scoring_batch_size]
            y = np.asarray(tgt[rows, cols]).ravel().astype(np.float32)
            # rows are sorted (the candidates are in row-major order): each user's are one slice
            bounds = np.searchsorted(rows, np.arange(len(users) + 1))
            for r in range(len(users)):
                sel = slice(bounds[r], bounds[r + 1])
                hold_rows.append((is_hold[lo + r], x[sel], y[sel], cols[sel]))
        train = [(x, y) for h, x, y, _ in hold_rows if not h and y.sum() > 0]
        valid = [(x, y) for h, x, y, _ in hold_rows if h and y.sum() > 0]
        if not train:
            raise NoRankerData(
                f"none of the {len(fold.users) - int(is_hold.sum())} validation users it trains on "
                f"has its next item among the generators' top {self.candidates}"
            )
        xs = np.vstack([x for x, _ in train])
        ys = np.concatenate([y for _, y in train])
        groups = [len(y) for _, y in train]
        # LightGBM's own parameter names for what its scikit-learn ranker was given before
        # (the same models, tree for tree: that wrapper passed these to `lightgbm.train`)
        params: dict[str, Any] = dict(
            objective="lambdarank",
            learning_rate=self.learning_rate,
            num_leaves=self.leaves,
            min_child_samples=self.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            seed=self.seed,
            deterministic=True,
            force_row_wise=True,
            num_threads=lightgbm_threads(len(ys)),
            verbose=-1,
        )
        train_set = lgb.Dataset(xs, ys, group=groups, feature_name=self.features_)
        rounds = self.trees
        if valid:
            curve: dict[str, Any] = {}
            ranker = lgb.train(
                {**params, "metric": "ndcg", "eval_at": [10]},
                train_set,
                num_boost_round=self.trees,
                valid_sets=[
                    lgb.Dataset(
                        np.vstack([x for x, _ in valid]),
                        np.concatenate([y for _, y in valid]),
                        group=[len(y) for _, y in valid],
                        reference=train_set,
                    )
                ],
                # a long patience: the held-out curve is noisy (a few thousand users), and its
                # first dip is rarely its top (see `_smoothed_best`)
                callbacks=[lgb.early_stopping(100, verbose=False), lgb.record_evaluation(curve)],
            )
            rounds = _smoothed_best(np.asarray(curve["valid_0"]["ndcg@10"]))
        else:
            ranker = lgb.train(params, train_set, num_boost_round=self.trees)
        # held-out comparison: NDCG@10 of the fusion and of each generator alone, on the
        # held-out users (every user, not only those whose target was a candidate)
        out: dict[str, Any] = {"train_users": len(train), "holdout_users": int(is_hold.sum())}
        hold = [(x, y) for h, x, y, _ in hold_rows if h]
        if hold:
            gains: dict[str, list[float]] = {g: [] for g in ["fusion", *self.generators_]}
            for x, y in hold:
                if len(y) == 0:
                    for g in gains:
                        gains[g].append(0.0)
                    continue
                pred = np.asarray(ranker.predict(x, num_iteration=rounds), np.float32)
                gains["fusion"].append(_ndcg_at_10(pred, y))
                for gi, g in enumerate(self.generators_):
                    gains[g].append(_ndcg_at_10(-x[:, 2 * gi + 1], y))
            out["holdout_ndcg@10"] = {g: float(np.mean(v)) for g, v in gains.items()}
            # per held-out user, in the same user order for each (not saved): a difference
            # between two of them is paired by user (`lifecycle._train.fusion_versus_parts`)
            self.holdout_gains_ = {g: np.asarray(v, np.float64) for g, v in gains.items()}
        # the served rankers: `bag` seeds on every user the fold has (the held-out ones too), for
        # the rounds the held-out curve chose, scaled to the larger set; their scores averaged.
        # On Beauty (default pipeline, test NDCG@10, at 5 generators): one seed on 80% of the
        # users with early stopping at 30 rounds 0.0657-0.0678 by seed; three seeds on all
        # users 0.0687.
        final = rounds if not valid else int(np.ceil(rounds / (1.0 - self.holdout)))
        del xs, ys, train_set
        x_all = np.vstack([x for x, _ in train + valid])
        y_all = np.concatenate([y for _, y in train + valid])
        g_all = [len(y) for _, y in train + valid]
        self.rankers_ = []
        for k in range(max(1, self.bag)):
            every = lgb.Dataset(x_all, y_all, group=g_all, feature_name=self.features_)
            self.rankers_.append(lgb.train({**params, "seed": self.seed + k}, every, num_boost_round=final))
        self.ranker_ = self.rankers_[0]
        out["best_iteration"] = int(rounds)
        out["final_rounds"] = int(final)
        out["bag"] = len(self.rankers_)
        importance = np.mean([_booster(r).feature_importance("gain") for r in self.rankers_], axis=0)
        out["feature_importance"] = {n: float(v) for n, v in zip(self.features_, importance, strict=True)}
        return out

    def _score(self, users: np.ndarray, history: Interactions) -> np.ndarray:
        out = np.full((len(users), self.n_items_), -np.inf, np.float32)
        rows, cols, x = self._candidate_features(users, history)
        if len(rows):
            out[rows, cols] = self._predict(x)
        return out

    def _predict(self, x: np.ndarray) -> np.ndarray:
        """The mean score of the bag's rankers (a fusion saved before the bag: its one ranker)."""
        rankers = getattr(self, "rankers_", None) or [self.ranker_]
        return np.asarray(np.mean([_predict(r, x) for r in rankers], axis=0), np.float32)


def _booster(ranker: Any) -> Any:
    """A ranker's LightGBM booster: the ranker itself, or the one inside the scikit-learn
    wrapper a fusion saved before this version was trained with."""
    return getattr(ranker, "booster_", ranker)


def _predict(ranker: Any, x: np.ndarray) -> np.ndarray:
    """The ranker's scores of feature rows `x`, through the booster (the scikit-learn wrapper of
    a fusion saved before checked that a plain array has the fitted feature names and warned on
    every batch), at the wrapper's early-stopping best iteration where it had one (the
    boosters trained now are trained for the rounds they are to use)."""
    best = getattr(ranker, "best_iteration_", None)
    return np.asarray(_booster(ranker).predict(x, num_iteration=best or None), np.float32)


def _attribute_affinity(
    attributes: Any | None,
    users: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    history: Interactions,
    last: np.ndarray,
) -> list[np.ndarray]:
    """Two features per candidate from the items' attribute values (`attribute_matrix`: rows of
    unit length, so a row product is the cosine of two items' value sets): the cosine with the
    user's last item, and the mean cosine with the items of the user's history. Zeros without
    attributes (or without history). On Beauty (S3-Rec's attributes) they took the default
    pipeline's NDCG@10 from 0.0639 to 0.0678. Measured and not taken: a third, the lift between
    the last item's values and the candidate's on consecutive training steps (P(b next | a) /
    P(b)): 0.0675 with it."""
    if attributes is None or not len(rows):
        return [np.zeros(len(rows), np.float32), np.zeros(len(rows), np.float32)]
    import scipy.sparse as sp

    off = history.offsets
    starts, ends = off[users], off[users + 1]
    lengths = ends - starts
    # the batch's histories as a (users x items) matrix of 1 / length weights, times the
    # attributes: each user's mean value vector
    idx = np.concatenate([history.item_idx[a:b] for a, b in zip(starts, ends, strict=True)])
    weights = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    hist = sp.csr_matrix((weights, idx.astype(np.int64), indptr), shape=(len(users), attributes.shape[0]))
    profile = (hist @ attributes).tocsr()
    cand = attributes[cols]
    share = np.asarray(cand.multiply(profile[rows]).sum(axis=1), np.float32).ravel()
    has_last = last[rows] >= 0
    same = np.asarray(cand.multiply(attributes[np.maximum(last[rows], 0)]).sum(axis=1), np.float32).ravel()
    return [np.where(has_last, same, 0.0).astype(np.float32), share]


def _smoothed_best(curve: np.ndarray, window: int = 21) -> int:
    """The boosting rounds at the top of a held-out NDCG curve after a moving average over
    `window` rounds: on Beauty the raw top of one seed's curve fell anywhere from 25 to 134
    rounds (a few thousand held-out users), the three seeds' mean curve is flat from ~80 to
    ~220 and tops at 133."""
    if len(curve) <= window:
        return int(np.argmax(curve)) + 1
    half = window // 2
    smooth = np.convolve(np.pad(curve, half, mode="edge"), np.ones(window) / window, mode="valid")
    return int(np.argmax(smooth)) + 1


def _step_statistics(interactions: Interactions) -> tuple[Any, Any, Any, Any]:
    """Item x item statistics of the training sequences (sparse): how often b came right after a
    (`next`) and how many steps came right after a (its row sums), how often b came after a
    within three steps, weighted 1 / distance (`window`), and the cosine of a and b over the
    users who have both (`cosine`)."""
    import scipy.sparse as sp

    v = interactions.n_items
    nxt = window = sp.csr_matrix((v, v), dtype=np.float32)
    for k in (1, 2, 3):
        a, b = step_pairs(interactions, k)
        pairs = sp.csr_matrix((np.full(len(a), 1.0 / k, np.float32), (a, b)), shape=(v, v))
        window = window + pairs
        if k == 1:
            nxt = pairs
    seen = interactions.seen()  # binary
    co = (seen.T @ seen).tocsr()
    norm = 1.0 / np.sqrt(np.maximum(co.diagonal(), 1.0)).astype(np.float32)
    cosine = sp.diags(norm) @ co @ sp.diags(norm)
    out_degree = np.asarray(nxt.sum(axis=1), np.float32).ravel()
    return nxt.tocsr(), out_degree, window.tocsr(), cosine.tocsr().astype(np.float32)


def _step_affinity(
    model: Fusion,
    users: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    history: Interactions,
    last_item: np.ndarray,
) -> list[np.ndarray]:
    """Seven features per candidate from the user's last steps, read in `_step_statistics`: how
    often the candidate followed the last item (the count, its share of what followed it), how
    often it came right before it, how often it followed the second-to-last item, the windowed
    count from the last item and from the last three, and the users' cosine with the last item.
    The generators mix a user's whole history; these give the ranker the last step apart. On
    Beauty: held-out validation NDCG@10 0.0797 -> 0.0816 (three seeds' mean), test 0.0687 ->
    0.0701. Zeros for a fusion fitted before them."""
    nxt = getattr(model, "next_counts_", None)
    if nxt is None or not len(rows) or not len(history.item_idx):
        return [np.zeros(len(rows), np.float32) for _ in range(7)]
    window, cosine = model.window_counts_, model.user_cosine_
    off = history.offsets
    length = off[users + 1] - off[users]

    def back(k: int) -> np.ndarray:
        """The k-th last item per candidate row (-1: a history shorter than k)."""
        item = np.where(length >= k, history.item_idx[np.maximum(off[users + 1] - k, 0)], -1)
        return item[rows]

    def pair(mat: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ok = a >= 0
        out = np.zeros(len(a), np.float32)
        if ok.any():
            out[ok] = np.asarray(mat[a[ok], b[ok]], np.float32).ravel()
        return out

    last, second, third = last_item[rows], back(2), back(3)
    after_last = pair(nxt, last, cols)
    share = after_last / (model.next_out_degree_[np.maximum(last, 0)] + 1.0)
    window_last = pair(window, last, cols)
    window_three = window_last + pair(window, second, cols) + pair(window, third, cols)
    return [
        after_last,
        share,
        pair(nxt, cols, last) * (last >= 0),
        pair(nxt, second, cols),
        window_last,
        window_three,
        pair(cosine, last, cols),
    ]


def _code_affinity(
    codes: np.ndarray | None,
    users: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    history: Interactions,
    last: np.ndarray,
    *,
    known_only: bool,
) -> list[np.ndarray]:
    """Two features per candidate from an item code (category, brand): whether the candidate has
    the code of the user's last item, and the share of the user's history with its code. With
    `known_only`, negative codes (unknown) never match and do not count in the history."""
    if codes is None:
        return [np.zeros(len(rows), np.float32), np.zeros(len(rows), np.float32)]
    off = history.offsets
    last_code = np.where(last >= 0, codes[np.maximum(last, 0)], -2)
    same = codes[cols] == last_code[rows]
    if known_only:
        same &= codes[cols] >= 0
    share = np.zeros(len(rows), np.float32)
    for r_i, u in enumerate(users):
        hist = codes[history.item_idx[off[u] : off[u + 1]]]
        if known_only:
            hist = hist[hist >= 0]
        if len(hist):
            sel = rows == r_i
            share[sel] = (codes[cols[sel]][:, None] == hist[None, :]).mean(axis=1)
    return [same.astype(np.float32), share]


_ITEM_USER_FEATURES = [
    "n_generators",
    "item_log_count",
    "user_log_length",
    "same_category_as_last",
    "category_share",
    "item_click_rate",
    "item_cart_rate",
    "item_purchase_rate",
    "item_log_price",
    "price_gap_to_user",
]
# added later: a ranker trained before these scores without them (see `_used_features`)
_ADDED_FEATURES = [
    "same_brand_as_last",
    "brand_share",
    "item_log_days_since_last",
    "item_recent_share",
    "attribute_cosine_to_last",
    "attribute_cosine_to_history",
    "followed_last",
    "followed_last_share",
    "preceded_last",
    "followed_second_last",
    "window_from_last",
    "window_from_last_three",
    "user_cosine_to_last",
    "user_mean_log_count",
    "log_count_gap_to_user",
]


def _history_means(
    values: np.ndarray, users: np.ndarray, history: Interactions, priced_only: bool = False
) -> np.ndarray:
    """Per user, the mean of `values` over their history's items (`priced_only`: over those
    with a value above 0); 0 when there is none."""
    off = history.offsets
    out = np.zeros(len(users), np.float32)
    for r, u in enumerate(users):
        v = values[history.item_idx[off[u] : off[u + 1]]]
        if priced_only:
            v = v[v > 0]
        out[r] = v.mean() if len(v) else 0.0
    return out


def _ndcg_at_10(pred: np.ndarray, y: np.ndarray) -> float:
    """NDCG@10 of candidates ordered by `pred`, with labels `y` as gains."""
    from ..evaluation._metrics import graded_ndcg_at_k  # local: evaluation imports models

    return graded_ndcg_at_k(list(np.argsort(-pred, kind="stable")), dict(enumerate(y.tolist())))
