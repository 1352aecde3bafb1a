"""Matching a shopper's free-text question to the shop's FAQ, or abstaining.

Three signals, fused by a weighted sum of their scores against each FAQ entry:
- the shipped MiniLM (English) on the entry's question and answer together (0.4): paraphrases;
- the multilingual USE on the entry's question (0.4): other languages, and a second semantic view;
- bm25s on question + answer (0.2), its score divided by the best of the query's and damped below
  an absolute 5: exact terms (order numbers, product names) the encoders blur.
A question in another language than English (MiniLM's) may also be answered by the multilingual
encoder alone when its cosine reaches `USE_ALONE`. Typos: the encoders read a misspelt word as
unrelated subword pieces and bm25s matches exact stems, so a word no vocabulary knows is corrected
(`FaqSpeller`: rapidfuzz's edit distance with transpositions, against the FAQ's own words and the
catalog's) and the question is scored as written and as corrected, the higher score per entry
kept: a correction adds evidence, never removes what the words as written match. A question that
is an entry's own question (case, punctuation and spacing aside: a shopper who copied it, or
picked it from a list) is answered by that entry, whatever the fusion says: on a real shop FAQ
with near-twin entries (Flipkart's help centre, 807 entries) the fusion gave 3 of 200 verbatim
questions to a twin whose answer says more of the question's words. The best entry answers when the score reaches
`ABSTAIN_BELOW`; below it the question is
left unanswered (`faq_id` null) rather than answered wrongly. The weights and the threshold were
chosen on a development split of the Bitext customer-support utterances (20 FAQ entries, 7
intents held out as unanswerable), disjoint from the split benchmarks/insights.py scores on.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = {"minilm_qa": 0.4, "use_q": 0.4, "bm25": 0.2}
ABSTAIN_BELOW = 0.37
USE_ALONE = 0.65  # the multilingual encoder's cosine that answers on its own (no effect on English Bitext)
BM25_DAMP = 5.0  # a best bm25 score below this counts for less: a lone common word is weak evidence
ANSWER_CHARS = 300  # the answer's head: long answers would drown the question in MiniLM's 128 tokens
# spelling: words of SPELL_MIN_LETTERS+ letters are corrected within 1 edit, from SPELL_TWO_EDITS
# letters within 2 (an edit: a letter dropped, added, replaced, or two neighbours swapped).
# Chosen on the development split with seeded typos (benchmarks/insights.py `typo`): 2 edits
# from 8 letters turned "freemium" into "premium" and cost a clean question
SPELL_MIN_LETTERS = 4
SPELL_TWO_EDITS = 9
VOCABULARY_FILE = "vocabulary.json"  # the catalog's words (and counts) beside a saved FAQ
# two entries whose questions both encoders read as nearly one (cosine of the questions alone, on
# the multilingual USE and on MiniLM, both at least this) and whose answers differ: the shopper's
# exact wording decides which answers. On Flipkart's help centre (807 entries) 0.9 finds 19 such
# pairs: about half paraphrases ("How do I track my order?" / "... my order details?"), half one
# word apart ("Silver" / "Gold" member), the entries the matcher tells apart worst
NEAR_TWIN = 0.9
# the longest question answered, by every door (Shop.answer, `shelfwise ask`, POST /v1/ask, the
# console): HTTP refused 2,000+ characters while the CLI and Python answered 100,000
MAX_QUESTION_CHARS = 2000


def question_refused(question: str) -> str | None:
    """Why a question is not answered (None: it is), one rule for every door: a blank one (the
    Python API refused it while the CLI and HTTP answered it with an abstention), or one longer
    than MAX_QUESTION_CHARS (spaces at its ends aside)."""
    text = question.strip()
    if not text:
        return "an empty question"
    if len(text) > MAX_QUESTION_CHARS:
        return f"a question longer than {MAX_QUESTION_CHARS:,} characters ({len(text):,})"
    return None


@functools.cache
def english_words() -> frozenset[str]:
    """The whole words of the shipped MiniLM's WordPiece vocabulary (~21k): words a shopper may
    write correctly although the shop's texts lack them ("mongolia"); never corrected. Read once."""
    return frozenset(_english_ranked())


