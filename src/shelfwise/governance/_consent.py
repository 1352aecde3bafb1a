"""Consent: per-user `personalization` and `marketing` flags, versioned in an append-only register.

`<workdir>/governance/consents.jsonl` holds one record per change, oldest first:

    {"pseudonym": "u_…", "flag": "personalization", "value": false, "at": "…", "source": "api", "by": "svc"}

A user's current consent for a flag is their latest record for it (file order); a user with no
record has the shop's default (`config/privacy.json`, below). Records come from
`PUT /v1/users/{id}/consent`, `shelfwise privacy consent` and the users table's optional
`consent_personalization` / `consent_marketing` columns. A users-table value is recorded only when
it differs from the value that the users table last gave for that user and flag: re-delivering
an old export does not undo a withdrawal made since through the API. Nor does the first table
that names the flag for a user: its "yes" is not recorded over a withdrawal from another source
(a stale export); only a value the table itself changes later is. Nor does a users row that was
delivered before, exactly (an old file sent again: `governance/consent_rows.json` keeps a hash of
each row delivered per pseudonym, erased with the user), nor a row whose `consent_updated_at`
(the shop's own date of the consent) is older than the consent held: the `dated` of the table's
record, the `at` of a withdrawal through the API or the CLI. A consent value that is no yes or no
is read as no consent (fail closed: contract `users` 1.3.0).

Erasure removes a user's records and leaves one tombstone (`{"pseudonym", "erased": at}`): the
register must remember that an erasure happened, not what was consented before it. Like the
erasure register, it holds pseudonyms only.

`config/privacy.json` (every key optional):

    {"default_consent": {"personalization": true, "marketing": true}, "personalized_serving": true}

- `default_consent`: a user without a record has consented (the default) or, set to false, has
  not (an opt-in shop);
- `personalized_serving`: false serves every shopper the non-personalized lists (`serve
  --no-personalization` does the same for one server).

What a missing consent means elsewhere: without `personalization`, the user's events stay in the
warehouse (operations) but training, customer profiles and audiences leave them out, and serving
answers them as a never-seen user; without `marketing`, the user is in no audience export
(`consent_withdrawn(workdir, "marketing", among=...)`). A customer's withdrawal also covers the
anonymous sessions linked to them (anonymous rows of a session their own rows carry: browsing
before logging in), resolved from the curated events whenever a job asks, so a session that
arrives after the withdrawal is covered too; serving follows the link per request, from the
curated events and its spool (`serving._session_links`, through `session_members`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError
from ._audit import AuditLog
from ._privacy import ANONYMOUS_PSEUDONYM_PREFIX, is_anonymous

CONSENTS_FILE = Path("governance") / "consents.jsonl"
PRIVACY_FILE = Path("config") / "privacy.json"
FLAGS = ("personalization", "marketing")
USERS_TABLE_SOURCE = "users table"
# the users-table columns that carry consent (contract `users` >= 1.2.0)
USERS_COLUMNS = {f"consent_{f}": f for f in FLAGS}
# when the shop's system last changed the consent (contract `users` >= 1.3.0)
DATE_COLUMN = "consent_updated_at"
# pseudonym -> the hashes of the users rows delivered for them (`sync_users_table`)
ROWS_SEEN_FILE = Path("governance") / "consent_rows.json"

__all__ = [
    "CONSENTS_FILE",
    "FLAGS",
    "PRIVACY_FILE",
    "ROWS_SEEN_FILE",
    "Consents",
    "PrivacySettings",
    "consent_history",
    "consent_withdrawn",
    "erase_consent",
    "id_lookup",
    "known_users",
    "linked_customers",
    "load_privacy_settings",
    "prune_history",
    "read_register",
    "record_consent",
    "session_members",
    "sync_users_table",
    "users_now",
]


@dataclass(frozen=True)
class PrivacySettings:
    default_consent: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FLAGS, True))
    personalized_serving: bool = True


def load_privacy_settings(workdir: str | Path) -> PrivacySettings:
    path = Path(workdir) / PRIVACY_FILE
    if not path.exists():
        return PrivacySettings()
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ShelfwiseError(f"{path}: not valid JSON: {exc}") from None
    known = {"default_consent", "personalized_serving"}
    if not isinstance(doc, dict) or set(doc) - known:
        raise ShelfwiseError(f"{path}: an object with the keys {sorted(known)}")
    default = dict.fromkeys(FLAGS, True)
    given = doc.get("default_consent", {})
    if not isinstance(given, dict) or set(given) - set(FLAGS):
        raise ShelfwiseError(f"{path}: default_consent maps {list(FLAGS)} to true or false")
    for k, v in given.items():
        if not isinstance(v, bool):
            raise ShelfwiseError(f"{path}: default_consent.{k} must be true or false")
        default[k] = v
    serving = doc.get("personalized_serving", True)
    if not isinstance(serving, bool):
        raise ShelfwiseError(f"{path}: personalized_serving must be true or false")
    return PrivacySettings(default, serving)


def read_register(workdir: str | Path) -> list[dict[str, Any]]:
    """Every record of the register, oldest first (tombstones included)."""
    path = Path(workdir) / CONSENTS_FILE
    if not path.exists():
        return []
    return parse_records(path.read_text(encoding="utf-8"), path)


def parse_records(text: str, path: Path, first_line: int = 1) -> list[dict[str, Any]]:
    """The records of register lines (`first_line`: the number of the first, for errors)."""
    out = []
    for n, line in enumerate(text.splitlines(), first_line):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            str(rec["pseudonym"])
            if "erased" not in rec and (rec["flag"] not in FLAGS or not isinstance(rec["value"], bool)):
                raise ValueError("flag or value")
        except (ValueError, KeyError, TypeError) as exc:
            # an unreadable register must stop whoever reads it: skipping a line could turn a
            # withdrawal back into consent
            raise ShelfwiseError(f"{path}:{n}: not a consent record ({exc})") from None
        out.append(rec)
    return out


def _state(
    records: Iterable[dict[str, Any]], state: dict[str, dict[str, bool]] | None = None
) -> dict[str, dict[str, bool]]:
    """pseudonym -> flag -> the latest recorded value (a tombstone clears what came before);
    `state`: the state so far, updated in place with later records."""
    state = {} if state is None else state
    for rec in records:
        if "erased" in rec:
            state.pop(rec["pseudonym"], None)
        else:
            state.setdefault(rec["pseudonym"], {})[rec["flag"]] = rec["value"]
    return state


@dataclass(frozen=True)
class Consents:
    """The current consent of every recorded user, with the shop's default for the others."""

    state: dict[str, dict[str, bool]]
    default: dict[str, bool]

    @classmethod
    def of(cls, workdir: str | Path) -> Consents:
        return cls(_state(read_register(workdir)), load_privacy_settings(workdir).default_consent)

    def allows(self, pseudonym: str, flag: str) -> bool:
        return self.state.get(pseudonym, {}).get(flag, self.default[flag])

    def current(self, pseudonym: str) -> dict[str, bool]:
        return {f: self.allows(pseudonym, f) for f in FLAGS}


