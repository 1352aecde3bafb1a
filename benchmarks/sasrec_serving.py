"""SASRec compressed for serving (issue 21, part 3): the same trained weights scored by torch
(float32, as trained) and through the exported ONNX request graph (onnxruntime: int8 weights and
item vectors with one scale per item, the default, and float32), written as JSON.

Protocol as benchmarks/sasrec.py (S3-Rec Amazon set, leave-one-out, full ranking, seen items
excluded; early stopping on the second-to-last step), with a short epoch budget: what is measured
is the drop from compression, not the model's best. Reported per variant: test NDCG@10 and HR@10
(its relative drop against torch, and a bootstrap CI of the per-user difference), top-10 overlap
with torch, per-request latency (one user per request, one thread as `shelfwise serve` runs,
p50/p99 of `recommend`), the bytes each variant reads from the bundle, and the peak RSS
(VmHWM) of a fresh process that loads the model and answers requests (whether it imported torch).

    python benchmarks/sasrec_serving.py --datasets Beauty --out benchmarks/sasrec-serving.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _provenance import provenance, write_report
from sasrec import SHARED, load

from shelfwise.evaluation import ndcg_at_10
from shelfwise.evaluation._metrics import bootstrap_ci, per_user_metrics
from shelfwise.features import Interactions, leave_last_out
from shelfwise.models import Recommender, SASRec, load_model
from shelfwise.models._sasrec import ONNX_DIR, SCORING_ENV, TORCH_DIR

# the serving processes run one thread per worker (`shelfwise serve` sets these before loading)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "SHELFWISE_ENCODER_THREADS": "1"}

# a fresh process: load the interactions, then (unless "none") the model, answer `n` requests of
# one user each; print its peak RSS (VmHWM: ru_maxrss would carry the parent's peak across the
# fork) and whether torch was imported
PROBE = """
import json, sys
import numpy as np
from shelfwise.features import Interactions
inter = Interactions.load(sys.argv[1])
if sys.argv[2] != "none":
    from shelfwise.models import load_model
    m = load_model(sys.argv[2], inter)
    for u in range(int(sys.argv[3])):
        m.recommend(np.array([u]), 10, exclude_seen=False)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"peak_rss_mb": int(hwm) / 1024, "torch_imported": "torch" in sys.modules}))
