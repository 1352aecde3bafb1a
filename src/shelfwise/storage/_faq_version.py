"""The curated FAQ's version, as a file the servers read (`governance/faq_version.json`).

`POST /v1/ask` keeps its FAQ matcher (the entries' encodings) per served bundle: after an FAQ
delivery (`ingest --append` changing an answer, a snapshot dropping entries) a running server
went on answering from the bundle's FAQ with the old answers (score 1.0), while the CLI,
`Shop.answer` and the console, which read the warehouse on every call, gave the new ones; and
`POST /v1/admin/reload` said nothing changed. Every ingestion run writes the faq table's latest
version here (as it writes `product_ids.json` for the catalog), and the servers look at the file
at their usual refresh: a new version is encoded on the next question, without a restart and
without opening the warehouse an ingestion may hold on every request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ._product_ids import write_if_changed

FAQ_VERSION = Path("governance") / "faq_version.json"

__all__ = ["FAQ_VERSION", "faq_version", "record_faq_version"]


def record_faq_version(workdir: str | Path, wh: Any) -> None:
    """Write the faq table's latest curated version of warehouse `wh` (a `Warehouse`) for the
    servers, when it changed (atomically: a server never reads half a file); `null` when the
    warehouse has no faq table."""
    tv = wh.latest_version("faq") if "faq" in wh.curated_tables() else None
    stamp = [tv.version, tv.content_hash] if tv is not None else None
    write_if_changed(Path(workdir) / FAQ_VERSION, orjson.dumps({"version": stamp}))


def faq_version(workdir: str | Path) -> tuple[int, str] | None:
    """The curated faq table's (version, content hash) as the last ingestion recorded it; None
    when it has no faq table, no ingestion wrote the file yet (a workdir from before it) or the
    file cannot be read."""
    try:
        doc = orjson.loads((Path(workdir) / FAQ_VERSION).read_bytes())
        stamp = doc.get("version")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(stamp, list) or len(stamp) != 2:
        return None
    return int(stamp[0]), str(stamp[1])
