"""Retention reaches the bundles kept for rollback: their histories and purchase lists lose the
steps older than `events_days`, as the warehouse loses the events, and the bundle still serves."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shelfwise.features import Interactions
from shelfwise.governance._retention import enforce_retention
from shelfwise.serving import Service


def test_retention_removes_old_steps_from_every_kept_bundle(served_workdir, tmp_path: Path) -> None:
    _, src = served_workdir
    work = tmp_path / "w"
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("serve-*.log"))
    bundle = work / "bundles" / (work / "bundles" / "CURRENT").read_text().strip()
    before = Interactions.load(bundle / "interactions.npz")
    with np.load(bundle / "serving.npz") as z:
        purchases_before = z["purchase_ts"].copy() if "purchase_ts" in z.files else np.zeros(0)
    middle = int(np.median(before.timestamp))
    now = datetime.now(UTC)
    days = (now - datetime.fromtimestamp(middle, UTC)).days
    (work / "config").mkdir(exist_ok=True)
    (work / "config" / "retention.json").write_text(json.dumps({"events_days": days}))
    rep = enforce_retention(work, now=now)
    limit = (now.replace(microsecond=0) - datetime.fromtimestamp(0, UTC)).total_seconds() - days * 86400
    after = Interactions.load(bundle / "interactions.npz")
    old = int((before.timestamp < limit).sum())
    assert 0 < old < len(before) and rep["deleted"]["bundles/history"] == old
    assert len(after) == len(before) - old and int(after.timestamp.min()) >= limit
    assert list(after.user_ids) == list(before.user_ids)  # the index spaces stay (models use them)
    with np.load(bundle / "serving.npz") as z:
        if len(purchases_before):
            assert (z["purchase_ts"] >= limit).all() and len(z["purchase_ts"]) < len(purchases_before)
    # the bundle still loads (its manifest's file hashes follow) and serves
    svc = Service(work)
    assert len(svc.snapshot.bundle.interactions) == len(after)
    assert len(svc.recommend("a-new-shopper", 5).items) == 5
    assert svc.search("organic", 5) is not None
    # a second run finds nothing more to remove
    assert enforce_retention(work, now=now)["deleted"]["bundles/history"] == 0
    # the manifest says the history was trimmed, and `evaluate` says its numbers are not train's
    import pytest

    from shelfwise.lifecycle._train import HistoryTrimmedWarning, evaluate_workdir

    assert svc.snapshot.bundle.manifest.get("retention")["steps_removed"] == old
    with pytest.warns(HistoryTrimmedWarning, match=f"{old:,} steps begun before .* not train's"):
        rep = evaluate_workdir(work, models=["popularity"], bootstrap_rounds=10)
    assert rep["history_trimmed"]["steps_removed"] == old
