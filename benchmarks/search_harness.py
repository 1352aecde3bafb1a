"""A quick harness for iterating on the search ranker (not part of `make bench`; prints, writes
no report): the Home Depot data, catalog, by-query split and protocol of `search.py`, computed
once and cached, so that a feature or a LightGBM setting costs one LightGBM fit, not an hour.

    python benchmarks/search_harness.py build DIR     # index + fine-tuned MiniLM, saved in DIR/bundle
    python benchmarks/search_harness.py capture DIR   # fit_ranker as search.py runs it, capturing
                                                      # every group's candidates + features; then
                                                      # the test queries'; DIR/cap.pkl
    python benchmarks/search_harness.py run DIR       # refit LightGBM on the cached features:
                                                      # validation and test NDCG@10

`run` fits on the training queries that `fit_ranker` fits on, stops early on its held-out
(validation) queries and reports NDCG@10 on both the validation and the test queries: choose on
validation, read test. Extra features: functions `(query, candidates) -> columns` passed to
`evaluate` (see `main`). Its numbers are indicative: `build` caps the fine-tune at what the machine
allows (the session that built the harness in use had an 8-step fine-tune), so the semantic
features are not those of a full `search.py` run. Costs on 2 loaded cores: build ~40 min,
capture ~35 min, one `run` fit ~15 min.
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

PARAMS = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
    "metric": "ndcg",
    "eval_at": [10],
    "label_gain": list(range(31)),
}  # as `fit_ranker`


def split(judg: dict) -> tuple[list[str], list[str]]:
    """search.py's by-query split: (training queries, the first 2000 test queries)."""
    test_q = sorted(q for q in judg if zlib.crc32(q.encode()) % 1000 < 300)[:2000]
    train_q = [q for q in judg if zlib.crc32(q.encode()) % 1000 >= 300]
    return train_q, test_q


def build(out: Path) -> None:
    from shelfwise.search import SearchCatalog, SearchEngine

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    train_q, _ = split(judg)
    pids = sorted(titles)
    eng = SearchEngine(out / "bundle").build(SearchCatalog(pids, [titles[p] for p in pids]))
    ft = eng.finetune_encoder({q: q for q in train_q}, {q: judg[q] for q in train_q})
    print("finetune", json.dumps({k: v for k, v in ft.items() if k != "settings"}), flush=True)
    eng.save()


def capture(out: Path) -> None:
    from shelfwise.search import SearchEngine, _training, ndcg_at_k

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    train_q, test_q = split(judg)
    eng = SearchEngine.load(out / "bundle")
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
    info = eng.fit_ranker(tq, tg)
    print("fit", round(time.time() - t0), json.dumps(info["holdout_ndcg@10"]), flush=True)
    qids, hold = _training._split_queries(tq, tg, 0.2, 0)
    train = dict(zip(qids, cap, strict=True))
    eng._features = orig  # type: ignore[method-assign]
    test = {}
    for q, v in zip(test_q, eng.encode_queries(test_q), strict=True):
        qq = eng._query(q)
        c, x = eng._features(qq, None, vecs=v)
        test[q] = (qq.text, qq.terms, c, x, None)
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


def evaluate(out: Path, name: str, extra=(), params: dict | None = None, drop=()) -> dict:  # type: ignore[no-untyped-def]
    """Refit LightGBM on the cached features (+ `extra` column functions, - the cached columns
    at the positions in `drop`, an ablation): validation and test NDCG@10 (whole catalog,
    unjudged = 0, as search.py)."""
    import lightgbm as lgb

    from shelfwise.search import ndcg_at_k

    titles, judg = load(SHARED / "homedepot_search_relevance" / "train_dev.csv")
    with open(out / "cap.pkl", "rb") as fh:
        c = pickle.load(fh)
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

    def score(b, qs: list[str]) -> float:  # type: ignore[no-untyped-def]
        out_ = []
        for q in qs:
            cands = rows[q][2]
            if not len(cands):
                out_.append(0.0)
                continue
            p = b.predict(matrix(q))
            out_.append(ndcg_at_k([int(cands[i]) for i in np.argsort(-p, kind="stable")[:10]], gains[q]))
        return float(np.mean(out_))

    t0 = time.time()
    p = {**PARAMS, **(params or {})}
    rounds = p.pop("rounds", 500)
    xt, yt, gt = stack(fit)
    xv, yv, gv = stack(val)
    tr = lgb.Dataset(xt, yt, group=gt)
    b = lgb.train(
        p,
        tr,
        num_boost_round=rounds,
        valid_sets=[lgb.Dataset(xv, yv, group=gv, reference=tr)],
        callbacks=[lgb.early_stopping(40, verbose=False)],
    )
    res = {
        "name": name,
        "iterations": b.best_iteration,
        "validation_ndcg@10": round(score(b, val), 4),
        "test_ndcg@10": round(score(b, c["test_q"]), 4),
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    step, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if step == "build":
        build(out)
    elif step == "capture":
        capture(out)
    elif step == "run":
        evaluate(out, "as fit_ranker")
    else:
        raise SystemExit(f"unknown step {step!r}: build, capture or run")


if __name__ == "__main__":
    main()
