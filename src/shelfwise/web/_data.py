"""What the console's pages show, gathered from the workdir by the same functions the CLI uses
(`catalog`, `Registry`, `Quarantine`, `AuditLog`, `read_lineage`, `search_analytics`,
`experiment_report`): the pages and the CLI cannot disagree. Each function returns plain data
(dicts and lists) that a template renders and a test compares with the CLI's JSON.

The warehouse is a DuckDB file: within this process the console opens it through one lock (a
read-only and a read-write connection to one file cannot coexist in a process), and a page
whose warehouse is held by another process (a training run, an absorb) says so instead of failing.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..serving._experiments import Exposure

__all__ = [
    "ExposureTally",
    "WarehouseBusy",
    "alerts",
    "audit_entries",
    "customer_profile",
    "datasets",
    "experiments",
    "exposure_tally",
    "keep_figures",
    "lineage_graph",
    "models",
    "online_drops",
    "overview",
    "quarantine",
    "running_experiments",
    "search_report",
    "traffic",
    "warehouse",
    "warm_up",
]

_LOCK = threading.Lock()
_CACHE: dict[tuple[Any, ...], tuple[Any, float, Any]] = {}
_AS_OF: dict[tuple[Any, ...], float] = {}  # when each entry's figures were computed (wall clock)
_CACHE_LOCK = threading.Lock()
_REFRESHING: dict[tuple[Any, ...], threading.Thread] = {}
REFRESH_WAIT_S = 0.15  # how long a page waits for warehouse figures recomputed after an absorb
# when the page being made stops waiting for refreshed figures (set per page by the routes: the
# waits of its parts share one budget instead of adding up)
PAGE_DEADLINE: ContextVar[float | None] = ContextVar("console_page_deadline", default=None)
# set by `keep_figures`: every figure computed in the calling thread and waited for, never
# refreshed in the background (see there)
_IN_CALLER: ContextVar[bool] = ContextVar("console_compute_in_caller", default=False)
# the kept figures a page shows from an older data state while their refresh runs (set to a
# fresh list per page by the routes; the page says "as of <time>, refreshing" for each)
STALE: ContextVar[list[dict[str, Any]] | None] = ContextVar("console_stale", default=None)
# what each refreshed-in-the-background entry is, in the page's words
STALE_WHAT = {
    "catalog": "tables, rows, freshness and quality",
    "attributed": "click-through and conversion",
    "search-logged": "logged searches and no-keyword-match queries",
    "experiment-events": "experiment outcomes",
}
log = logging.getLogger("shelfwise.web")
BACKGROUND_PREFIX = "console-"  # the names of the console's background threads (see `settle`)
# the longest wait for those threads to leave the warehouse, at an app's shutdown and at the
# process's exit (a part of the warm-up or a figure being computed: seconds on a large shop)
SETTLE_S = 10.0


def _settle_at_exit() -> None:
    """At the exit of a process that finalizes (see `serving._exit.finalizes`), the console's
    background threads started by pages (not by an app's lifespan, whose shutdown settles them:
    a client used without it) leave DuckDB first: exit functions run before the interpreter
    ends its daemon threads."""
    from ..serving import _exit

    if _exit.finalizes():
        settle(SETTLE_S)


atexit.register(_settle_at_exit)
CACHE_TTL_S = 60.0  # freshness ages and the like are recomputed at least this often
SPIKE_FACTOR = 2.0  # a load quarantining this many times the table's previous share is a spike


class WarehouseBusy(Exception):
    """Another process holds the warehouse (DuckDB allows one writer and no reader beside it)."""


@contextmanager
def warehouse() -> Any:
    """The console's turn at the warehouse (see the module docstring)."""
    with _LOCK:
        try:
            yield
        except Exception as exc:
            from ..storage._warehouse import writer_holds_it

            if writer_holds_it(exc):
                raise WarehouseBusy(str(exc).splitlines()[0]) from None
            raise


def _stamp(workdir: Path, *names: str) -> tuple[Any, ...]:
    """What the files a page reads look like now (size and mtime; a folder: its files'): a page's
    data is recomputed when any of them changed. DuckDB writes its WAL before the file."""
    out: list[Any] = []
    for name in names:
        p = workdir / name
        if name.endswith("/"):
            out.append(
                tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(p.glob("*")))
                if p.exists()
                else None
            )
            continue
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


WAREHOUSE = ("warehouse.duckdb", "warehouse.duckdb.wal")
REGISTRY = ("mlflow.db", "mlflow.db-wal", "bundles/CURRENT")
SERVED = ("spool/exposures/",)


SUMMARIES = Path("state") / "console"  # the figures pages need, kept between server runs (erasure and
# retention drop them: governance._erase.CONSOLE_FIGURES names the same folder)


class Persist:
    """How a cached entry is kept in the workdir (`state/console/<name>.json`): the figures
    with the stamp of the files they were computed from (their lineage: which warehouse and
    registry state), so that a freshly started server shows them at once instead of opening
    the warehouse (a fresh process's first page: hundreds of milliseconds, seconds under
    load). `dump`/`load` turn the value into JSON and back (sets, tuples)."""

    def __init__(self, name: str, dump: Any = None, load: Any = None):
        self.name, self.dump, self.load = name, dump or (lambda v: v), load or (lambda v: v)

    def read(self, workdir: Path) -> tuple[Any, Any, float | None] | None:
        """(stamp as JSON, value, when computed: epoch seconds) or None."""
        try:
            doc = json.loads((workdir / SUMMARIES / f"{self.name}.json").read_text())
            at = doc.get("computed_at")
            return doc["stamp"], self.load(doc["value"]), float(at) if at is not None else None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, workdir: Path, stamp: tuple[Any, ...], value: Any) -> None:
        import os
        import tempfile

        folder = workdir / SUMMARIES
        try:
            folder.mkdir(parents=True, exist_ok=True)
            doc = {"stamp": _as_json(stamp), "computed_at": time.time(), "value": self.dump(value)}
            with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as fh:
                json.dump(doc, fh, default=str)
            os.replace(fh.name, folder / f"{self.name}.json")  # readers see it whole or not at all
        except (OSError, TypeError, ValueError) as exc:  # a read-only workdir: kept in memory only
            log.debug("console: %s not kept: %s", self.name, exc)


