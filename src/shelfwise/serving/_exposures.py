"""The exposure log of served lists (`spool/exposures/`): every list shown to a shopper, under the
`recommendation_id` / `search_id` its answer carried, with the bundle, model and experiment
variant that made it. Events posted with that id are attributed to the list
(`experiment_report`, the search analytics' CTR per query). The server writes it (`AppContext.expose`,
every 0.5 s in one batch); `Shop.recommend` / `similar` / `search_pages` with `served=True` write
the same records, one closed segment per call."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["exposure_lines", "exposure_record", "log_exposures"]


def exposure_record(
    kind: str, served_id: str, ans: Any, user: str | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """A served list as the exposure log holds it (before its query is masked): `kind` is
    "recommendations", "similar" or "search"; `user` the shopper's pseudonym (None: nobody)."""
    return {
        "id": served_id,
        "kind": kind,
        "at": time.time(),
        "user": user,
        "bundle": ans.bundle,
        "model": ans.model,
        "experiment": ans.experiment,
        "variant": ans.variant.name if ans.variant else None,
        "items": ans.items,
        **extra,
    }


def exposure_lines(records: list[dict[str, Any]]) -> list[bytes]:
    """The served lists as the exposure log holds them: a search's query masked as the
    warehouse masks text (an e-mail or phone number typed into the box was logged as typed and
    shown in the search analytics), all the buffer's queries at once."""
    import orjson

    from ..governance._privacy import mask_pii_many

    asked = [i for i, r in enumerate(records) if isinstance(r.get("query"), str)]
    for i, q in zip(asked, mask_pii_many([records[i]["query"] for i in asked]), strict=True):
        records[i] = {**records[i], "query": q, "masked": True}
    return [orjson.dumps(r) for r in records]


def log_exposures(workdir: str | Path, records: list[dict[str, Any]]) -> None:
    """Write served lists to the exposure log as the server does (masked), in one segment of
    their own, closed: readable by the reports at once."""
    from ._feedback import EXPOSURES_DIR
    from ._spool import FileSpool

    if not records:
        return
    spool = FileSpool(Path(workdir) / EXPOSURES_DIR, fsync=False)
    try:
        spool.append(exposure_lines(records)).result()
    finally:
        spool.close()
