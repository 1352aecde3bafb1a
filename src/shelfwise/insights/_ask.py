"""Customer-service answers for people (issue 18.4-5): one question answered with the FAQ entries
that came closest and their scores (the console's ask page, `Shop.answer`), and reports/ask.{html,
json}: the FAQ and how well it is matched, measured on the shop's own labeled questions.

The evaluation protocol is PROTOCOL (`evaluate_faq`; the same as benchmarks/insights.py `faq`).
"""

from __future__ import annotations

import csv
import re
import threading
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError
from ._data import NO_QUESTIONS, header_said, questions_file

ASK_REPORT = "ask"
TOP_MATCHES = 3  # the entries shown with their scores
PROTOCOL = (
    "each labeled question (question_id,question,faq_id; an empty faq_id: no entry answers it) "
    "counts as right when the matcher returns its entry, or abstains where it has none: "
    "abstentions are in the score. The anchor is bm25s (on question + answer, and on the question "
    "alone) with its best abstention threshold, chosen on the very questions scored (an upper "
    "bound for the anchor); the matcher's threshold is fixed beforehand (chosen on a development "
    "split of other data). Intent accuracy: among the questions an entry answers, the share "
    "matched to the right entry. The labeled questions must be worded as shoppers word them, not "
    "copied from the FAQ"
)

__all__ = [
    "ASK_REPORT",
    "PROTOCOL",
    "TOP_MATCHES",
    "answer_one",
    "answer_question",
    "ask_html",
    "ask_summary",
    "evaluate_faq",
    "read_labeled",
    "run_ask_report",
]

_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str], Any] = {}  # (workdir, bundle) -> the matcher of the FAQ held then


def _matcher(workdir: Path) -> tuple[Any, Any, str]:
    """(matcher, search engine or None, where the FAQ's encodings came from) for the FAQ the
    warehouse holds now; kept per workdir and bundle while the FAQ is unchanged (encoding an FAQ
    that `train` did not encode takes seconds: not once per question)."""
    from ._faq_stage import live_bundle, search_engine
    from ._run import load_faq

    bundle = live_bundle(workdir)
    faq = load_faq(workdir)  # a clear error when the shop has no FAQ
    key = (str(workdir.resolve()), str(bundle))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is None or not hit[0].same_faq(*faq):
            from ._faq_stage import faq_matcher

            m, origin = faq_matcher(workdir, bundle)
            hit = (m, search_engine(bundle), origin)
            _CACHE[key] = hit
        return hit  # type: ignore[no-any-return]


def answer_one(workdir: str | Path, question: str, top: int = TOP_MATCHES) -> dict[str, Any]:
    """The answer `ask` gives to `question` (`faq_id` null: abstained), the `top` closest FAQ
    entries with their fused scores, best first, the abstention threshold, and the products
    attached (as `ask` attaches them)."""
    from ._faq import ABSTAIN_BELOW, question_refused
    from ._faq_stage import attach_products

    if (why := question_refused(question)) is not None:
        raise ShelfwiseError(why)
    question = question.strip()
    m, engine, origin = _matcher(Path(workdir))
    all_scores = m.scores([question])
    (a,) = m.answers_from(all_scores)
    scores = all_scores[0]
    order = np.argsort(-scores, kind="stable")[:top]
    (products,) = attach_products(engine, [question], [a.faq_id is not None], workdir=workdir)
    return {
        "question": question,
        "faq_id": a.faq_id,
        "answer": a.answer,
        "score": round(a.score, 4),
        "threshold": ABSTAIN_BELOW,
        "products": products,
        "matches": [
            {
                "faq_id": m.faq_ids[j],
                "question": m.questions[j],
                "answer": m.answers[j],
                "score": round(float(scores[j]), 4),
            }
            for j in order
        ],
        "faq_from": origin,
    }


def answer_question(
    workdir: str | Path,
    question: str,
    *,
    top: int = TOP_MATCHES,
    actor: str | None = None,
    via: str = "python",
) -> dict[str, Any]:
    """`answer_one`, audited (`ask`: the entry returned and its score, `via` where it was asked;
    not the question's text, which may carry what a shopper wrote about themselves). The caller
    has checked the `ask` permission."""
    from ..governance import AuditLog

    got = answer_one(workdir, question, top=top)
    AuditLog(workdir).append(
        "ask", actor=actor, questions=1, answered=int(got["faq_id"] is not None), faq_id=got["faq_id"],
        score=got["score"], via=via,
    )  # fmt: skip
    return got


