"""Measurements in product text, normalised so that a query and a title that write the same
size differently meet: fractions and mixed numbers become decimals (`1/2` and `0.5`, `1-1/2`
and `1.5`), unit spellings one symbol (`in.`, `inch`, `inches` and `"` are `in`; `ft.`, `feet`
and `'` are `ft`; `gal`/`gallon`, `lb`/`lbs`/`pound`, ...), and a number is paired with the unit
that follows it (`1/2 in.` is the pair (0.5, in)). Home-improvement queries are full of sizes
(`1/2 in. x 10 ft. pvc pipe`, `36" vanity`), and the analyzer's terms split `1/2` into `1` and
`2`, so they match `1-1/2` as well as `1/2` and never `0.5`.

`measures(text)` gives the normalised words (stemmed, as the analyzer stems), the numbers and the
(number, unit) pairs; the ranking features compare a query's with each candidate title's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._analyze import _stemmer
from ._compact import Strings

__all__ = ["MeasureRows", "Measures", "encode_measures", "measures"]

# unit spellings -> one symbol (a word counts as a unit only right after a number: "a", "m",
# "in" and "w" are also ordinary words)
_UNITS = {
    **dict.fromkeys(("in", "inch", "inches", '"', "''"), "in"),
    **dict.fromkeys(("ft", "foot", "feet", "'"), "ft"),
    **dict.fromkeys(("gal", "gallon", "gallons"), "gal"),
    **dict.fromkeys(("lb", "lbs", "pound", "pounds"), "lb"),
    **dict.fromkeys(("oz", "ounce", "ounces"), "oz"),
    **dict.fromkeys(("qt", "quart", "quarts"), "qt"),
    **dict.fromkeys(("pt", "pint", "pints"), "pt"),
    **dict.fromkeys(("yd", "yard", "yards"), "yd"),
    **dict.fromkeys(("sq", "square"), "sq"),
    **dict.fromkeys(("cu", "cubic"), "cu"),
    **dict.fromkeys(("v", "volt", "volts"), "volt"),
    **dict.fromkeys(("w", "watt", "watts"), "watt"),
    **dict.fromkeys(("a", "amp", "amps"), "amp"),
    **dict.fromkeys(("pc", "pcs", "piece", "pieces"), "pc"),
    **dict.fromkeys(("pk", "pack"), "pk"),
    **dict.fromkeys(("ct", "count"), "ct"),
    **dict.fromkeys(("deg", "degree", "degrees"), "deg"),
    **dict.fromkeys(("ga", "gauge"), "ga"),
    **{u: u for u in ("mm", "cm", "m", "btu", "gpm", "psi", "cfm", "hp", "mah", "ah", "k")},
    # dimensions: "2 x 4" pairs 2 with "x" (a number that is one side of a size)
    **dict.fromkeys(("x", "by"), "x"),
}
# at most 6 digits a part: a size, never a part number (and no float overflow on a query of digits)
_MIXED = re.compile(r"(?<!\d)(\d{1,6})[\s-]+(\d{1,6})/(\d{1,6})(?!\d)")  # 1-1/2, 1 1/2
_FRACTION = re.compile(r"(?<![\d.])(\d{1,6})/(\d{1,6})(?![\d/])")  # 1/2, not 1/2/3 or 2.5/3
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[\"']+")


@dataclass(frozen=True)
class Measures:
    words: frozenset[str]  # normalised words: stems, numbers as decimals, unit symbols
    numbers: frozenset[str]
    pairs: frozenset[tuple[str, str]]  # (number, unit)


def _decimal(whole: int, num: int, den: int) -> str:
    return _number(f"{whole + num / den:.4f}") if den else _number(str(whole))


def _number(token: str) -> str:
    """A number written one way: no leading zeros, no trailing decimal zeros (`007` = `7`,
    `0.50` = `.5` = `0.5`), every digit kept (a model number 1234567 never meets 1234571)."""
    whole, _, frac = token.partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def measures(text: str) -> Measures:
    """The normalised words, numbers and (number, unit) pairs of `text`."""
    t = unicodedata.normalize("NFKC", text or "").lower()
    t = t.replace("\u201d", '"').replace("\u2019", "'").replace(",", "")
    if "/" in t:  # four titles in five have no fraction: skip both scans
        t = _MIXED.sub(lambda m: _decimal(int(m[1]), int(m[2]), int(m[3])), t)
        t = _FRACTION.sub(lambda m: _decimal(0, int(m[1]), int(m[2])), t)
    toks = _TOKEN.findall(t)
    words: set[str] = set()
    numbers: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    latin: list[str] = []
    for i, w in enumerate(toks):
        if w[0].isdigit():
            n = _number(w)
            numbers.add(n)
            words.add(n)
            unit = _UNITS.get(toks[i + 1].rstrip(".")) if i + 1 < len(toks) else None
            if unit is not None:
                pairs.add((n, unit))
        elif w[0] in "\"'" or w == "x":  # a lone quote mark, or the "x" of "4 ft. x 8 ft."
            continue
        elif i > 0 and toks[i - 1][0].isdigit() and w in _UNITS:
            if _UNITS[w] != "x":
                words.add(_UNITS[w])
        else:
            latin.append(w)
    words.update(_stemmer().stemWords(latin))
    return Measures(frozenset(words), frozenset(numbers), frozenset(pairs))


def encode_measures(m: Measures) -> str:
    """One string per title for the search index's compact tables (`MeasureRows` reads it back):
    words, numbers and pairs, each space-separated (a token never holds a space, a `:` or a `|`),
    pairs as number:unit, the three parts joined by `|`."""
    pairs = " ".join(sorted(f"{n}:{u}" for n, u in m.pairs))
    return "|".join((" ".join(sorted(m.words)), " ".join(sorted(m.numbers)), pairs))


def _tokens(part: str) -> list[str]:
    return part.split(" ") if part else []


class MeasureRows(Sequence[Measures]):
    """Each title's `Measures`, decoded on access from a `_compact.Strings` of `encode_measures`
    (memory-mapped when the index is loaded: no per-title Python objects in a worker); `match`
    compares a query's with many titles' without decoding any."""

    def __init__(self, encoded: Strings):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> Measures:  # type: ignore[override]
        words, numbers, pairs = self.encoded[i].split("|")
        return Measures(
            frozenset(_tokens(words)),
            frozenset(_tokens(numbers)),
            frozenset(tuple(p.split(":", 1)) for p in _tokens(pairs)),  # type: ignore[misc]
        )

    def match(self, rows: np.ndarray, query: Measures) -> np.ndarray:
        """(n, 3): per given row, the share of the query's normalised words its title has, of
        its numbers and of its (number, unit) pairs (-1 when the query has no number, no pair).
        One gather of the rows' encodings, then a vectorised scan per query token in the part
        (`words|numbers|pairs`) it belongs to (no `Measures` per row: the row-at-a-time reads
        cost more than the rest of the features)."""
        out = np.full((len(rows), 3), -1.0, np.float32)
        if not len(rows):
            return out
        g = self.encoded.gather(rows, delims=" |")
        pairs = [f"{n}:{u}" for n, u in query.pairs]
        out[:, 0] = g.count(query.words, part=0) / max(len(query.words), 1)
        if query.numbers:
            out[:, 1] = g.count(query.numbers, part=1) / len(query.numbers)
        if pairs:
            out[:, 2] = g.count(pairs, part=2) / len(pairs)
        return out
