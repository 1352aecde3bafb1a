"""Training the engine's learned stages on the shop's judgments and clicks: the LightGBM
lambdarank ranker (kept only if it beats the hybrid on held-out queries), MiniLM fine-tuned on
judged pairs (kept only if it beats the shipped encoder), and the cross-encoder re-ranker (kept
only if it improves the pipeline's order). All three hold out the same queries."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .._threads import lightgbm_threads
from ..evaluation._metrics import graded_ndcg_at_k as ndcg_at_k
from ._clicks import ClickGroup, debias
from ._cross import CrossSettings, OnnxCrossEncoder
from ._features import _RRF, FEATURES, RankingFeatures
from ._finetune import FinetuneSettings
from ._index import _BoosterRanker
from ._personal import USER_FEATURES, Profile
from ._retrievers import SemanticRetriever
from ._state import query_key

# held-out groups (with a relevant product) below which the held-out number stays the validation
# one: half of them would be too few to stop a twin ranker on and score on the rest
MIN_SCORED_GROUPS = 20


class RankerTraining(RankingFeatures):
    """The learned stages (a part of `SearchEngine`)."""

    def fit_ranker(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        clicks: dict[str, ClickGroup] | None = None,
        holdout: float = 0.2,
        seed: int = 0,
        always_keep: bool = False,
        refit: bool = False,
    ) -> dict[str, Any]:
        """LightGBM lambdarank on judged queries (`judgments[qid][product_id] = gain >= 0`) and on
        search clicks (`clicks`, see `_clicks`), either or both.

        Served pages (clicks at known display positions) are turned into one graded group per
        query by the position-based click model (`_clicks.debias`: a click at position 5 counts
        for more than one at position 1, by the examination propensities estimated from the logs);
        logged searches (positions unknown) are one group per search. A fraction of the queries (of the judged ones
        when there are judgments, else of the click groups) is held out: early stopping and the
        keep-or-drop decision against the hybrid ranking (`always_keep` skips the decision:
        held-out clicks are themselves position-biased, so a debiased ranker can lose on them).
        With `refit`, a kept ranker is then refitted on every group, held-out ones included, for
        the chosen number of rounds (off by default: on Home Depot, stopping on a fifth of the
        training queries and refitting on all gave validation NDCG@10 0.5204, against 0.5227 for
        the ranker stopped on the validation queries themselves - no measured win).
        """
        from .._lazy import lightgbm

        lgb = lightgbm()
        clicks = clicks or {}
        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        train_q = [q for q in qids if not is_hold[q]]
        # product prior (judgments per product, their summed gain) from training queries only.
        # A training query's rows see it out of fold: without the judgments of its fold (1 of
        # PRIOR_FOLDS), so the ranker learns the prior as it will meet it for a new query; a
        # leave-one-out prior also tells the ranker the row's own label (it is lower exactly
        # when the left-out judgment was high)
        # folds by query as searched (spelling corrected, case and spacing aside), not by query
        # id: two ids of one query ("Tool 3", "tool 3") in two folds each saw the other's
        # judgments, and serving, which knows the text alone, can take off one fold
        keys = {q: _query_key(self._query(queries[q]).text) for q in train_q}
        by_key = {
            k: j % PRIOR_FOLDS
            for j, k in enumerate(np.random.default_rng(seed + 2).permutation(sorted(set(keys.values()))))
        }
        fold = {q: by_key[keys[q]] for q in train_q}
        in_fold: list[dict[int, tuple[float, float]]] = [{} for _ in range(PRIOR_FOLDS)]
        self.prior_count_[:], self.prior_sum_[:] = 0.0, 0.0  # a second fit counts afresh
        for q in train_q:
            for p, g in judgments[q].items():
                i = self._index.get(p)
                if i is not None:
                    self.prior_count_[i] += 1
                    self.prior_sum_[i] += g
                    n_in, g_in = in_fold[fold[q]].get(i, (0.0, 0.0))
                    in_fold[fold[q]][i] = (n_in + 1.0, g_in + g)
        self.prior_folds_ = in_fold
        self.prior_fold_of_ = by_key  # (served: looked up by the query as searched, `_features`)
        # group id -> (query text, labels by catalog row, label scale, the shopper's profile)
        groups: dict[str, tuple[str, dict[int, float], float, Profile | None]] = {}
        # judged: graded gains (0, 0.33, ..., 2) -> integer labels x3 (`judged_labels`: by rank
        # for a scale x3 would clip)
        by_rank = judged_labels(g for q in qids for g in judgments[q].values())
        for q in qids:
            gains = {self._index[p]: g for p, g in judgments[q].items() if p in self._index}
            groups[q] = (queries[q], gains, 3.0, None)  # (the gains: what the held-out NDCG weighs)
        # served pages: one group per query, relevance corrected for position (see `_clicks`);
        # logged searches: one group per search, graded by the strongest action (1-3)
        served_rel, prop = debias({cid: c for cid, c in clicks.items() if c.source == "served"})
        # (pooled over shoppers: no profile); logged searches carry the shopper's history before
        # the search, so their groups get point-in-time profiles (personalized features)
        click_groups: dict[str, tuple[str, dict[int, float], Profile | None]] = {}
        for qtext, rel in sorted(served_rel.items()):
            top = max(rel.values())
            labels = {self._index[p]: 3.0 * v / top for p, v in rel.items() if p in self._index}
            click_groups["served:" + qtext] = (qtext, labels, None)
        for cid in sorted(clicks):
            c = clicks[cid]
            if c.source != "served" and c.query.strip():
                labels = {self._index[p]: v for p, v in c.labels.items() if p in self._index}
                click_groups["logged:" + cid] = (c.query, labels, self.profile(c.history))
        rng = np.random.default_rng(seed + 1)
        for gid, (text, labels, prof) in click_groups.items():
            if any(v > 0 for v in labels.values()):
                groups[gid] = (text, labels, 1.0, prof)
                is_hold[gid] = bool(not qids and rng.random() < holdout)
        rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        masked = 0  # training groups whose tuned-encoder columns are missing
        names = list(groups)
        vecs = self.encode_queries([groups[gid][0] for gid in names])
        for gid, v in zip(names, vecs, strict=True):
            text, labels, scale, prof = groups[gid]
            out = in_fold[fold[gid]] if gid in fold else None
            cands, x = self._features(self._query(text), None, leave_out=out, vecs=v, profile=prof)
            if not is_hold[gid] and _query_key(text) in self.tuned_on_:
                # the fine-tuned encoder learned this query's judgments: its cosines would tell
                # the ranker the labels (see `finetune_encoder`), so they are missing here and
                # the ranker learns them from the queries the encoder never saw
                x[:, _TUNED_COLUMNS] = np.nan
                masked += 1
            if by_rank is not None and gid in judgments:  # (a judged group's gains, by rank)
                y = np.array([by_rank.get(labels.get(int(d), 0.0), 0.0) for d in cands], np.float32)
            else:
                y = np.array([labels.get(int(d), 0.0) for d in cands], np.float32) * scale
            rows[gid] = (cands, x, np.clip(np.rint(y), 0, 30).astype(np.int32))

        def stack(gs: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
            gs = [gid for gid in gs if len(rows[gid][0]) and rows[gid][2].max() > 0]
            if not gs:
                return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int32), []
            return (
                np.vstack([rows[gid][1] for gid in gs]),
                np.concatenate([rows[gid][2] for gid in gs]),
                [len(rows[gid][0]) for gid in gs],
            )

        train_g = [gid for gid in names if not is_hold[gid]]
        hold_g = [gid for gid in names if is_hold[gid]]
        xt, yt, gt = stack(train_g)
        info: dict[str, Any] = {
            "train_queries": len(train_q),
            "holdout_queries": len([gid for gid in hold_g if gid in judgments]),
            "click_groups": sum(1 for gid in groups if gid not in judgments),
            "personalized_groups": sum(1 for g in groups.values() if g[3] is not None),
            "served_pages": sum(1 for c in clicks.values() if c.source == "served"),
            "served_queries": len(served_rel),
            "holdout_label": "judgments" if qids else "clicks",
            "position_bias_correction": bool(served_rel),
            "propensity": {str(k): round(v, 4) for k, v in prop.items() if k <= 10} if served_rel else None,
            "encoder_columns_missing_groups": masked,
        }
        if not gt:
            info.update(kept=False, skipped="no training group with a relevant or clicked product")
            self.ranker_ = None
            return info
        params = ranker_params(len(yt), seed)
        train_set = lgb.Dataset(xt, yt, group=gt, feature_name=FEATURES)
        xh, yh, gh = stack(hold_g)
        kw: dict[str, Any] = {}
        if gh:
            kw = dict(
                valid_sets=[lgb.Dataset(xh, yh, group=gh, reference=train_set)],
                callbacks=[lgb.early_stopping(40, verbose=False)],
            )
        booster = lgb.train(params, train_set, num_boost_round=500, **kw)

        def compared(model: Any, gids: list[str]) -> tuple[list[float], list[float]]:
            """NDCG@10 of the hybrid and of `model`'s order per group (whole catalog, unjudged 0)."""
            hyb, rer = [], []
            for gid in gids:
                cands, x, _ = rows[gid]
                labels = groups[gid][1]
                if len(cands) == 0:
                    hyb.append(0.0)
                    rer.append(0.0)
                    continue
                hyb.append(ndcg_at_k([int(c) for c in cands[np.argsort(-x[:, _RRF], kind="stable")]], labels))
                pred = np.asarray(model.predict(x))
                rer.append(ndcg_at_k([int(c) for c in cands[np.argsort(-pred, kind="stable")]], labels))
            return hyb, rer

        # the held-out groups chose the served ranker's rounds (early stopping): its number on
        # them is a validation number, not an out-of-sample one. The out-of-sample estimate (and
        # the keep decision) is a twin fitted alike that stops on half of them, scored on the
        # other half, no choice made on it (with too few held-out groups, the validation number)
        hyb, rer = compared(booster, hold_g)
        info["validation_ndcg@10"] = {
            "hybrid": float(np.mean(hyb)) if hyb else None,
            "reranked": float(np.mean(rer)) if rer else None,
            "note": "the held-out groups also chose the ranker's boosting rounds (early stopping)",
        }
        scored = [gid for gid in hold_g if len(rows[gid][0]) and rows[gid][2].max() > 0]
        if len(scored) >= MIN_SCORED_GROUPS:
            order = np.random.default_rng(seed + 11).permutation(len(scored))
            stop_g = [scored[i] for i in order[: len(scored) // 2]]
            stopping = set(stop_g)
            score_g = [gid for gid in hold_g if gid not in stopping]
            xs, ys, gs = stack(stop_g)
            twin = lgb.train(
                params,
                train_set,
                num_boost_round=500,
                valid_sets=[lgb.Dataset(xs, ys, group=gs, reference=train_set)],
                callbacks=[lgb.early_stopping(40, verbose=False)],
            )
            hyb, rer = compared(twin, score_g)
            info["holdout_groups_scored"] = len(score_g)
            info["holdout_groups_stopping"] = len(stop_g)
            info["holdout_protocol"] = (
                f"a twin ranker stopped on {len(stop_g)} held-out groups, NDCG@10 on the other "
                f"{len(score_g)} (whole catalog, unjudged products 0)"
            )
        info["holdout_ndcg@10"] = {
            "hybrid": float(np.mean(hyb)) if hyb else None,
            "reranked": float(np.mean(rer)) if rer else None,
        }
        info["best_iteration"] = int(booster.best_iteration or booster.current_iteration())
        info["kept"] = bool(always_keep or not hyb or np.mean(rer) > np.mean(hyb))
        if info["kept"] and refit and gh:
            # the kept model, refitted on the held-out groups too for the rounds early stopping
            # chose (their rows' prior never held their own judgments, as out of fold)
            xa, ya, ga = stack(train_g + hold_g)
            full = lgb.Dataset(xa, ya, group=ga, feature_name=FEATURES)
            booster = lgb.train(params, full, num_boost_round=info["best_iteration"])
            info["refit_groups"] = len(ga)
        self.ranker_ = _BoosterRanker(booster) if info["kept"] else None
        self.personalized_ = self.ranker_ is not None and self.ranker_.uses(USER_FEATURES)
        info["personalized"] = self.personalized_
        return info

    def finetune_encoder(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        holdout: float = 0.2,
        seed: int = 0,
        settings: FinetuneSettings | None = None,
        tune_share: float = 0.5,
    ) -> dict[str, Any]:
        """Fine-tune MiniLM on the judged queries (see `_finetune`); when the tuned encoder beats
        the shipped one on the held-out queries (the same ones `fit_ranker` holds out, so the
        ranker's keep decision is not fooled), export it to ONNX in the search directory and
        re-embed the catalog with it. Call before `fit_ranker`.

        The encoder learns from `tune_share` of the training queries (`_tune_split`), and
        `fit_ranker` fits its cosine columns on the others only: an encoder tuned on a query
        ranks that query's judged products as they were judged, so on those rows its cosines
        are nearly the labels, and a ranker fitted on them trusts cosines more than they earn on
        a new query. Below `MIN_SPLIT_QUERIES` training queries the encoder learns from all of
        them (too few to share) and no column is missing."""
        from ..features._text_encoder import export_onnx, quantize_int8, shipped_model_dir
        from ._finetune import finetune_biencoder

        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        train_q = [q for q in qids if not is_hold[q]]
        tuned = _tune_split(train_q, tune_share, seed)
        texts = {p: self.catalog.text(i) for p, i in self._index.items()}
        self.tuned_on_ = frozenset()
        with tempfile.TemporaryDirectory() as tmp:
            tuned_dir = Path(tmp) / "tuned"
            info = finetune_biencoder(
                shipped_model_dir(),
                tuned_dir,
                queries,
                judgments,
                texts,
                tuned,
                [q for q in qids if is_hold[q]],
                settings,
            )
            info["tuned_queries"] = len(tuned)
            info["ranker_only_queries"] = len(train_q) - len(tuned)
            if info["kept"]:
                t0 = time.perf_counter()
                name = "encoder-tuned.onnx"
                export_onnx(tuned_dir, self.path / name)
                if self.semantic_.encoder in ("minilm-int8", "minilm-int8pc"):
                    name = quantize_int8(self.path / name, self.path / "encoder-tuned-int8.onnx").name
                self.semantic_ = SemanticRetriever(name, base=self.path).index(self.catalog)
                info["encoder"] = name
                info["export_and_index_seconds"] = round(time.perf_counter() - t0, 1)
                if len(tuned) < len(train_q):
                    # (tuned on all: no query is left to fit the cosines on, so none is missing)
                    self.tuned_on_ = frozenset(_query_key(queries[q]) for q in tuned)
        return info

    def fit_cross_encoder(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        holdout: float = 0.2,
        seed: int = 0,
        settings: CrossSettings | None = None,
    ) -> dict[str, Any]:
        """Fine-tune a cross-encoder from MiniLM on the training queries' judged pairs (and their
        retrieved, unjudged candidates as negatives) and keep it as the last stage, re-ordering
        the first `settings.top` results, only when that beats the current pipeline's order on
        the held-out queries (the split `fit_ranker` uses). Call after `fit_ranker`."""
        from ..features._text_encoder import quantize_int8, shipped_model_dir
        from ._cross import export_cross_onnx, train_cross_encoder

        st = settings or CrossSettings(seed=seed)
        self.cross_ = None
        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        rng = np.random.default_rng(st.seed)
        top_gain = max((g for q in qids for g in judgments[q].values()), default=0.0)
        pairs: list[tuple[str, str, float]] = []
        hold: list[tuple[str, list[int], np.ndarray, dict[int, float]]] = []
        for q in qids:
            gains = {self._index[p]: g for p, g in judgments[q].items() if p in self._index}
            if is_hold[q]:
                found = self.search(queries[q], k=st.top)
                ranked = [self._index[p] for p, _ in found]
                hold.append((queries[q], ranked, np.array([s for _, s in found], float), gains))
                continue
            if top_gain <= 0:
                continue
            pairs += [(queries[q], self.catalog.text(d), min(1.0, g / top_gain)) for d, g in gains.items()]
            unjudged = [
                self._index[p] for p, _ in self.search(queries[q], k=20) if self._index[p] not in gains
            ]
            for d in rng.permutation(unjudged)[: st.negatives_per_query]:
                pairs.append((queries[q], self.catalog.text(int(d)), 0.0))
        model, info = train_cross_encoder(shipped_model_dir(), pairs, st)
        info.pop("settings", None)
        info["kept"] = False
        if model is None or not hold:
            info.setdefault("skipped", "no held-out query")
            return info
        # judged as it will be served: the exported, int8-quantized graph through onnxruntime
        fp32 = export_cross_onnx(model, self.path / "cross-encoder-fp32.onnx")
        path = quantize_int8(fp32, self.path / "cross-encoder.onnx")
        for f in (fp32, fp32.with_suffix(".tokenizer.json")):
            f.unlink(missing_ok=True)
        served = OnnxCrossEncoder(path, st.max_tokens)
        # the blend weight is chosen on one half of the held-out queries and the keep decision
        # made on the other half, so the choice of the weight does not flatter the decision
        ndcg = np.zeros((len(hold), len(BLEND_WEIGHTS)))
        for r, (text, ranked, pipe, gains) in enumerate(hold):
            ce = served.score(text, [self.catalog.text(d) for d in ranked])
            for c, w in enumerate(BLEND_WEIGHTS):
                ndcg[r, c] = ndcg_at_k([ranked[i] for i in _blend(pipe, ce, w)], gains)
        choose, decide = (ndcg[0::2], ndcg[1::2]) if len(hold) >= 2 else (ndcg, ndcg)
        best = 1 + int(np.argmax(choose[:, 1:].mean(axis=0)))  # column 0 is the pipeline itself
        weight = BLEND_WEIGHTS[best]
        info["holdout_ndcg@10"] = {
            "pipeline": float(ndcg[:, 0].mean()),
            "cross_encoder": float(ndcg[:, -1].mean()),
            "blend": float(ndcg[:, best].mean()),
            "blend_weight": weight,
            "decision_half": {"pipeline": float(decide[:, 0].mean()), "blend": float(decide[:, best].mean())},
        }
        info["kept"] = bool(decide[:, best].mean() > decide[:, 0].mean())
        if info["kept"]:
            self.cross_, self.cross_top_, self.cross_weight_ = served, st.top, weight
        else:
            for f in (path, path.with_suffix(".tokenizer.json")):
                f.unlink(missing_ok=True)
        return info


def judged_labels(gains: Iterable[float]) -> dict[float, float] | None:
    """The ranker's label of each judged gain when gain x 3 would pass LightGBM's 30 labels, None
    when it does not (Home Depot's 0..2 gains: x 3, as always). ESCI's 0/1/10/100 gave "exact"
    (300) and "substitute" (30) the one label 30: such a scale is read by rank, each distinct
    gain (and "unjudged", 0) a step up, the steps as wide as 30 allows (at most 3)."""
    levels = sorted({0.0, *(max(float(g), 0.0) for g in gains)})  # (a negative gain: no better than unjudged)
    if levels[-1] * 3.0 <= 30.0:
        return None
    step = min(3.0, 30.0 / (len(levels) - 1))
    # (half up: round-half-even gave a third's step the label 0 of "unjudged")
    labels = {g: float(int(i * step + 0.5)) for i, g in enumerate(levels)}
    return labels | {g: 0.0 for g in gains if g < 0}


def ranker_params(rows: int, seed: int = 0) -> dict[str, Any]:
    """The LightGBM settings `fit_ranker` trains with on `rows` training rows (also what
    `benchmarks/search_harness.py` refits with, so the two cannot drift apart)."""
    params: dict[str, Any] = {
        "objective": "lambdarank",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.8,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": lightgbm_threads(rows),
        "verbose": -1,
        "metric": "ndcg",
        "eval_at": [10],
        # the gain of a label is the label (the default 2^label - 1 weighs a 6 as 9 x a 3),
        # as graded NDCG counts it: held-out NDCG@10 0.5189 -> 0.5221 on Home Depot
        "label_gain": list(range(31)),
    }
    if rows >= LARGE_RANKER_ROWS:
        # smaller, more regularized trees where there are rows enough for them: on Home
        # Depot (~500k training rows) validation NDCG@10 0.5318 -> 0.5334; a small shop keeps
        # the settings above (100 rows a leaf would leave its ranker nothing to split)
        params.update(num_leaves=15, min_data_in_leaf=100, lambda_l2=10.0)
    # tried on the Home Depot harness (benchmarks/search_harness.py sweep, shipped encoder) and
    # not taken, none ahead on validation by more than the seed-to-seed spread (~0.002):
    # rank_xendcg, lambdarank_truncation_level 10 / 60, lambdarank_norm off, 31 leaves with 50
    # a leaf, feature_fraction 0.5, lambda_l2 50, learning rate 0.02 with 1500 rounds, 3 seeds
    # averaged
    return params


# folds of the training queries for the out-of-fold product prior (see `fit_ranker`)
PRIOR_FOLDS = 5
# training rows from which the ranker gets its larger-data settings (see `fit_ranker`)
LARGE_RANKER_ROWS = 100_000
# fewer training queries than this: the encoder is fine-tuned on all of them (see `finetune_encoder`)
MIN_SPLIT_QUERIES = 400
# the ranker's columns computed from the (fine-tuned) main encoder: its cosines, and the fusion
# of its ranking with BM25's. Missing on half of Home Depot's training queries with an encoder
# that learned nothing from them (8 steps), they cost validation NDCG@10 0.0011 (the cosines
# alone: 0.0025); what the missing values buy is a ranker not fooled by a tuned encoder
_TUNED_COLUMNS = [FEATURES.index(name) for name in ("cosine", "cosine_rank", "cosine_rel", "rrf")]
# cross-encoder weights tried in its blend with the pipeline's scores (0 = the pipeline alone)
BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _blend(pipeline: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """Positions of a result head ordered by (1 - weight) z(pipeline) + weight z(cross), z
    standardizing within the head (the two scores live on different scales)."""

    def z(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return (x - x.mean()) / max(float(x.std()), 1e-9)

    return np.argsort(-((1.0 - weight) * z(pipeline) + weight * z(cross)), kind="stable")


def _split_queries(
    queries: dict[str, str], judgments: dict[str, dict[str, float]], holdout: float, seed: int
) -> tuple[list[str], dict[str, bool]]:
    """Judged queries with text, and which are held out (the same draw for fine-tuning and the
    ranker, so neither learns from the other's validation queries)."""
    qids = sorted(q for q in judgments if q in queries and queries[q].strip())
    rng = np.random.default_rng(seed)
    return qids, {q: bool(rng.random() < holdout) for q in qids}


def _tune_split(train_q: list[str], share: float, seed: int) -> list[str]:
    """The training queries the encoder is fine-tuned on: a seeded draw of `share` of them (all
    of them below `MIN_SPLIT_QUERIES`, or with a share of 1); the others are the ranker's own."""
    if share >= 1.0 or len(train_q) < MIN_SPLIT_QUERIES:
        return list(train_q)
    rng = np.random.default_rng(seed + 3)
    return [q for q in sorted(train_q) if rng.random() < share]


def _query_key(text: str) -> str:
    """A query as `fit_ranker` recognises one the encoder was tuned on (clicks included), and
    `_features` a judged training query (its prior's fold)."""
    return query_key(text)
