"""The production gate compares test numbers only when they measure the same thing."""

from __future__ import annotations

from shelfwise.lifecycle._registry import _measured_as


def _manifest(split: str, description: str) -> dict:
    return {"protocol": {"split": split, "split_description": description, "candidates": "full ranking"}}


def test_bundles_measured_alike_compare_whatever_their_cut_dates():
    a = _manifest("global_time", "global time split: fitted before 1, ...; targets: the first item new")
    b = _manifest("global_time", "global time split: fitted before 9, ...; targets: the first item new")
    assert _measured_as(a) == _measured_as(b)
    lo1 = _manifest("leave_last_out", "leave-last-out: per user with >= 3 steps, ...")
    assert _measured_as(lo1) == _measured_as(_manifest("leave_last_out", "leave-last-out: other users"))


def test_other_targets_or_splits_are_not_comparable():
    old = _manifest("global_time", "global time split: fitted before 1, tested on >= 2 (epoch s)")
    new = _manifest("global_time", "global time split: fitted before 1, ...; targets: the first item new")
    assert _measured_as(old) != _measured_as(new)
    assert _measured_as(new) != _measured_as(_manifest("leave_last_out", "leave-last-out"))


def test_a_catalog_that_grew_is_still_the_same_protocol():
    """A delivery that adds a product changes "the 565 listed items" to "the 566": the two
    bundles were measured alike, so the gate compares them (it passed a candidate with half the
    production NDCG as "not comparable"). A sampled protocol is another measure."""

    def full(candidates: str) -> dict:
        return {"protocol": {"split": "leave_last_out", "split_description": "x", "candidates": candidates}}

    a = full("full ranking (the 565 listed items)")
    assert _measured_as(a) == _measured_as(full("full ranking (the 1,566 listed items)"))
    assert _measured_as(a) == _measured_as(full("full ranking (all items)"))
    assert _measured_as(a) != _measured_as(full("sampled (100 random unseen negatives per target)"))
