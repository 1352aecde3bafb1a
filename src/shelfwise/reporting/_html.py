"""Small HTML pieces shared by the reports."""

from __future__ import annotations

from html import escape
from typing import Any


def html_table(rows: list[dict[str, Any]], cols: list[str], empty: str = "<p>None.</p>") -> str:
    """A plain table of `rows` (dicts) over `cols`, every cell escaped."""
    if not rows:
        return empty
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
