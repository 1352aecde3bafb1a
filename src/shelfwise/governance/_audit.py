"""The audit trail: an append-only, tamper-evident log of what was done to the shop's data.

One JSON object per line in `<workdir>/audit/audit.jsonl`. Each entry carries the sha256 of the
previous entry's canonical form (`prev`) and its own (`hash`), so editing, deleting or reordering
any line breaks the chain from that line on, and `verify` names the first broken line. The log
is written with O_APPEND and fsync: an entry that was acknowledged survives a crash.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit/audit.jsonl"
# the last entry written (seq and hash), kept beside the log: removing the newest lines leaves a
# valid chain, shorter than what was written (a lower bound: an append writes the log first)
AUDIT_HEAD = "audit/head.json"
# an entry's format: 2 = written with the head beside the log (an entry without `v` is older)
FORMAT = 2
GENESIS = "0" * 64
ACTIONS = (
    "ingest",
    "quarantine.reprocess",
    "quarantine.export",
    "train",
    "model.register",
    "model.promote",
    "model.approve",
    "model.rollback",
    "access.denied",
    "rules.change",
    "events.absorb",
    "users.add",
    "users.revoke",
    "users.rotate_key",
    "experiments.change",
    "privacy.erase",
    "privacy.consent",
    "privacy.export",
    "privacy.consent.read",
    "export",
    "recommend.all_users",
    "retention.enforce",
    "insights.customers",
    "ask",
    "insights.demand",
    "insights.replenishment",
    "audiences.build",
    "audiences.export",
    "report.demand",
    "report.audiences",
    "report.customers",
    "report.ask",
    "console.shopper",
)


# who acts in this context: `shelfwise.Shop` sets it around each call, so that the entries of the
# layers below that take no `actor` (ingest, absorb, reprocess) name the Shop's person rather
# than whoever SHELFWISE_AS names in the process environment
_ACTING: ContextVar[str | None] = ContextVar("shelfwise_acting", default=None)


@contextmanager
def acting_as(name: str | None) -> Iterator[None]:
    """Audit entries appended inside this block without an explicit `actor` name `name`."""
    token = _ACTING.set(name)
    try:
        yield
    finally:
        _ACTING.reset(token)


def _canonical(entry: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass
class Verification:
    ok: bool
    entries: int
    first_bad_line: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON document (`ok`, `entries`, `first_bad_line`, `reason`), as
        `IngestReport.to_dict` and `TrainResult.to_dict` give theirs: `json.dumps` refuses the
        object itself."""
        return self.as_dict()


