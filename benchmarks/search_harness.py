"""A quick harness for iterating on the search ranker (not part of `make bench`; prints, writes
no report): the Home Depot data, catalog, by-query split and protocol of `search.py`, computed
once and cached, so that a feature or a LightGBM setting costs one LightGBM fit, not an hour.

    python benchmarks/search_harness.py build DIR [STEPS] [EPOCHS] [NAME=VALUE...]  # index +
                                                      # MiniLM fine-tuned for STEPS (400, as
                                                      # search.py) over at most EPOCHS passes (2;
                                                      # ~210 steps a pass on these pairs: more
                                                      # steps need more epochs), other
                                                      # FinetuneSettings fields as NAME=VALUE
                                                      # (temperature=0.03); saved in DIR/bundle
    python benchmarks/search_harness.py build DIR --tuned TUNED  # the same, with the encoder
                                                      # `finetune` tuned (TUNED: its DIR/tuned)
    python benchmarks/search_harness.py finetune DIR [STEPS] [EPOCHS] [NAME=VALUE...]  # the
                                                      # fine-tune alone (no index; the split and
                                                      # the tune half of `build`): its result with
                                                      # a validation curve every 200 steps (unless
                                                      # validate_every=N) in DIR/finetune.jsonl,
                                                      # the encoder in DIR/tuned when it is kept
    python benchmarks/search_harness.py capture DIR [DEPTH] [BUNDLE] [--lean]  # fit_ranker as
                                                      # search.py runs it, capturing every group's
                                                      # candidates + features; then the test
                                                      # queries'; DIR/cap.pkl. DEPTH: the retrievers'
                                                      # depth (the bundle's `candidates`, 100,
                                                      # without); BUNDLE: another DIR's bundle, read
                                                      # only; --lean: the features only (the ranker
                                                      # is left to `run`/`compare`)
    python benchmarks/search_harness.py run DIR       # refit LightGBM on the cached features:
                                                      # validation and test NDCG@10
    python benchmarks/search_harness.py sweep DIR [NAME...]  # the SETTINGS named (all without
                                                      # names), each against "as fit_ranker"
                                                      # with paired standard errors; DIR/sweep.jsonl
    python benchmarks/search_harness.py depth DIR [D...]  # gain mass among the candidates at
                                                      # retriever depths D (100 150 200 300)
    python benchmarks/search_harness.py compare DIR DIR2  # "as fit_ranker" on each capture
                                                      # (two depths, say), DIR2 - DIR with paired
                                                      # standard errors; DIR2/compare.jsonl
    python benchmarks/search_harness.py rank DIR OUT [TOP]  # "as fit_ranker"; every query's
                                                      # first TOP (20) in its order with its
                                                      # scores: OUT/ranked.pkl
    python benchmarks/search_harness.py cross OUT VARIANT STEPS [EPOCHS] [SECONDS]  # a
                                                      # cross-encoder (CROSS_VARIANTS' pairs) on
                                                      # the training queries; its int8 ONNX
                                                      # blended with the ranker over its first
                                                      # 10 / 20: validation and test NDCG@10 vs
                                                      # the ranker, paired SEs; OUT/cross.jsonl

`run` fits on the training queries that `fit_ranker` fits on, stops early on its held-out
(validation) queries and reports NDCG@10 on both the validation and the test queries: choose on
validation, read test. Extra features: functions `(query, candidates) -> columns` passed to
`evaluate` (see `main`). The LightGBM settings are `fit_ranker`'s own (`_training.ranker_params`).
Its numbers are indicative: `build`'s STEPS caps the fine-tune at what the machine allows (say
which cap a result used), so the semantic features are not those of a full `search.py` run. Costs on 2 loaded cores: build ~40 min,
capture ~35 min, one `run` fit ~15 min; on 2 quiet cores: build 16 min (400 steps), capture 5 min, a
`run` fit 20-40 s. Run nothing else meanwhile: two torch processes on 2 cores each run 3-6x slower.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from search import SHARED, load

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# the LightGBM settings of `fit_ranker` (`_training.ranker_params`, by its number of training
# rows), with the overrides each `sweep` setting names (`bag`: that many seeds averaged;
# `rounds`: the most boosting rounds, 500 as `fit_ranker`)
SETTINGS: dict[str, dict] = {
    "as fit_ranker": {},
    "seed 1": {"seed": 1},
    "rank_xendcg": {"objective": "rank_xendcg"},
    "truncation 60": {"lambdarank_truncation_level": 60},
    "no lambdarank_norm": {"lambdarank_norm": False},
    "31 leaves, 50 a leaf": {"num_leaves": 31, "min_data_in_leaf": 50},
    "feature_fraction 0.5": {"feature_fraction": 0.5},
    "bag 3 seeds": {"bag": 3},
    "truncation 10": {"lambdarank_truncation_level": 10},
    "lr 0.02 x 1500": {"learning_rate": 0.02, "rounds": 1500},
    "lambda_l2 50": {"lambda_l2": 50.0},
    "seed 2": {"seed": 2},
}


def split(judg: dict) -> tuple[list[str], list[str]]:
    """search.py's by-query split: (training queries, the first 2000 test queries)."""
    test_q = sorted(q for q in judg if zlib.crc32(q.encode()) % 1000 < 300)[:2000]
    train_q = [q for q in judg if zlib.crc32(q.encode()) % 1000 >= 300]
    return train_q, test_q


