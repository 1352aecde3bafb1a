"""Reading a workdir's curated events and catalog for insights, point in time, and mapping the
warehouse's pseudonyms back to the shop's own ids.

The warehouse holds only keyed pseudonyms; the shop's ids survive in the raw layer (the rows as
delivered, which erasure and retention clean as well). A pseudonym is mapped back by
pseudonymizing the raw layer's ids with the workdir's key, exactly as ingestion did: no reverse
table of personal data is kept anywhere. A user whose raw rows are gone (retention) has no shop
id any more and is left out of outputs that name users.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ShelfwiseError

# (`currency`: NULL for a shop whose files name none; `_customers.money_currency` reads it)
EVENT_COLUMNS = (
    "user_id",
    "product_id",
    "event_type",
    "timestamp",
    "session_id",
    "value",
    "quantity",
    "currency",
)
PRODUCT_COLUMNS = ("product_id", "category", "brand", "price", "currency")


def questions_file(path: Path, columns: str, *, jsonl: bool = True) -> None:
    """Refuse, naming the file, a questions file that cannot hold a question: a folder, a file
    not there, or one with nothing but blank lines (`columns`: the CSV header it needs;
    `jsonl`: JSON lines are read too). The CLI and the Python API read files alike."""
    from ..errors import SourceError

    if path.is_dir():
        raise SourceError(str(path), None, "a folder, not a file of questions")
    if not path.exists():
        raise SourceError(str(path), None, "file not found")
    if not path.read_text(encoding="utf-8-sig", errors="replace").strip():
        raise SourceError(
            str(path),
            None,
            f"the file is empty: give a CSV whose header names {columns}"
            + (", or JSON lines" if jsonl else ""),
        )


def header_said(fieldnames: Any) -> str:
    """What a CSV's header holds, for an error naming the columns a file lacks: "has a, b", or
    that it names no column."""
    names = [str(f).strip() for f in fieldnames or []]
    return "has " + ", ".join(names) if any(names) else "its header names no column"


NO_QUESTIONS = "no questions in the file: its header and no row below it"


def parse_as_of(text: str | None) -> datetime | None:
    """`--as-of`: an ISO date (the whole day is included) or date-time, in UTC."""
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ShelfwiseError(f"--as-of {text!r}: not an ISO date or date-time (e.g. 2024-03-31)") from None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if len(text.strip()) <= 10:  # a date: up to the end of that day
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return ts.to_pydatetime()


def load_curated(
    workdir: str | Path, as_of: datetime | None, *, consent: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Curated events up to `as_of` (inclusive; default: the latest event, with `consent` the
    latest of the users kept) and the catalog.

    `consent` ("personalization" for profiles and audiences, "marketing"): the events of users
    without that consent, and of anonymous sessions, are left out (`governance._consent`); None
    keeps everyone's (demand and other shop-level aggregates are operations, not profiling)."""
    from ..storage import read_only, relation_columns

    defaulted = as_of is None
    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            raise ShelfwiseError(
                f"{workdir}: no curated events (run `shelfwise ingest` with an events table)"
            )
        have = set(relation_columns(con, "curated.events"))
        cols = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in EVENT_COLUMNS)
        if as_of is None:
            row = con.sql('SELECT max("timestamp") FROM curated.events').fetchone()
            if not row or row[0] is None:
                raise ShelfwiseError(f"{workdir}: the curated events table is empty")
            as_of = row[0]
        events = con.execute(
            # (a no_sale row is the shop's record of a product-day, not a customer's action)
            f'SELECT {cols} FROM curated.events WHERE "timestamp" <= ? AND user_id IS NOT NULL '
            "AND event_type <> 'no_sale' ORDER BY \"timestamp\"",
            [as_of],
        ).df()
        if "products" in curated:
            have_p = set(relation_columns(con, "curated.products"))
            pcols = ", ".join(f'"{c}"' if c in have_p else f'NULL AS "{c}"' for c in PRODUCT_COLUMNS)
            products = con.sql(f"SELECT {pcols} FROM curated.products").df()
        else:
            products = pd.DataFrame({c: pd.Series(dtype="object") for c in PRODUCT_COLUMNS})
    assert as_of is not None
    if consent is not None and not events.empty:
        from ..governance import is_anonymous
        from ..governance._consent import consent_withdrawn

        # profiles and audiences are about customers: an anonymous session (events with no user
        # id, attributed to their session at ingestion) is none, whatever the shop's default
        anonymous = events["user_id"].map(is_anonymous).astype(bool)
        if anonymous.any():
            events = events[~anonymous].reset_index(drop=True)

        out = consent_withdrawn(workdir, consent, among=events["user_id"].unique().tolist())
        if out:
            events = events[~events["user_id"].isin(out)].reset_index(drop=True)
        if defaulted and not events.empty:
            # "the latest event" is the latest of those the figures may read: the events of a
            # user left out must not date everyone else's recency (nor an anonymous session's)
            as_of = pd.Timestamp(events["timestamp"].max()).to_pydatetime()
    return events, products, as_of


