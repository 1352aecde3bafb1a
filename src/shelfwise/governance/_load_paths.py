"""A category cell holding several paths (WooCommerce's `Categories`: `Furniture > Tables, Sale`)
is curated as its first path (`_compile.SEVERAL_PATHS`); how many rows gave more than one is said
in the load's warnings, as for a JSON list of paths (`_load_raw._say_several_paths`)."""

from __future__ import annotations

from typing import Any

from ._compile import (
    DUCKDB,
    MAGENTO_ROOT,
    MAGENTO_SEVERAL,
    SEVERAL_PATHS,
    SLASH_SEVERAL,
    lit,
    q,
    several_category_paths,
    slash_category_paths,
)
from ._contracts import Kind

__all__ = ["note_several_paths"]


def note_several_paths(st: Any) -> None:
    """Warn of the rows of `st.load` (a `LoadState`'s loaded strings) whose category column holds
    a `>` path and an unescaped ", " after which another path starts: only the first was kept."""
    for c in st.contract.columns:
        if c.kind is not Kind.CATEGORY or c.name not in st.mapping:
            continue
        s = f"trim({q(c.name)})"
        magento = DUCKDB.matches(s, MAGENTO_ROOT)
        listed = (
            f"(NOT {magento} AND contains({s}, '>') AND {DUCKDB.matches(s, SEVERAL_PATHS)}) OR "
            if several_category_paths(st.mapping[c.name])
            else ""
        )
        several = f"({listed}({magento} AND {DUCKDB.matches(s, MAGENTO_SEVERAL)}))"
        slashed = slash_category_paths(st.header)
        if slashed:  # BigCommerce's `Furniture/Chairs;Sale`
            several = f"(NOT {magento} AND {DUCKDB.matches(s, SLASH_SEVERAL)})"
        row = st.wh.sql(
            f"SELECT count(*), min({s}) FILTER (WHERE {several}) FROM {st.load} WHERE {several}"
        ).fetchone()
        n, example = (int(row[0]), row[1]) if row else (0, None)
        if n:
            header = st.mapping[c.name]
            named = c.name if header == c.name else f"{c.name} (the file's {header!r})"
            st.warn(
                f"{st.src.name}: {st.name}.{named}: {n:,} row(s) give several category paths separated "
                f"by {';' if slashed else ','!r} (e.g. {example!r}): only the first path of each was kept"
                + ("" if slashed else f" (a comma inside a name is written {lit(chr(92) + ',')})")
            )