def read_labeled(path: Path, faq_ids: set[str]) -> tuple[list[str], list[str], list[str | None]]:
    """(question_ids, questions, expected faq_id or None) from a CSV `question_id,question,faq_id`;
    a bad row (or an faq_id the FAQ does not have) names the file and line."""
    from ..errors import SourceError

    questions_file(path, "question_id,question,faq_id", jsonl=False)
    ids: list[str] = []
    qs: list[str] = []
    truth: list[str | None] = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"question_id", "question", "faq_id"} <= set(reader.fieldnames):
            raise SourceError(
                str(path),
                1,
                f"needs the columns question_id,question,faq_id ({header_said(reader.fieldnames)})",
            )
        for row in reader:
            q, f = (row.get("question") or "").strip(), (row.get("faq_id") or "").strip()
            if not q:
                raise SourceError(str(path), reader.line_num, "a row without a question")
            if f and f not in faq_ids:
                raise SourceError(str(path), reader.line_num, f"faq_id {f!r} is not in the shop's FAQ")
            ids.append(str(row.get("question_id") or reader.line_num))
            qs.append(q)
            truth.append(f or None)
    if not qs:
        raise SourceError(str(path), None, NO_QUESTIONS)
    return ids, qs, truth


def _accuracy(pred: list[str | None], truth: list[str | None]) -> float:
    return float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))


def evaluate_faq(
    matcher: Any, questions: list[str], truth: list[str | None], answers: list[Any] | None = None
) -> dict[str, Any]:
    """The matcher against bm25s on labeled questions (see PROTOCOL); `answers`: the matcher's
    answers to `questions` when already computed."""
    import bm25s
    import Stemmer

    from ._faq import ABSTAIN_BELOW

    pred = [a.faq_id for a in (answers if answers is not None else matcher.match(questions))]
    answerable = [i for i, t in enumerate(truth) if t is not None]
    out: dict[str, Any] = {
        "questions": len(questions),
        "unanswerable": len(questions) - len(answerable),
        "metric": "accuracy: the right entry, or no answer where none is right",
        "shelfwise": {
            "accuracy": round(_accuracy(pred, truth), 4),
            # intent accuracy: among the questions an entry answers, the right one returned
            "answerable_accuracy": (
                round(float(np.mean([pred[i] == truth[i] for i in answerable])), 4) if answerable else None
            ),
            "threshold": ABSTAIN_BELOW,
            "threshold_from": "fixed before (a development split of other data)",
        },
    }
    stem = Stemmer.Stemmer("english")
    ids = matcher.faq_ids
    for name, docs in (
        ("bm25s_question", list(matcher.questions)),
        (
            "bm25s_question_answer",
            [f"{q} {a}" for q, a in zip(matcher.questions, matcher.answers, strict=True)],
        ),
    ):
        r = bm25s.BM25()
        r.index(bm25s.tokenize(docs, stopwords="en", stemmer=stem, show_progress=False), show_progress=False)
        res, sc = r.retrieve(
            bm25s.tokenize(questions, stopwords="en", stemmer=stem, show_progress=False),
            k=1,
            show_progress=False,
        )
        top, score = [ids[i] for i in res[:, 0]], sc[:, 0]
        # its best abstention threshold, chosen on the very questions scored (an upper bound)
        best = max(
            (_accuracy([p if s >= th else None for p, s in zip(top, score, strict=True)], truth), float(th))
            for th in np.unique(np.r_[score, score.max() + 1])
        )
        out[name] = {"accuracy": round(best[0], 4), "best_threshold": round(best[1], 4)}
    anchor = max(out["bm25s_question"]["accuracy"], out["bm25s_question_answer"]["accuracy"])
    out["margin_points_over_best_bm25s"] = round(100 * (out["shelfwise"]["accuracy"] - anchor), 1)
    # a labelled question that is an entry's own question as written is in sample (every matcher
    # finds it): 21 FAQ questions copied scored 1.0 without a word
    own = {_plain(q) for q in matcher.questions}
    copied = {i for i, q in enumerate(questions) if _plain(q) in own}
    out["copied_from_faq"] = len(copied)
    if copied:
        rest = [i for i in range(len(questions)) if i not in copied]
        out["shelfwise"]["accuracy_not_copied"] = (
            round(_accuracy([pred[i] for i in rest], [truth[i] for i in rest]), 4) if rest else None
        )
        out["warning"] = (
            f"{len(copied):,} of {len(questions):,} labelled questions are FAQ entries' own questions as "
            "written: in sample (any matcher finds them), they say nothing of new questions"
            + (
                f"; accuracy on the other {len(rest):,}: {out['shelfwise']['accuracy_not_copied']:.4f}"
                if rest
                else ""
            )
        )
    return out


