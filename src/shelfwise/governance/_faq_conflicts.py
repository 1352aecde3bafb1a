"""FAQ entries that ask the same question and answer it differently ("Can I return a gift?" once
"Yes, within 30 days" and once "No"): `ask` answers with whichever entry fits a shopper's words
best, so the shop would tell two shoppers two things. Found after each load of the faq table,
over the whole curated table (a delivery's entry may contradict one curated before), and said in
the load's notes and the report's `faq_conflicts`; nothing is quarantined (which answer is right
is the shop's call)."""

from __future__ import annotations

from typing import Any

from ..storage import Warehouse
from ._compile import q

__all__ = ["faq_conflicts"]

# a question or answer compared as words: case, punctuation and spacing do not make two texts
# different ("Can I return a gift?" and "can i return a gift" ask one thing)
# (letters and digits of any script: `[:alnum:]` is ASCII in RE2, which read every Japanese
# question as "" and "Доставка в EU?" as "eu")
_WORDS = "trim(regexp_replace(lower({}), '[^\\pL\\pN]+', ' ', 'g'))"


def faq_conflicts(wh: Warehouse, *, shown: int = 5) -> tuple[int, list[dict[str, Any]]]:
    """(how many questions are asked by entries that answer differently, the first `shown` of
    them: the question as one entry writes it and the ids of the entries, ordered)."""
    question, answer = _WORDS.format(q("question")), _WORDS.format(q("answer"))
    rows = wh.sql(
        f"""SELECT any_value(question ORDER BY faq_id), list(DISTINCT faq_id ORDER BY faq_id), count(*) OVER ()
            FROM (SELECT faq_id, question, {question} AS qw, {answer} AS aw FROM curated.faq)
            WHERE qw <> '' GROUP BY qw HAVING count(DISTINCT aw) > 1
            ORDER BY min(faq_id) LIMIT {int(shown)}"""
    ).fetchall()
    total = int(rows[0][2]) if rows else 0
    return total, [{"question": r[0], "faq_ids": list(r[1])} for r in rows]
