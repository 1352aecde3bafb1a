"""The quarantine: every rejected row, with its reason, source file and line; listed, exported, re-processed."""

from __future__ import annotations

import builtins
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError

# the row statuses a listing filters on (`all`: every one); `withheld`: a re-processed row of
# an erased user
STATUSES = ("open", "released", "superseded", "redelivered", "withheld", "all")


def unknown_filters(
    table: str | None, reason: str | None, status: str | None, summary: list[dict[str, Any]]
) -> list[tuple[str, str, list[str]]]:
    """The filters of a listing no row could match, each as (filter, value, the known values):
    an unknown value listed nothing, as if nothing were quarantined. A table or reason is known
    when the contracts or the reason codes know it, or the quarantine holds rows of it
    (`summary`, `Quarantine.summary`'s rows); None: any. The CLI and the console say them."""
    from ._contracts import CONTRACTS
    from ._reasons import Reason

    out = []
    for name, value, known in (
        ("status", status, list(STATUSES)),
        ("table", table, [*CONTRACTS, *(s["table"] for s in summary)]),
        ("reason", reason, [*(r.value for r in Reason), *(s["reason"] for s in summary)]),
    ):
        if value is not None and value not in known:
            out.append((name, value, list(dict.fromkeys(known))))
    return out


class UnknownFilter(ShelfwiseError):
    """A listing's filter no row could match, with the valid values (`unknown_filters`)."""

    def __init__(self, name: str, value: str, known: list[str]):
        self.name, self.value, self.known = name, value, known
        super().__init__(self.said())

    def said(self, prefix: str = "") -> str:
        """The refusal, the filter named as the caller names it (`prefix`: "--" on the command line)."""
        return f"{prefix}{self.name} {self.value!r}: unknown; choose one of {', '.join(self.known)}"


def refuse_unknown_filters(
    table: str | None, reason: str | None, status: str | None, summary: list[dict[str, Any]]
) -> None:
    """`UnknownFilter` for the first filter no row could match (`unknown_filters`)."""
    for name, value, known in unknown_filters(table, reason, status, summary)[:1]:
        raise UnknownFilter(name, value, known)


class Quarantine:
    """Read and act on `quarantine.rows` of a workdir."""

    def __init__(self, workdir: str | Path):
        self.workdir = Path(workdir)

    def _read(self, sql: str, params: builtins.list[Any] | None = None) -> builtins.list[Any]:
        """Rows of a query on `quarantine.rows` through a read-only connection (listing takes no
        write lock and opens in a fraction of the time); [] without a warehouse or quarantine."""
        from ..storage import read_only

        if not (self.workdir / "warehouse.duckdb").exists():
            return []
        with read_only(self.workdir) as (con, _):
            found = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quarantine' AND table_name = 'rows'"
            ).fetchone()
            if not found or not found[0]:
                return []
            return con.execute(sql, params or []).fetchall()

    def summary(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT table_name, reason, status, count(*) FROM quarantine.rows GROUP BY ALL ORDER BY 1, 4 DESC"
        )
        return [{"table": r[0], "reason": r[1], "status": r[2], "rows": int(r[3])} for r in rows]

    def list(
        self,
        table: str | None = None,
        reason: str | None = None,
        status: str | None = "open",
        limit: int | None = 100,
        after: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Rows in quarantine order; `after`: only those past that id (a page after a page)."""
        where, params = self._where(table, reason, status)
        if after is not None:
            where = f"{where} AND quarantine_id > ?" if where else "WHERE quarantine_id > ?"
            params.append(int(after))
        sql = (
            "SELECT quarantine_id, run_id, table_name, source_file, source_line, reason, reasons, detail, raw, status "
            f"FROM quarantine.rows {where} ORDER BY quarantine_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._read(sql, params)
        keys = (
            "quarantine_id",
            "run_id",
            "table",
            "source_file",
            "source_line",
            "reason",
            "reasons",
            "detail",
            "raw",
            "status",
        )
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["raw"] = json.loads(d["raw"]) if d["raw"] else None
            out.append(d)
        return out

    @staticmethod
    def _where(table: str | None, reason: str | None, status: str | None) -> tuple[str, builtins.list[Any]]:
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        for col, val in (("table_name", table), ("reason", reason), ("status", status)):
            if val:
                clauses.append(f"{col} = ?")
                params.append(val)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def export(self, out: str | Path, table: str | None = None, reason: str | None = None) -> int:
        """Write open quarantined rows as JSON lines: the raw fields plus `_quarantine_id`, `_reason`, `_detail`.

        Fix the fields in that file, then give it to `reprocess`.
        """
        rows = self.list(table, reason, "open", limit=None)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # raw rows hold raw ids and unmasked text (steward-only): readable by the owner alone,
        # as a subject access export is
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # (a file that existed keeps its mode through O_CREAT)
        with open(fd, "w", encoding="utf-8") as fh:
            for r in rows:
                rec = dict(r["raw"] or {})
                rec.update(
                    {
                        "_quarantine_id": r["quarantine_id"],
                        "_table": r["table"],
                        "_reason": r["reason"],
                        "_detail": r["detail"],
                        "_source_file": r["source_file"],
                        "_source_line": r["source_line"],
                    }
                )
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return len(rows)

    def reprocess(
        self, table: str, fixed_file: str | Path | None = None, actor: str | None = None
    ) -> dict[str, Any]:
        """Send quarantined rows of `table` through the governed path again.

        With `fixed_file` (JSON lines written by `export` and edited), the edited rows are used;
        otherwise the open rows are retried as they are (after a contract or catalog change).
        Rows that now pass are added to a new version of the curated table and marked `released`;
        the others stay in quarantine with their new reason. `actor` names who did it in the
        audit entry (default: the CLI's identity, `SHELFWISE_AS`).
        """
        from ._reprocess import reprocess_rows

        if fixed_file is not None and not Path(fixed_file).exists():
            raise ShelfwiseError(f"{fixed_file}: file not found")
        return reprocess_rows(self.workdir, table, fixed_file, actor=actor)