def _plain(text: str) -> str:
    """A question as compared for "copied": case, punctuation and spacing aside."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def ask_summary(workdir: str | Path, questions: str | Path | None = None) -> dict[str, Any]:
    """What reports/ask.json holds: the FAQ's entries, where their encodings came from, and the
    evaluation on `questions` (labeled; None: not evaluated, and the report says how to)."""
    from ._faq import ABSTAIN_BELOW, WEIGHTS

    m, engine, origin = _matcher(Path(workdir))
    doc: dict[str, Any] = {
        "faq_entries": len(m.faq_ids),
        "entries": [{"faq_id": f, "question": q} for f, q in zip(m.faq_ids, m.questions, strict=True)],
        "faq_from": origin,
        "products_from_search": engine is not None,
        "weights": dict(WEIGHTS),
        "threshold": ABSTAIN_BELOW,
        "protocol": PROTOCOL,
        "evaluation": None,
    }
    if questions is not None:
        qids, qs, truth = read_labeled(Path(questions), set(m.faq_ids))
        pred = m.match(qs)
        doc["evaluation"] = {"file": Path(questions).name, **evaluate_faq(m, qs, truth, pred)}
        from ..governance._privacy import mask_pii

        # (the questions as the report shows them: a shopper's e-mail or phone number typed into
        # a labeled question is masked, as in every text shelfwise keeps)
        errors = [
            {
                "question_id": i,
                "question": mask_pii(q),
                "expected": t,
                "got": a.faq_id,
                "score": round(a.score, 4),
            }
            for i, q, t, a in zip(qids, qs, truth, pred, strict=True)
            if a.faq_id != t
        ]
        # the first ERRORS_SHOWN, and how many there were (50 of 88 read as all of them)
        doc["errors"], doc["errors_total"] = errors[:ERRORS_SHOWN], len(errors)
    return doc


ERRORS_SHOWN = 50  # mistakes listed in the ask report (`errors_total` counts them all)


def ask_html(s: dict[str, Any]) -> str:
    from ..reporting._charts import bar_chart
    from ..reporting._html import html_table
    from ._reports import _STYLE, _cards

    e = s["evaluation"]
    if e is None:
        ev = (
            "<p>Not evaluated: give labeled questions, <code>shelfwise report ask --questions FILE.csv</code> "
            "(<code>question_id,question,faq_id</code>, an empty faq_id where no entry answers).</p>"
        )
        cards = _cards([("FAQ entries", s["faq_entries"]), ("abstains below", s["threshold"])])
    else:
        models = ["shelfwise", "bm25s_question_answer", "bm25s_question"]
        ev = f'<p class="warning" id="copied">{escape(e["warning"])}</p>' if e.get("warning") else ""
        ev += bar_chart(
            models, [100 * e[m]["accuracy"] for m in models], "Accuracy, % (abstentions included)"
        )
        ev += html_table(
            [
                {"model": m, "accuracy": e[m]["accuracy"],
                 "threshold": e[m].get("threshold", e[m].get("best_threshold")),
                 "threshold chosen": e[m].get("threshold_from", "best on these questions (upper bound)")}
                for m in models
            ],
            ["model", "accuracy", "threshold", "threshold chosen"],
        )  # fmt: skip
        shown, total = len(s.get("errors", [])), s.get("errors_total", len(s.get("errors", [])))
        if total:
            ev += f"<h3>Mistakes ({'all ' if shown == total else f'the first {shown} of '}{total})</h3>"
        ev += html_table(
            s.get("errors", []),
            ["question_id", "question", "expected", "got", "score"],
            empty="<p>No error.</p>",
        )
        cards = _cards(
            [
                ("FAQ entries", s["faq_entries"]),
                ("questions scored", e["questions"]),
                ("accuracy", e["shelfwise"]["accuracy"]),
                ("intent accuracy (answerable)", e["shelfwise"]["answerable_accuracy"]),
                ("points over bm25s", e["margin_points_over_best_bm25s"]),
            ]
        )
    entries = html_table(s["entries"], ["faq_id", "question"])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise ask</title>
{_STYLE}</head><body>
<h1>Customer-service answers</h1>
<p class="muted">Questions are matched to the FAQ by MiniLM, the multilingual encoder and bm25s
(weights {", ".join(f"{k} {v}" for k, v in s["weights"].items())}); below a fused score of
{s["threshold"]} no entry answers. Encodings: {"the bundle's" if s["faq_from"] == "bundle" else "built now"}.
</p>{cards}
<h2>Evaluation</h2><p class="muted">Protocol: {escape(s["protocol"])}.</p>{ev}
<h2>FAQ</h2>{entries}
</body></html>"""


def run_ask_report(
    workdir: str | Path, questions: str | Path | None = None, *, actor: str | None = None
) -> dict[str, Any]:
    """reports/ask.{html,json} as a governed job (the caller has checked the `ask` permission): a
    lineage run from the curated FAQ (and the labeled questions) to the two files and an audit
    entry (`report.ask`)."""
    from ._reports import curated_report

    def build() -> tuple[dict[str, Any], str]:
        s = ask_summary(workdir, questions)
        return s, ask_html(s)

    def audit(s: dict[str, Any]) -> dict[str, Any]:
        e = s["evaluation"] or {}
        return {
            "faq_entries": s["faq_entries"],
            "questions": e.get("questions"),
            "accuracy": (e.get("shelfwise") or {}).get("accuracy"),
        }

    files = () if questions is None else (Path(questions),)
    return curated_report(workdir, "ask", ASK_REPORT, build, audit, actor, ("faq",), files)