def _tuning(judg: dict) -> tuple[dict, dict, list[str], list[str], list[str]]:
    """What `SearchEngine.finetune_encoder` tunes on under search.py's split and seed 0: the
    queries and judgments it is given, the encoder's queries (the tune half of the training
    queries), the ranker-only ones and the held-out ones."""
    from shelfwise.search._training import _split_queries, _tune_split

    train_q, _ = split(judg)
    queries, gains = {q: q for q in train_q}, {q: judg[q] for q in train_q}
    qids, hold = _split_queries(queries, gains, 0.2, 0)
    fit = [q for q in qids if not hold[q]]
    tuned = _tune_split(fit, 0.5, 0)
    return queries, gains, tuned, sorted(set(fit) - set(tuned)), [q for q in qids if hold[q]]


def finetune(out: Path, steps: int = 400, epochs: int = 2, overrides: dict | None = None) -> None:
    """`build`'s fine-tune alone (the catalog texts, queries and split it tunes on; no index):
    its result, with a validation curve (every 200 steps unless `overrides` say otherwise), is
    appended to DIR/finetune.jsonl; the encoder, when kept, is DIR/tuned (`build --tuned`)."""
    from shelfwise.features._text_encoder import shipped_model_dir
    from shelfwise.search import FinetuneSettings, SearchCatalog
    from shelfwise.search._finetune import finetune_biencoder

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    pids = sorted(titles)
    catalog = SearchCatalog(pids, [titles[p] for p in pids])
    texts = {p: catalog.text(i) for i, p in enumerate(pids)}
    queries, gains, tuned, _, held = _tuning(judg)
    s = FinetuneSettings(max_steps=steps, epochs=epochs, **({"validate_every": 200} | (overrides or {})))
    info = finetune_biencoder(shipped_model_dir(), out / "tuned", queries, gains, texts, tuned, held, s)
    info["tuned_queries"] = len(tuned)
    print("finetune", json.dumps(info), flush=True)
    with open(out / "finetune.jsonl", "a") as fh:
        fh.write(json.dumps(info) + "\n")


