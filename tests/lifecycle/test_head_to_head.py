"""The "not worse than production" gate compares the two bundles on the candidate's held-out
steps, user by user (`lifecycle._head_to_head`): after a new delivery each bundle's own test
number is measured on other steps, so a candidate passed or failed on the data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from shelfwise.demo import generate_demo
from shelfwise.lifecycle import TrainSettings
from shelfwise.lifecycle._head_to_head import head_to_head
from shelfwise.lifecycle._registry import Registry
from shelfwise.lifecycle._train import make_split, train
from shelfwise.serving import Bundle

FAST = {"tune_budget_s": 0, "search_finetune_budget_s": 0, "search_cross_budget_s": 0}


def _days(tmp_path: Path) -> tuple[Path, Path]:
    """The demo shop's catalog and its first 70% of events (by time), and a delivery of the rest
    (with every event of 25 shoppers: new to a bundle of day 1)."""
    generate_demo(tmp_path / "all", products=300, users=150, events=8000, seed=5, defects=False, faq=False)
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    for f in (tmp_path / "all").iterdir():
        # (no queries or judgments: the search ranker is not what the gate compares, and each
        # of the four trainings fitted it: ~1 s of CPU, ~3 s on a loaded machine, each)
        if f.name not in ("events.csv", "queries.csv", "judgments.csv") and f.is_file():
            (d1 / f.name).write_bytes(f.read_bytes())
    with (tmp_path / "all" / "events.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows.sort(key=lambda r: r["timestamp"])
    cut = int(len(rows) * 0.7)
    newcomers = sorted({r["user_id"] for r in rows})[:25]  # shoppers of day 2 only
    late = [i >= cut or r["user_id"] in newcomers for i, r in enumerate(rows)]
    first = [r for r, x in zip(rows, late, strict=True) if not x]
    second = [r for r, x in zip(rows, late, strict=True) if x]
    for folder, part in ((d1, first), (d2, second)):
        with (folder / "events.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(part)
    return d1, d2


def _popularity_ndcg(prod: Bundle, cand: Bundle) -> tuple[float, int, int]:
    """By hand: production's popularity (counts of its own train fold) ranking for the
    candidate's test users it knows, their candidate history's products excluded, against the
    candidate's targets; and how many users were compared and left out."""
    p_split = make_split(prod.interactions, prod.manifest["protocol"]["split"])
    counts = p_split.train.item_counts()
    p_ids = list(prod.interactions.item_ids)
    listed = np.ones(len(p_ids), bool) if prod.listed is None else np.asarray(prod.listed, bool)
    order = [p_ids[i] for i in np.argsort(-counts, kind="stable") if listed[i]]
    fold = make_split(cand.interactions, cand.manifest["protocol"]["split"]).test
    known = set(prod.interactions.user_ids)
    scores, left_out = [], 0
    c_ids = cand.interactions.item_ids
    for row, u in enumerate(fold.users):
        if cand.interactions.user_ids[u] not in known:
            left_out += 1
            continue
        off = fold.history.offsets
        seen = {c_ids[i] for i in fold.history.item_idx[off[u] : off[u + 1]]}
        top = [p for p in order if p not in seen][:10]
        lo, hi = fold.targets.indptr[row], fold.targets.indptr[row + 1]
        targets = {c_ids[i] for i in fold.targets.indices[lo:hi]}
        dcg = sum(1 / np.log2(r + 2) for r, p in enumerate(top) if p in targets)
        ideal = sum(1 / np.log2(r + 2) for r in range(min(len(targets), 10)))
        scores.append(dcg / ideal if ideal else 0.0)
    return float(np.mean(scores)), len(scores), left_out


