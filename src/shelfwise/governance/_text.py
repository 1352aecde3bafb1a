"""Text normalization: Unicode NFKC, HTML remnants, whitespace. Vectorized over Arrow arrays.

Text shown to shoppers as written (`keep_lines`: an FAQ answer) is converted from HTML by a real
parser (`html_to_text`): the regexes that strip remnants from catalog text ate the words between
a bare "<" and ">" ("type 5 < 6 and 7 > 3 <3" became "type 5 3"), kept a script's code, dropped a
link's target and decoded entities after the tags were gone, so `&lt;script&gt;` was stored as
a real `<script>`. Catalog text keeps the regexes: HTML descriptions are whole columns there,
and the parser costs ~0.3 ms a kilobyte."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pyarrow as pa
import pyarrow.compute as pc

_TAG = r"<[^<>]{0,400}>"  # a complete tag
_OPEN_TAG_AT_END = r"<[A-Za-z/][^<>]*$"  # a fragment cut off inside a tag ('<span class="a-size')
_HTML_HINT = re.compile(r"[<&]")


def normalize_text_array(arr: pa.Array, *, keep_lines: bool = False) -> pa.Array:
    """NFKC, HTML tags and entities removed, whitespace collapsed, empty -> null.

    `keep_lines`: line breaks stay (text written to be shown as written, e.g. an FAQ answer's
    steps): spaces collapse within a line, `<br>` and the end of a `<p>` become line breaks, at
    most one blank line in a row."""
    if len(arr) == 0 or arr.null_count == len(arr):
        return arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count > len(arr) // 2:  # sparse columns (reviews, queries): work on the values only
        valid = pc.is_valid(arr)
        done = normalize_text_array(arr.filter(valid), keep_lines=keep_lines)
        return pc.replace_with_mask(arr, valid, done)
    arr = pc.utf8_normalize(arr, form="NFKC")
    has_markup = pc.match_substring_regex(arr, r"[<&]")
    if keep_lines and pc.any(has_markup).as_py():
        values = arr.to_pylist()
        values = [html_to_text(v) if v is not None and ("<" in v or "&" in v) else v for v in values]
        arr = pc.utf8_normalize(pa.array(values, type=pa.string()), form="NFKC")
    elif pc.any(has_markup).as_py():
        arr = pc.replace_substring_regex(arr, _TAG, " ")
        arr = pc.replace_substring_regex(arr, _OPEN_TAG_AT_END, " ")
        # entities (&amp; &#39; &eacute;): html.unescape only where an '&' remains (rare rows)
        values = arr.to_pylist()
        values = [html.unescape(v) if v is not None and "&" in v else v for v in values]
        arr = pa.array(values, type=pa.string())
        arr = pc.utf8_normalize(arr, form="NFKC")
    if keep_lines:
        arr = pc.replace_substring_regex(arr, "\r\n?", "\n")
        arr = pc.replace_substring_regex(arr, "(?:[^\\S\n]|[\u200b\ufeff])+", " ")  # within a line
        arr = pc.replace_substring_regex(arr, " ?\n ?", "\n")
        arr = pc.replace_substring_regex(arr, "\n{3,}", "\n\n")
    else:
        arr = pc.replace_substring_regex(arr, "[\\s\u200b\ufeff]+", " ")
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


# the warehouse's two text functions (DuckDB counts a keyword-only parameter as an argument)
def normalize_flat_array(arr: pa.Array) -> pa.Array:
    return normalize_text_array(arr)


def normalize_lines_array(arr: pa.Array) -> pa.Array:
    return normalize_text_array(arr, keep_lines=True)


def normalize_text(value: str | None, *, keep_lines: bool = False) -> str | None:
    out = normalize_text_array(pa.array([value], type=pa.string()), keep_lines=keep_lines)[0].as_py()
    return out


# elements whose content is no text for a reader (a script's code, a style sheet)
_HIDDEN = frozenset({"script", "style", "template", "noscript", "head", "title"})
# elements that end a line (a paragraph, a list item, a table row, a heading)
_BLOCK = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
     "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}
)  # fmt: skip
# link targets not worth a reader's eye (an anchor on the page) or that run code when followed
_NO_TARGET = re.compile(r"(?i)\s*(#|javascript:|vbscript:|data:)")
# after the conversion: a tag as the text reads (`&lt;script&gt;` decoded), and markup in a
# value as delivered (a tag or an entity)
LOOKS_LIKE_MARKUP = r"<[A-Za-z/!][^<>]*>"
HAS_MARKUP = r"<[A-Za-z/!][^<>]*>|&(#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);"


class _TextOf(HTMLParser):
    """The text a browser would show of an HTML fragment, as plain text: tags removed, a
    script's or a style's content dropped, entities decoded once (`&lt;b&gt;` is the text
    "<b>", never a tag), `<br>` and block ends as line breaks, a link as "text (url)"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._hidden = 0
        self._links: list[tuple[str | None, int]] = []  # (href, where its text starts in out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _BLOCK:
            self._line_end()
        elif tag == "a":
            self._links.append((dict(attrs).get("href"), len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN:  # (`<script/>` opens nothing)
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK:
            self._line_end()
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            href = (href or "").strip()
            text = "".join(self.out[start:]).strip()
            if href and not _NO_TARGET.match(href) and href != text:
                self.out.append(f" ({href})" if text else href)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.out.append(data)

    def _line_end(self) -> None:
        """One line break between blocks (`</li><li>` is one, not a blank line)."""
        last = next((c for c in reversed(self.out) if c.strip(" \t")), "")
        if last and not last.endswith("\n"):
            self.out.append("\n")


def html_to_text(value: str) -> str:
    """`value` (HTML, or text with a stray "<" or "&") as plain text (`_TextOf`); a bare "<"
    before a space or a digit ("5 < 6", "<3") is text, kept; a fragment cut off inside a tag
    at the end ('... <span class="a-size') is dropped. Whitespace is left to the caller."""
    parser = _TextOf()
    parser.feed(re.sub(_OPEN_TAG_AT_END, " ", value))
    parser.close()
    return "".join(parser.out)


# what an encoding error leaves in place of a letter: `?` (a character the writer's code page
# lacked) or U+FFFD (bytes the reader could not decode); one or two per letter (`é` as UTF-8 read
# as ASCII is two)
_LOST = re.compile("[?\ufffd]+")


def lost_to_encoding(incoming: str | None, curated: str | None) -> bool:
    """Whether `incoming` is `curated` with some of its non-ASCII letters lost to an encoding
    error (`Caf? cr?me` for `Café crème`, `Caf\ufffd` for `Café`): the same text elsewhere, each
    run of `?` / U+FFFD in place of as many non-ASCII characters or fewer (at least one of them
    lost). A text that differs otherwise is a new text."""
    if not incoming or not curated or incoming == curated or not _LOST.search(incoming):
        return False
    if curated.isascii():
        return False
    parts: list[str] = []
    at = 0
    for m in _LOST.finditer(incoming):
        parts.append(re.escape(incoming[at : m.start()]))
        # (a `?` the curated text has too stays a match for itself)
        parts.append(f"(?:[^\\x00-\\x7f]|[?\ufffd]){{1,{len(m.group())}}}")
        at = m.end()
    parts.append(re.escape(incoming[at:]))
    return re.fullmatch("".join(parts), curated, flags=re.DOTALL) is not None