def _adopt(eng, tuned_dir: Path, judg: dict) -> None:  # type: ignore[no-untyped-def]
    """`finetune_encoder`'s keep branch for an encoder `finetune` tuned: exported (int8 as the
    engine's own encoder), the catalog re-embedded, and the tuned queries marked for
    `fit_ranker` (it fits the cosine columns on the others)."""
    from shelfwise.features._text_encoder import export_onnx, quantize_int8
    from shelfwise.search._retrievers import SemanticRetriever
    from shelfwise.search._training import _query_key

    queries, _, tuned, _, _ = _tuning(judg)
    name = "encoder-tuned.onnx"
    export_onnx(tuned_dir, eng.path / name)
    if eng.semantic_.encoder in ("minilm-int8", "minilm-int8pc"):
        name = quantize_int8(eng.path / name, eng.path / "encoder-tuned-int8.onnx").name
    eng.semantic_ = SemanticRetriever(name, base=eng.path).index(eng.catalog)
    eng.tuned_on_ = frozenset(_query_key(queries[q]) for q in tuned)


def build(
    out: Path, steps: int = 400, epochs: int = 2, overrides: dict | None = None, tuned: Path | None = None
) -> None:
    """The index and MiniLM fine-tuned for `steps` steps over at most `epochs` passes
    (search.py's 400 and 2 by default; fewer steps when the machine allows no more: the
    semantic columns are then not those of a full run), other `FinetuneSettings` fields from
    `overrides`; `tuned`: the encoder a `finetune` run kept instead (no fine-tune here)."""
    from shelfwise.search import FinetuneSettings, SearchCatalog, SearchEngine

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    train_q, _ = split(judg)
    pids = sorted(titles)
    eng = SearchEngine(out / "bundle").build(SearchCatalog(pids, [titles[p] for p in pids]))
    if tuned is not None:
        _adopt(eng, tuned, judg)
        print("adopted", tuned, flush=True)
        eng.save()
        return
    ft = eng.finetune_encoder(
        {q: q for q in train_q},
        {q: judg[q] for q in train_q},
        settings=FinetuneSettings(max_steps=steps, epochs=epochs, **(overrides or {})),
    )
    print("finetune", json.dumps({k: v for k, v in ft.items() if k != "settings"}), flush=True)
    eng.save()


