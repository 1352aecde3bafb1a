"""The curated catalog's product ids, as a file the servers read (`governance/product_ids.json`).

Ingestion checks an event's product against the curated products; the server checked a posted
event against its bundle's products instead, which are those of the catalog it was trained on:
after a catalog delivery dropped a product (or added one), /v1/events answered 202 for events the
next absorb quarantined, and 207 for events of the new product the warehouse would curate. Every
ingestion run writes the curated product ids here (`None`: the warehouse has no products table,
and ingestion checks no product reference), and the servers read them again when the file
changes (one stat per request), without opening the warehouse an ingestion may hold."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import orjson

PRODUCT_IDS = Path("governance") / "product_ids.json"

__all__ = ["PRODUCT_IDS", "CuratedProducts", "record_product_ids"]


def record_product_ids(workdir: str | Path, wh: Any) -> None:
    """Write the curated product ids of warehouse `wh` (a `Warehouse`) for the servers, when
    they changed (atomically: a server never reads half a file). The products version they
    were read from is kept beside them: a load that left it as it was (every absorb of served
    events) reads no product."""
    path = Path(workdir) / PRODUCT_IDS
    has = "products" in wh.curated_tables()
    tv = wh.latest_version("products") if has else None
    stamp = [tv.version, tv.content_hash] if tv is not None else None
    try:
        old = orjson.loads(path.read_bytes())
        # (a file written before `published` was recorded is written again, once)
        if isinstance(old, dict) and old.get("version") == stamp and stamp is not None and "published" in old:
            return
    except (OSError, ValueError):
        pass
    ids: list[str] | None = None
    stock: list[bool | None] | None = None
    unpublished: list[str] = []
    if has:
        cols = {r[0] for r in wh.sql('DESCRIBE SELECT * FROM curated."products"').fetchall()}
        in_stock = "any_value(in_stock)" if "in_stock" in cols else "NULL"
        # (as training reads it: a product is published unless its row says it is not)
        published = "bool_and(coalesce(published, true))" if "published" in cols else "true"
        rows = wh.sql(
            f'SELECT product_id, {in_stock}, {published} FROM curated."products" GROUP BY 1 ORDER BY 1'
        ).fetchall()
        ids = [r[0] for r in rows]
        if "in_stock" in cols:
            stock = [None if r[1] is None else bool(r[1]) for r in rows]
        unpublished = [r[0] for r in rows if r[2] is False]
    # `stock`: each product's curated in_stock (null: not known), beside `products` - a stock
    # feed takes a sold-out product off the lists from the next request on, not the next training;
    # `published`: the curated products whose row says they are not published (a draft, private,
    # archived) - they leave the lists from the next request on alike
    doc = {"version": stamp, "products": ids, "stock": stock, "published": {"false": unpublished}}
    write_if_changed(path, orjson.dumps(doc))


def write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` to `path` unless it holds it already (a file the servers poll: an unchanged
    one keeps its mtime), atomically: a server never reads half a file."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class CuratedProducts:
    """The workdir's curated product ids, read again when the file changes. `get()`: the set,
    None when the warehouse has no products table (nothing to check against), or `missing`
    when no ingestion wrote the file yet (a workdir from before it)."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / PRODUCT_IDS
        self._lock = threading.Lock()
        self._stat: tuple[int, int, int] | None = None
        self._ids: frozenset[str] | None = None
        self._stock: dict[str, bool] | None = None
        self._unpublished: frozenset[str] = frozenset()

    def get(self, missing: Any = None) -> Any:
        try:
            st = os.stat(self.path)
        except OSError:
            return missing
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._stat:
                try:
                    doc = orjson.loads(self.path.read_bytes())
                    ids, stock = doc.get("products"), doc.get("stock")
                except (OSError, ValueError, AttributeError):
                    return missing
                self._ids = None if ids is None else frozenset(str(i) for i in ids)
                self._stock = (
                    {str(i): bool(v) for i, v in zip(ids, stock, strict=False) if v is not None}
                    if ids is not None and isinstance(stock, list)
                    else None
                )
                pub = doc.get("published")
                off = pub.get("false") if isinstance(pub, dict) else None
                self._unpublished = frozenset(str(i) for i in off) if isinstance(off, list) else frozenset()
                self._stat = key
            return self._ids

    def stock(self) -> dict[str, bool] | None:
        """Each curated product's in_stock where the catalog says it (None: no such column, or
        a file written before it), as of the last `get()`."""
        with self._lock:
            return self._stock

    def unpublished(self) -> frozenset[str]:
        """The curated products whose catalog row says they are not published (a draft, private,
        archived), as of the last `get()`: on no served list (a file written before it: none)."""
        with self._lock:
            return self._unpublished