class AuditLog:
    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / AUDIT_FILE
        self.head = Path(workdir) / AUDIT_HEAD

    def _last_hash(self, at: int = 0) -> tuple[str, int, str | None]:
        """(the last entry's hash, the number of entries, the hash of entry `at` or None)."""
        if not self.path.exists():
            return GENESIS, 0, None
        last, n, found = GENESIS, 0, None
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    n += 1
                    try:
                        last = json.loads(line)["hash"]
                    except (ValueError, KeyError):
                        last = hashlib.sha256(line.encode()).hexdigest()
                    if n == at:
                        found = last
        return last, n, found

    def _last_line(self) -> dict[str, Any] | None:
        """The log's last entry, read from the file's end; None when it cannot be read as one."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                end = fh.tell()
                chunk = b""
                pos = end
                while pos > 0 and chunk.rstrip(b"\n").count(b"\n") < 1:
                    step = min(8192, pos)
                    pos -= step
                    fh.seek(pos)
                    chunk = fh.read(step) + chunk
            line = chunk.rstrip(b"\n").rsplit(b"\n", 1)[-1]
            entry = json.loads(line)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or not entry.get("hash"):
            return None
        return entry

    def _completed_runs(self) -> int:
        """The runs the workdir's lineage file records as completed (`lineage/openlineage.jsonl`)."""
        return _completed_runs_in(self.path.parent.parent / "lineage" / "openlineage.jsonl")

    def head_entry(self) -> dict[str, Any] | None:
        """The log's last entry's seq and hash: what to record outside the workdir (an anchor)."""
        last = self._last_line()
        return None if last is None else {"seq": last["seq"], "hash": last["hash"]}

    def _read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads(self.head.read_text())
        except (OSError, ValueError):
            return None  # (a log written before the head was kept)
        return head if isinstance(head, dict) else None

    def append(
        self, action: str, *, actor: str | None = None, outcome: str = "ok", **details: Any
    ) -> dict[str, Any]:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            # one writer at a time, from reading the last hash to writing the entry chained to
            # it: a CLI run beside a server (or two server workers) would otherwise both chain to
            # the same entry, and the log would read as tampered with
            fcntl.flock(fd, fcntl.LOCK_EX)
            head = self._read_head()
            last = self._last_line()
            at_head: str | None
            if (
                head is not None
                and last is not None
                and (last["seq"], last["hash"]) == (head.get("seq"), head.get("hash"))
            ):
                # the usual case: the log ends with the entry the head names (read from the
                # file's end, not the whole log: an append cost grew with the log)
                prev, n, at_head = str(last["hash"]), int(last["seq"]), str(last["hash"])
            else:
                prev, n, at_head = self._last_hash(int(head.get("seq", 0)) if head else 0)
            entry = self._entry(action, actor, outcome, details, prev, n)
            os.write(fd, (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
            os.fsync(fd)
            # the head moves on only from a log that still holds it: after lines were removed it
            # stays where it was, so the next entries cannot hide the removal (`verify`)
            # (and a log of entries written with a head that has none lost it: it is not made
            # again, so that `verify` keeps saying so after the next entry)
            lost = head is None and last is not None and _with_head(last)
            if (head is None and not lost) or (head is not None and at_head == head.get("hash")):
                tmp = self.head.with_name(self.head.name + ".tmp")
                tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}))
                tmp.replace(self.head)
        finally:
            os.close(fd)  # (releases the lock)
        return entry

    def _entry(
        self, action: str, actor: str | None, outcome: str, details: dict[str, Any], prev: str, n: int
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "v": FORMAT,
            "seq": n + 1,
            "at": datetime.now(UTC).isoformat(),
            "action": action,
            "actor": actor_name(actor),
            "outcome": outcome,
            "details": details,
            "prev": prev,
        }
        entry["hash"] = hashlib.sha256(_canonical(entry)).hexdigest()
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append({"unparseable": line.rstrip("\n")})
        return out

    def verify(self, anchor: tuple[int, str] | None = None) -> Verification:
        """Walk the chain. `anchor` (seq, hash): an entry's hash recorded outside the workdir
        earlier (`shelfwise audit` prints the head): the log must still hold it, whatever its
        head file says - a log rewritten whole with its head (every hash recomputed) passes the
        chain but not an anchor taken before."""
        got = self._verify()
        if got.ok and anchor is not None:
            seq, want = anchor
            found = next((e for e in self.entries() if e.get("seq") == seq), None)
            if found is None:
                return Verification(False, got.entries, None, f"the anchor's entry {seq} is not in the log")
            if found.get("hash") != want:
                return Verification(
                    False, got.entries, None, f"entry {seq}'s hash is not the anchor's: the log was rewritten"
                )
        return got

    def _verify(self) -> Verification:
        prev = GENESIS
        n = 0
        marked = False
        head = self._read_head()
        if not self.path.exists() or self.path.stat().st_size == 0:
            if head is not None:
                return Verification(
                    False, 0, None, f"the log is gone but entry {head.get('seq')} was written"
                )
            runs = self._completed_runs()
            if runs:
                # every audited command records its run: a workdir with runs and no log lost it
                return Verification(
                    False,
                    0,
                    None,
                    f"the log is gone but the workdir's lineage records {runs} completed run(s)",
                )
            return Verification(True, 0)
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                n += 1
                try:
                    entry = json.loads(line)
                except ValueError:
                    return Verification(False, n, lineno, "not valid JSON")
                if entry.get("prev") != prev:
                    return Verification(
                        False,
                        n,
                        lineno,
                        "chain broken: `prev` is not the previous entry's hash (a line was removed, reordered or edited)",
                    )
                if entry.get("seq") != n:
                    return Verification(
                        False, n, lineno, f"sequence number {entry.get('seq')} where {n} was expected"
                    )
                if hashlib.sha256(_canonical(entry)).hexdigest() != entry.get("hash"):
                    return Verification(
                        False, n, lineno, "content does not match its hash (the entry was edited)"
                    )
                prev = entry["hash"]
                marked = marked or _with_head(entry)
                if head is not None and entry["seq"] == head.get("seq") and entry["hash"] != head.get("hash"):
                    return Verification(
                        False, n, lineno, "the entry at the recorded head differs from the one written"
                    )
        if head is None and n and marked:
            # entries written with a head beside the log: one with none lost it (removing the
            # newest lines and the head hid the removal)
            return Verification(
                False,
                n,
                None,
                f"the head record ({AUDIT_HEAD}) is missing: the log's newest lines may have been removed with it",
            )
        if head is not None and n < int(head.get("seq", 0)):
            return Verification(
                False,
                n,
                None,
                f"the log ends at entry {n} but entry {head.get('seq')} was written (its newest lines were removed)",
            )
        return Verification(True, n)


def _completed_runs_in(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(
                1 for line in fh if b'"eventType": "COMPLETE"' in line or b'"eventType":"COMPLETE"' in line
            )
    except OSError:
        return 0


def file_named(out: str | Path) -> str:
    """An output's name as an audit entry keeps it: a local path whole (resolved: whoever reads
    the entry later runs from another directory), a URI (`s3://...`) as given."""
    text = str(out)
    return text if "://" in text else str(Path(text).resolve())


def _with_head(entry: dict[str, Any]) -> bool:
    """Whether an entry was written with the head beside the log (format 2 on)."""
    return isinstance(entry.get("v"), int) and entry["v"] >= FORMAT


def actor_name(actor: str | None = None) -> str:
    """Who an entry names: `actor`, else the person the code runs as (`acting`), else
    `SHELFWISE_AS`, else the operating system's user (a shop without registered people)."""
    return actor or _ACTING.get() or os.environ.get("SHELFWISE_AS") or _os_user()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
