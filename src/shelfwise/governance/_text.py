"""Text normalization: Unicode NFKC, HTML remnants, whitespace. Vectorized over Arrow arrays."""

from __future__ import annotations

import html
import re

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
    if pc.any(has_markup).as_py():
        if keep_lines:
            arr = pc.replace_substring_regex(arr, r"(?i)<br\s*/?>|</p\s*>", "\n")
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
