"""Entries that ask nearly the same question and answer it differently: the shopper's exact
wording decides which one answers. `train` says them (its log, the report's `faq.near_twins`)
beside the ingest's `faq_conflicts` (the very same question); paraphrased questions with one
answer, entries asking different things, and verbatim twins (said at ingest) are not listed."""

from __future__ import annotations

from shelfwise.insights._faq import FaqMatcher

IDS = ["track", "track-details", "silver", "gold", "pay", "pay-again", "returns", "same-a", "same-b"]
QUESTIONS = [
    "How do I track my order?",
    "How do I track my order details?",
    "What are the benefits that a Flipkart Plus Silver member gets?",
    "What are the benefits that a Flipkart Plus Gold member gets?",
    "Which payment methods do you accept?",
    "Which payment methods do you take?",
    "How do I return an item?",
    "Can I pay only a part of the bill?",
    "Can I pay only a part of the bill?",
]
ANSWERS = [
    "Open My Orders and press Track.",
    "Your order's details and its tracking are in My Orders.",
    "Silver members get free delivery.",
    "Gold members get free delivery and early access to sales.",
    "Cards and PayPal.",
    "Cards and PayPal.",  # a paraphrase with the same answer: no contradiction
    "Open your orders, choose the item and press Return.",
    "Yes.",
    "No.",  # the very same question: the ingest's faq_conflicts says it
]


def test_near_twin_entries_that_answer_differently_are_listed():
    twins = FaqMatcher(IDS, QUESTIONS, ANSWERS).near_twins()
    listed = {tuple(e["faq_ids"]) for e in twins["examples"]}
    assert ("track", "track-details") in listed
    assert ("silver", "gold") in listed  # one word apart: the matcher's hardest pair
    assert ("pay", "pay-again") not in listed  # same answer
    assert ("same-a", "same-b") not in listed  # verbatim: said at ingest
    assert not any("returns" in pair for pair in listed)
    assert twins["pairs"] == len(listed) and twins["threshold"] == 0.9
    for e in twins["examples"]:
        assert min(e["cosine_use"], e["cosine_minilm"]) >= 0.9


def test_a_paraphrase_with_another_answer_is_one_pair_and_distinct_questions_none():
    twins = FaqMatcher(IDS[4:7], QUESTIONS[4:7], ["Cards.", "PayPal too.", "Press Return."]).near_twins(
        shown=1
    )
    assert twins["pairs"] == 1 and twins["examples"][0]["faq_ids"] == ["pay", "pay-again"]
    assert FaqMatcher(
        ["a", "b"], QUESTIONS[:1] + QUESTIONS[6:7], ANSWERS[:1] + ANSWERS[6:7]
    ).near_twins() == {
        "pairs": 0,
        "threshold": 0.9,
        "examples": [],
    }