def no_customer_events(workdir: str | Path, at: Any) -> str:
    """Why no customer's events are there to profile up to `at`, in the shop's terms: none at
    all, every one anonymous (till sales, guest sessions: "no events" of a shop with 160,000
    read as a broken load), or none of a customer who consented."""
    from ..governance import is_anonymous
    from ..storage import read_only

    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            return f"{workdir}: no curated events"
        rows = con.execute(
            'SELECT user_id, count(*) FROM curated.events WHERE "timestamp" <= ? '
            "AND event_type <> 'no_sale' GROUP BY 1",
            [at],
        ).fetchall()
    total = sum(int(n) for _, n in rows)
    if not total:
        return f"{workdir}: no events up to {at}"
    anonymous = sum(int(n) for u, n in rows if u is None or is_anonymous(str(u)))
    if anonymous == total:
        return (
            f"{workdir}: all {total:,} events up to {at} are anonymous (no customer id: till sales, guest "
            "sessions): customer profiles, churn and audiences need the purchases of identified customers"
        )
    return (
        f"{workdir}: no events of customers who consented up to {at} ({total - anonymous:,} events of "
        "customers, none with the consent profiling needs)"
    )


STALE_DAYS = 28  # an --as-of further than this past the last event is warned about


class StaleAsOfWarning(UserWarning):
    """--as-of is far past the last event: recency and segments describe a silence in the data."""


def require_purchase(events: pd.DataFrame, at: Any, workdir: str | Path) -> None:
    """Customer profiles rest on orders: without a purchase up to `at` every user would be a
    "prospect" certain to churn (MovieLens's ratings: 943 of them), so every path that profiles
    the shop now (`insights customers`, its report, audiences, the served and the console's
    profiles, the access document) refuses alike, saying what the events hold."""
    if events.empty or (events["event_type"] == "purchase").any():
        return
    kinds = ", ".join(sorted(events["event_type"].astype(str).unique()))
    raise ShelfwiseError(
        f"{workdir}: no purchase up to {str(at)[:10]}: customer profiles (recency, frequency, churn, "
        f"expected orders) rest on orders, and the events hold {kinds} only"
    )


def stale_as_of(events: pd.DataFrame, as_of: datetime) -> str | None:
    """A warning (also issued) when `as_of` is more than STALE_DAYS after the last event: every
    user's recency then grows by days nobody recorded (a "champion" 460 days since their last
    order), and segments and churn read the missing data as silence."""
    import warnings

    if events.empty:
        return None
    last = pd.Timestamp(events["timestamp"].max())
    days = (pd.Timestamp(as_of) - last) / pd.Timedelta(days=1)
    if days <= STALE_DAYS:
        return None
    msg = (
        f"--as-of {pd.Timestamp(as_of).date()} is {days:.0f} days after the last event "
        f"({last.isoformat(timespec='seconds')}): recency, segments and churn count those days as "
        "days without orders although no data was recorded; ingest the newer events or use an "
        "earlier --as-of"
    )
    warnings.warn(msg, StaleAsOfWarning, stacklevel=3)
    return msg


def count_customers(workdir: str | Path, as_of: datetime) -> int:
    """How many customers (not anonymous sessions) the curated events name up to `as_of`
    (inclusive), whatever their consent: one distinct-user count in the warehouse, for the
    figure of those a consent-filtered job left out."""
    from ..governance._privacy import ANONYMOUS_PSEUDONYM_PREFIX
    from ..storage import read_only

    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            return 0
        row = con.execute(
            'SELECT count(DISTINCT user_id) FROM curated.events WHERE "timestamp" <= ? '
            "AND user_id IS NOT NULL AND event_type <> 'no_sale' AND NOT starts_with(user_id, ?)",
            [as_of, ANONYMOUS_PSEUDONYM_PREFIX],
        ).fetchone()
    return int(row[0]) if row else 0


def shop_ids(workdir: str | Path, pseudonyms: list[str]) -> dict[str, str]:
    """pseudonym -> the shop's own id, for the pseudonyms whose raw rows are still held."""
    from ..governance import Pseudonymizer, shop_user_ids

    raw_list = shop_user_ids(workdir)
    pseudo = Pseudonymizer.of(workdir).many(raw_list)
    wanted = set(pseudonyms)
    return {p: r for p, r in zip(pseudo, raw_list, strict=True) if p in wanted}


def curated_inputs(
    workdir: str | Path, tables: tuple[str, ...] = ("events", "products")
) -> tuple[list[Any], dict[str, int]]:
    """The curated tables a job reads, as lineage inputs carrying the version read (its content
    hash and rows, as `train` records them), and `{table: version}` for the audit entry. A table
    the workdir does not hold is left out."""
    from ..governance import DatasetRef
    from ..governance._lineage import warehouse_namespace
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT table_name, max(version), arg_max(content_hash, version), arg_max(row_count, version) "
            "FROM meta.table_versions GROUP BY 1"
        ).fetchall()
    held = {r[0]: r[1:] for r in rows}
    ns = warehouse_namespace(Path(workdir))
    refs = [
        DatasetRef(ns, f"curated.{t}", rows=held[t][2], content_hash=held[t][1]) for t in tables if t in held
    ]
    return refs, {t: int(held[t][0]) for t in tables if t in held}


__all__ = [
    "STALE_DAYS",
    "StaleAsOfWarning",
    "count_customers",
    "stale_as_of",
    "curated_inputs",
    "load_curated",
    "parse_as_of",
    "shop_ids",
]