@pytest.mark.slow  # four small trainings
def test_production_is_scored_on_the_candidates_held_out_steps_user_by_user(tmp_path: Path) -> None:
    d1, d2 = _days(tmp_path)
    work = tmp_path / "w"
    quiet = {"log": lambda *_: None}
    # v1: popularity alone, on day 1 (single-user mode: each trained bundle goes live)
    train(work, d1, TrainSettings(models=("popularity",), **FAST), **quiet)
    reg = Registry(work)
    v1 = reg.production()
    # v2: the same data, item-kNN and popularity: production's number on the candidate's split
    # is its own test number (the same steps), and the comparison is of the two models
    train(work, None, TrainSettings(models=("popularity", "itemknn"), **FAST), **quiet)
    v2 = reg.production()
    assert v2 != v1
    # production's own gate is the one it went live with, against v1 (not against itself)
    live = {g.name: g for g in reg.gates(v2)}["not_worse_than_production"]
    assert f"production v{v1}" in live.detail, live.detail
    same = head_to_head(work, reg.bundle_dir(v2), reg.bundle_dir(v1))
    pm = reg.manifest(v1)
    assert same["new_users"] == 0 and same["users"] == pm["protocol"]["users"] and "leaked_users" not in same
    assert same["production"] == pytest.approx(pm["metrics"]["popularity"]["ndcg@10"], abs=1e-6)
    cm = reg.manifest(v2)
    assert same["candidate"] == pytest.approx(cm["metrics"][cm["default_model"]]["ndcg@10"], abs=1e-6)

    # day 2 delivered; v3 (popularity again) learns from both days: production v1 is scored on
    # v3's held-out steps (other steps than its own), its new users left out, as by hand
    train(work, d2, TrainSettings(models=("popularity",), **FAST), append=True, **quiet)
    v3 = reg.production()
    prod, cand = Bundle.load(reg.bundle_dir(v1)), Bundle.load(reg.bundle_dir(v3))
    got = head_to_head(work, reg.bundle_dir(v3), reg.bundle_dir(v1))
    expected, users, left_out = _popularity_ndcg(prod, cand)
    assert left_out > 0 and got["new_users"] == left_out and got["users"] == users
    assert "leaked_users" not in got  # day 2 added: production learned none of the held-out steps
    assert got["production"] == pytest.approx(expected, abs=1e-6)
    lo, hi = got["ci95"]
    assert lo <= got["difference"] <= hi
    assert got["difference"] == pytest.approx(got["candidate"] - got["production"], abs=1e-5)

    # the gate reads the paired interval: v2's item-kNN (production) against v3's popularity
    reg.production = lambda: v2  # type: ignore[method-assign]
    gate = {g.name: g for g in reg.gates(v3)}["not_worse_than_production"]
    h2h = head_to_head(work, reg.bundle_dir(v3), reg.bundle_dir(v2))
    assert gate.passed is (h2h["ci95"][1] >= 0)
    assert f"on this bundle's {h2h['users']:,} test users production knows" in gate.detail, gate.detail
    assert "paired 95% CI" in gate.detail
    # kept per pair of bundles: read again, not measured again
    cached = list((work / "registry" / "head_to_head").glob("*.json"))
    assert len(cached) == 3
    assert head_to_head(work, reg.bundle_dir(v3), reg.bundle_dir(v2)) == h2h

    # a newer full snapshot holding less (each shopper's last 3 events of day 1 left out): its
    # events version is higher, but production v1's fit learned the steps this bundle holds out;
    # those users are left out (production's number on them would be in sample)
    short = tmp_path / "d1short"
    short.mkdir()
    for f in d1.iterdir():
        if f.name != "events.csv":
            (short / f.name).write_bytes(f.read_bytes())
    with (d1 / "events.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_user: dict[str, list[dict[str, str]]] = {}
    for r in sorted(rows, key=lambda r: r["timestamp"]):
        by_user.setdefault(r["user_id"], []).append(r)
    kept = [r for evs in by_user.values() for r in evs[:-3]]
    with (short / "events.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    train(work, short, TrainSettings(models=("popularity",), **FAST), **quiet)
    v4 = reg.bundle_dir(str(int(v3) + 1))
    assert _events_version_of(v4) > _events_version_of(reg.bundle_dir(v1))
    got = head_to_head(work, v4, reg.bundle_dir(v1))
    fold = make_split(Bundle.load(v4).interactions, "leave_last_out").test
    # (events are merged into steps: a shopper's last 3 events may be fewer than 2 steps)
    assert got["leaked_users"] > len(fold) // 2
    if "skipped" not in got:
        assert got["users"] + got["new_users"] + got["leaked_users"] == len(fold)


def _events_version_of(bundle_dir) -> int:
    from shelfwise.lifecycle._head_to_head import _events_version
    from shelfwise.models import read_manifest

    v = _events_version(read_manifest(bundle_dir))
    assert v is not None
    return v