def capture(out: Path, depth: int | None = None, bundle: Path | None = None, lean: bool = False) -> None:
    """`fit_ranker` as search.py runs it, recording every group's candidates and features, then
    the test queries'. `depth`: the retrievers' depth (the engine's `candidates`, as a bundle
    built with it would have; the bundle's own, 100, without); `bundle`: read instead of
    DIR/bundle (it is not written). `lean`: `fit_ranker`'s LightGBM fit is cut to one round (its
    features are what is captured; `run`/`compare` fit the ranker on them), and the captured
    ranker's test NDCG and the query vectors (`qvec`) are skipped: half the CPU of a capture."""
    import lightgbm as lgb

    from shelfwise.search import SearchEngine, _training, ndcg_at_k

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    train_q, test_q = split(judg)
    eng = SearchEngine.load(bundle or out / "bundle")
    if depth is not None:
        eng.candidates = depth
    if "tuned" in str(eng.semantic_.encoder):
        # search.py and `train` fit the ranker right after the fine-tune, in one process: the
        # queries the encoder was tuned on have their encoder columns missing. A saved bundle
        # does not say which queries those were; `build` tuned on `_tuning`'s (without this,
        # every capture before had them unmasked: test NDCG@10 0.5382 vs 0.5363 masked)
        from shelfwise.search._training import _query_key

        queries, _, tuned, _, _ = _tuning(judg)
        eng.tuned_on_ = frozenset(_query_key(queries[q]) for q in tuned)
    print("depth", eng.candidates, "tuned-encoder queries", len(eng.tuned_on_), flush=True)
    index = {p: i for i, p in enumerate(eng.catalog.product_ids)}
    cap = []
    orig = eng._features

    def rec(q, given, leave_out=None, vecs=None, depth=None, profile=None):  # type: ignore[no-untyped-def]
        c, x = orig(q, given, leave_out=leave_out, vecs=vecs, depth=depth, profile=profile)
        cap.append((q.text, q.terms, c, x, leave_out))
        return c, x

    eng._features = rec  # type: ignore[method-assign]
    t0 = time.time()
    tq, tg = {q: q for q in train_q}, {q: judg[q] for q in train_q}
    train_lgb = lgb.train
    if lean:
        lgb.train = lambda params, data, num_boost_round=1, **kw: train_lgb(params, data, 1)  # type: ignore[assignment]
    try:
        info = eng.fit_ranker(tq, tg)
    finally:
        lgb.train = train_lgb
    print("fit", round(time.time() - t0), "" if lean else json.dumps(info["holdout_ndcg@10"]), flush=True)
    qids, hold = _training._split_queries(tq, tg, 0.2, 0)
    train = dict(zip(qids, cap, strict=True))
    eng._features = orig  # type: ignore[method-assign]
    test = {}
    for q, v in zip(test_q, eng.encode_queries(test_q), strict=True):
        qq = eng._query(q)
        c, x = eng._features(qq, None, vecs=v)
        test[q] = (qq.text, qq.terms, c, x, None)
    qvec = {}
    if lean:
        with open(out / "cap.pkl", "wb") as fh:
            pickle.dump(
                {"train": train, "hold": hold, "test": test, "test_q": test_q, "qids": qids, "qvec": qvec}, fh
            )
        return
    sc = [
        ndcg_at_k(
            [int(test[q][2][i]) for i in np.argsort(-eng._scores(test[q][3]), kind="stable")[:10]],
            {index[p]: g for p, g in judg[q].items()},
        )
        for q in test_q
    ]
    print("test NDCG@10 of the captured ranker", round(float(np.mean(sc)), 4), flush=True)
    vecs = eng.encode_queries(qids + test_q)
    qvec = {q: v.main for q, v in zip(qids + test_q, vecs, strict=True)}
    with open(out / "cap.pkl", "wb") as fh:
        pickle.dump(
            {"train": train, "hold": hold, "test": test, "test_q": test_q, "qids": qids, "qvec": qvec}, fh
        )


