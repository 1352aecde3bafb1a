"""A shopper's question that is an FAQ entry's own question (copied, or picked from a list; case,
punctuation and spacing aside) is answered by that entry, even where a near-twin entry's answer
says more of the question's words; on a real shop FAQ every verbatim question finds its entry."""

from __future__ import annotations

import csv

from shelfwise.insights._faq import FaqMatcher, verbatim_key
from tests.conftest import shared

# two near-twins: the second's answer repeats the question's words, the first's does not
IDS = ["delayed", "express-delayed", "returns"]
QUESTIONS = [
    "The delivery of my order is delayed. What should I do?",
    "My express order is delayed, what should I do?",
    "How do I return an item?",
]
ANSWERS = [
    "A new date will be shown in My Orders; we will let you know by email.",
    "If the delivery of your express order is delayed, what you should do is wait: the delayed "
    "delivery of an express order is shown with its new time in My Orders.",
    "Open your orders, choose the item and press Return.",
]


def test_verbatim_key_keeps_the_words_of_any_script():
    assert verbatim_key("  The delivery, of MY order… is delayed?! ") == "the delivery of my order is delayed"
    assert verbatim_key("Wie lange dauert die Lieferung?") == "wie lange dauert die lieferung"
    assert verbatim_key("What’s a UPI PIN?") == verbatim_key("what's a upi pin") == "whats a upi pin"
    assert verbatim_key("?!") == ""


def test_an_entrys_own_question_is_answered_by_it():
    m = FaqMatcher(IDS, QUESTIONS, ANSWERS)
    asked = [QUESTIONS[0], "the delivery of my order is delayed what should i do", QUESTIONS[1], "?"]
    s = m.scores(asked)
    # the verbatim rows score 1.0 (the most the fusion gives) at their entry: the fusion alone
    # gives the entry less (its MiniLM side reads the question with the answer)
    assert s[0, 0] == s[1, 0] == s[2, 1] == 1.0
    assert m._scores(asked[:1])[0, 0] < 1.0
    got = m.match(asked)
    assert [a.faq_id for a in got[:3]] == ["delayed", "delayed", "express-delayed"]
    assert got[3].faq_id is None  # no words: no verbatim match, and nothing to answer
    # a misspelt word the speller puts right makes it verbatim again
    assert m.scores(["The delivery of my order is delayd. What should I do?"])[0, 0] == 1.0
    # a paraphrase is still the fusion's to answer
    assert m.match(["how can I send a product back"])[0].faq_id == "returns"


def test_a_saved_matcher_answers_verbatim_questions_alike(tmp_path):
    m = FaqMatcher(IDS, QUESTIONS, ANSWERS)
    m.save(tmp_path / "faq")
    loaded = FaqMatcher.load(tmp_path / "faq")
    assert [a.faq_id for a in loaded.match(QUESTIONS)] == IDS


def test_every_verbatim_question_of_a_real_shop_faq_finds_its_entry():
    """Flipkart's help centre (807 real entries, near-twins among them): 200 of its questions,
    as written and lower-cased without punctuation. Before the verbatim rule 3 of the 200 went
    to a twin ("When will I get my order once it is Out for Delivery?" to "... once its status
    changes to 'Out for Delivery'?")."""
    path = shared("flipkart_helpcentre_faq", "flipkart_helpcentre.csv")
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Question")]
    ids = [f"f{i}" for i in range(len(rows))]
    questions = [r["Question"] for r in rows]
    m = FaqMatcher(ids, questions, [r["Answer"] for r in rows])
    sample = list(range(0, len(rows), 4))[:200]
    asked = [questions[i] for i in sample] + [verbatim_key(questions[i]) for i in sample]
    got = m.match(asked)
    for i, a in zip(sample * 2, got, strict=True):
        # (12 questions are asked by two entries: either answers)
        assert a.faq_id is not None and verbatim_key(questions[int(a.faq_id[1:])]) == verbatim_key(
            questions[i]
        ), (questions[i], a.faq_id)
