"""The FAQ built by `train` into the bundle (`faq/`: the entries and their encodings), and the
matcher `ask` and `POST /v1/ask` use: the bundle's when it was built from the FAQ the warehouse
holds now, else one built on the fly (a bundle trained before the faq table existed, or an FAQ
ingested since)."""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ._faq import FaqMatcher

FAQ_DIR = "faq"  # inside a bundle


def build_faq_stage(workdir: str | Path, out: str | Path) -> dict[str, Any] | None:
    """`train`'s FAQ stage: encode the curated faq table into `out` (moved into the bundle by the
    caller); None when the shop has no FAQ (then nothing is written)."""
    from ..storage import read_only
    from ._run import load_faq

    with read_only(workdir) as (_, curated):
        if "faq" not in curated:
            return None
    t0 = time.monotonic()
    ids, questions, answers = load_faq(workdir)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    vocabulary = catalog_vocabulary(workdir)
    matcher = FaqMatcher(ids, questions, answers, vocabulary)
    matcher.save(out)
    return {
        "entries": len(ids),
        "catalog_words": len(vocabulary),
        "near_twins": matcher.near_twins(),
        "seconds": round(time.monotonic() - t0, 1),
    }


CATALOG_TEXT = ("title", "brand", "category")  # the catalog's words the FAQ speller knows


def catalog_vocabulary(workdir: str | Path) -> Counter[str]:
    """The words of the curated catalog's titles, brands and categories with their counts: the
    FAQ speller corrects typos to them and leaves them alone ("nike" is not a typo of "like");
    empty without a catalog."""
    from ..storage import read_only, relation_columns
    from ._faq import text_vocabulary

    with read_only(workdir) as (con, curated):
        if "products" not in curated:
            return Counter()
        have = set(relation_columns(con, "curated.products"))
        cols = [f'"{c}"' for c in CATALOG_TEXT if c in have]
        if not cols:
            return Counter()
        rows = con.sql(f"SELECT {', '.join(cols)} FROM curated.products").fetchall()
    return text_vocabulary(str(v) for row in rows for v in row if v)


def faq_matcher(workdir: str | Path, bundle: str | Path | None) -> tuple[FaqMatcher, str]:
    """(matcher, where it came from: "bundle" or "built") for the FAQ the warehouse holds now."""
    from ._run import load_faq

    faq = load_faq(workdir)  # raises a clear error when the shop has no FAQ
    if bundle is not None and (Path(bundle) / FAQ_DIR / "faq.json").exists():
        m = FaqMatcher.load(Path(bundle) / FAQ_DIR)
        if m.same_faq(*faq):
            return m, "bundle"
    return FaqMatcher(*faq, catalog_vocabulary(workdir)), "built"


def live_bundle(workdir: str | Path) -> Path | None:
    """The bundle in production, or None before the first training."""
    from ..errors import ShelfwiseError
    from ..serving import current_bundle

    try:
        return current_bundle(workdir)
    except ShelfwiseError:
        return None


# -- products in answers ------------------------------------------------------------------------
PRODUCTS_K = 5


def search_engine(bundle: str | Path | None) -> Any:
    """The bundle's search engine, or None (no bundle, or a catalog without text to index)."""
    if bundle is None or not (Path(bundle) / "search").exists():
        return None
    from ..search import SearchEngine

    return SearchEngine.load(Path(bundle) / "search")


def content_words(question: str) -> str:
    """The question without its conversational words ("do you have a ...?"): the catalog's
    keyword search ORs terms, so "what", "is" or "the" alone would match some description."""
    import re

    from bm25s.stopwords import STOPWORDS_EN_PLUS

    stop = set(STOPWORDS_EN_PLUS)
    return " ".join(w for w in re.findall(r"\w+", question) if w.lower() not in stop)


def attach_products(
    engine: Any,
    questions: list[str],
    answered: list[bool],
    k: int = PRODUCTS_K,
    *,
    workdir: str | Path | None = None,
) -> list[list[str]]:
    """The products each question is about. A question is *about products* when no FAQ entry
    answers it and the shop's search engine, asked with the question's content words, matches
    products by keyword (after the engine's spelling correction and the shop's synonyms): those
    products, in the engine's order, not the semantic neighbours ranked among them. A
    semantic-only match is not enough: on a small catalog MiniLM puts some product nearer to
    "tell joke" or "weather tomorrow" than to the random letter strings of the engine's
    no-match rule (a 60-product demo catalog without judgments: 0.264 vs 0.256 and 0.290 vs
    0.181), so off-topic questions got products. A question the FAQ answers is about the shop's
    service, and one that matches neither is off topic: both get []. Without a trained search
    engine every list is empty. (English filler words only: a question in another language may
    match on its own filler words.) With `workdir`, the shop's business rules hold as on a search
    page (`serving.Rules`: out-of-stock and hidden products are not offered; a pin adds nothing
    that holds no question word): ask offered a product search and recommendations hide."""
    rules = None
    if workdir is not None and engine is not None:
        from ..serving._rules import Rules

        rules = Rules.load(workdir)
    out: list[list[str]] = []
    for q, done in zip(questions, answered, strict=True):
        words = content_words(q) if engine is not None and not done else ""
        if not words:
            out.append([])
            continue
        page = engine.query(words, k=k)
        if page["match"] != "keyword":
            out.append([])
            continue
        # the products holding a question word: a keyword page ranks the semantic neighbours
        # among and after them ("samsung galaxy phone price" got the earbuds and a cooktop too)
        held = set(engine.counted_rows(page).tolist())  # (rows: no product id decoded per match)
        rows = {pid: engine._index.get(pid) for it in page["items"] if (pid := str(it["product_id"]))}
        items = [pid for pid, row in rows.items() if row in held]
        if rules is not None and items:
            c = engine.catalog
            info = {
                pid: (c.category[rows[pid]], c.brand[rows[pid]], bool(c.in_stock[rows[pid]])) for pid in items
            }
            allowed = set(items)
            items = rules.apply(
                items, len(items), info, surface="search", query=words, pin_allowed=allowed.__contains__
            )
        out.append(items)
    return out


__all__ = [
    "FAQ_DIR",
    "PRODUCTS_K",
    "attach_products",
    "build_faq_stage",
    "catalog_vocabulary",
    "content_words",
    "faq_matcher",
    "live_bundle",
    "search_engine",
]
