"""The exposure log of served lists (`spool/exposures/`): every list shown to a shopper, under the
`recommendation_id` / `search_id` its answer carried, with the bundle, model and experiment
variant that made it. Events posted with that id are attributed to the list
(`experiment_report`, the search analytics' CTR per query). The server writes it (`AppContext.expose`:
buffered, appended every 0.5 s in one batch to a segment closed every minute); `Shop.recommend` /
`similar` / `search_pages` with `served=True` write the same records the same way, through an
`ExposureBuffer` per Shop (one segment per call made 300 files of 300 calls)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

__all__ = [
    "EXPOSURE_AGE_S",
    "EXPOSURE_BATCH",
    "EXPOSURE_SEGMENT_S",
    "ExposureBuffer",
    "exposure_lines",
    "exposure_record",
    "flush_exposures",
    "log_exposures",
    "filled_places",
    "served_by",
]

log = logging.getLogger("shelfwise.serve")

# a buffer's served lists are written when it holds this many, or when its oldest is this old (the
# server's 0.5 s), into a segment closed after this long (the server's minute) or when the buffer is
EXPOSURE_BATCH = 256
EXPOSURE_AGE_S = 0.5
EXPOSURE_SEGMENT_S = 60.0


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
        "served_by": served_by(kind, ans),
        "filled": filled_places(kind, ans),
        "experiment": ans.experiment,
        "variant": ans.variant.name if ans.variant else None,
        "items": ans.items,
        **extra,
    }


def served_by(kind: str, ans: Any) -> str:
    """What actually made a served list: the model (`model`) whose list it is, or `fallback` for
    the popular list served in its place (a recommendation for a shopper the model has nothing
    for: a new shopper, one without personalization consent, a list the popular fill made whole;
    a search page of popular products for a query nothing matched). An experiment arm's lists
    are logged under its model either way: this says how many of them were really its model's.
    A list the model made part of (2 of its 10 places, the popular fill the other 8) is the
    model's here, however little of it the model made: `filled` (`filled_places`) says how many
    places the fill supplied, and the report their share of the arm's places."""
    from ._ranking import NON_PERSONAL

    if kind == "recommendations":
        personal = bool(ans.extra.get("personalized"))
        if ans.source == "cold_start" or (not personal and ans.model not in NON_PERSONAL):
            return "fallback"
    elif kind == "search" and ans.extra.get("match") == "none":
        return "fallback"
    return str(ans.model)


def filled_places(kind: str, ans: Any) -> int | None:
    """How many of a served list's items the popular fill supplied (`filled` in the exposure
    log): a recommendation's `filled` (every place of a cold-start list; for a known shopper
    the places the model had no evidence for or the rules thinned: a list the model could only
    partly fill is its model's in `served_by`, and this says how much of it was not), every
    item of a search page of popular products (`match` none), none of a page the query found;
    None for a similar-items list (no experiment serves one: not recorded)."""
    if kind == "recommendations":
        from ._ranking import NON_PERSONAL

        if ans.model in NON_PERSONAL and ans.source != "cold_start":
            return 0  # (an arm serving the popular list on purpose: its list is its model's, as `served_by` says)
        filled = ans.extra.get("filled")
        return int(filled) if filled is not None else None
    if kind == "search":
        return len(ans.items) if ans.extra.get("match") == "none" else 0
    return None


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