"""


def _probe(inter_path: Path, model: str, requests: int, env: dict[str, str]) -> dict:
    base = {k: v for k, v in os.environ.items() if k != SCORING_ENV}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(inter_path), model, str(requests)],
        capture_output=True,
        text=True,
        check=True,
        env=base | ONE_THREAD | env,
    )
    return json.loads(out.stdout)


def _bytes(directory: Path, parts: tuple[str, ...]) -> int:
    """Bytes of the files a variant reads: params.json, state.pkl and the named subfolders."""
    files = [directory / "params.json", directory / "state.pkl"]
    for part in parts:
        files += [p for p in (directory / part).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files)


def _latency_ms(model: Recommender, users: np.ndarray, history: Interactions) -> dict[str, float]:
    for u in users[:20]:  # warm-up: first calls open the session, fault in pages
        model.recommend(np.array([u]), 10, exclude_seen=False, history=history)
    times = []
    for u in users:
        t0 = time.perf_counter()
        model.recommend(np.array([u]), 10, exclude_seen=False, history=history)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}


def run(dataset: str, params: dict, val_users: int, requests: int) -> dict:
    src = SHARED / "amazon_s3rec_seq" / f"{dataset}.txt"
    if not src.exists():
        return {"dataset": dataset, "skipped": f"{src} is absent"}
    split = leave_last_out(load(src))
    t0 = time.monotonic()
    # serving="torch": the fitted model scores with its network (the reference); each export is
    # then saved from it (a model fitted for int8 would score through its own int8 graph)
    model = SASRec(**{**params, "serving": "torch"}).fit(
        split.train, validation=lambda m: ndcg_at_10(m, split.validation, max_users=val_users, seed=0)
    )
    train_s = time.monotonic() - t0
    users, hist, targets = split.test.users, split.test.history, split.test.targets
    work = Path(tempfile.mkdtemp(prefix="sasrec-serving-"))
    dirs = {}
    for serving in ("onnx-int8", "onnx"):
        model.serving = serving
        t = time.monotonic()
        model.save(work / serving)
        dirs[serving] = (work / serving, round(time.monotonic() - t, 1))
    variants: dict[str, Recommender] = {
        "torch-fp32": model,
        "onnx-int8": load_model(dirs["onnx-int8"][0], split.train),
        "onnx-fp32": load_model(dirs["onnx"][0], split.train),
    }
    import torch

    torch.set_num_threads(int(ONE_THREAD["OMP_NUM_THREADS"]))  # latency as served: one thread
    os.environ.update(ONE_THREAD)  # read when each ONNX session opens (on its first request)
    rng = np.random.default_rng(0)
    sample = rng.choice(users, size=min(requests, len(users)), replace=False)
    split.train.save(work / "train.npz")
    base_rss = _probe(work / "train.npz", "none", 0, {})["peak_rss_mb"]
    ref_ids, ref_ndcg = None, None
    out: dict[str, dict] = {}
    for name, m in variants.items():
        ids = m.recommend(users, 10, exclude_seen=True, history=hist).ids
        per_user = per_user_metrics(ids, targets, 10)
        ndcg = per_user["ndcg@10"]
        res: dict = {
            "ndcg@10": round(float(ndcg.mean()), 5),
            "hr@10": round(float(per_user["hr@10"].mean()), 5),
        }
        if ref_ids is None:
            ref_ids, ref_ndcg = ids, ndcg
        else:
            assert ref_ndcg is not None
            drop = (ref_ndcg.mean() - ndcg.mean()) / ref_ndcg.mean()
            res["ndcg@10_relative_drop"] = round(float(drop), 5)
            res["ndcg@10_difference_ci95"] = [
                round(x, 5) for x in bootstrap_ci(ndcg - ref_ndcg, rounds=1000, seed=0)
            ]
            res["top10_overlap_with_torch"] = round(
                float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, ref_ids, strict=True)])), 4
            )
        res["latency_ms_batch_of_1"] = _latency_ms(m, sample, hist)
        if name == "torch-fp32":
            # the bundle scored by torch (the override): what torch serving reads and holds
            res["bundle_bytes"] = _bytes(dirs["onnx-int8"][0], (TORCH_DIR,))
            probe = _probe(work / "train.npz", str(dirs["onnx-int8"][0]), 200, {SCORING_ENV: "torch"})
        else:
            d = dirs["onnx-int8" if "int8" in name else "onnx"][0]
            res["bundle_bytes"] = _bytes(d, (ONNX_DIR,))
            res["export_seconds"] = dirs["onnx-int8" if "int8" in name else "onnx"][1]
            probe = _probe(work / "train.npz", str(d), 200, {})
        res["serving_process"] = {
            "peak_rss_mb": round(probe["peak_rss_mb"], 1),
            "over_interactions_only_mb": round(probe["peak_rss_mb"] - base_rss, 1),
            "torch_imported": probe["torch_imported"],
        }
        out[name] = res
        print(f"  {dataset} {name}: {json.dumps(res)}", file=sys.stderr, flush=True)
    return {
        "dataset": dataset,
        "protocol": split.description + "; full ranking, seen items excluded; the same trained weights",
        "users_evaluated": len(split.test),
        "params": model.config_dict(),
        "epochs": model.epochs_,
        "stopped_by": model.stopped_by_,
        "train_seconds": round(train_s, 1),
        "latency_requests": len(sample),
        "serving_process_requests": 200,
        "interactions_only_process_rss_mb": round(base_rss, 1),
        "variants": out,
        "target": "NDCG@10 relative drop <= 1% (onnx-int8 against torch-fp32)",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/sasrec-serving.json")
    ap.add_argument("--datasets", default="Beauty")
    ap.add_argument(
        "--params", default='{"epochs": 8, "eval_every": 4}', help="SASRec overrides as JSON (short budget)"
    )
    ap.add_argument("--val-users", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=1000, help="single-user requests timed per variant")
    args = ap.parse_args()
    results = [
        run(ds, json.loads(args.params), args.val_users, args.requests) for ds in args.datasets.split(",")
    ]
    write_report(
        args.out,
        {**provenance(), "benchmark": "SASRec served through ONNX int8 against torch", "results": results},
    )


if __name__ == "__main__":
    main()