@functools.cache
def _english_ranked() -> dict[str, int]:
    """`english_words` with their rank in the WordPiece vocabulary (its order: a frequency proxy),
    and `_english_by_length`'s buckets read from it once."""
    from ..features._text_encoder import shipped_model_dir

    lines = (shipped_model_dir() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    ranked: dict[str, int] = {}
    for i, w in enumerate(lines):
        if w.isalpha() and w.isascii():
            ranked.setdefault(w, i)
    return ranked


@functools.cache
def _english_by_length() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for w in _english_ranked():
        out.setdefault(len(w), []).append(w)
    return out


def text_vocabulary(texts: Iterable[str]) -> Counter[str]:
    """Lower-cased alphabetic words and their counts (the search engine's own word split)."""
    from ..search._analyze import words

    c: Counter[str] = Counter()
    for t in texts:
        c.update(w for w in words(t) if w.isalpha())
    return c


class FaqSpeller:
    """Corrects a word that neither the shop's texts (`vocabulary`: the FAQ's and the catalog's
    words with their counts) nor English (`english_words`) know to the closest vocabulary word
    within the allowed edits (ties: the more frequent), else to the closest English word within
    1 edit (ties: the earlier in the WordPiece vocabulary); short words, numbers and words with
    letters outside ASCII (other languages) are left as written. The English fallback, on the
    benchmark's development side (540 questions, seeded typos): typo'd accuracy 0.657 -> 0.674,
    clean 0.687 -> 0.691; correcting 3-letter words too gave 0.657 -> 0.661 only (not taken)."""

    def __init__(self, vocabulary: Counter[str]):
        self.vocabulary = vocabulary
        self._known = english_words()
        self._by_length: dict[int, list[str]] = {}
        for w in vocabulary:
            self._by_length.setdefault(len(w), []).append(w)

    def correct_word(self, word: str) -> str:
        from rapidfuzz.distance import OSA
        from rapidfuzz.process import extract

        w = word.lower()
        if len(w) < SPELL_MIN_LETTERS or not (w.isalpha() and w.isascii()):
            return word
        if w in self.vocabulary or w in self._known:
            return word
        limit = 1 if len(w) < SPELL_TWO_EDITS else 2
        pool = [v for n in range(len(w) - limit, len(w) + limit + 1) for v in self._by_length.get(n, ())]
        found = extract(w, pool, scorer=OSA.distance, score_cutoff=limit, limit=None)
        if found:
            return str(min(found, key=lambda m: (m[1], -self.vocabulary[m[0]], m[0]))[0])
        # no shop word within reach: the nearest English word within 1 edit (the more frequent
        # first), a word the encoders know ("yayments" -> "payments" when the FAQ says "payment")
        by_length, rank = _english_by_length(), _english_ranked()
        pool = [v for n in range(len(w) - 1, len(w) + 2) for v in by_length.get(n, ())]
        found = extract(w, pool, scorer=OSA.distance, score_cutoff=1, limit=None)
        if not found:
            return word
        return str(min(found, key=lambda m: (m[1], rank[m[0]]))[0])

    def correct(self, question: str) -> str:
        """`question` with its unknown words corrected (separators and the rest as written)."""
        return "".join(self.correct_word(t) if t.isalpha() else t for t in re.split(r"(\W+)", question))


def verbatim_key(question: str) -> str:
    """A question as compared for a verbatim match: lower case, the words only (any script;
    apostrophes dropped, so "what's" and "whats" are one word)."""
    return " ".join(re.sub(r"[^\w\s]", " ", re.sub(r"['’‘`]", "", question.lower())).split())


@dataclass(frozen=True)
class Answer:
    faq_id: str | None
    answer: str | None
    score: float
    best_faq_id: str  # the closest entry even when abstaining (for review)


class FaqMatcher:
    """Built once per FAQ (encodes every entry), then `match(questions)`."""

    def __init__(
        self,
        faq_ids: list[str],
        questions: list[str],
        answers: list[str],
        catalog_vocabulary: Counter[str] | None = None,
    ):
        import bm25s

        from ..features._text_encoder import encode_texts, multilingual_encoder

        if not faq_ids:
            raise ValueError("an empty FAQ")
        self.faq_ids, self.questions, self.answers = list(faq_ids), list(questions), list(answers)
        both = [f"{q} {a[:ANSWER_CHARS]}" for q, a in zip(questions, answers, strict=True)]
        self._minilm = encode_texts(both)
        self._use = multilingual_encoder().encode(list(questions))
        self._bm25 = bm25s.BM25()
        self._bm25.index(
            self._tokenize([f"{q} {a}" for q, a in zip(questions, answers, strict=True)]), show_progress=False
        )
        self._set_speller(catalog_vocabulary or Counter())
        self._index_questions()

    def _index_questions(self) -> None:
        """Each entry's question as `verbatim_key` reads it -> the (first) entry asking it."""
        self._verbatim: dict[str, int] = {}
        for j, q in enumerate(self.questions):
            if key := verbatim_key(q):
                self._verbatim.setdefault(key, j)

    def _set_speller(self, catalog: Counter[str]) -> None:
        self.catalog_vocabulary = catalog
        self.speller = FaqSpeller(text_vocabulary(self.questions + self.answers) + catalog)

    # -- built once by `train` into the bundle (insights/_faq_stage.py), read by `ask` ---------
    def save(self, folder: str | Path) -> None:
        """The FAQ's texts, both encoders' vectors (the costly part) and the catalog's words;
        bm25 and the speller are rebuilt on load."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "minilm.npy", np.asarray(self._minilm, np.float32))
        np.save(folder / "use.npy", np.asarray(self._use, np.float32))
        (folder / "faq.json").write_text(
            json.dumps(
                {"faq_ids": self.faq_ids, "questions": self.questions, "answers": self.answers},
                ensure_ascii=False,
            )
        )
        (folder / VOCABULARY_FILE).write_text(json.dumps(dict(self.catalog_vocabulary), ensure_ascii=False))

    @classmethod
    def load(cls, folder: str | Path) -> FaqMatcher:
        import bm25s

        folder = Path(folder)
        doc = json.loads((folder / "faq.json").read_text())
        m = cls.__new__(cls)
        m.faq_ids, m.questions, m.answers = doc["faq_ids"], doc["questions"], doc["answers"]
        m._minilm = np.load(folder / "minilm.npy")
        m._use = np.load(folder / "use.npy")
        m._bm25 = bm25s.BM25()
        m._bm25.index(
            m._tokenize([f"{q} {a}" for q, a in zip(m.questions, m.answers, strict=True)]),
            show_progress=False,
        )
        vocab = folder / VOCABULARY_FILE  # absent from a bundle trained before the speller
        m._set_speller(Counter(json.loads(vocab.read_text())) if vocab.exists() else Counter())
        m._index_questions()
        return m

    def same_faq(self, faq_ids: list[str], questions: list[str], answers: list[str]) -> bool:
        """Whether this matcher was built from exactly this FAQ."""
        return (self.faq_ids, self.questions, self.answers) == (list(faq_ids), list(questions), list(answers))

    def near_twins(self, *, threshold: float = NEAR_TWIN, shown: int = 5) -> dict[str, Any]:
        """Pairs of entries whose questions read nearly alike (`NEAR_TWIN`) and whose answers
        differ: {"pairs": how many, "examples": the first `shown`, each the two entries' ids and
        questions and the two cosines}. Entries asking the very same question are left to the
        ingest's `faq_conflicts`."""
        from ..features._text_encoder import encode_texts

        use = np.asarray(self._use, np.float32)
        n = len(self.faq_ids)
        minilm = None
        keys = [verbatim_key(q) for q in self.questions]
        answers = [verbatim_key(a) for a in self.answers]
        pairs: list[tuple[int, int, float, float]] = []
        for start in range(0, n, 1024):  # a block of rows at a time: 20,000 entries, not 400M cosines
            block = use[start : start + 1024] @ use.T
            rows, cols = np.nonzero(block >= threshold)
            for i, j in zip((rows + start).tolist(), cols.tolist(), strict=True):
                if j <= i or keys[i] == keys[j] or answers[i] == answers[j]:
                    continue
                if minilm is None:  # the questions alone (the saved MiniLM vectors hold answers too)
                    minilm = encode_texts(self.questions)
                m = float(minilm[i] @ minilm[j])
                if m >= threshold:
                    pairs.append((i, j, float(use[i] @ use[j]), m))
        pairs.sort()
        return {
            "pairs": len(pairs),
            "threshold": threshold,
            "examples": [
                {
                    "faq_ids": [self.faq_ids[i], self.faq_ids[j]],
                    "questions": [self.questions[i], self.questions[j]],
                    "cosine_use": round(u, 3),
                    "cosine_minilm": round(m, 3),
                }
                for i, j, u, m in pairs[:shown]
            ],
        }

    @staticmethod
    def _tokenize(texts: list[str]) -> Any:
        import bm25s
        import Stemmer

        return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)

    def scores(self, questions: list[str]) -> np.ndarray:
        """(len(questions), len(faq)) fused scores: per entry, the higher of the question as
        written and as spelling-corrected (when a word was corrected); a question that is an
        entry's own (`verbatim_key`), as written or as corrected, scores 1.0 there (the most
        the fusion gives), so that entry answers."""
        s = self._scores(questions)
        fixed = [self.speller.correct(q) for q in questions]
        changed = [i for i, (q, f) in enumerate(zip(questions, fixed, strict=True)) if q != f]
        if changed:
            s[changed] = np.maximum(s[changed], self._scores([fixed[i] for i in changed]))
        for i, (q, f) in enumerate(zip(questions, fixed, strict=True)):
            j = self._verbatim.get(verbatim_key(q) or "\0", self._verbatim.get(verbatim_key(f) or "\0"))
            if j is not None:
                s[i, j] = max(float(s[i].max()), 1.0)
        return s

    def _scores(self, questions: list[str]) -> np.ndarray:
        from ..features._text_encoder import encode_texts, multilingual_encoder

        n = len(self.faq_ids)
        lex = np.zeros((len(questions), n))
        tokens = self._tokenize(questions)
        if any(len(t) for t in tokens.ids):
            docs, sc = self._bm25.retrieve(tokens, k=n, show_progress=False)
            for i in range(len(questions)):
                lex[i, docs[i]] = sc[i]
        top = lex.max(axis=1, keepdims=True)
        lex = lex / np.maximum(top, 1e-9) * np.minimum(1.0, top / BM25_DAMP)
        use = multilingual_encoder().encode_queries(questions) @ self._use.T
        fused = (
            WEIGHTS["minilm_qa"] * (encode_texts(questions) @ self._minilm.T)
            + WEIGHTS["use_q"] * use
            + WEIGHTS["bm25"] * lex
        )
        # the multilingual path: MiniLM reads only English, so a question in another language
        # scores on the multilingual encoder alone, held to a stricter bar (USE_ALONE)
        return np.maximum(fused, use - (USE_ALONE - ABSTAIN_BELOW))

    def match(self, questions: list[str], threshold: float = ABSTAIN_BELOW) -> list[Answer]:
        if not questions:
            return []
        return self.answers_from(self.scores([q or " " for q in questions]), threshold)

    def answers_from(self, s: np.ndarray, threshold: float = ABSTAIN_BELOW) -> list[Answer]:
        """The answers `match` gives for fused scores `s` (`scores`' output): the best entry per
        row, or none below `threshold`."""
        best = s.argmax(axis=1)
        out = []
        for i, j in enumerate(best):
            score = float(s[i, j])
            ok = score >= threshold
            out.append(
                Answer(
                    self.faq_ids[j] if ok else None, self.answers[j] if ok else None, score, self.faq_ids[j]
                )
            )
        return out


__all__ = [
    "ABSTAIN_BELOW",
    "MAX_QUESTION_CHARS",
    "NEAR_TWIN",
    "WEIGHTS",
    "Answer",
    "FaqMatcher",
    "FaqSpeller",
    "english_words",
    "question_refused",
    "text_vocabulary",
]