def evaluate(out: Path, name: str, extra=(), params: dict | None = None, drop=(), top: int = 0) -> dict:  # type: ignore[no-untyped-def]
    """Refit LightGBM on the cached features (+ `extra` column functions, - the cached columns
    at the positions in `drop`, an ablation): validation and test NDCG@10 (whole catalog,
    unjudged = 0, as search.py). `top`: also every training, validation and test query's
    first `top` candidates in the ranker's order with its scores (`res["top"]`, for `cross`)."""
    import lightgbm as lgb

    from shelfwise.search import ndcg_at_k
    from shelfwise.search._training import ranker_params

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    c = _cached(out)
    index = {p: i for i, p in enumerate(sorted(titles))}
    rows = {**c["train"], **c["test"]}
    fit = [q for q in c["qids"] if not c["hold"][q]]
    val = [q for q in c["qids"] if c["hold"][q]]
    gains = {q: {index[p]: g for p, g in judg[q].items()} for q in c["qids"] + c["test_q"]}

    def matrix(q: str) -> np.ndarray:
        cands, x = rows[q][2], rows[q][3]
        if drop:
            x = np.delete(x, list(drop), axis=1)
        return np.hstack([x] + [f(q, cands) for f in extra]) if extra else x

    def labels(q: str) -> np.ndarray:
        y = np.array([gains[q].get(int(d), 0.0) for d in rows[q][2]]) * 3
        return np.clip(np.rint(y), 0, 30).astype(int)

    def stack(qs: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        qs = [q for q in qs if len(rows[q][2]) and labels(q).max() > 0]
        return (
            np.vstack([matrix(q) for q in qs]),
            np.concatenate([labels(q) for q in qs]),
            [len(rows[q][2]) for q in qs],
        )

    def scored(qs: list[str]) -> tuple[np.ndarray, list[int]]:
        """Every query's matrix stacked (one predict call), with each query's row offset."""
        off = np.cumsum([0] + [len(rows[q][2]) for q in qs]).tolist()
        have = [matrix(q) for q in qs if len(rows[q][2])]
        return (np.vstack(have) if have else np.zeros((0, 0), np.float32)), off

    def per_query(pred: np.ndarray, qs: list[str], off: list[int]) -> np.ndarray:
        out_ = np.zeros(len(qs))
        for j, q in enumerate(qs):
            cands = rows[q][2]
            if len(cands):
                p_ = pred[off[j] : off[j + 1]]
                out_[j] = ndcg_at_k([int(cands[i]) for i in np.argsort(-p_, kind="stable")[:10]], gains[q])
        return out_

    t0 = time.time()
    over = dict(params or {})
    rounds = over.pop("rounds", 500)
    bag = over.pop("bag", 1)
    xt, yt, gt = stack(fit)
    xv, yv, gv = stack(val)
    sv, ov = scored(val)
    st, ot = scored(c["test_q"])
    tr = lgb.Dataset(xt, yt, group=gt, free_raw_data=False)
    va = lgb.Dataset(xv, yv, group=gv, reference=tr, free_raw_data=False)
    pv, pt, its = np.zeros(len(sv)), np.zeros(len(st)), []
    for k in range(bag):
        p = {**ranker_params(len(yt)), **over}
        p["seed"] = p["seed"] + k
        b = lgb.train(
            p, tr, num_boost_round=rounds, valid_sets=[va], callbacks=[lgb.early_stopping(40, verbose=False)]
        )
        pv += b.predict(sv) / bag
        pt += b.predict(st) / bag
        its.append(b.best_iteration)
    v_q, t_q = per_query(pv, val, ov), per_query(pt, c["test_q"], ot)
    res = {
        "name": name,
        "params": params or {},
        "iterations": its if bag > 1 else its[0],
        "validation_ndcg@10": round(float(v_q.mean()), 4),
        "test_ndcg@10": round(float(t_q.mean()), 4),
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(res), flush=True)
    res["validation_per_query"], res["test_per_query"] = v_q, t_q
    if top:
        sf, of = scored(fit)
        pf = b.predict(sf) if bag == 1 else None  # (the last seed's; `rank` fits one)

        def heads(pred: np.ndarray, qs: list[str], off: list[int]) -> dict:
            got = {}
            for j, q in enumerate(qs):
                cands, p_ = rows[q][2], pred[off[j] : off[j + 1]]
                o = np.argsort(-p_, kind="stable")[:top]
                got[q] = (np.asarray(cands)[o].astype(int), p_[o].astype(float))
            return got

        res["top"] = {
            "fit": heads(pf, fit, of) if pf is not None else {},
            "validation": heads(pv, val, ov),
            "test": heads(pt, c["test_q"], ot),
        }
    return res


_CACHE: dict[Path, dict] = {}


def _cached(out: Path) -> dict:
    """DIR/cap.pkl, read once per process (a sweep refits many times on it)."""
    if out not in _CACHE:
        with open(out / "cap.pkl", "rb") as fh:
            _CACHE[out] = pickle.load(fh)
    return _CACHE[out]


def sweep(out: Path, names: list[str]) -> None:
    """`evaluate` each named setting of SETTINGS (all of them without names); every result is
    appended to DIR/sweep.jsonl with its validation and test NDCG@10 differences from "as
    fit_ranker" and their paired standard errors over the queries (the noise a win must beat,
    with the seed-to-seed spread of "seed 1" and "seed 2")."""
    base = evaluate(out, "as fit_ranker", params=SETTINGS["as fit_ranker"])
    for name in names or [n for n in SETTINGS if n != "as fit_ranker"]:
        r = evaluate(out, name, params=SETTINGS[name])
        for split_ in ("validation", "test"):
            d = r[f"{split_}_per_query"] - base[f"{split_}_per_query"]
            r[f"{split_}_diff"] = round(float(d.mean()), 4)
            r[f"{split_}_diff_se"] = round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)
        r = {k: v for k, v in r.items() if not k.endswith("_per_query")}
        print(json.dumps(r), flush=True)
        with open(out / "sweep.jsonl", "a") as fh:
            fh.write(
                json.dumps(
                    {**r, "base_validation": base["validation_ndcg@10"], "base_test": base["test_ndcg@10"]}
                )
                + "\n"
            )