def consent_withdrawn(workdir: str | Path, purpose: str, among: Iterable[str] | None = None) -> set[str]:
    """The pseudonyms that may not be used for `purpose` ("personalization" or "marketing").

    Without `among`: the users whose latest record withdraws it. With `among` (the pseudonyms a
    job is about to use): those of them without consent, the shop's default applied to the
    unrecorded ones, and the anonymous sessions among them linked to a customer without it
    (`linked_customers`: then the warehouse is read). An opt-in shop (default false) needs `among`: the users it has never heard
    from are not in the register."""
    if purpose not in FLAGS:
        raise ValueError(f"purpose {purpose!r}: one of {', '.join(FLAGS)}")
    c = Consents.of(workdir)
    if among is None:
        if not c.default[purpose]:
            raise ValueError(
                f"{purpose}: the shop asks for opt-in consent (config/privacy.json); pass `among`, "
                "the pseudonyms to check"
            )
        return {p for p, flags in c.state.items() if flags.get(purpose) is False}
    out = {p for p in among if not c.allows(p, purpose)}
    # a customer's anonymous sessions are theirs (they browsed, then logged in): an anonymous
    # session linked to a customer without consent is left out with them, whether or not the
    # customer's own rows are among those the job uses (one who only searched, say)
    anonymous = {p for p in among if is_anonymous(p)} - out
    someone_without = not c.default[purpose] or any(f.get(purpose) is False for f in c.state.values())
    if anonymous and someone_without:
        out |= {a for a, customer in linked_customers(workdir, anonymous) if not c.allows(customer, purpose)}
    return out


