"""SASRec alone on the S3-Rec Amazon sets (leave-one-out, full ranking, seen items excluded),
written as JSON: the transformer's own number, next to the published eSASRec benchmark.

The model is `SASRec()` with its defaults (or `--params` JSON overrides), fitted on each user's
steps before the last two, stopped early on the second-to-last (validation NDCG@10 over
`--val-users` users, as `shelfwise train` does) and scored once on the last. Target (issue 21):
NDCG@10 >= 0.0523 on Beauty (eSASRec; SASRec with sampled softmax 0.0531, same protocol).

    python benchmarks/sasrec.py --datasets Beauty --out benchmarks/sasrec.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from _provenance import provenance, write_report

from shelfwise.evaluation import ndcg_at_10
from shelfwise.evaluation._metrics import bootstrap_ci, per_user_metrics
from shelfwise.features import Interactions, leave_last_out
from shelfwise.models import SASRec

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHELFWISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
# full-ranking NDCG@10, leave-one-out, from the eSASRec paper's repository (README, "Calculated")
PUBLISHED = {
    "Beauty": {"SASRec (original, BCE)": 0.0318, "SASRec+SS": 0.0531, "eSASRec": 0.0523},
    "Sports_and_Outdoors": {"SASRec (original, BCE)": 0.0192, "SASRec+SS": 0.0314, "eSASRec": 0.0323},
}
TARGET = {"Beauty": 0.0523}


def load(path: Path) -> Interactions:
    """`user item item ...` per line, in order; the position is the timestamp."""
    users: list[str] = []
    items: list[str] = []
    ts: list[int] = []
    with path.open() as fh:
        for line in fh:
            user, *seq = line.split()
            users += [user] * len(seq)
            items += seq
            ts += range(len(seq))
    return Interactions.from_arrays(users, items, ts)


def run(dataset: str, params: dict, val_users: int) -> dict:
    src = SHARED / "amazon_s3rec_seq" / f"{dataset}.txt"
    if not src.exists():
        return {"dataset": dataset, "skipped": f"{src} is absent"}
    split = leave_last_out(load(src))
    model = SASRec(**params)
    t0 = time.monotonic()
    cpu0 = time.process_time()

    def validate(m: SASRec) -> float:
        score = ndcg_at_10(m, split.validation, max_users=val_users, seed=0)
        print(
            f"  {dataset}: validation NDCG@10 {score:.4f} after {time.monotonic() - t0:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        return score

    model.fit(split.train, validation=validate)
    train_s, train_cpu_s = time.monotonic() - t0, time.process_time() - cpu0
    ids = model.recommend(split.test.users, 10, exclude_seen=True, history=split.test.history).ids
    per_user = per_user_metrics(ids, split.test.targets, 10)
    ndcg = float(per_user["ndcg@10"].mean())
    return {
        "dataset": dataset,
        "protocol": split.description + "; full ranking, seen items excluded",
        "users_evaluated": len(split.test),
        "params": model.config_dict(),
        "ndcg@10": round(ndcg, 5),
        "ndcg@10_ci95": [round(x, 5) for x in bootstrap_ci(per_user["ndcg@10"], rounds=1000, seed=0)],
        "hr@10": round(float(per_user["hr@10"].mean()), 5),
        "target_ndcg@10": TARGET.get(dataset),
        "published_ndcg@10": PUBLISHED.get(dataset, {}),
        "epochs": model.epochs_,
        "stopped_by": model.stopped_by_,
        "best_validation_ndcg@10": model.best_validation_,
        "validation_curve": [
            {"epoch": h["epoch"], "ndcg@10": round(h["validation"], 5)}
            for h in model.history_
            if "validation" in h
        ],
        # wall seconds depend on the machine and its load; the epochs do not
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(train_cpu_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/sasrec.json")
    ap.add_argument("--datasets", default="Beauty")
    ap.add_argument("--params", default="{}", help="SASRec overrides as JSON")
    ap.add_argument("--val-users", type=int, default=5000, help="as `shelfwise train` (max_tune_users)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = []
    for ds in args.datasets.split(","):
        res = run(ds, json.loads(args.params), args.val_users)
        print(
            json.dumps({k: res.get(k) for k in ("dataset", "ndcg@10", "epochs", "train_seconds")}), flush=True
        )
        results.append(res)
    write_report(
        args.out,
        {**provenance(), "benchmark": "SASRec alone, S3-Rec Amazon sets, leave-one-out", "results": results},
    )


if __name__ == "__main__":
    main()