def compare(out: Path, other: Path) -> None:
    """ "as fit_ranker" refitted on two captures of the same queries (DIR and DIR2: two candidate
    depths, say): validation and test NDCG@10 of each, and DIR2 - DIR with its paired standard
    error over the queries; appended to DIR2/compare.jsonl."""
    a = evaluate(out, f"as fit_ranker, {out}")
    b = evaluate(other, f"as fit_ranker, {other}")
    r = {"base": str(out), "other": str(other)}
    for split_ in ("validation", "test"):
        r[f"base_{split_}_ndcg@10"] = a[f"{split_}_ndcg@10"]
        r[f"other_{split_}_ndcg@10"] = b[f"{split_}_ndcg@10"]
        d = b[f"{split_}_per_query"] - a[f"{split_}_per_query"]
        r[f"{split_}_diff"] = round(float(d.mean()), 4)
        r[f"{split_}_diff_se"] = round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)
    r["iterations"] = [a["iterations"], b["iterations"]]
    print(json.dumps(r), flush=True)
    with open(other / "compare.jsonl", "a") as fh:
        fh.write(json.dumps(r) + "\n")


# cross-encoder variants `cross` trains: how each training query's pairs are built from its
# judged products and the unjudged ones among the ranker's first 20 (`fit_cross_encoder`'s
# pairs are "as fit_cross_encoder": 4 of those drawn at random; "hard 8": the 8 the ranker
# puts first, the ones it confuses with relevant products)
CROSS_VARIANTS: dict[str, dict] = {
    "as fit_cross_encoder": {"negatives": "random", "per_query": 4},
    "hard 8": {"negatives": "first", "per_query": 8},
}


def rank(out: Path, dest: Path, top: int = 20) -> None:
    """The ranker as `run` fits it; every training, validation and test query's first `top`
    candidates in its order with its scores, in DEST/ranked.pkl (what `cross` re-orders)."""
    r = evaluate(out, "as fit_ranker", top=top)
    dest.mkdir(parents=True, exist_ok=True)
    with open(dest / "ranked.pkl", "wb") as fh:
        pickle.dump(
            {
                "source": str(out),
                "top": r["top"],
                "validation_ndcg@10": r["validation_ndcg@10"],
                "test_ndcg@10": r["test_ndcg@10"],
            },
            fh,
        )