def linked_customers(workdir: str | Path, anonymous: Iterable[str]) -> set[tuple[str, str]]:
    """(anonymous session's pseudonym, customer's pseudonym) for each of these anonymous sessions
    and each customer whose curated events carry the same session id. Opens the warehouse
    read-only: a caller holding a read-write connection to it in the same process cannot call it."""
    from ..storage import read_only, relation_columns

    anonymous = sorted(anonymous)
    if not anonymous or not (Path(workdir) / "warehouse.duckdb").exists():
        return set()
    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            return set()
        cols = set(relation_columns(con, "curated.events"))
        if "session_id" not in cols:
            return set()
        rows = con.execute(
            "WITH a AS (SELECT DISTINCT user_id, trim(session_id) AS s FROM curated.events "
            "WHERE user_id IN (SELECT unnest(?::VARCHAR[])) AND session_id IS NOT NULL), "
            "c AS (SELECT DISTINCT user_id, trim(session_id) AS s FROM curated.events "
            "WHERE NOT starts_with(user_id, ?) AND session_id IS NOT NULL) "
            "SELECT DISTINCT a.user_id, c.user_id FROM a JOIN c USING (s)",
            [anonymous, ANONYMOUS_PSEUDONYM_PREFIX],
        ).fetchall()
    return {(r[0], r[1]) for r in rows}


def known_users(workdir: str | Path, pseudonyms: Iterable[str]) -> set[str]:
    """Those of `pseudonyms` the shop has seen: a row of the curated users or events, or a
    record of the consent register. Opens the warehouse read-only (see `linked_customers`)."""
    from ..storage import read_only

    wanted = set(pseudonyms)
    found = {r["pseudonym"] for r in read_register(workdir) if "erased" not in r} & wanted
    if wanted - found and (Path(workdir) / "warehouse.duckdb").exists():
        with read_only(workdir) as (con, curated):
            for table in ("users", "events"):
                if table in curated and wanted - found:
                    found |= {
                        r[0]
                        for r in con.execute(
                            f"SELECT DISTINCT user_id FROM curated.{table} "
                            "WHERE user_id IN (SELECT unnest(?::VARCHAR[]))",
                            [sorted(wanted - found)],
                        ).fetchall()
                    }
    return found


def id_lookup(workdir: str | Path, user_id: str, pseudonymize: Any) -> dict[str, Any]:
    """`{"known": bool}` for a shop's user id given a consent (`pseudonymize`: the id's
    pseudonym), with `did_you_mean`, the ids differing in case only that the shop has seen,
    when it has not seen this one: an unsubscribe list in lower case recorded the consent of
    nobody, and the customer stayed opted in. Consent may come before a user's first event: an
    unknown id is said, not refused."""
    try:
        if known_users(workdir, [pseudonymize(user_id)]):
            return {"known": True}
        variants = {
            v: pseudonymize(v) for v in {user_id.upper(), user_id.lower(), user_id.capitalize()} - {user_id}
        }
        hits = known_users(workdir, variants.values())
    except Exception:  # noqa: BLE001 - a warehouse busy with a load (or an absorb): not known
        # whether the id is seen; the consent is recorded all the same (a withdrawal must never
        # wait on, or fail for, a lookup that only informs)
        return {"known": None}
    out: dict[str, Any] = {"known": False}
    matches = sorted(v for v, p in variants.items() if p in hits)
    if matches:
        out["did_you_mean"] = matches
    return out


def session_members(
    workdir: str | Path, *, users: Iterable[str] = (), sessions: Iterable[str] = ()
) -> dict[str, set[str]]:
    """session id (trimmed) -> every pseudonym whose curated events carry it, for the sessions
    that one of `users` took part in and for `sessions`: the facts `linked_customers` reads, for
    a caller (serving) that weighs consent itself. Opens the warehouse read-only (see
    `linked_customers`)."""
    from ..storage import read_only, relation_columns

    users, sessions = sorted(set(users)), sorted({s.strip() for s in sessions})
    if not (users or sessions) or not (Path(workdir) / "warehouse.duckdb").exists():
        return {}
    with read_only(workdir) as (con, curated):
        if "events" not in curated:
            return {}
        cols = set(relation_columns(con, "curated.events"))
        if "session_id" not in cols:
            return {}
        rows = con.execute(
            "WITH s AS (SELECT DISTINCT trim(session_id) AS s FROM curated.events "
            "WHERE user_id IN (SELECT unnest(?::VARCHAR[])) AND session_id IS NOT NULL "
            "UNION SELECT unnest(?::VARCHAR[])) "
            "SELECT DISTINCT trim(e.session_id), e.user_id FROM curated.events e "
            "JOIN s ON trim(e.session_id) = s.s WHERE e.user_id IS NOT NULL",
            [users, sessions],
        ).fetchall()
    out: dict[str, set[str]] = {}
    for session, user in rows:
        out.setdefault(session, set()).add(user)
    return out


