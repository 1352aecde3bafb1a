"""Between a table's set checks and its publishing: how many valid rows are anonymous sessions'.

An events row with no user id but a session id is anonymous browsing, attributed by the row
checks to the session (`_compile`, the raw id `_privacy.ANONYMOUS_PREFIX` + session_id). The load
report counts them (`TableReport.anonymous_rows`), so that a shop sees how much of its traffic
is anonymous, and a file whose user column is empty by mistake shows at once.

The count is of the rows curated: appending, the rows an earlier load curated already
(re-delivered, quarantined `duplicate_row` only when published) are taken off again
(`uncount_redelivered`, `spark_uncount_redelivered`, called by the publish stages).
"""

from __future__ import annotations

from ._compile import GUEST_USER_IDS, anonymous_sessions, lit
from ._load_state import CHECKED, LoadState
from ._privacy import ANONYMOUS_PREFIX

__all__ = [
    "count_anonymous",
    "note_guests",
    "spark_count_anonymous",
    "spark_uncount_redelivered",
    "uncount_redelivered",
]


def _applies(st: LoadState) -> bool:
    # a file without a session column cannot hold an anonymous row: nothing to count
    return anonymous_sessions(st.contract) and "session_id" in st.mapping


def note_guests(st: LoadState) -> None:
    """Say how many rows name a guest checkout's placeholder user id (`GUEST_USER_IDS`, beside a
    session id): the row checks read them as anonymous sessions' (`_compile`). The load view is
    DuckDB's on both engines."""
    if "user_id" not in st.mapping:
        return
    guests = ", ".join(lit(g) for g in GUEST_USER_IDS)
    user = "lower(regexp_replace(trim(CAST(user_id AS VARCHAR)), '^(-?[0-9]+)\\.0$', '\\1'))"
    rows = st.wh.sql(
        f"SELECT {user} AS g, count(*) FROM {st.load} WHERE {user} IN ({guests}) "
        "AND nullif(trim(CAST(session_id AS VARCHAR)), '') IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    for guest, n in rows:
        st.report.notes.append(
            f"{st.staged.source.name}: {int(n):,} row(s) name the guest user id {guest!r} (a guest "
            "checkout, no customer): read as anonymous sessions (each its session_id, an order's lines one)"
        )
    if rows:
        _say_guests_curated_before(st)


def _say_guests_curated_before(st: LoadState) -> None:
    """A warning when the curated events already hold a guest id as one customer, curated by a
    load made before guest ids were read as anonymous sessions: those rows stay one customer "0"
    (in audiences, profiles), and a re-sent line of their orders is no longer recognised as a
    re-send (a review: two rows of one order line). One full load of the events reads them anew."""
    if "events" not in st.wh.curated_tables():
        return
    from ._privacy import Pseudonymizer

    pseudo = Pseudonymizer.of(st.workdir)
    names = {pseudo(g): g for g in GUEST_USER_IDS}
    held = st.wh.sql(
        f"SELECT user_id, count(*) FROM curated.events WHERE user_id IN ({', '.join(lit(p) for p in names)}) "
        "GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    if not held:
        return
    said = ", ".join(f"{int(n):,} of the guest id {names[u]!r}" for u, n in held)
    st.warn(
        f"curated.events holds rows of guest checkouts as one customer ({said}), curated before guest ids "
        "were read as anonymous sessions: they stay one customer in profiles and audiences, and a re-sent "
        "line of their orders is not recognised as a re-send. Load the events once in full (`shelfwise "
        "ingest` without --append, every delivery's orders) to read them as anonymous sessions"
    )


def count_anonymous(st: LoadState) -> None:
    if not _applies(st):
        return
    note_guests(st)
    st.tr.anonymous_rows = _anonymous_checked(st, "len(_reasons) = 0")


def _anonymous_checked(st: LoadState, where: str) -> int:
    """The anonymous sessions' rows of the checked table that meet `where` (DuckDB)."""
    n = len(ANONYMOUS_PREFIX)
    row = st.wh.sql(
        f"SELECT count(*) FROM {CHECKED} WHERE {where} AND substr(user_id, 1, {n}) = {lit(ANONYMOUS_PREFIX)}"
    ).fetchone()
    return int(row[0]) if row else 0


def spark_count_anonymous(st: LoadState) -> None:
    if not _applies(st):
        return
    note_guests(st)
    from pyspark.sql import functions as F

    df = st.frames["checked"]
    valid = (F.size("_reasons") == 0) & F.col("user_id").startswith(ANONYMOUS_PREFIX)
    st.tr.anonymous_rows = int(df.where(valid).count())


def uncount_redelivered(st: LoadState) -> None:
    """Appending (DuckDB): take the re-delivered anonymous rows (`_redelivered(line)`, left by
    `_load_publish._flag_redelivered`) off the count: they are quarantined, not curated."""
    if not _applies(st) or not st.tr.anonymous_rows:
        return
    st.tr.anonymous_rows -= _anonymous_checked(st, "_source_line IN (SELECT line FROM _redelivered)")


def spark_uncount_redelivered(st: LoadState, lines: list[int]) -> None:
    """As `uncount_redelivered`, in Spark: `lines`, the re-delivered rows' source lines."""
    if not _applies(st) or not st.tr.anonymous_rows or not lines:
        return
    from pyspark.sql import functions as F

    df = st.frames["checked"]
    hit = F.col("_source_line").isin([int(n) for n in lines]) & F.col("user_id").startswith(ANONYMOUS_PREFIX)
    st.tr.anonymous_rows -= int(df.where(hit).count())
