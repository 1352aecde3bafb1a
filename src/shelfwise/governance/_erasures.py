"""The erasure register (`<workdir>/governance/erasures.jsonl`) as ingestion reads it.

`shelfwise privacy erase` appends `{"pseudonym", "at"}` there. Ingestion withholds the rows of
an erased user dated at or before their (latest) erasure from raw, curated and quarantine alike,
so that a delivery re-sending old rows, or a full reload of an export that still holds them,
does not bring the user back. The register holds pseudonyms only: a load's user ids are
pseudonymized (the keyed HMAC curation uses) and looked up.

Rows dated after the erasure are kept: a shopper who comes back after being erased generates new
data, which the shop may hold as it holds any new customer's (erasure removes what was held,
it does not ban the id). A row is "after" only when its timestamp is valid and later than the
erasure; a row without a valid date, and a row of a table without dates (`users`: a profile
re-delivered from an old export would otherwise restore the attributes), is withheld.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._privacy import Pseudonymizer

ERASURES_FILE = Path("governance") / "erasures.jsonl"
# the reason under which withheld rows are counted in the load report (never a quarantine reason:
# withheld rows are not stored anywhere)
ERASED_USER = "erased_user"

__all__ = ["ERASED_USER", "ERASURES_FILE", "Erasures", "erased_users", "names_erased_user"]


def erased_users(workdir: str | Path) -> dict[str, datetime]:
    """pseudonym -> the time of its latest erasure (naive UTC, as curated timestamps are)."""
    path = Path(workdir) / ERASURES_FILE
    out: dict[str, datetime] = {}
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            pseudo, at = str(rec["pseudonym"]), datetime.fromisoformat(str(rec["at"]))
        except (ValueError, KeyError, TypeError) as exc:
            # a register that cannot be read must stop the load: skipping it would restore users
            raise ValueError(f"{path}:{n}: not an erasure record ({exc})") from exc
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        if pseudo not in out or at > out[pseudo]:
            out[pseudo] = at
    return out


# what separates fields in a line the reader could not split (CSV, TSV, JSON text)
_TOKEN_SPLIT = re.compile(r'[,;\t|"{}\[\]:\r\n]')


def names_erased_user(
    texts: Iterable[str], pseudonymize: Pseudonymizer, erased: dict[str, datetime]
) -> list[bool]:
    """For each line that never became a row (a malformed line): whether one of its fields is
    the id of an erased user. Such a line has no date to tell its age by: it is withheld."""
    out = []
    for text in texts:
        tokens = {t.strip() for t in _TOKEN_SPLIT.split(text or "")}
        tokens.discard("")
        out.append(any(p in erased for p in pseudonymize.many(sorted(tokens))))
    return out


@dataclass(frozen=True)
class Erasures:
    """The register of one workdir, read once per load, with the pseudonymizer to look ids up."""

    erased: dict[str, datetime]  # pseudonym -> latest erasure (naive UTC)
    pseudonymize: Pseudonymizer

    @classmethod
    def of(cls, workdir: str | Path) -> Erasures | None:
        """None when no one was ever erased (the load then takes its direct path)."""
        erased = erased_users(workdir)
        if not erased:
            return None
        return cls(erased, Pseudonymizer.of(workdir))

    def lookup(self, raw_ids: list[str]) -> tuple[list[str], list[tuple[str, datetime]]]:
        """The pseudonyms of `raw_ids`, and (raw id, erased at) of those that were erased."""
        pseudos = self.pseudonymize.many(raw_ids)
        hits = [(r, self.erased[p]) for r, p in zip(raw_ids, pseudos, strict=True) if p in self.erased]
        return pseudos, hits

    def withholds(self, event: dict[str, Any]) -> bool:
        """Whether ingestion would withhold this served event (a JSON object as /v1/events took
        it): its user, or for an anonymous event its session's, was erased at or after its time
        (or it has no valid time). What absorbing leaves out of the archive, and what a server
        restarting does not replay into its online state."""
        from ._compile import MISSING_VALUES, trim_id
        from ._privacy import anonymous_user_id
        from ._row_check import parse_timestamp

        user = trim_id(event.get("user_id") or "")
        if not user or user in MISSING_VALUES:
            session = trim_id(event.get("session_id") or "")
            if not session or session in MISSING_VALUES:
                return False
            user = anonymous_user_id(session)
        at = self.erased.get(self.pseudonymize(user))
        if at is None:
            return False
        ts = parse_timestamp(str(event.get("timestamp") or "").strip())
        # as ingestion: kept only when dated after the erasure and no later than now (a day of
        # clock skew): a future date must not bring an erased user back
        now = datetime.now(UTC).replace(tzinfo=None)
        return ts is None or ts <= at or ts > now + timedelta(days=1)

    def split_lines(
        self, lines: Sequence[tuple[int | None, str, str]]
    ) -> tuple[list[tuple[int | None, str, str]], int]:
        """Lines that never became rows (line, text, why): those naming no erased user, and
        how many named one (withheld)."""
        if not lines:
            return list(lines), 0
        hits = names_erased_user((text for _, text, _ in lines), self.pseudonymize, self.erased)
        kept = [line for line, hit in zip(lines, hits, strict=True) if not hit]
        return kept, len(lines) - len(kept)