@contextmanager
def _register_lock(workdir: Path) -> Iterator[None]:
    """Appends and rewrites (erasure, retention) of the register one at a time: an append that
    landed between a rewrite's read and its rename would go to the replaced file and be lost."""
    lock = workdir / CONSENTS_FILE.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rewrite(path: Path, records: list[dict[str, Any]], suffix: str) -> None:
    tmp = path.with_name(path.name + suffix)
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    tmp.replace(path)


def _append(workdir: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    path = workdir / CONSENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    # one O_APPEND write: servers that watch the register never read half a batch
    with _register_lock(workdir):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def record_consent(
    workdir: str | Path,
    pseudonym: str,
    changes: Mapping[str, bool | None],
    *,
    source: str,
    actor: str | None = None,
) -> dict[str, Any]:
    """Append the given flags (None: left as it is) for one user; audited with the pseudonym.
    Returns `{"pseudonym", "recorded", "consent", "reports_removed"}` (consent: the current
    state, defaults applied; reports_removed: the reports naming the user that a withdrawn
    personalization consent removed)."""
    workdir = Path(workdir)
    unknown = set(changes) - set(FLAGS)
    if unknown:
        raise ShelfwiseError(f"consent: unknown flag(s) {sorted(unknown)}; known: {', '.join(FLAGS)}")
    given = {f: v for f, v in changes.items() if v is not None}
    if not given:
        raise ShelfwiseError(f"consent: give at least one of {', '.join(FLAGS)}")
    at = datetime.now(UTC).isoformat()
    by = actor or _audit_actor()
    records = [
        {"pseudonym": pseudonym, "flag": f, "value": bool(v), "at": at, "source": source, "by": by}
        for f, v in given.items()
    ]
    _append(workdir, records)
    AuditLog(workdir).append(
        "privacy.consent", actor=actor, pseudonym=pseudonym, changes=given, source=source, users=1
    )
    removed: list[str]
    if given.get("personalization") is False:
        # "in no figure": the reports that name the user (the customers report's at-risk lists)
        # go, as at an erasure, and are made again without them by running the report again
        from ._erase import drop_reports_naming

        removed = drop_reports_naming(workdir, None, [pseudonym])
    else:
        removed = []
    return {
        "reports_removed": removed,
        "pseudonym": pseudonym,
        "recorded": len(records),
        "at": at,
        "consent": Consents.of(workdir).current(pseudonym),
    }


def _audit_actor() -> str:
    from ._audit import _ACTING, _os_user

    return _ACTING.get() or os.environ.get("SHELFWISE_AS") or _os_user()


def _row_hash(names: list[str], row: tuple[Any, ...]) -> str:
    """A curated users row's identity: the same row delivered again hashes the same."""
    doc = json.dumps(sorted(zip(names, (str(v) for v in row), strict=True)), ensure_ascii=False)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _naive_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


def _read_rows_seen(workdir: Path) -> dict[str, list[str]]:
    path = workdir / ROWS_SEEN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def sync_users_table(
    workdir: str | Path, *, actor: str | None = None, counts: dict[str, int] | None = None
) -> int:
    """Record the consent columns of the curated users table where they changed since the users
    table last gave them (see the module doc); returns the records appended (audited when > 0).
    `counts` (when given) receives `resent` and `older`: the consent values not recorded because
    their row was delivered before, or dated (`consent_updated_at`) before the consent held."""
    from ..storage import read_only, relation_columns
    from ._compile import q

    workdir = Path(workdir)
    if not (workdir / "warehouse.duckdb").exists():
        return 0
    with read_only(workdir) as (con, curated):
        if "users" not in curated:
            return 0
        names = list(relation_columns(con, "curated.users"))
        cols = [c for c in USERS_COLUMNS if c in names]
        if not cols:
            return 0
        all_rows = con.sql(
            f"SELECT {', '.join(q(n) for n in names)} FROM curated.users WHERE user_id IS NOT NULL"
        ).fetchall()
    at_col = names.index(DATE_COLUMN) if DATE_COLUMN in names else None
    # (user, date, hash, values of `cols`)
    rows = [
        (
            r[names.index("user_id")],
            _naive_utc(r[at_col]) if at_col is not None else None,
            _row_hash(names, r),
            [r[names.index(c)] for c in cols],
        )
        for r in all_rows
    ]
    seen = _read_rows_seen(workdir)
    last: dict[tuple[str, str], bool] = {}
    # when the consent held was given: a users-table record's `dated` (the shop's own date, when
    # its table has one), another source's `at` (the API, the CLI record it as it happens)
    held_since: dict[tuple[str, str], datetime | None] = {}
    # the latest record from any source: a grant the users table gives for the first time does
    # not undo a withdrawal the shopper made through another channel (the API, the CLI): a stale
    # export must not re-grant what was withdrawn; a table that changes its value later does
    withdrawn_elsewhere: set[tuple[str, str]] = set()
    for rec in read_register(workdir):
        if "erased" in rec:
            for f in FLAGS:
                last.pop((rec["pseudonym"], f), None)
                withdrawn_elsewhere.discard((rec["pseudonym"], f))
            continue
        key = (rec["pseudonym"], rec["flag"])
        from_table = rec.get("source") == USERS_TABLE_SOURCE
        held_since[key] = _naive_utc(rec.get("dated") if from_table else rec.get("at"))
        if from_table:
            last[key] = rec["value"]
            withdrawn_elsewhere.discard(key)
        elif rec["value"]:
            withdrawn_elsewhere.discard(key)
        else:
            withdrawn_elsewhere.add(key)
    at = datetime.now(UTC).isoformat()
    by = actor or _audit_actor()
    new = []
    kept_withdrawn = resent = older = 0
    seen_now: dict[str, list[str]] = {}
    for user, dated, row_hash, values in rows:
        earlier = seen.get(user, [])
        seen_now[user] = earlier if row_hash in earlier else [*earlier, row_hash]
        for col, v in zip(cols, values, strict=True):
            flag = USERS_COLUMNS[col]
            if v is None or last.get((user, flag)) == bool(v):
                continue
            if row_hash in earlier and v:
                # this very row was delivered before (an old file sent again): its grant already
                # had its say, and what was recorded since stands. A withdrawal counts again (a
                # no -> yes -> no of a file without dates sends the first row again: fail closed)
                resent += 1
                continue
            since = held_since.get((user, flag))
            if dated is not None and since is not None and dated < since:
                older += 1  # dated before the consent held: a stale export does not overrule it
                continue
            if v and (user, flag) not in last and (user, flag) in withdrawn_elsewhere:
                kept_withdrawn += 1
                continue
            rec = {"pseudonym": user, "flag": flag, "value": bool(v), "at": at, "source": USERS_TABLE_SOURCE}
            if dated is not None:
                rec["dated"] = dated.isoformat()
            new.append({**rec, "by": by})
    _append(workdir, new)
    _write_rows_seen(workdir, seen_now)
    if counts is not None:
        counts.update(resent=resent, older=older, kept_withdrawn=kept_withdrawn)
    if new:
        AuditLog(workdir).append(
            "privacy.consent",
            actor=actor,
            source=USERS_TABLE_SOURCE,
            records=len(new),
            users=len({r["pseudonym"] for r in new}),
            withdrawn=sum(not r["value"] for r in new),
            kept_withdrawn=kept_withdrawn,
            kept_resent=resent,
            kept_older=older,
        )
    withdrew = sorted({r["pseudonym"] for r in new if r["flag"] == "personalization" and not r["value"]})
    if withdrew:  # "in no figure": as a withdrawal through the CLI, the API or the console
        from ._erase import drop_reports_naming

        drop_reports_naming(Path(workdir), None, withdrew)
    return len(new)


def _write_rows_seen(workdir: Path, seen: dict[str, list[str]]) -> None:
    """The users rows each user's table delivered (hashes, by pseudonym): what tells an old
    file sent again from a new statement. Rewritten whole, under the register's lock."""
    (workdir / ROWS_SEEN_FILE).parent.mkdir(parents=True, exist_ok=True)
    with _register_lock(workdir):
        # a user erased since this load read the users table keeps no hashes (the erasure took
        # theirs under this lock; the load's copy must not bring them back)
        erased = {r["pseudonym"] for r in read_register(workdir) if "erased" in r}
        merged = {**_read_rows_seen(workdir), **seen}
        _store_rows_seen(workdir, {k: v for k, v in merged.items() if k not in erased})


def _store_rows_seen(workdir: Path, seen: dict[str, list[str]]) -> None:
    """Write the row hashes beside the file and rename (a file cut short would stop every later
    sync); the caller holds the register's lock."""
    path = workdir / ROWS_SEEN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(seen, sort_keys=True))
    tmp.replace(path)


