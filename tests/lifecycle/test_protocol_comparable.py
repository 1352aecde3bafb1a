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