def cross(dest: Path, variant: str, steps: int, epochs: int = 1, seconds: float = 1e9) -> None:
    """A cross-encoder trained on the training queries' pairs (`CROSS_VARIANTS[variant]`, targets
    gain / top gain as `fit_cross_encoder`) for `steps` steps (`train_cross_encoder`,
    `CrossSettings`), exported and quantized to int8 and scored through `OnnxCrossEncoder` as
    served, on the validation and test queries' first 10 and 20 results of the ranker (DEST/
    ranked.pkl, from `rank`); blended with the ranker's score over `BLEND_WEIGHTS`, the weight
    chosen on validation: validation and test NDCG@10 against the ranker alone, with paired
    standard errors; appended to DEST/cross.jsonl (the scores in DEST/VARIANT-STEPS/). `seconds`:
    `CrossSettings.budget_s`, a cap on the training time; the steps it reached are recorded
    (`steps`), and STEPS = that number reproduces the same model without the cap."""
    from shelfwise.features._text_encoder import quantize_int8, shipped_model_dir
    from shelfwise.search import ndcg_at_k
    from shelfwise.search._cross import (
        CrossSettings,
        OnnxCrossEncoder,
        export_cross_onnx,
        train_cross_encoder,
    )
    from shelfwise.search._training import BLEND_WEIGHTS, _blend

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    pids = sorted(titles)
    index = {p: i for i, p in enumerate(pids)}
    with open(dest / "ranked.pkl", "rb") as fh:
        rk = pickle.load(fh)
    v = CROSS_VARIANTS[variant]
    st = CrossSettings(epochs=epochs, max_steps=steps, budget_s=seconds)
    rng = np.random.default_rng(st.seed)
    fit = sorted(rk["top"]["fit"])
    top_gain = max(g for q in fit for g in judg[q].values())
    pairs: list[tuple[str, str, float]] = []
    for q in fit:
        gains = {index[p]: g for p, g in judg[q].items()}
        pairs += [(q, titles[pids[d]], min(1.0, g / top_gain)) for d, g in gains.items()]
        unjudged = [int(d) for d in rk["top"]["fit"][q][0][:20] if int(d) not in gains]
        if v["negatives"] == "random":
            neg = rng.permutation(unjudged)[: v["per_query"]] if unjudged else []
        else:
            neg = unjudged[: v["per_query"]]
        pairs += [(q, titles[pids[int(d)]], 0.0) for d in neg]
    print(
        json.dumps(
            {
                "variant": variant,
                "training_queries": len(fit),
                "pairs": len(pairs),
                "steps_per_epoch": len(pairs) // st.batch_size,
            }
        ),
        flush=True,
    )
    model, info = train_cross_encoder(shipped_model_dir(), pairs, st)
    info.pop("settings", None)
    print(json.dumps(info), flush=True)
    assert model is not None
    sub = dest / f"{variant.replace(' ', '-')}-{info['steps']}"
    sub.mkdir(parents=True, exist_ok=True)
    fp32 = export_cross_onnx(model, sub / "cross-encoder-fp32.onnx")
    path = quantize_int8(fp32, sub / "cross-encoder.onnx")
    served = OnnxCrossEncoder(path, st.max_tokens)
    t0 = time.time()
    scores = {
        part: {
            q: served.score(q, [titles[pids[int(d)]] for d in rk["top"][part][q][0][:20]])
            for q in rk["top"][part]
        }
        for part in ("validation", "test")
    }
    with open(sub / "scores.pkl", "wb") as fh:
        pickle.dump(scores, fh)
    res: dict = {
        "variant": variant,
        **v,
        "steps": info["steps"],
        "epochs": epochs,
        "pairs": len(pairs),
        "train_seconds": info["train_seconds"],
        "score_seconds": round(time.time() - t0, 1),
        "ranker": {"validation": rk["validation_ndcg@10"], "test": rk["test_ndcg@10"]},
    }
    for head in (10, 20):
        nd = {}
        for part in ("validation", "test"):
            rows_ = []
            for q, (cands, pipe) in rk["top"][part].items():
                g = {index[p]: x for p, x in judg[q].items()}
                c_, p_, s_ = cands[:head], pipe[:head], scores[part][q][:head]
                rows_.append(
                    [ndcg_at_k([int(c_[i]) for i in _blend(p_, s_, w)][:10], g) for w in BLEND_WEIGHTS]
                )
            nd[part] = np.array(rows_)
        best = 1 + int(np.argmax(nd["validation"][:, 1:].mean(axis=0)))
        r: dict = {"blend_weight": BLEND_WEIGHTS[best]}
        for part in ("validation", "test"):
            d = nd[part][:, best] - nd[part][:, 0]
            r[part] = {
                "ranker": round(float(nd[part][:, 0].mean()), 4),
                "cross_alone": round(float(nd[part][:, -1].mean()), 4),
                "blend": round(float(nd[part][:, best].mean()), 4),
                "diff": round(float(d.mean()), 4),
                "diff_se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4),
                "by_weight": [round(float(x), 4) for x in nd[part].mean(axis=0)],
            }
        res[f"top {head}"] = r
    print(json.dumps(res), flush=True)
    with open(dest / "cross.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")


