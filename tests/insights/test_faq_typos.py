"""The FAQ benchmark's typo'd questions (benchmarks/insights.py `with_typos`): deterministic for
a seed, 1 or 2 edits per question, each a letter dropped, replaced or two neighbours swapped in a
different word of 4+ letters; questions without such a word are left as they are."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

QUESTIONS = [
    "how do I cancel purchase 113542617735902?",
    "I want help seeing your payment methods",
    "where do I see the status of my refund",
    "ok do it",
] * 25


def test_typos_are_seeded_small_edits_of_long_words():
    from insights import with_typos
    from rapidfuzz.distance import OSA

    got = with_typos(QUESTIONS)
    assert got == with_typos(QUESTIONS) and got != with_typos(QUESTIONS, seed=1)
    edits = []
    for q, t in zip(QUESTIONS, got, strict=True):
        a, b = re.split(r"(\W+)", q), re.split(r"(\W+)", t)
        assert len(a) == len(b)  # separators kept, no word merged or split
        changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        if q == "ok do it":
            assert t == q
            continue
        assert 1 <= len(changed) <= 2, (q, t)
        for x, y in changed:
            assert len(x) >= 4 and OSA.distance(x, y) == 1, (x, y)
        edits.append(len(changed))
    assert {1, 2} <= set(edits)  # both counts occur