class ExposureBuffer:
    """A process's served lists of one workdir (a `Shop`'s), written to the exposure log as the
    server writes its own: held in memory and appended in one batch when `EXPOSURE_BATCH` are
    held or the oldest is `EXPOSURE_AGE_S` old (a timer thread), to a segment of this process
    closed every `EXPOSURE_SEGMENT_S` and by `close` (readable while open, as the server's are).
    `flush` writes what is held (before anything reads the log: `flush_exposures`); `close` at
    the Shop's `close`, its `with` block's end, its collection, and the process's normal exit
    (`atexit`), so that none is lost. A write that fails keeps the lists for the next one."""

    def __init__(self, workdir: str | Path) -> None:
        self.workdir = Path(workdir)
        self._lock = threading.RLock()
        self._held: list[dict[str, Any]] = []
        self._timer: threading.Timer | None = None
        self._spool: Any = None  # (the segment's writer, `FileSpool`, made at the first write)
        # a write under way in this thread, and a `close` asked during it: a GC finalizer run
        # inside a write (the RLock lets it in) leaves both to that write, which ends them
        self._writing = False
        self._closing = False
        _BUFFERS.add(self)

    def add(self, records: list[dict[str, Any]]) -> None:
        """Hold served lists (written at once when the batch is full, or in a child process;
        raises what a write raises)."""
        if not records:
            return
        with self._lock:
            self._held.extend(records)
            if len(self._held) >= EXPOSURE_BATCH or _in_child():
                self._write()
            elif self._timer is None:
                self._timer = threading.Timer(EXPOSURE_AGE_S, self._due)
                self._timer.name, self._timer.daemon = "shelfwise-exposures", True
                self._timer.start()

    @property
    def held(self) -> int:
        """The served lists not written yet."""
        return len(self._held)

    def flush(self) -> None:
        """Write what is held (the segment stays open for the next lists)."""
        with self._lock:
            self._write()

    def close(self) -> None:
        """Write what is held and close the segment (the buffer may be used again: a new one)."""
        with self._lock:
            self._closing = True
            self._write()

    def _due(self) -> None:
        try:
            self.flush()
        except Exception:  # (a full disk): kept, written by the next flush, which raises it to its caller
            log.exception("served lists not written to the exposure log yet (kept for the next write)")

    def _write(self) -> None:
        """(Under the lock.) The held lists taken out before they are written, and put back if
        the write fails: a call re-entered through the lock during a write finds none of them
        (it logged them twice), and returns at once (it closed the segment under the write)."""
        from ._feedback import EXPOSURES_DIR
        from ._spool import FileSpool

        if self._writing:
            return
        self._writing = True
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self._held:  # (lists added during the write: written too)
                batch, self._held = self._held, []
                try:
                    if self._spool is None:
                        self._spool = FileSpool(
                            self.workdir / EXPOSURES_DIR, fsync=False, rotate_seconds=EXPOSURE_SEGMENT_S
                        )
                    self._spool.append(exposure_lines(list(batch))).result()
                except BaseException:
                    self._held[:0] = batch
                    raise
        finally:
            self._writing = False
            if self._closing:
                self._closing = False
                if self._spool is not None:
                    spool, self._spool = self._spool, None
                    spool.close()


_BUFFERS: weakref.WeakSet[ExposureBuffer] = weakref.WeakSet()


def flush_exposures(workdir: str | Path | None = None) -> None:
    """Write every buffer of this process holding served lists of `workdir` (None: of any): what
    reads the exposure log (a report, attribution, an erasure, an export) reads them too."""
    where = Path(workdir).absolute() if workdir is not None else None
    for buf in list(_BUFFERS):
        if where is None or buf.workdir.absolute() == where:
            buf.flush()


_FORKED = False


def _in_child() -> bool:
    """Whether this process is a forked child or a `multiprocessing` one (spawned too): one that
    may leave through `os._exit` (a `Process` or `Pool` worker does, a terminated `Pool`'s
    worker is killed), running neither `atexit` nor finalizers, so its buffers hold nothing:
    each list written as it is served, to the open segment."""
    if _FORKED:
        return True
    mp = sys.modules.get("multiprocessing")
    return mp is not None and mp.parent_process() is not None


def _forget_in_child() -> None:
    """A forked child holds copies of its parent's buffers: the parent writes those lists (the
    child would log them twice), and the writer threads did not come with the fork. The child's
    segments are closed at its `multiprocessing` exit (`_close_all`, run by its exit function)."""
    global _FORKED
    _FORKED = True
    for buf in list(_BUFFERS):
        buf._lock = threading.RLock()
        buf._held, buf._timer, buf._spool = [], None, None
        buf._writing = buf._closing = False
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, _close_all, exitpriority=10)


os.register_at_fork(after_in_child=_forget_in_child)


@atexit.register
def _close_all() -> None:
    """At a normal exit, every buffer written and its segment closed (none lost)."""
    for buf in list(_BUFFERS):
        try:
            buf.close()
        except Exception:  # (one failing must not keep the others' lists from the log)
            log.exception("served lists of %s not written to the exposure log at exit", buf.workdir)