def users_now(con: Any, workdir: str | Path, relation: str = "curated.users") -> str:
    """A SELECT of the users table `relation` whose `consent_personalization` and
    `consent_marketing` columns say the consent in force now: the register's latest record, the
    shop's default for a user it never recorded (the table's own columns say what the last
    delivery gave, which a withdrawal since through the API or the CLI has overruled). What a
    users export writes; the register's current state is registered on `con` (a view that lasts
    as long as the connection)."""
    import pyarrow as pa

    c = Consents.of(workdir)
    users = sorted(c.state)
    con.register(
        "_consent_now",
        pa.table(
            {
                "pseudonym": pa.array(users, pa.string()),
                **{f: pa.array([c.state[u].get(f) for u in users], pa.bool_()) for f in FLAGS},
            }
        ),
    )
    from ..storage import relation_columns

    have = relation_columns(con, relation)
    now = {col: f"coalesce(_c.{f}, {str(c.default[f]).lower()})" for col, f in USERS_COLUMNS.items()}
    replace = [f'{now[col]} AS "{col}"' for col in USERS_COLUMNS if col in have]
    added = [f'{now[col]} AS "{col}"' for col in USERS_COLUMNS if col not in have]
    star = f"_u.* REPLACE ({', '.join(replace)})" if replace else "_u.*"
    return (
        f"SELECT {', '.join([star, *added])} FROM {relation} AS _u "
        "LEFT JOIN _consent_now AS _c ON _c.pseudonym = _u.user_id"
    )


