"""Customer profiles as served (`GET /v1/users/{id}/profile`): fitted once per data version and
kept in the workdir, so that no request refits the customers model.

`<workdir>/insights/profiles/<key>.jsonl` holds one line per user, `{"user": pseudonym, ...the
profile's fields}`, as of the latest curated event with the default 90-day horizon; `<key>`
names the curated events' and products' table versions and content hashes. The first request
with no profiles at all fits them (waiting up to `WAIT_S`; beyond that the route answers 503 with
Retry-After); later, new data is fitted in the background while the previous profiles answer.
Other server processes read the same file; older files are removed when a new one is written. Lines are keyed by pseudonym, never the shop's id (the route pseudonymizes the id it
is asked for), and erasure removes the user's line (governance/_erase.py) as it removes them
from the warehouse, which also changes the key.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from ..governance._consent import Consents

PROFILES_DIR = Path("insights") / "profiles"
HORIZON_DAYS = 90
WAIT_S = 300.0  # a request finding no profiles at all waits this long for the first fit


def profiles_key(workdir: str | Path) -> str | None:
    """The data version the profiles are fitted on (None: no curated events)."""
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT table_name, max(version), arg_max(content_hash, version) FROM meta.table_versions "
            "WHERE table_name IN ('events', 'products') GROUP BY 1 ORDER BY 1"
        ).fetchall()
    if not any(r[0] == "events" for r in rows):
        return None
    key = "_".join(f"{t}-v{v}-{(h or '')[:12]}" for t, v, h in rows)
    # a consent change (a withdrawal leaves the profiles) is a new version of what they are fitted on
    from ..governance._consent import CONSENTS_FILE

    register = Path(workdir) / CONSENTS_FILE
    return f"{key}_c{register.stat().st_size}" if register.exists() else key


def write_profiles(workdir: str | Path, key: str) -> Path:
    """Fit the profiles on every curated event and store them under `key` (atomically)."""
    from ._customers import profile_customers
    from ._data import load_curated, require_purchase
    from ._run import _ROUND, PROFILE_FIELDS, _clean

    workdir = Path(workdir)
    # profiles are profiling: users without personalization consent are left out
    events, products, at = load_curated(workdir, None, consent="personalization")
    require_purchase(events, at, workdir)
    prof, info = profile_customers(events, products, at, HORIZON_DAYS)
    folder = workdir / PROFILES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.jsonl"
    tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    as_of = pd.Timestamp(at).isoformat()
    with open(tmp, "w", encoding="utf-8") as fh:
        for pseudo, row in prof.iterrows():
            rec: dict[str, Any] = {"user": str(pseudo), "as_of": as_of, "horizon_days": HORIZON_DAYS}
            for f in PROFILE_FIELDS[1:]:
                v = row[f]
                rec[f] = int(v) if f == "frequency" else _clean(v, _ROUND.get(f))  # as `insights customers`
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(path)
    for old in folder.glob("*.jsonl"):
        if old != path:
            old.unlink(missing_ok=True)
    return path


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                out[rec.pop("user")] = rec
    return out


class ProfileStore:
    """The served profiles of one workdir, for one server process: `get(pseudonym)` answers from
    memory, reloading when the warehouse or the erasure register changes; `None` while the fit
    for new data runs (in a background thread)."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._key: str | None = None
        self._profiles: dict[str, dict[str, Any]] | None = None
        self._erased: set[str] = set()
        self._consents: Consents | None = None
        self._fitting: threading.Thread | None = None
        self._failed: str | None = None
        self.error: str | None = None

    def _mtimes(self) -> tuple[int, ...]:
        from ..governance._erasures import ERASURES_FILE

        def mtime(p: Path) -> int:
            try:
                return p.stat().st_mtime_ns
            except FileNotFoundError:
                return 0

        from ..governance._consent import CONSENTS_FILE, PRIVACY_FILE

        return (
            mtime(self.workdir / "warehouse.duckdb"),
            mtime(self.workdir / ERASURES_FILE),
            # a withdrawal of personalization consent (or an opt-in shop's setting) hides a
            # profile at once, before the profiles are refitted without the user
            mtime(self.workdir / CONSENTS_FILE),
            mtime(self.workdir / PRIVACY_FILE),
        )

    def _refresh(self) -> None:
        stamp = self._mtimes()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        from ..governance._consent import Consents
        from ..governance._erasures import ERASURES_FILE

        self._consents = Consents.of(self.workdir)
        erasures = self.workdir / ERASURES_FILE
        if erasures.exists():
            self._erased = {
                json.loads(x)["pseudonym"] for x in erasures.read_text().splitlines() if x.strip()
            }
        try:
            key = profiles_key(self.workdir)
        except Exception:  # noqa: BLE001 - the warehouse is being written (absorb): look again next call
            self._stamp = None
            return
        if key == self._key:
            return
        if key is None:
            self._key, self._profiles = None, {}
            return
        path = self.workdir / PROFILES_DIR / f"{key}.jsonl"
        if path.exists():
            self._key, self._profiles = key, read_profiles(path)
        elif self._fitting is None and key != self._failed:
            # the profiles of the previous data keep answering while the new ones are fitted
            self._fitting = threading.Thread(target=self._fit, args=(key,), daemon=True, name="profiles-fit")
            self._fitting.start()

    def _fit(self, key: str) -> None:
        try:
            profiles = read_profiles(write_profiles(self.workdir, key))
            with self._lock:
                self._key, self._profiles, self.error = key, profiles, None
        except Exception as exc:  # noqa: BLE001 - reported to callers; retried on new data
            with self._lock:
                if _busy(exc):  # the warehouse held by a writer (an absorb): tried at the next call
                    self.error = None
                else:
                    self._failed, self.error = key, f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._fitting = None
                self._stamp = None  # data that came while fitting is looked at on the next call

    @property
    def fitting(self) -> bool:
        """Whether a fit runs now (a failed one is tried again only on new data)."""
        with self._lock:
            return self._fitting is not None

    def get(self, pseudonym: str, wait_s: float = WAIT_S) -> tuple[bool, dict[str, Any] | None]:
        """(ready, profile). With no profiles at all yet, the call waits for the fit (up to
        `wait_s`); once some exist, newer data is fitted in the background while they answer."""
        with self._lock:
            self._refresh()
            fitting = self._fitting if self._profiles is None else None
        if fitting is not None:
            fitting.join(wait_s)
            with self._lock:
                self._refresh()
        with self._lock:
            if self._profiles is None:
                return False, None
            if pseudonym in self._erased:
                return True, None
            if self._consents is not None and not self._consents.allows(pseudonym, "personalization"):
                return True, None  # profiling is what they withdrew
            return True, self._profiles.get(pseudonym)

    def why_none(self, pseudonym: str) -> str:
        """Why `get` answered no profile for a user: "erased", "withdrawn" (they withdrew the
        personalization consent), "not_given" (an opt-in shop without their consent) or
        "unknown" (no events of theirs up to the profiles' date)."""
        with self._lock:
            if pseudonym in self._erased:
                return "erased"
            c = self._consents
            if c is not None and not c.allows(pseudonym, "personalization"):
                recorded = c.state.get(pseudonym, {}).get("personalization")
                return "withdrawn" if recorded is False else "not_given"
            return "unknown"

    def none_said(self, pseudonym: str, user_id: str) -> str:
        """Why there is no profile of `user_id`, in words (the route's 404, the API's error)."""
        return {
            "erased": f"user {user_id!r} was erased: no profile",
            "withdrawn": f"no profile for user {user_id!r}: they withdrew personalization consent "
            "(no profiling)",
            "not_given": f"no profile for user {user_id!r}: the shop asks for personalization "
            "consent (opt-in) and has none of theirs (no profiling)",
        }.get(self.why_none(pseudonym), f"unknown user {user_id!r}: no events of theirs in the warehouse")

    @property
    def key(self) -> str | None:
        return self._key


__all__ = ["HORIZON_DAYS", "PROFILES_DIR", "ProfileStore", "profiles_key", "read_profiles", "write_profiles"]


def _busy(exc: BaseException) -> bool:
    """Whether a fit failed on the warehouse being written by another process (a lock): not the
    data's fault, so not a failure to keep (the profile route's 409 is for the data's)."""
    import duckdb

    from ..storage._warehouse import writer_holds_it

    return isinstance(exc, duckdb.IOException) and writer_holds_it(exc)
