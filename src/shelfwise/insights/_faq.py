"""Matching a shopper's free-text question to the shop's FAQ, or abstaining.

Three signals, fused by a weighted sum of their scores against each FAQ entry:
- the shipped MiniLM (English) on the entry's question and answer together (0.4): paraphrases;
- the multilingual USE on the entry's question (0.4): other languages, and a second semantic view;
- bm25s on question + answer (0.2), its score divided by the best of the query's and damped below
  an absolute 5: exact terms (order numbers, product names) the encoders blur.
A question in another language than English (MiniLM's) may also be answered by the multilingual
encoder alone when its cosine reaches `USE_ALONE`. The best entry answers when the score reaches
`ABSTAIN_BELOW`; below it the question is
left unanswered (`faq_id` null) rather than answered wrongly. The weights and the threshold were
chosen on a development split of the Bitext customer-support utterances (20 FAQ entries, 7
intents held out as unanswerable), disjoint from the split benchmarks/insights.py scores on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = {"minilm_qa": 0.4, "use_q": 0.4, "bm25": 0.2}
ABSTAIN_BELOW = 0.37
USE_ALONE = 0.65  # the multilingual encoder's cosine that answers on its own (no effect on English Bitext)
BM25_DAMP = 5.0  # a best bm25 score below this counts for less: a lone common word is weak evidence
ANSWER_CHARS = 300  # the answer's head: long answers would drown the question in MiniLM's 128 tokens


@dataclass(frozen=True)
class Answer:
    faq_id: str | None
    answer: str | None
    score: float
    best_faq_id: str  # the closest entry even when abstaining (for review)


class FaqMatcher:
    """Built once per FAQ (encodes every entry), then `match(questions)`."""

    def __init__(self, faq_ids: list[str], questions: list[str], answers: list[str]):
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

    # -- built once by `train` into the bundle (insights/_faq_stage.py), read by `ask` ---------
    def save(self, folder: str | Path) -> None:
        """The FAQ's texts and both encoders' vectors (the costly part); bm25 is rebuilt on load."""
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
        return m

    def same_faq(self, faq_ids: list[str], questions: list[str], answers: list[str]) -> bool:
        """Whether this matcher was built from exactly this FAQ."""
        return (self.faq_ids, self.questions, self.answers) == (list(faq_ids), list(questions), list(answers))

    @staticmethod
    def _tokenize(texts: list[str]) -> Any:
        import bm25s
        import Stemmer

        return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)

    def scores(self, questions: list[str]) -> np.ndarray:
        """(len(questions), len(faq)) fused scores."""
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


__all__ = ["ABSTAIN_BELOW", "WEIGHTS", "Answer", "FaqMatcher"]
