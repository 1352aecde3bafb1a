"""What a `train` bundle serves, scored on the test step it never saw, written as JSON.

`train` reports the test numbers of the models fitted on the training part (leave-last-out:
without each user's last two steps); the bundle then serves them refit on every interaction
(SASRec refreshed for `sasrec_refresh_epochs` epochs, the fusion keeping its ranker). Those
served fits have learnt the test targets, so they cannot be scored on them. This benchmark
rebuilds the served state one step earlier: from the bundle's evaluated fits, every model is
refit (SASRec refreshed) on every step before the test target, exactly as `train`'s refit does
on everything, and scored on the test step: the number a shopper's next step would see.

    python benchmarks/served.py --workdir benchmarks/work-recsys/Beauty-leave_last_out --out benchmarks/served.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from _provenance import provenance, write_report

# SASRec loads with its network (torch) so that it can be refreshed; it is exported to int8
# again after the refresh and then scores as served
os.environ["SHELFWISE_SASREC_SCORING"] = "torch"

from shelfwise.evaluation._metrics import bootstrap_ci, per_user_metrics  # noqa: E402
from shelfwise.lifecycle._train import make_split  # noqa: E402
from shelfwise.models import SASRec  # noqa: E402
from shelfwise.serving import Bundle, current_bundle  # noqa: E402
from shelfwise.serving._bundle import load_evaluated_models  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True, help="a workdir `train` wrote a leave-last-out bundle in")
    ap.add_argument("--out", default="benchmarks/served.json")
    args = ap.parse_args()
    bundle = Bundle.load(current_bundle(Path(args.workdir)))
    manifest = bundle.manifest
    if manifest.protocol.get("split") != "leave_last_out":
        raise SystemExit(f"{args.workdir}: the bundle was not trained with leave-last-out")
    refresh_epochs = int(manifest.settings.get("sasrec_refresh_epochs", 0))
    models, not_evaluable = load_evaluated_models(bundle)
    sasrec = models.get("sasrec")
    if isinstance(sasrec, SASRec) and sasrec.serving != "torch":
        sasrec._serve_from(sasrec.net_)  # scores through its export again, as train evaluated it
    split = make_split(bundle.interactions, "leave_last_out")
    history = split.test.history  # every step before each user's test target

    def score(model: Any) -> dict:
        ids = model.recommend(split.test.users, 10, exclude_seen=True, history=history).ids
        per_user = per_user_metrics(ids, split.test.targets, 10)["ndcg@10"]
        return {
            "ndcg@10": round(float(per_user.mean()), 5),
            "ndcg@10_ci95": [round(x, 5) for x in bootstrap_ci(per_user, rounds=1000, seed=0)],
        }

    evaluated = {name: score(m) for name, m in models.items()}
    served: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    refit = set(manifest.refit.get("models", []))  # what train's refit did (a cap may stop it)
    for name, model in models.items():  # the generators first, as train's refit
        if name in ("fusion", "sasrec") or name not in refit:
            continue
        t0 = time.monotonic()
        model.fit(history)
        seconds[name] = round(time.monotonic() - t0, 1)
        served[name] = score(model)
    if "fusion" in models and "fusion" in refit:
        models["fusion"].fit(history)  # item statistics; the ranker stays
        served["fusion (SASRec as fitted)"] = score(models["fusion"])
    if isinstance(sasrec, SASRec) and refresh_epochs and "sasrec" in refit:
        t0 = time.monotonic()
        sasrec.refresh(history, refresh_epochs)
        seconds["sasrec"] = round(time.monotonic() - t0, 1)
        served["sasrec"] = score(sasrec)
        if "fusion" in models and "fusion" in refit:
            served["fusion"] = score(models["fusion"])
    report = {
        **provenance(),
        "benchmark": "what a train bundle serves, scored on the test step",
        "workdir": Path(args.workdir).name,
        "bundle": manifest.get("version"),
        "protocol": split.description
        + "; full ranking, seen items excluded. `evaluated`: the bundle's evaluated fits (train's "
        "test numbers). `served`: those fits refit on every step before the test target as train's "
        f"refit does on everything (SASRec refreshed {refresh_epochs} epoch(s), the fusion keeping "
        "its ranker), scored on the test target",
        "sasrec_refresh_epochs": refresh_epochs,
        "not_evaluable": not_evaluable,
        "evaluated": evaluated,
        "served": served,
        "refit_seconds": seconds,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