def _as_json(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def _cached(
    key: tuple[Any, ...],
    stamp: tuple[Any, ...],
    compute: Any,
    ttl: float = CACHE_TTL_S,
    wait_s: float | None = None,
    persist: tuple[Path, Persist] | None = None,
) -> Any:
    """`compute()` again only when the stamp moved or the entry is older than `ttl` (data with
    ages in it; `inf` for data that only the stamped files determine): opening the warehouse
    read-only alone takes ~100 ms, and nothing changed in between. With `wait_s`, an entry
    whose files changed is recomputed in the background and the page waits at most `wait_s`
    for it, else shows the previous figures (an absorb behind, for about a second); the
    first computation is always waited for. With `persist` (workdir, how), what was computed
    is also kept in the workdir: a new process starts from it (the same stamp: as if computed
    here; another: the previous figures, refreshed as above)."""
    now = time.monotonic()
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is None and persist is not None and (kept := persist[1].read(persist[0])) is not None:
        # another process's figures: current if made from these files, else the previous ones
        hit = (stamp if kept[0] == _as_json(stamp) else ("kept", kept[0]), now, kept[1])
        _store(key, *hit, as_of=kept[2])
    if hit is not None and hit[0] == stamp and now - hit[1] < ttl:
        return hit[2]
    if persist is not None:
        inner = compute

        def compute() -> Any:
            value = inner()
            persist[1].write(persist[0], stamp, value)
            return value

    if hit is None or wait_s is None or _IN_CALLER.get():
        with _key_lock(key):  # one computation of an entry at a time: a page during the warm-up waits for it
            with _CACHE_LOCK:
                got = _CACHE.get(key)
            if got is not None and got[0] == stamp and time.monotonic() - got[1] < ttl:
                return got[2]
            value = compute()
            _store(key, stamp, now, value)
            return value
    with _CACHE_LOCK:
        worker = _REFRESHING.get(key)
        if worker is None or not worker.is_alive():

            def refresh() -> None:
                try:
                    _store(key, stamp, time.monotonic(), compute())
                except Exception as exc:  # the previous figures stay; the next page retries
                    log.warning("console: %s not refreshed: %s", key[0], exc)

            # a daemon: a stopping server must not wait for a slow warehouse read (a 2-worker
            # server missed its 60 s stop under load with these as non-daemons). Left: a daemon
            # still in DuckDB at interpreter exit can abort the process (exit -6); `train` no
            # longer starts these (keep_figures computes in its caller)
            worker = _REFRESHING[key] = threading.Thread(
                target=refresh, name=f"console-{key[0]}", daemon=True
            )
            worker.start()
    deadline = PAGE_DEADLINE.get()
    worker.join(wait_s if deadline is None else max(0.0, min(wait_s, deadline - time.monotonic())))
    with _CACHE_LOCK:
        got = _CACHE.get(key, hit)
        as_of = _AS_OF.get(key)
    if got[0] != stamp and (notes := STALE.get()) is not None:  # shown from an older data state
        notes.append({"what": STALE_WHAT.get(str(key[0]), str(key[0])), "as_of": as_of})
    return got[2]


class _KeyLock:
    """A lock and how many threads hold it or wait for it (the cleanup's test of "in use": a
    lock's `locked()` is False between a thread taking the entry and acquiring it, so a
    cleanup then would hand the next thread a second lock and the entry computed twice)."""

    def __init__(self) -> None:
        self.lock, self.users = threading.Lock(), 0


_KEY_LOCKS: dict[tuple[Any, ...], _KeyLock] = {}


def _take_key_lock(key: tuple[Any, ...]) -> _KeyLock:
    """The entry's lock, counted as in use until `_drop_key_lock` (its holder may not have
    acquired it yet: a cleanup meanwhile must keep it)."""
    with _CACHE_LOCK:
        entry = _KEY_LOCKS.get(key)
        if entry is None:
            if len(_KEY_LOCKS) > 1024:  # filters make keys: keep the ones in use
                for k in [k for k, e in _KEY_LOCKS.items() if not e.users]:
                    del _KEY_LOCKS[k]
            entry = _KEY_LOCKS[key] = _KeyLock()
        entry.users += 1
        return entry


def _drop_key_lock(entry: _KeyLock) -> None:
    with _CACHE_LOCK:
        entry.users -= 1


@contextmanager
def _key_lock(key: tuple[Any, ...]) -> Any:
    """Held while `key` is computed: one computation of an entry at a time."""
    entry = _take_key_lock(key)
    try:
        with entry.lock:
            yield
    finally:
        _drop_key_lock(entry)


def _store(
    key: tuple[Any, ...], stamp: tuple[Any, ...], at: float, value: Any, as_of: float | None = None
) -> None:
    """`at`: monotonic (the TTL's clock); `as_of`: the wall-clock time the figures were computed
    (now unless they come from a file kept by another process, `None`: unknown)."""
    with _CACHE_LOCK:
        if len(_CACHE) > 256:
            _CACHE.clear()
            _AS_OF.clear()
        _CACHE[key] = (stamp, at, value)
        if as_of is not None or stamp[:1] != ("kept",):
            _AS_OF[key] = time.time() if as_of is None else as_of
        else:
            _AS_OF.pop(key, None)


def _has_warehouse(workdir: Path) -> bool:
    return (workdir / "warehouse.duckdb").exists()


# -- data ------------------------------------------------------------------------------------------
def datasets(workdir: Path) -> dict[str, Any]:
    """`shelfwise catalog --json`: every curated table with contract, owner, classification,
    rows, freshness and quality; the registered models; the rules file; the loads."""
    from ..governance._catalog import catalog

    if not _has_warehouse(workdir):
        return {"datasets": [], "models": [], "rules": None, "loads": [], "contracts": []}

    def compute() -> dict[str, Any]:
        with warehouse():
            got = catalog(workdir)
        return {**got, "loads": _recent_loads(got["loads"])}

    stamp = _stamp(workdir, *WAREHOUSE, *REGISTRY, "config/rules.json")
    got = _cached(("catalog", workdir), stamp, compute, float("inf"), REFRESH_WAIT_S, (workdir, _CATALOG))
    # ages move with the clock, not with the files: computed at each read from `updated_at`
    return {
        **got,
        "datasets": [
            {**d, "freshness_hours": _age_hours(d.get("updated_at")), "quality": _judged(d["quality"])}
            for d in got["datasets"]
        ],
    }


def _judged(quality: dict[str, Any]) -> dict[str, Any]:
    """A table's latest-load quality with the counts its share is of (`judged`, `failed`): the
    rows the load sent for the first time and, of them, the quarantined (`quality_check`, as the
    CLI and the ingest summary count). The Data page said "24 of 243 quarantined (9.5%)" of a
    load that re-sent a row: 9.5% is 23 of 242."""
    if quality.get("rows_in") is None:
        return quality
    check = _check(quality)
    return {**quality, "judged": check.judged, "failed": check.failed}


def _check(load: dict[str, Any]) -> Any:
    """One load's verdict by the ingest report's own rule (re-sent and withheld rows not judged)."""
    from ..governance._ingest_report import quality_check

    return quality_check(
        load["rows_in"],
        load["rows_quarantined"],
        load.get("rows_redelivered") or 0,
        load.get("rows_withheld") or 0,
        load.get("rows_set_aside") or 0,
        load.get("rows_set_aside_resent") or 0,
        load.get("rows_stale") or 0,
    )


_CATALOG = Persist("catalog")
LOADS_SHOWN = 100  # per table: the quality trend's points (an absorb every few seconds is a load each)


def _recent_loads(loads: list[dict[str, Any]], per_table: int = LOADS_SHOWN) -> list[dict[str, Any]]:
    """The latest `per_table` loads of each table, in their order (the trend and the spike
    alert read these; the catalog has every load since the shop began: kept whole, the
    console's copy in `state/console/catalog.json` would grow with every absorb)."""
    seen: Counter[str] = Counter()
    out = []
    for x in reversed(loads):
        seen[x["table"]] += 1
        if seen[x["table"]] <= per_table:
            out.append(x)
    return out[::-1]


def deliveries(cat: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog's loads that brought data (ingests, absorbs), not the re-processing of
    quarantined rows: a re-process retries rows already counted, and four of five retried rows
    still quarantined is no 80% load (it drew a spike on the trend and raised a spike alert)."""
    from ..governance._load_state import REPROCESS_JOB

    return [x for x in cat.get("loads", []) if x.get("job") != REPROCESS_JOB]


def _age_hours(ts: Any) -> float | None:
    from ..governance._catalog import _age_hours as age

    try:
        return age(ts)
    except ValueError:
        return None


def quarantine(
    workdir: Path,
    table: str | None,
    reason: str | None,
    status: str | None,
    limit: int = 50,
    rows: bool = True,
    after: int | None = None,
) -> dict[str, Any]:
    """`shelfwise quarantine list --json`: the summary by table, reason and status (counts only:
    kept in the workdir like the catalog), and a page of rows (raw fields: memory only;
    `rows=False`: none read, for a role that may not read raw rows): `limit` rows past the id
    `after`, in quarantine order, and `more`: whether a row follows them (one more is read to
    know: a page of exactly `limit` remaining rows has no next page)."""
    from ..governance import Quarantine

    if not _has_warehouse(workdir):
        return {"summary": [], "rows": [], "more": False}
    q = Quarantine(workdir)

    def summary() -> list[dict[str, Any]]:
        with warehouse():
            return q.summary()

    stamp = _stamp(workdir, *WAREHOUSE)
    got = _cached(("quarantine-summary", workdir), stamp, summary, float("inf"), None, (workdir, _QUARANTINE))
    if not rows:
        return {"summary": got, "rows": [], "more": False}

    def listed() -> list[dict[str, Any]]:
        with warehouse():
            return q.list(table or None, reason or None, status, limit=limit + 1, after=after)

    key = ("quarantine", workdir, table, reason, status, limit, after)
    page = _cached(key, stamp, listed)
    return {"summary": got, "rows": page[:limit], "more": len(page) > limit}


_QUARANTINE = Persist("quarantine_summary")


def quarantined_by(workdir: Path, table: str, run_id: str) -> list[dict[str, Any]]:
    """The open rows of `table` a run quarantined (a re-process: the rows that supersede those it
    retried), with their reason and detail, in quarantine order."""
    from ..storage import read_only

    with warehouse(), read_only(workdir) as (con, _):
        rows = con.execute(
            "SELECT quarantine_id, reason, detail FROM quarantine.rows "
            "WHERE run_id = ? AND table_name = ? AND status = 'open' ORDER BY quarantine_id",
            [run_id, table],
        ).fetchall()
    return [{"quarantine_id": int(i), "reason": str(r), "detail": d or ""} for i, r, d in rows]


# -- models ----------------------------------------------------------------------------------------
def _manifest(path: str | None) -> dict[str, Any]:
    try:
        return json.loads((Path(path or "") / "manifest.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def models(workdir: Path, with_live_gates: bool = True) -> list[dict[str, Any]]:
    """`shelfwise models list --json`, each version with its default model's test metrics and
    95% intervals from its bundle manifest; the candidate's gates evaluated now (`models gates`)."""

    if not (workdir / "mlflow.db").exists():
        return []
    stamp = _stamp(workdir, *REGISTRY, "bundles/")
    return _cached(("models", workdir, with_live_gates), stamp, lambda: _models(workdir, with_live_gates))  # type: ignore[no-any-return]


def _models(workdir: Path, with_live_gates: bool) -> list[dict[str, Any]]:
    from ..lifecycle._registry import RegistryView

    reg = RegistryView(workdir)  # MLflow's snapshot while unchanged: no MLflow import on a page
    rows = reg.versions()
    for r in rows:
        m = _manifest(r["path"])
        default = m.get("default_model") or r.get("default_model")
        metrics = (m.get("metrics") or {}).get(default, {})
        ci = (m.get("ci95") or {}).get(default, {})
        r["metrics"] = {
            k: {"value": metrics.get(k), "ci95": ci.get(k)}
            for k in ("ndcg@10", "hr@10", "recall@10", "mrr@10", "coverage@10", "group_ndcg@10")
            if metrics.get(k) is not None
        }
        r["per_model"] = {n: v.get("ndcg@10") for n, v in (m.get("metrics") or {}).items()}
        r["created_at"] = m.get("created_at")
        r["protocol"] = (
            (m.get("protocol") or {}) if isinstance(m.get("protocol"), dict) else m.get("protocol")
        )
        r["protocol_said"] = protocol_said(r["protocol"])
        r["gates_live"] = False
        if with_live_gates and "candidate" in r["aliases"]:
            with warehouse():  # the data-contract gate reads the warehouse's quality records
                r["gates"] = [asdict(g) for g in reg.gates(r["version"], measure=False)]
            r["gates_live"] = True
    return rows


def protocol_said(protocol: Any) -> str | None:
    """A bundle's evaluation protocol in one line, said beside every metric it measured: the
    split, the candidates (full ranking or sampled), the test users and the intervals."""
    if not isinstance(protocol, dict) or not protocol:
        return str(protocol) if protocol else None
    desc = str(protocol.get("split_description") or protocol.get("split") or "split not recorded")
    # the split's name, and what its targets are (a global time split's decide what hr@10 means)
    split = desc.split(":")[0] + (
        f" (targets: {desc.split('targets: ', 1)[1]})" if "targets: " in desc else ""
    )
    parts = [split, str(protocol.get("candidates") or "candidates not recorded")]
    if protocol.get("users"):
        parts.append(f"{int(protocol['users']):,} test users")
    if protocol.get("exclude_seen"):
        parts.append("items the user had seen excluded")
    if protocol.get("bootstrap_rounds"):
        parts.append(f"95% intervals from {int(protocol['bootstrap_rounds']):,} bootstrap rounds over users")
    return "; ".join(parts)


# -- traffic ---------------------------------------------------------------------------------------
def traffic(workdir: Path) -> dict[str, Any]:
    """Served lists (the exposure log) and the events that name them (absorbed into the
    warehouse): per surface, lists served, click-through (`ctr`: lists with an attributed click /
    lists served, the experiment report's CTR), engaged (`engaged`: lists with an attributed
    click, cart or purchase) and conversion (lists with an attributed purchase)."""
    served = _stamp(workdir, *SERVED)
    att_stamp: tuple[Any, ...] = ()
    attributed: list[tuple[Any, ...]] = []
    if _has_warehouse(workdir) and served[0]:  # lists were served: the events that name them
        stamp = _stamp(workdir, *WAREHOUSE)
        att_stamp, attributed = _cached(
            ("attributed", workdir),
            stamp,
            lambda: (stamp, _served_only(workdir, _attributed(workdir))),
            float("inf"),
            REFRESH_WAIT_S,
            (workdir, _ATTRIBUTED),
        )
    # keyed by the attributed rows' own stamp: figures made from rows an absorb behind are
    # made again once the new rows are in
    return _cached(("traffic", workdir), (served, att_stamp), lambda: _traffic(workdir, attributed))  # type: ignore[no-any-return]


class _FileTally:
    """What one exposure segment has said up to `offset` (complete lines only)."""

    def __init__(self) -> None:
        self.offset = 0
        self.tail = b""  # the bytes just before `offset`: a file rewritten in place shows here
        self.served: Counter[str] = Counter()
        self.by_bundle: Counter[tuple[str, str]] = Counter()
        self.first: dict[str, float] = {}  # bundle -> earliest `at`
        self.ids: dict[str, tuple[str, str, str, float]] = {}  # list id -> (surface, bundle, user, at)
        # search pages per query (`search._analytics.add_served_search`) and experiment
        # exposures (`serving._experiments.experiment_exposure`): the analytics page's sums
        self.searches: dict[str, list[Any]] = {}
        self.exposures: list[Exposure] = []
        self.lines = 0  # lines parsed (tests: an append is read, not the whole file again)

    def read(self, data: bytes) -> _FileTally:
        """Read `data`, the segment's bytes from `offset` on, into this tally; returns its lines
        as a tally of their own (the delta). A last line without its newline is left for the
        next read."""
        from ..search._analytics import add_served_search
        from ..serving._experiments import experiment_exposure

        delta = _FileTally()
        for line in io.BytesIO(data):
            if not line.endswith(b"\n"):
                break  # being written: read whole next time
            delta.offset += len(line)
            delta.tail = (delta.tail + line)[-64:]  # the delta's last bytes
            delta.lines += 1
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write
            if not isinstance(rec, dict):
                continue
            kind = str(rec.get("kind") or "other")
            b = str(rec.get("bundle") or "")
            delta.served[kind] += 1
            delta.by_bundle[(kind, b)] += 1
            at = float(rec.get("at") or 0.0)
            if at < delta.first.get(b, float("inf")):
                delta.first[b] = at
            if rec.get("id"):
                delta.ids[str(rec["id"])] = (kind, b, str(rec.get("user") or ""), at)
            if kind == "search":
                add_served_search(delta.searches, rec)
            if (e := experiment_exposure(rec)) is not None:
                delta.exposures.append(e)
        self.offset += delta.offset
        self.tail = (self.tail + delta.tail)[-64:] if delta.offset else self.tail
        self.merge(delta)
        self.lines += delta.lines
        return delta

    def merge(self, other: _FileTally) -> None:
        from ..search._analytics import merge_served_searches

        merge_served_searches(self.searches, other.searches)
        self.exposures.extend(other.exposures)
        self.served.update(other.served)
        self.by_bundle.update(other.by_bundle)
        for b, at in other.first.items():
            if at < self.first.get(b, float("inf")):
                self.first[b] = at
        self.ids.update(other.ids)


class ExposureTally:
    """The served-lists tally of an exposure folder, kept up to date incrementally: each
    segment is remembered by inode with the offset read so far, so a call reads only what was
    appended (a renamed segment, `.jsonl.open` -> `.jsonl`, is the same inode: not re-read).
    A segment that shrank, was rewritten in place or was removed (an erasure, retention) is
    dropped from the sum, which is then rebuilt from the per-segment tallies in memory.
    Every sum is order-free (counts, earliest time, unique list ids), so the result equals a
    tally from scratch."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[tuple[int, int], _FileTally] = {}
        self.total = _FileTally()
        self.lock = threading.Lock()

    def update(self) -> _FileTally:
        from ..storage._segments import read_segment

        with self.lock:
            found: dict[tuple[int, int], tuple[Path, int]] = {}
            for f in sorted(self.folder.glob("*.jsonl*")) if self.folder.exists() else []:
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue  # renamed meanwhile: seen under its new name next time
                found[(st.st_dev, st.st_ino)] = (f, st.st_size)
            rebuild = any(k not in found for k in self.files)
            self.files = {k: t for k, t in self.files.items() if k in found}
            deltas = []
            for key, (f, size) in found.items():
                t = self.files.get(key)
                if t is None and size == 0:
                    continue  # nothing written yet
                # the bytes from just before what was read (its last bytes, to tell a segment
                # rewritten in place), read whole under the folder's gate (`read_segment`: never
                # a segment half rewritten)
                back = len(t.tail) if t is not None else 0
                data = read_segment(f, t.offset - back if t is not None else 0)
                if data is not None and t is not None:
                    if size < t.offset or data[:back] != t.tail:
                        t, rebuild = None, True  # rewritten: read it again from the start
                        data = read_segment(f)
                    else:
                        data = data[back:]
                if data is None:  # gone meanwhile
                    self.files.pop(key, None)
                    rebuild = True
                    continue
                if t is None:
                    t = self.files[key] = _FileTally()
                if data:
                    deltas.append(t.read(data))
            if rebuild:
                self.total = _FileTally()
                for t in self.files.values():
                    self.total.merge(t)
            else:
                for d in deltas:
                    self.total.merge(d)
            return self.total


_TALLIES: dict[Path, ExposureTally] = {}
_TALLIES_LOCK = threading.Lock()


def served_list(workdir: Path, list_id: str) -> tuple[str, str] | None:
    """(surface, bundle) of a list `shelfwise serve` logged under `list_id` (the id its answer
    carried: `search_id`, `recommendation_id`), from the exposure log's tally; None if unknown."""
    got = exposure_tally(workdir)["ids"].get(list_id)
    return None if got is None else (got[0], got[1])


def exposure_tally(workdir: Path) -> dict[str, Any]:
    """The current tally of the workdir's exposure log (one incremental tally per folder):
    lists served per surface (`served`) and per (surface, bundle) (`by_bundle`), when each
    bundle first served (`first`), and list id -> (surface, bundle) (`ids`), search pages per
    query (`searches`) and experiment exposures (`exposures`); the last three are the tally's
    own (`ids` only looked up: the tally's own dict; the searches and exposures copied, since
    another thread's update may grow them while a page iterates them)."""
    from ..serving._feedback import EXPOSURES_DIR

    folder = (workdir / EXPOSURES_DIR).resolve()
    with _TALLIES_LOCK:
        tally = _TALLIES.setdefault(folder, ExposureTally(folder))
    total = tally.update()
    with tally.lock:  # copies: pages iterate them while another thread's update may grow them
        searches = {q: [pages, zero, list(ids), dict(forms[0]) if forms else {}]
                    for q, (pages, zero, ids, *forms) in total.searches.items()}  # fmt: skip
        return {"served": Counter(total.served), "by_bundle": Counter(total.by_bundle),
                "first": dict(total.first), "ids": total.ids, "searches": searches,
                "exposures": list(total.exposures)}  # fmt: skip


# (v2: rows per list, user and kind with the latest time: `not_counted` reads them)
# (v3: with the shopper's other pseudonyms, `linked_shoppers_sql`)
# (v4: one row per event type, the type last: click-through counts clicks only)
_ATTRIBUTED = Persist(
    "attributed_v4", load=lambda v: (_tuples(v[0]), [(*r[:4], tuple(r[4]), *r[5:]) for r in v[1]])
)


def _tuples(v: Any) -> Any:
    """A stamp as JSON gave it back (lists) as the tuples `_stamp` makes."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _traffic(workdir: Path, attributed: list[tuple[Any, ...]]) -> dict[str, Any]:
    from ..serving._experiments import not_counted

    tally = exposure_tally(workdir)
    served, by_bundle, order = tally["served"], tally["by_bundle"], tally["first"]
    bundle_of = tally["ids"]  # list id -> (surface, bundle, user, served at)
    # a list is clicked (bought) when an event of its own shopper names it, not dated before it
    # was served (`not_counted`: the experiment report's rule; each row's latest time stands
    # for its events: one of them counts when it does)
    # click-through is clicks only (the experiment report's CTR); a list bought or carted without
    # a click is engaged, not clicked (the overview said 24.8% where the experiments said 19.2%)
    engaged_ids: set[str] = set()
    clicked_ids: set[str] = set()
    bought_ids: set[str] = set()
    for sid, user, purchase, last, also, *etype in attributed if bundle_of else []:
        got = bundle_of.get(sid)
        if got is not None and not_counted(got[2], got[3], user, last, also) is None:
            engaged_ids.add(sid)
            if etype and etype[0] == "click":
                clicked_ids.add(sid)
            if purchase:
                bought_ids.add(sid)
    clicked: Counter[str] = Counter()
    engaged: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    clicked_by_bundle: Counter[tuple[str, str]] = Counter()
    engaged_by_bundle: Counter[tuple[str, str]] = Counter()
    for sid in engaged_ids:
        kind, bundle = bundle_of[sid][:2]
        engaged[kind] += 1
        clicked[kind] += sid in clicked_ids
        bought[kind] += sid in bought_ids
        clicked_by_bundle[(kind, bundle)] += sid in clicked_ids
        engaged_by_bundle[(kind, bundle)] += 1
    cis = _traffic_intervals(served, bundle_of, clicked_ids, engaged_ids, bought_ids)
    surfaces = [
        {
            "surface": k,
            "served": n,
            "ctr": round(clicked[k] / n, 4) if n else None,
            "engaged": round(engaged[k] / n, 4) if n else None,
            "conversion": round(bought[k] / n, 4) if n else None,
            # 95% intervals with the shopper as unit (`experiments report`'s per-exposure rule)
            **(cis.get(k) or {}),
        }
        for k, n in sorted(served.items())
    ]
    bundles = [
        {
            "surface": k,
            "bundle": b,
            "served": n,
            "clicked": clicked_by_bundle[(k, b)],
            "engaged": engaged_by_bundle[(k, b)],
            "first_served": order.get(b, 0.0),
        }
        for (k, b), n in sorted(by_bundle.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 0.0)))
    ]
    return {"surfaces": surfaces, "served": sum(served.values()), "by_bundle": bundles}


def _traffic_intervals(
    served: Counter[str],
    lists: dict[str, tuple[str, str, str, float]],
    clicked: set[str],
    engaged: set[str],
    bought: set[str],
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per surface, the 95% intervals of its per-list rates (`ctr_ci95`, `engaged_ci95`,
    `conversion_ci95`), computed as `experiments report` computes its per-exposure rates
    (`serving._experiments._ratio_interval`: the delta method over shoppers, a shopper's lists
    not being independent, never narrower than Wilson over the lists). `lists`: list id ->
    (surface, bundle, shopper, served at); a list served to nobody in particular, or logged
    without an id, is a unit of its own."""
    import numpy as np

    from ..serving._experiments import _ratio_interval

    def unit(sid: str) -> tuple[str, str]:
        kind, _, user, _ = lists[sid]
        return kind, user or "\x00" + sid

    # (surface, shopper) -> lists, and of them clicked, engaged, bought (Counters: every served
    # list is read, the console's largest sum; the attributed sets are small)
    shown = Counter((kind, user or "\x00" + sid) for sid, (kind, _, user, _) in lists.items())
    c, e, b = (Counter(unit(sid) for sid in ids if sid in lists) for ids in (clicked, engaged, bought))
    per: dict[str, list[list[int]]] = {}  # surface -> [lists, clicked, engaged, bought] per shopper
    for key, n_lists in shown.items():
        per.setdefault(key[0], []).append([n_lists, c[key], e[key], b[key]])
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for kind, n in served.items():
        rows = per.get(kind, [])
        rows += [[1, 0, 0, 0]] * max(0, n - sum(r[0] for r in rows))  # lists without an id
        if not rows:
            continue
        a = np.asarray(rows, float)
        out[kind] = {
            f"{name}_ci95": tuple(round(x, 4) for x in _ratio_interval(a[:, col], a[:, 0]))  # type: ignore[misc]
            for name, col in (("ctr", 1), ("engaged", 2), ("conversion", 3))
        }
    return out


def _attributed(workdir: Path) -> list[tuple[Any, ...]]:
    """(list id, user, a purchase, the latest time: epoch seconds, the shopper's other
    pseudonyms, the event type) per served list a curated click, cart or purchase names, its
    user and event type: the warehouse's part of the
    traffic, cached apart from the served log's (which grows with every page served while the
    warehouse changes at each absorb)."""
    from ..search._analytics import attributed_events
    from ..storage import read_only, relation_columns

    out: list[tuple[Any, ...]] = []
    with warehouse(), read_only(workdir) as (con, tables):
        if "events" in tables:
            cols = set(relation_columns(con, "curated.events"))
            for c in (c for c in ("recommendation_id", "search_id") if c in cols):
                out += attributed_events(con, c, workdir, kinds=True)
    return out


def _served_only(workdir: Path, attributed: Any) -> list[Any]:
    """The warehouse's attributed lists (ids, or rows whose first field is the id) that the
    exposure log holds: only those count on a page, and the warehouse names every list an event
    ever named (the kept figures grew with the shop's traffic, past the log's retention). An
    event names a list after it was served, so the list is in the log by then."""
    ids = exposure_tally(workdir)["ids"]
    return [a for a in attributed if (a[0] if isinstance(a, tuple) else a) in ids]


MIN_LISTS = 200  # lists a bundle must have served on a surface before its click-through is compared


def online_drops(by_bundle: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Surfaces where the newest bundle's click-through is below the previous bundle's beyond
    chance: the newest's Wilson 95% upper bound under the previous one's rate (each with at
    least MIN_LISTS lists served)."""
    from ..evaluation import wilson_interval

    out = []
    surfaces: dict[str, list[dict[str, Any]]] = {}
    for row in by_bundle:  # in the order the bundles first served
        surfaces.setdefault(row["surface"], []).append(row)
    for surface, rows in surfaces.items():
        if len(rows) < 2:
            continue
        prev, last = rows[-2], rows[-1]
        if prev["served"] < MIN_LISTS or last["served"] < MIN_LISTS:
            continue
        before = prev["clicked"] / prev["served"]
        hi = wilson_interval(last["clicked"], last["served"])[1]
        if hi < before:
            out.append(
                {"surface": surface, "bundle": last["bundle"], "previous": prev["bundle"],
                 "ctr": last["clicked"] / last["served"], "previous_ctr": before}
            )  # fmt: skip
    return out


# -- overview --------------------------------------------------------------------------------------
def alerts(
    cat: dict[str, Any], versions: list[dict[str, Any]], audit_ok: bool, traffic: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    """What needs someone: failing quality checks, quarantine spikes, a broken audit chain, a
    candidate whose gates fail or that waits for approval, a bundle whose online click-through
    dropped against the bundle before it."""
    from ..serving._feedback import SERVED_EVENTS_JOB

    out: list[dict[str, str]] = []
    for d in online_drops((traffic or {}).get("by_bundle", [])):
        out.append(
            {
                "level": "bad",
                "what": f"online click-through on {d['surface']} dropped with bundle {d['bundle']}: "
                f"{100 * d['ctr']:.1f}% vs {100 * d['previous_ctr']:.1f}% with {d['previous']} (roll back?)",
                "link": "/console/models",
            }
        )
    for d in cat.get("datasets", []):
        q = d["quality"]
        if not q["passed"]:
            out.append(
                {
                    "level": "bad",
                    "what": f"{d['name']}: the latest load quarantined {100 * q['quarantined_share']:.1f}% of its new rows "
                    f"(owner {d['owner']}, steward {d['steward']})",
                    "link": "/console/data",
                }
            )
    # a load against the one before of the same kind: a delivery of the shop's files against the
    # previous delivery of that table, an absorb of served events against the previous absorb
    # (a delivery compared with the absorbs of served events between: "9.9% vs 0.0% before");
    # each share by the ingest's rule (re-sent rows not judged: 24/243 was said where the
    # table, the CLI and the report say 23 of 242, 9.5%); a load that judged no row (a whole
    # day re-sent) has no share to compare
    by_kind: dict[tuple[str, bool], list[tuple[dict[str, Any], float]]] = {}
    for x in deliveries(cat):
        check = _check(x)
        if check.judged:
            by_kind.setdefault((x["table"], x.get("job") == SERVED_EVENTS_JOB), []).append((x, check.share))
    for (t, served), loads in by_kind.items():
        if len(loads) >= 2:
            (_, a), (_, b) = loads[-2], loads[-1]
            if b > max(a * SPIKE_FACTOR, 0.01):
                of = ("absorb of served events", "absorb") if served else ("delivery", "delivery")
                out.append(
                    {
                        "level": "bad",
                        "what": f"quarantine spike in {t}: {100 * b:.1f}% of the latest {of[0]} "
                        f"vs {100 * a:.1f}% of the {of[1]} before",
                        "link": f"/console/data/quarantine?table={t}",
                    }
                )
    for v in versions:
        if "candidate" in v["aliases"]:
            failing = [g["name"] for g in v["gates"] if not g["passed"]]
            if failing:
                out.append(
                    {
                        "level": "warn",
                        "what": f"candidate v{v['version']} fails gates: {', '.join(failing)}",
                        "link": "/console/models",
                    }
                )
            elif not v.get("approved_by"):
                review = [g["name"] for g in v["gates"] if g.get("review")]
                out.append(
                    {
                        "level": "warn" if review else "info",
                        "what": f"candidate v{v['version']} waits for approval; not comparable with production, "
                        f"for the approver to judge: {', '.join(review)}"
                        if review
                        else f"candidate v{v['version']} passes its gates and waits for approval",
                        "link": "/console/models",
                    }
                )
    if not audit_ok:
        out.append(
            {"level": "bad", "what": "the audit trail's hash chain is broken", "link": "/console/audit"}
        )
    return out


def experiments_text(workdir: Path) -> str:
    """The installed experiments configuration as the console's editor shows it: the file's
    JSON indented (`{"experiments": []}` where none is installed; a file that is no JSON shown
    as it is, the page saying why above)."""
    from ..serving._experiments import EXPERIMENTS_FILE

    path = workdir / EXPERIMENTS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return json.dumps({"experiments": []}, indent=2)
    except OSError as exc:
        return f"(the experiments file cannot be read: {exc})"
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def experiments_stamp(workdir: Path) -> str:
    """What the installed experiments file holds, as a digest ("" where none is installed): the
    console's editor posts the one it showed, and a save is refused when the file changed since."""
    from ..serving._experiments import EXPERIMENTS_FILE

    try:
        return hashlib.sha256((workdir / EXPERIMENTS_FILE).read_bytes()).hexdigest()
    except OSError:
        return ""


@contextmanager
def experiments_lock(workdir: Path) -> Iterator[None]:
    """The console's turn at the experiments file (every worker process of a server): its
    check that the file is the one the person saw and its write happen in one turn."""
    from ..serving._experiments import EXPERIMENTS_FILE
    from ..storage._segments import folder_lock

    folder = workdir / EXPERIMENTS_FILE.parent
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder, shared=False, name=".experiments.lock"):
        yield


def running_experiment_names(workdir: Path) -> list[str]:
    """The names of the experiments running now (none where the configuration cannot be read)."""
    from ..errors import ShelfwiseError
    from ..serving._experiments import load_experiments

    try:
        return [e.name for e in load_experiments(workdir) if e.active(datetime.now(UTC))]
    except ShelfwiseError:
        return []


def experiments_ended_now(workdir: Path, name: str) -> dict[str, Any]:
    """The installed configuration with running experiment `name` ended at this instant: its
    `end` set to now (kept in the file, as an `end` date ends one: its report stays, and no
    other experiment changes)."""
    from ..errors import ShelfwiseError
    from ..serving._experiments import EXPERIMENTS_FILE, load_experiments

    now = datetime.now(UTC)
    running = {e.name for e in load_experiments(workdir) if e.active(now)}
    if name not in running:
        raise ShelfwiseError(
            f"no running experiment {name!r} to end (running: {', '.join(sorted(running)) or 'none'})"
        )
    doc = json.loads((workdir / EXPERIMENTS_FILE).read_text(encoding="utf-8"))
    # (to the microsecond: cut to the second, one started within this second would end before
    # it started, and rounded up it would run on for up to a second after "End now")
    for e in doc["experiments"]:
        if e.get("name") == name:
            e["end"] = now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return dict(doc)


def running_experiments(workdir: Path) -> list[dict[str, Any]]:
    """The experiments running now (configured and active), as the Overview and Models pages
    say them beside the models in production: per experiment its surface, since when (its
    `start`, else its first served list, None before any), and each variant's share of the
    shoppers and what it serves (model, bundle, rules, or without the shop's rules). A
    configuration that cannot be read says nothing here (the Analytics page says why)."""
    from ..errors import ShelfwiseError
    from ..serving._experiments import load_experiments

    try:
        installed = load_experiments(workdir)
    except ShelfwiseError:
        return []
    now = datetime.now(UTC)
    running = [e for e in installed if e.active(now)]
    if not running:
        return []
    first: dict[str, float] = {}
    if (workdir / "spool").exists():
        for e in exposure_tally(workdir)["exposures"]:
            if e[5] and e[5] < first.get(e[0], float("inf")):
                first[e[0]] = e[5]
    out = []
    for e in running:
        total = sum(v.weight for v in e.variants)
        since = e.start or (datetime.fromtimestamp(first[e.name], UTC) if e.name in first else None)
        out.append(
            {
                "name": e.name,
                "surface": e.surface,
                "since": since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if since else None,
                "variants": [
                    {
                        "name": v.name,
                        "share": v.weight / total if total else 0.0,
                        "model": v.model,
                        "bundle": v.bundle,
                        "rules": v.rules,
                        "shop_rules": v.shop_rules,
                    }
                    for v in e.variants
                ],
            }
        )
    return out


def overview(workdir: Path) -> dict[str, Any]:
    cat = datasets(workdir)
    versions = models(workdir)
    check = audit_check(workdir)
    served = traffic(workdir)
    trend: dict[str, list[tuple[str, float]]] = {}
    for x in deliveries(cat):
        if x["rows_in"]:  # (the share of the rows judged, as the table and the alerts say it)
            trend.setdefault(x["table"], []).append((x["at"], round(_check(x).share, 4)))
    return {
        "datasets": cat["datasets"],
        "trend": trend,
        "production": [v for v in versions if "production" in v["aliases"]],
        "experiments": running_experiments(workdir),
        "candidates": [v for v in versions if "candidate" in v["aliases"]],
        "traffic": served,
        "alerts": alerts(cat, versions, check["ok"], served),
        "audit": check,
    }


# -- audit -----------------------------------------------------------------------------------------
class _AuditReader:
    """The audit log as the audit page needs it, read incrementally: every absorb appends an
    entry, so the log grows with the shop's age and parsing it whole at each page (and again to
    verify the chain) outgrows a page's time. Appended lines are parsed and their hash chain
    checked from where the last read stopped (`AuditLog.verify`'s checks, the same verdict);
    the bytes read before are hashed again at each read (C speed) and, when they changed (an
    edit in place, a truncation), everything is read and verified again: an edit is never
    taken for an append. Entries are kept compact (the fields the page shows)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        from ..governance._audit import GENESIS

        self.offset, self.digest, self.lineno = 0, hashlib.sha256().digest(), 0
        self.prev, self.n = GENESIS, 0
        self.bad: tuple[int, int, str] | None = None  # (entries, line, reason) of the first failure
        self.entries: list[dict[str, Any]] = []
        self.unparseable = 0

    def update(self) -> _AuditReader:
        from ..governance._audit import _canonical

        with self.lock:
            try:
                data = self.path.read_bytes()
            except OSError:
                self._reset()
                return self
            if len(data) < self.offset or hashlib.sha256(data[: self.offset]).digest() != self.digest:
                self._reset()  # not an append: read and verify from the start
            end = data.rfind(b"\n") + 1  # a last line without its newline: read whole next time
            if end <= self.offset:
                return self
            at = self.offset  # each line's first byte: its whole entry is read from there
            for raw in data[self.offset : end].split(b"\n")[:-1]:
                start, at = at, at + len(raw) + 1
                self.lineno += 1
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                self.n += 1
                try:
                    entry = json.loads(line)
                except ValueError:
                    self.unparseable += 1
                    self._fail("not valid JSON")
                    continue
                if not isinstance(entry, dict):
                    self.unparseable += 1
                    self._fail("not valid JSON")
                    continue
                if self.bad is None:
                    if entry.get("prev") != self.prev:
                        self._fail(
                            "chain broken: `prev` is not the previous entry's hash (a line was removed, reordered or edited)"
                        )
                    elif entry.get("seq") != self.n:
                        self._fail(f"sequence number {entry.get('seq')} where {self.n} was expected")
                    elif hashlib.sha256(_canonical(entry)).hexdigest() != entry.get("hash"):
                        self._fail("content does not match its hash (the entry was edited)")
                    else:
                        self.prev = entry["hash"]
                details = json.dumps(entry.get("details"), default=str, ensure_ascii=False)
                self.entries.append(
                    {k: entry.get(k) for k in ("seq", "at", "actor", "action", "outcome")}
                    # the page shows the details cut to 220 characters: kept cut (memory), with
                    # where the line starts, to read the whole entry (`audit_entry`)
                    | {"details": details[:240], "cut": len(details) > 220, "byte": start}
                )
            self.offset = end
            self.digest = hashlib.sha256(data[:end]).digest()
            return self

    def _fail(self, reason: str) -> None:
        if self.bad is None:
            self.bad = (self.n, self.lineno, reason)

    def verification(self) -> dict[str, Any]:
        if self.bad is None:
            return {"ok": True, "entries": self.n, "first_bad_line": None, "reason": None}
        n, lineno, reason = self.bad
        return {"ok": False, "entries": n, "first_bad_line": lineno, "reason": reason}


_AUDIT: dict[Path, _AuditReader] = {}


def _audit(workdir: Path) -> _AuditReader:
    from ..governance._audit import AUDIT_FILE

    path = (workdir / AUDIT_FILE).resolve()
    with _CACHE_LOCK:
        reader = _AUDIT.setdefault(path, _AuditReader(path))
    return reader.update()


def audit_check(workdir: Path) -> dict[str, Any]:
    """`AuditLog.verify()` (the whole hash chain), kept up to date incrementally (see
    `_AuditReader`). Kept in this process's memory only (never trusted from a file)."""
    from ..governance._audit import AuditLog

    reader = _audit(workdir)
    with reader.lock:
        got = reader.verification()
    log = AuditLog(workdir)
    if got["ok"] and got["entries"] == 0:
        # no log: what `verify` says of one removed (a head left, runs in the lineage), at the
        # cost of an empty log's verification
        return log.verify().as_dict()
    head = log._read_head() if got["ok"] else None
    if head is not None and got["entries"] < int(head.get("seq", 0)):
        return {
            "ok": False,
            "entries": got["entries"],
            "first_bad_line": None,
            "reason": f"the log ends at entry {got['entries']} but entry {head.get('seq')} was written "
            "(its newest lines were removed)",
        }
    return got


def audit_entry(workdir: Path, seq: int) -> dict[str, Any] | None:
    """One audit entry whole (its details uncut), read from its line in the log; None when no
    entry has that number (or the log changed under it: the line read is not entry `seq`)."""
    reader = _audit(workdir)
    with reader.lock:
        found = next((e for e in reader.entries if e["seq"] == seq), None)
        if found is None:
            return None
        with open(reader.path, "rb") as fh:
            fh.seek(found["byte"])
            line = fh.readline()
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and entry.get("seq") == seq else None


def audit_entries(
    workdir: Path,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """`shelfwise audit --json`, filtered, newest first (details as JSON text, cut)."""
    reader = _audit(workdir)
    with reader.lock:
        entries = reader.entries
        picked: list[dict[str, Any]] = []
        matching = 0
        for e in reversed(entries):
            if (
                (not action or e["action"] == action)
                and (not actor or e["actor"] == actor)
                and (not outcome or e["outcome"] == outcome)
            ):
                matching += 1
                if len(picked) < limit:
                    picked.append(e)
        return {
            "verification": reader.verification(),
            "total": len(entries) + reader.unparseable,
            "matching": matching,
            "entries": picked,
            "actions": sorted({str(e["action"]) for e in entries if e["action"] is not None}),
            "actors": sorted({str(e["actor"]) for e in entries if e["actor"] is not None}),
        }


# -- lineage ---------------------------------------------------------------------------------------
def lineage_graph(
    workdir: Path, bundle: str | None = None, served: tuple[str, str] | None = None
) -> dict[str, Any]:
    """From a bundle (default: the one serving) back to the runs and data versions that made it:
    registry version -> bundle -> training run -> curated table versions -> ingest runs -> files.
    `served` (list id, surface): a list the bundle served, drawn downstream of it. Nodes carry a
    column (layer) for drawing; edges go left to right (upstream to downstream)."""
    from ..serving._bundle import BUNDLES_DIR, CURRENT

    root = workdir / BUNDLES_DIR
    if bundle is None:
        try:
            bundle = (root / CURRENT).read_text().strip()
        except OSError:
            return {"bundle": None, "nodes": [], "edges": [], "bundles": []}
    m = _manifest(str(root / bundle))
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[str, str]] = []

    def node(nid: str, label: str, kind: str, col: int, detail: str = "") -> str:
        nodes.setdefault(nid, {"id": nid, "label": label, "kind": kind, "col": col, "detail": detail})
        return nid

    b = node(f"bundle:{bundle}", f"bundle {bundle}", "bundle", 4, f"default model {m.get('default_model')}")
    if served is not None:
        sid, surface = served
        edges.append(
            (b, node(f"served:{sid}", f"{surface} list {sid[:12]}", "served", 5, f"served list {sid}"))
        )
    for v in models(workdir, with_live_gates=False) if (workdir / "mlflow.db").exists() else []:
        if v.get("bundle") == bundle:
            r = node(
                f"reg:{v['version']}",
                f"registry v{v['version']}",
                "model",
                5,
                ",".join(v["aliases"]) or v["status"],
            )
            edges.append((b, r))
    lin = m.get("lineage") or {}
    runs = lineage_runs(workdir)
    train_run = lin.get("train_run_id")
    t = None

    def run_label(job: str, rid: str) -> str:
        """A run by its job and the minute it completed (a UUIDv7's first 8 hex digits are its
        time to ~65 s: two runs a minute apart had one label), with the end of its id (random)
        to tell apart two runs of the same minute."""
        at = str(runs.get(rid, {}).get("eventTime") or "")[5:16].replace(
            "T", " "
        )  # (the drawing shows 28 chars)
        return f"{job} {at} ·{rid[-4:]}" if at else f"{job} …{rid[-8:]}"

    if train_run:
        t = node(f"run:{train_run}", run_label("train", str(train_run)), "run", 3, str(train_run))
        edges.append((t, b))
    ingest_runs: set[str] = set()
    for table, dv in (m.get("data_versions") or {}).items():
        d = node(
            f"data:{table}:{dv.get('version')}",
            f"curated.{table} v{dv.get('version')}",
            "dataset",
            2,
            f"{dv.get('rows')} rows, contract {dv.get('contract_version')}, hash {str(dv.get('content_hash'))[:12]}",
        )
        if t:
            edges.append((d, t))
        rid = dv.get("run_id")
        if rid:
            ingest_runs.add(rid)
            job = str(runs.get(rid, {}).get("job", {}).get("name", "ingest")).split(".")[-1]
            r = node(f"run:{rid}", run_label(job, str(rid)), "run", 1, str(rid))
            edges.append((r, d))
    # an append's run read the table's earlier version too: back through those, to the files of
    # every delivery the version holds (the last full load's, then each day's), at most
    # `LINEAGE_HOPS` runs back (a server absorbing every 30 s makes thousands), the rest one node
    made_by = {(name, h): r for r, run in runs.items() for name, h in run.get("made", []) if h}
    todo, hops = list(ingest_runs), 0
    while todo:
        rid = todo.pop()
        for inp in runs.get(rid, {}).get("inputs", []):
            name = str(inp.get("name", ""))
            h = str(((inp.get("facets") or {}).get("version") or {}).get("datasetVersion") or "")
            if not (str(inp.get("namespace", "")).startswith("duckdb") and name.startswith("curated.") and h):
                continue
            prev = node(
                f"data:{name}:{h}", f"{name} ·{h[:6]}", "dataset", 2, f"an earlier version, hash {h[:12]}"
            )
            edges.append((prev, f"run:{rid}"))
            by = made_by.get((name, h))
            if by is None or by in ingest_runs:
                continue
            if hops >= LINEAGE_HOPS:
                edges.append((node("run:earlier", "… earlier loads", "run", 1, "older runs not drawn"), prev))
                continue
            hops += 1
            job = str(runs.get(by, {}).get("job", {}).get("name", "ingest")).split(".")[-1]
            edges.append((node(f"run:{by}", run_label(job, by), "run", 1, by), prev))
            ingest_runs.add(by)
            todo.append(by)
    for rid in ingest_runs:
        for inp in runs.get(rid, {}).get("inputs", []):
            if str(inp.get("namespace", "")).startswith("file"):
                # a run's own temporary file (an absorb's staging, a console fix) is gone after
                # it: said so, not drawn as if it were a source still there to open
                gone = not Path(inp["name"]).exists()
                label = Path(inp["name"]).name + (" (gone)" if gone else "")
                detail = inp["name"] + (
                    ": no longer on disk (a temporary file of the run, or moved)" if gone else ""
                )
                f = node(f"file:{inp['name']}", label, "file", 0, detail)
                edges.append((f, f"run:{rid}"))
    bundles = (
        sorted((p.name for p in root.glob("[0-9]*") if p.is_dir()), reverse=True) if root.exists() else []
    )
    return {"bundle": bundle, "nodes": list(nodes.values()), "edges": sorted(set(edges)), "bundles": bundles,
            "served": served[0] if served else None}  # fmt: skip


LINEAGE_HOPS = 12  # the earlier loads drawn behind a bundle's table versions
LINEAGE_FILE = "lineage/openlineage.jsonl"  # governance._lineage.LINEAGE_FILE (that module imports the
# OpenLineage client: a second of CPU on a page; the file is plain JSON lines)


class _LineageRuns:
    """The completed runs of a lineage file (run id -> its event), read incrementally: every
    ingest and absorb appends a run, so the file grows with the shop's age; a page reads only
    what was appended since the last one (a file that shrank or was rewritten: from the start)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.tail = path, 0, b""
        self.runs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def update(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            try:
                fh = open(self.path, "rb")
            except OSError:
                self.offset, self.tail, self.runs = 0, b"", {}
                return self.runs
            with fh:
                size = fh.seek(0, 2)
                if self.offset:
                    fh.seek(self.offset - len(self.tail))
                    if size < self.offset or fh.read(len(self.tail)) != self.tail:
                        self.offset, self.tail, self.runs = 0, b"", {}  # rewritten: read again
                fh.seek(self.offset)
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # being written: read whole next time
                    self.offset += len(line)
                    self.tail = (self.tail + line)[-64:]
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(e, dict) and e.get("eventType") == "COMPLETE":
                        rid = (e.get("run") or {}).get("runId")
                        if rid:  # the job's name, inputs and versions made are what a page draws
                            made = [
                                (
                                    str(o.get("name")),
                                    str(
                                        ((o.get("facets") or {}).get("version") or {}).get("datasetVersion")
                                        or ""
                                    ),
                                )
                                for o in e.get("outputs") or []
                                if isinstance(o, dict)
                            ]
                            self.runs[str(rid)] = {"job": e.get("job") or {}, "inputs": e.get("inputs") or [],
                                                   "eventTime": e.get("eventTime"), "made": made}  # fmt: skip
            return dict(self.runs)


_LINEAGE: dict[Path, _LineageRuns] = {}


def lineage_runs(workdir: Path) -> dict[str, dict[str, Any]]:
    """Run id -> {"job", "inputs", "eventTime" (when it completed)} of every completed run in the workdir's lineage file."""
    path = (workdir / LINEAGE_FILE).resolve()
    with _CACHE_LOCK:
        reader = _LINEAGE.setdefault(path, _LineageRuns(path))
    return reader.update()


def lineage_svg(graph: dict[str, Any]) -> str:
    """The graph drawn as SVG, server-side (columns by layer, one row per node in a column)."""
    from html import escape

    cols: dict[int, list[dict[str, Any]]] = {}
    for n in graph["nodes"]:
        cols.setdefault(n["col"], []).append(n)
    w, h, gap_x, gap_y = 190, 38, 40, 14
    pos: dict[str, tuple[float, float]] = {}
    used = sorted(cols)
    for ci, c in enumerate(used):
        for ri, n in enumerate(sorted(cols[c], key=lambda n: n["label"])):
            pos[n["id"]] = (10 + ci * (w + gap_x), 10 + ri * (h + gap_y))
    width = 20 + len(used) * (w + gap_x)
    height = 20 + max((len(v) for v in cols.values()), default=1) * (h + gap_y)
    colour = {
        "file": "#e8eef7",
        "run": "#fff4d6",
        "dataset": "#e3f4e3",
        "bundle": "#f4e3f1",
        "model": "#ffe3e3",
        "served": "#dff3f7",
    }
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="lineage graph" class="lineage">'
    ]
    for a, b in graph["edges"]:
        if a in pos and b in pos:
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(
                f'<path d="M{x1 + w},{y1 + h / 2} C{x1 + w + 20},{y1 + h / 2} {x2 - 20},{y2 + h / 2} {x2},{y2 + h / 2}" '
                'fill="none" stroke="#889" stroke-width="1.2"/>'
            )
    for n in graph["nodes"]:
        x, y = pos[n["id"]]
        parts.append(
            f'<g class="node node-{n["kind"]}" data-id="{escape(n["id"])}"><title>{escape(n["detail"])}</title>'
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{colour.get(n["kind"], "#eee")}" stroke="#667"/>'
            f'<text x="{x + 8}" y="{y + 15}" font-size="11" font-weight="600">{escape(n["kind"])}</text>'
            f'<text x="{x + 8}" y="{y + 30}" font-size="11">{escape(n["label"][:28])}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# -- analytics -------------------------------------------------------------------------------------
def search_report(workdir: Path, lexical: Any = None) -> dict[str, Any]:
    """`shelfwise report search --json` (without absorbing first: a page only reads);
    `lexical`: the serving bundle's keyword index, already in memory (else read once per bundle).
    Its parts are cached apart: the warehouse's (logged searches, attributed ids, queries without
    a keyword match: recomputed when the warehouse or the bundle changes; opening the warehouse
    is most of a cold render) and the served log's (recomputed when a page was served)."""
    from ..search._analytics import (
        PROTOCOL,
        current_lexical,
        logged_searches,
        no_keyword_match,
        served_search_summary,
    )

    if not _has_warehouse(workdir):
        return {}

    from ..search._shopper import load_synonyms
    from ..serving._synonyms import SYNONYMS_FILE

    # the live synonyms count: a saved synonym takes a query off the no-keyword-match list
    stamp = _stamp(workdir, *WAREHOUSE, *REGISTRY, str(SYNONYMS_FILE))

    def logged() -> tuple[Any, dict[str, Any], list[Any], list[dict[str, Any]]]:
        with warehouse():
            got, found = logged_searches(workdir)
        attributed = _served_only(workdir, found)
        lex = lexical if lexical is not None else current_lexical(workdir)
        live = workdir / SYNONYMS_FILE
        synonyms = load_synonyms(live) if live.exists() else None
        return stamp, got, attributed, no_keyword_match(lex, got["top_queries"], synonyms=synonyms)

    made, got, attributed, nkm = _cached(
        ("search-logged", workdir), stamp, logged, float("inf"), REFRESH_WAIT_S, (workdir, _SEARCH_LOGGED)
    )
    served = _cached(  # keyed by the logged part it was made with (maybe an absorb behind)
        ("search-served", workdir),
        (_stamp(workdir, *SERVED), made),
        # the exposure log's search pages as the tally has them (only what was appended is read)
        lambda: served_search_summary(exposure_tally(workdir)["searches"], attributed),
        ttl=float("inf"),
    )
    return {"protocol": dict(PROTOCOL), "logged": got, "served": served, "no_keyword_match": nkm}


_SEARCH_LOGGED = Persist(  # (v3: the attributed events with their user, time and linked shoppers)
    # (v4: each query as typed; v5: each rate by what it counts, the attributed events with their
    # type; v6: `query` the counted key again, the form as typed in `typed_query`)
    "search_logged_v6",
    dump=lambda v: [v[0], v[1], [[*a[:3], list(a[3]), *a[4:]] for a in v[2]], v[3]],
    load=lambda v: (_tuples(v[0]), v[1], [(*a[:3], tuple(a[3]), *a[4:]) for a in v[2]], v[3]),
)


def experiments(workdir: Path) -> dict[str, Any]:
    """`shelfwise experiments report --json` (without absorbing first) and the configuration.
    The exposures come from the incremental tally (only what was appended to the log is read),
    the attributed events from the warehouse (cached, kept in the workdir, per warehouse state)."""
    from ..serving._experiments import (
        BOTS_KEY,
        attributed_events,
        configured_weights,
        experiment_summary,
        load_experiments,
    )

    installed = load_experiments(workdir)
    configured = [
        {
            "name": e.name,
            "surface": e.surface,
            "variants": [
                {"name": v.name, "weight": v.weight, "model": v.model, "bundle": v.bundle, "rules": v.rules}
                for v in e.variants
            ],
        }
        for e in installed
    ]
    if not _has_warehouse(workdir):
        return {"configured": configured, "report": {"experiments": {}}}
    served = _stamp(workdir, *SERVED)
    events_stamp: tuple[Any, ...] = ()
    by_list: dict[str, list[list[Any]]] = {}
    if served[0]:
        stamp = _stamp(workdir, *WAREHOUSE)

        def events() -> tuple[tuple[Any, ...], dict[str, list[list[Any]]]]:
            with warehouse():
                got = attributed_events(workdir)
            # the events of the lists an experiment served, the only ones its report reads (each
            # event is kept with its user and time: every list's would grow with all the traffic)
            in_experiments = {e[2] for e in exposure_tally(workdir)["exposures"]}
            return stamp, {k: v for k, v in got.items() if k in in_experiments or k == BOTS_KEY}

        events_stamp, by_list = _cached(
            ("experiment-events", workdir), stamp, events, float("inf"), REFRESH_WAIT_S,
            (workdir, _EXPERIMENT_EVENTS),
        )  # fmt: skip
    weights = configured_weights(installed)
    report = _cached(
        ("experiments", workdir),
        (served, events_stamp, json.dumps(weights, sort_keys=True)),  # (new weights: checked anew)
        lambda: experiment_summary(exposure_tally(workdir)["exposures"], by_list, weights=weights),
        float("inf"),
    )
    from ..serving._feedback import pending_events

    # acknowledged events not absorbed yet: their lists are in the exposures, they are not (as
    # `experiments report` warns)
    return {"configured": configured, "report": report, "pending_events": pending_events(workdir)}


# (v2: each list's events with their user and time, not counts: the v1 file is not read)
# (v4: each event carries its currency, `attributed_events`; v5: its product and quantity, and
# the returns attributed to a list)
_EXPERIMENT_EVENTS = Persist("experiment_events_v5", load=lambda v: (_tuples(v[0]), v[1]))


# -- warm-up ---------------------------------------------------------------------------------------
def settle(timeout_s: float) -> list[str]:
    """Wait (at most `timeout_s` in all) for the console's background threads (the warm-up, the
    figures' refreshes, the customer profiles: named `console-*`) to leave the warehouse: called
    when the app shuts down. A daemon thread still inside DuckDB when the interpreter finalizes
    aborts the process ("terminate called without an active exception", exit 134), which an
    application embedding the console (a test's client) would meet at exit; `shelfwise serve`
    leaves without finalizing (`serving._exit`). Returns the names of those still running."""
    deadline = time.monotonic() + timeout_s
    left = []
    for t in threading.enumerate():
        if t is not threading.current_thread() and t.name.startswith(BACKGROUND_PREFIX) and t.is_alive():
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                left.append(t.name)
    return left


def warm_up(workdir: Path, lexical: Any = None, stop: threading.Event | None = None) -> list[str]:
    """What the pages read, computed once (in a background thread of a server that just
    started: its readiness does not wait): a page read afterwards finds it in memory, a page
    read meanwhile waits for the same computation instead of starting its own. Returns the
    parts that could not be computed (a page says why when it is read); `stop` set: the parts
    not begun are left (the app is shutting down)."""
    parts: list[tuple[str, Any]] = [
        ("overview", lambda: overview(workdir)),  # catalog, registry, traffic, audit chain
        ("models", lambda: models(workdir)),
        ("quarantine", lambda: quarantine(workdir, "", "", "open")),  # the page's default filter
        ("analytics", lambda: search_report(workdir, lexical)),
        ("experiments", lambda: experiments(workdir)),
        ("lineage", lambda: lineage_graph(workdir)),
    ]
    failed = []
    for name, part in parts:
        if stop is not None and stop.is_set():
            failed.append(name)
            continue
        try:
            part()
        except Exception as exc:  # e.g. the warehouse held by a training run: the page retries
            failed.append(name)
            log.info("console warm-up: %s not computed: %s", name, exc)
    return failed


def keep_figures(workdir: str | Path) -> list[str]:
    """The figures a freshly started server's pages read from the warehouse, computed now and
    kept in `state/console/` (with the stamp of the files they were made from): called at the
    end of a training run, so that the first server after it shows its pages without opening
    the warehouse (on the demo shop that takes seconds under load).
    Never fails its caller: returns the parts that could not be computed.

    Computed here and waited for, as a page's first computation is: a page only waits
    `REFRESH_WAIT_S` for figures whose files changed (it shows the kept ones meanwhile), and
    left to that, a run after the first (the kept figures of the previous data) returned with
    the refreshes still reading the warehouse in background threads: the figures kept were the
    old ones, and a process exiting meanwhile (`shelfwise train` printing its result) aborted
    in those threads' DuckDB calls ("terminate called without an active exception", exit -6)."""
    workdir = Path(workdir)
    if not _has_warehouse(workdir):
        return []
    token = _IN_CALLER.set(True)
    try:
        return _keep_figures(workdir)
    finally:
        _IN_CALLER.reset(token)


def _keep_figures(workdir: Path) -> list[str]:
    parts: list[tuple[str, Any]] = [
        ("catalog", lambda: datasets(workdir)),
        ("quarantine", lambda: quarantine(workdir, "", "", "open", rows=False)),
        ("analytics", lambda: search_report(workdir)),
        ("traffic", lambda: traffic(workdir)),
        ("experiments", lambda: experiments(workdir)),
    ]
    failed = []
    for name, part in parts:
        try:
            part()
        except Exception as exc:  # the server computes it instead
            failed.append(name)
            log.info("console figures: %s not kept: %s", name, exc)
    return failed


# -- customer profiles (shelfwise.insights) --------------------------------------------------------
PROFILE_HORIZON_DAYS = 90  # `shelfwise insights customers`' default horizon
# a LightGBM fit over every customer: at most this often (an absorb every few seconds would
# otherwise keep a core busy); meanwhile the page shows the previous profiles, marked stale
PROFILE_REFRESH_S = 300.0
_PROFILES: dict[Path, dict[str, Any]] = {}
_PROFILES_LOCK = threading.Lock()


def _compute_profiles(workdir: Path) -> dict[str, Any]:
    """Every customer's profile (`insights.profile_customers`: RFM, expected purchases, churn
    risk, segment, tastes) keyed by the warehouse's (pseudonymous) user id, as of the newest
    event. The warehouse is held only while the tables are read, not during the fit."""
    import math

    from ..insights._customers import profile_customers
    from ..insights._data import load_curated, require_purchase

    with warehouse():  # profiling: users without personalization consent are left out
        events, products, at = load_curated(workdir, None, consent="personalization")
    if events.empty:
        raise ValueError("no curated events")
    require_purchase(events, at, workdir)
    prof, info = profile_customers(events, products, at, PROFILE_HORIZON_DAYS)

    def clean(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 4)
        if hasattr(v, "tolist"):
            return v.tolist()
        return v

    by_user = {str(u): {f: clean(row[f]) for f in prof.columns} for u, row in prof.iterrows()}
    for rec in by_user.values():
        rec["frequency"] = int(rec["frequency"] or 0)  # purchases: a count (as the CLI writes it)
    return {"by_user": by_user, "as_of": str(at), "model": info.model, "horizon_days": PROFILE_HORIZON_DAYS}


def customer_profile(workdir: Path, pseudonym: str, wait_s: float = 0.0) -> dict[str, Any]:
    """A shopper's customer profile when `shelfwise.insights` can compute one: `status` is
    "ready" (with `profile`, `as_of`, `model`; `stale` while a newer warehouse is being
    profiled), "computing" or "unavailable" (with `reason`). Profiles are computed for all
    customers at once (a LightGBM fit: seconds), in a background thread per warehouse version,
    so a page never waits for them beyond `wait_s`."""
    if not _has_warehouse(workdir):
        return {"status": "unavailable", "reason": "no warehouse in this workdir"}
    stamp = _stamp(workdir, *WAREHOUSE)
    with _PROFILES_LOCK:
        e = _PROFILES.setdefault(workdir, {"stamp": None, "done": None, "error": None, "thread": None})
        running = e["thread"] is not None and e["thread"].is_alive()
        recent = e["done"] is not None and time.monotonic() - e.get("at", 0.0) < PROFILE_REFRESH_S
        if e["stamp"] != stamp and not running and not recent:
            e["want"] = stamp

            def run(want: tuple[Any, ...] = stamp) -> None:
                try:
                    done, error = _compute_profiles(workdir), None
                except Exception as exc:  # no profile is a note on the page, never a failed page
                    done, error = (
                        None,
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    )
                with _PROFILES_LOCK:  # a failure drops the older profiles too: they would mislead
                    e["stamp"], e["error"], e["done"], e["at"] = want, error, done, time.monotonic()

            e["thread"] = threading.Thread(target=run, name="console-profiles", daemon=True)
            e["thread"].start()
        thread = e["thread"]
    if wait_s > 0 and thread is not None:
        thread.join(wait_s)
    with _PROFILES_LOCK:
        done, error, fresh = e["done"], e["error"], e["stamp"] == stamp
    if done is None:
        if error is not None and fresh:
            return {"status": "unavailable", "reason": f"customer profiles could not be computed ({error})"}
        return {"status": "computing"}
    from ..governance._consent import Consents
    from ..governance._erasures import erased_users

    # checked per page, not per computation: a withdrawal or an erasure shows at once
    if pseudonym in erased_users(workdir):
        return {"status": "unavailable", "reason": "this shopper was erased"}
    if not Consents.of(workdir).allows(pseudonym, "personalization"):
        return {
            "status": "unavailable",
            "reason": "this shopper withdrew personalization consent (no profiling)",
        }
    rec = done["by_user"].get(pseudonym)
    if rec is None:
        return {"status": "unavailable", "reason": f"no history for this shopper up to {done['as_of']}"}
    return {"status": "ready", "profile": rec, "as_of": done["as_of"], "model": done["model"],
            "horizon_days": done["horizon_days"], "stale": not fresh}  # fmt: skip
