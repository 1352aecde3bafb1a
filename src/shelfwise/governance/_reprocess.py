"""Re-processing quarantined rows through the same governed path (append mode)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError
from ..storage import Warehouse
from ._contracts import CONTRACTS
from ._lineage import DatasetRef, warehouse_namespace
from ._load_state import REPROCESS_JOB


def reprocess_rows(
    workdir: Path, table: str, fixed_file: str | Path | None, actor: str | None = None
) -> dict[str, Any]:
    from ._ingest import Ingestor
    from ._quarantine import Quarantine

    if table not in CONTRACTS:
        raise ShelfwiseError(f"unknown table {table!r} (tables: {', '.join(CONTRACTS)})")
    contract = CONTRACTS[table]
    # the table's open rows, read once: what a file may re-process, and what each row was
    open_rows = {r["quarantine_id"]: r for r in Quarantine(workdir).list(table, status="open", limit=None)}
    not_taken: dict[str, int] = {}
    if fixed_file is not None:
        records = []
        with open(fixed_file, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ShelfwiseError(f"{fixed_file}:{n}: not valid JSON ({exc.msg})") from exc
                if "_quarantine_id" not in rec:
                    raise ShelfwiseError(
                        f"{fixed_file}:{n}: no _quarantine_id (use a file written by quarantine export)"
                    )
                records.append(rec)
        # what a file's rows are not re-processed for, counted (a file of another table's rows,
        # or of rows released already, said "retried 0" and nothing else)
        kept = []
        closed: dict[int, str] | None = None  # (read once, when a row needs it)
        for r in records:
            qid = _as_int(r["_quarantine_id"])  # ("12" as a text names row 12)
            if r.get("_table") not in (None, table):
                why = f"rows of the {r.get('_table')} table (give --table {r.get('_table')})"
            elif qid is not None and qid in open_rows:
                kept.append({**r, "_quarantine_id": qid})
                continue
            else:
                if closed is None and qid is not None:
                    closed = _statuses(workdir, table)
                status = (closed or {}).get(qid) if qid is not None else None
                why = (
                    f"no longer open ({status})"
                    if status
                    else f"no quarantined row of {table} has this _quarantine_id"
                )
            not_taken[why] = not_taken.get(why, 0) + 1
        records = kept
    else:
        records = []
        for r in open_rows.values():
            rec = dict(r["raw"] or {})
            rec["_quarantine_id"] = r["quarantine_id"]
            records.append(rec)
    records, skipped = _fixable(table, records, open_rows, as_is=fixed_file is None)
    if not_taken:
        skipped["not_taken"] = not_taken
    if not records:
        return {"table": table, "retried": 0, "released": 0, "still_quarantined": 0, **skipped}
    tmp = Path(tempfile.mkdtemp(prefix="shelfwise-reprocess-", dir=workdir / "tmp"))
    ids = []
    try:
        with open(tmp / f"{table}.jsonl", "w", encoding="utf-8") as fh:
            for rec in records:
                ids.append(int(rec["_quarantine_id"]))
                row = {c: rec.get(c) for c in contract.column_names}
                row.update(
                    {k: v for k, v in rec.items() if not k.startswith("_") and k not in row and k != "line"}
                )
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        # its lineage names what was read: the quarantined rows (and the file that fixed
        # them), not the temporary file they pass through
        inputs = [DatasetRef(warehouse_namespace(workdir), "quarantine.rows", rows=len(records))]
        if fixed_file is not None:
            inputs.append(DatasetRef("file", str(Path(fixed_file).resolve()), rows=len(records)))
        ingestor = Ingestor(workdir, mode="append", job=REPROCESS_JOB, lineage_inputs=inputs)
        report = ingestor.run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run_id = report.run_id
    # lines whose (fixed) row names an erased user: not curated, so not released either; the
    # quarantined row is resolved as withheld (the user asked to be forgotten)
    withheld_lines = set(ingestor.withheld_lines.get(table, ()))
    with Warehouse(workdir) as wh:
        failed_lines = {
            r[0]
            for r in wh.sql(
                "SELECT source_line FROM quarantine.rows WHERE run_id = ? AND table_name = ?", [run_id, table]
            ).fetchall()
        }
        released = [
            qid for line, qid in enumerate(ids, 1) if line not in failed_lines and line not in withheld_lines
        ]
        withheld = [qid for line, qid in enumerate(ids, 1) if line in withheld_lines]
        retried_again = [qid for line, qid in enumerate(ids, 1) if line in failed_lines]
        for status, qids, drop_raw in (
            ("released", released, False),
            ("withheld", withheld, True),  # (its fields are an erased user's: not kept here either)
            ("superseded", retried_again, False),
        ):
            if qids:
                wh.sql(
                    f"UPDATE quarantine.rows SET status = ?, resolved_run_id = ?{', raw = NULL' if drop_raw else ''} "
                    "WHERE quarantine_id IN (SELECT unnest(?::BIGINT[]))",
                    [status, run_id, qids],
                )
        if retried_again:
            # the new open row names where the row came from, as the row it supersedes did (not
            # the temporary file it passed through, deleted by now)
            origin = [(line, qid) for line, qid in enumerate(ids, 1) if line in failed_lines]
            wh.sql(
                """UPDATE quarantine.rows SET source_file = o.source_file, source_line = o.source_line
                   FROM (SELECT m.line, r.source_file, r.source_line FROM quarantine.rows r
                         JOIN (SELECT unnest(?::BIGINT[]) AS line, unnest(?::BIGINT[]) AS qid) m
                         ON r.quarantine_id = m.qid) o
                   WHERE quarantine.rows.run_id = ? AND quarantine.rows.table_name = ?
                   AND quarantine.rows.source_line = o.line""",
                [[line for line, _ in origin], [qid for _, qid in origin], run_id, table],
            )
    from ._audit import AuditLog

    AuditLog(workdir).append(
        "quarantine.reprocess",
        actor=actor,
        table=table,
        run_id=run_id,
        retried=len(ids),
        released=len(released),
        still_quarantined=len(retried_again),
        withheld=len(withheld),
    )
    return {
        "table": table,
        "retried": len(ids),
        "released": len(released),
        "still_quarantined": len(retried_again),
        **({"withheld": len(withheld)} if withheld else {}),
        "run_id": run_id,
        **skipped,
    }


# rows that re-processing as they are cannot fix: a duplicate key's losing row would replace the
# row the contract kept ("the last row wins"), a line the reader could not split has no fields
# to check (it would come back as an empty row, its text lost from the open queue), and an exact
# duplicate is a duplicate of the curated row again (it came back "redelivered", out of the open
# queue, though nobody had sent it again or decided anything)
AS_IS_NEVER = ("duplicate_key", "malformed_row", "duplicate_row")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _statuses(workdir: Path, table: str) -> dict[int, str]:
    """The status of each of `table`'s quarantined rows that is not open (released, superseded,
    redelivered, withheld), by quarantine id."""
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT quarantine_id, status FROM quarantine.rows WHERE table_name = ? AND status <> 'open'",
            params=[table],
        ).fetchall()
    return {int(i): str(s) for i, s in rows}


def _fixable(
    table: str, records: list[dict[str, Any]], rows: dict[int, dict[str, Any]], *, as_is: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The records to re-process, and what was left open: a row of AS_IS_NEVER whose fields
    are as quarantined (not edited) stays open, counted in `skipped` with the reason. A row set
    aside (`SET_ASIDE_REASONS`: a cancelled or refunded order's line, a gift card, a picture) is
    the shop's data, no fault: a plain re-processing (`as_is`) never takes one (the re-processing
    skips the set-aside stage, so a cancelled order's line would be curated as the purchase its
    raw row says); only a steward's file (`--file`) may release one. `rows`: the table's open
    quarantined rows by id."""
    from ._reasons import SET_ASIDE_REASONS

    columns = CONTRACTS[table].column_names
    aside_reasons = {str(r.value) for r in SET_ASIDE_REASONS}
    keep, left, aside = [], 0, 0
    for rec in records:
        row = rows.get(int(rec["_quarantine_id"]))
        raw = (row or {}).get("raw") or {}
        unchanged = all((rec.get(c) or None) == (raw.get(c) or None) for c in columns)
        reasons = set((row or {}).get("reasons") or [(row or {}).get("reason")])
        if as_is and row is not None and reasons & aside_reasons:
            aside += 1
        elif row is not None and reasons & set(AS_IS_NEVER) and unchanged:
            left += 1
        else:
            keep.append(rec)
    if not left and not aside:
        return keep, {}
    why = []
    if left:
        why.append(
            "duplicate keys, exact duplicates and unreadable lines are not re-processed as "
            "they are (a duplicate key's row would replace the kept one; an exact duplicate is one again): fix "
            "them in a file (quarantine export, edit, --file) or leave them"
        )
    if aside:
        why.append(
            "lines set aside (cancelled or refunded orders, lines without a product, pictures) are the "
            "shop's data, not faults: a plain re-processing never releases one (a cancelled order's line "
            "would become a purchase); a steward may, in a file (quarantine export, edit, --file)"
        )
    return keep, {
        "skipped": left + aside,
        **({"set_aside": aside} if aside else {}),
        "skipped_reason": "; ".join(why),
    }