def depth(out: Path, depths: list[int]) -> None:
    """Candidate depth: the share of the validation and test queries' gain mass (judged gain
    summed) that the union of the retrievers' top `depth` lists holds, and its candidates per
    query, for each depth (retrieval only; no ranker)."""
    from shelfwise.search import SearchEngine

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    c = _cached(out)
    eng = SearchEngine.load(out / "bundle")
    index = {p: i for i, p in enumerate(eng.catalog.product_ids)}
    for label, qs in (("validation", [q for q in c["qids"] if c["hold"][q]]), ("test", c["test_q"])):
        vecs = eng.encode_queries(qs)
        for d in depths:
            got = total = 0.0
            n = []
            for q, v in zip(qs, vecs, strict=True):
                cands, _ = eng._retrieve(eng._query(q), v, d)
                s = set(map(int, cands))
                n.append(len(s))
                for p, g in judg[q].items():
                    total += g
                    got += g if index.get(p, -1) in s else 0.0
            print(
                json.dumps(
                    {
                        "queries": label,
                        "depth": d,
                        "gain_mass_recall": round(got / total, 4),
                        "candidates_per_query": round(float(np.mean(n)), 1),
                    }
                ),
                flush=True,
            )


def _overrides(args: list[str]) -> dict:
    """`FinetuneSettings` fields from NAME=VALUE arguments, each VALUE of its field's type."""
    import dataclasses

    from shelfwise.search import FinetuneSettings

    types = {f.name: type(getattr(FinetuneSettings(), f.name)) for f in dataclasses.fields(FinetuneSettings)}
    out = {}
    for a in args:
        k, v = a.split("=", 1)
        if k not in types:
            raise SystemExit(f"{a!r}: FinetuneSettings has no field {k!r} (fields: {', '.join(types)})")
        out[k] = types[k](v)
    return out


def main() -> None:
    step, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if step in ("build", "finetune"):
        args = sys.argv[3:]
        tuned = Path(args[args.index("--tuned") + 1]) if "--tuned" in args else None
        if tuned is not None:
            del args[args.index("--tuned") : args.index("--tuned") + 2]
        pos = [a for a in args if "=" not in a]
        budget = (int(pos[0]) if pos else 400, int(pos[1]) if len(pos) > 1 else 2)
        fields = _overrides([a for a in args if "=" in a])
        if step == "finetune":
            finetune(out, *budget, fields)
        else:
            build(out, *budget, fields, tuned)
    elif step == "capture":
        rest = [a for a in sys.argv[3:] if a != "--lean"]
        capture(
            out,
            int(rest[0]) if rest else None,
            Path(rest[1]) if len(rest) > 1 else None,
            lean="--lean" in sys.argv[3:],
        )
    elif step == "compare":
        compare(out, Path(sys.argv[3]))
    elif step == "run":
        evaluate(out, "as fit_ranker")
    elif step == "sweep":
        sweep(out, sys.argv[3:])
    elif step == "rank":
        rank(out, Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 20)
    elif step == "cross":
        cross(
            out,
            sys.argv[3],
            int(sys.argv[4]),
            int(sys.argv[5]) if len(sys.argv) > 5 else 1,
            float(sys.argv[6]) if len(sys.argv) > 6 else 1e9,
        )
    elif step == "depth":
        depth(out, [int(d) for d in sys.argv[3:]] or [100, 150, 200, 300])
    else:
        raise SystemExit(
            f"unknown step {step!r}: build, finetune, capture, run, sweep, depth, compare, rank or cross"
        )


if __name__ == "__main__":
    main()