def consent_history(workdir: str | Path, pseudonym: str) -> list[dict[str, Any]]:
    """One user's records, oldest first (their tombstones included)."""
    return [r for r in read_register(workdir) if r["pseudonym"] == pseudonym]


def erase_consent(workdir: str | Path, pseudonym: str) -> int:
    """Erasure: the user's records leave the register, one tombstone stays; returns the records
    removed."""
    path = Path(workdir) / CONSENTS_FILE
    if (Path(workdir) / ROWS_SEEN_FILE).exists():
        with _register_lock(Path(workdir)):  # the hashes of the user's rows delivered: theirs too
            seen = _read_rows_seen(Path(workdir))
            if seen.pop(pseudonym, None) is not None:
                _store_rows_seen(Path(workdir), seen)
    if not path.exists():
        return 0
    with _register_lock(Path(workdir)):
        records = read_register(workdir)
        kept = [r for r in records if r["pseudonym"] != pseudonym]
        if len(kept) == len(records):
            return 0  # nothing recorded: nothing to remember either
        kept.append({"pseudonym": pseudonym, "erased": datetime.now(UTC).isoformat()})
        _rewrite(path, kept, ".erase-tmp")
    return len(records) - (len(kept) - 1)  # the tombstone is not a removed record


def prune_history(workdir: str | Path, before: datetime) -> int:
    """Retention: superseded records (a later record of the same user and flag exists) dated
    before `before` leave the register; each user's current records and every tombstone stay
    (the current state is what serving and training obey). Returns the records removed."""
    path = Path(workdir) / CONSENTS_FILE
    if not path.exists():
        return 0
    with _register_lock(Path(workdir)):
        return _prune(path, workdir, before if before.tzinfo else before.replace(tzinfo=UTC))


def _prune(path: Path, workdir: str | Path, before: datetime) -> int:
    records = read_register(workdir)
    latest: dict[tuple[str, str], int] = {}
    # the users table's latest word per user and flag stays too: `sync_users_table` records a
    # users-table value only when it differs from that word, so pruning it would let the next
    # load of an unchanged users table undo a later withdrawal (API, CLI)
    from_table: dict[tuple[str, str], int] = {}
    for i, r in enumerate(records):
        if "erased" not in r:
            latest[(r["pseudonym"], r["flag"])] = i
            if r.get("source") == USERS_TABLE_SOURCE:
                from_table[(r["pseudonym"], r["flag"])] = i

    def old(r: dict[str, Any]) -> bool:
        at = datetime.fromisoformat(str(r["at"]))
        return (at if at.tzinfo else at.replace(tzinfo=UTC)) < before

    kept = [
        r
        for i, r in enumerate(records)
        if "erased" in r
        or i in (latest[(r["pseudonym"], r["flag"])], from_table.get((r["pseudonym"], r["flag"])))
        or not old(r)
    ]
    if len(kept) == len(records):
        return 0
    _rewrite(path, kept, ".retention-tmp")
    return len(records) - len(kept)
