"""`shelfwise ingest` as a job: any known format converted, governed ingestion, the served
feedback replayed on top, the HTML quality report. Kept apart from training so that ingesting
does not import the models (seconds of start-up on every `shelfwise ingest`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .._lazy import preload, preloaded


def ingest_dataset(
    data: str | Path,
    workdir: str | Path,
    *,
    skip_unchanged: bool = False,
    append: bool = False,
    map_flags: Sequence[str] = (),
    engine: Any = None,
) -> Any:
    """Governed ingestion of a dataset directory in any known format (converted first), with
    the HTML quality report written: what `shelfwise ingest` and `shelfwise train --data` run.

    A full load replaces the curated tables, so the served feedback absorbed earlier
    (`feedback/`) is replayed on top of it: events collected over HTTP are never lost. With
    `append` (a daily delivery) the directory's rows are added to what is curated instead:
    rows an earlier load curated are recognised and quarantined as re-delivered, keyed tables
    are upserted, and nothing needs replaying. `map_flags` (`table.column=HEADER`) map the
    shop's headers to canonical columns, over the directory's shelfwise.toml. With
    `skip_unchanged`, a directory whose files have the same content as at its last successful
    load is not ingested again (returns None): training on a workdir re-ingests only what is new.
    """
    from ..datasets import convert  # noqa: F401 - imported before the background imports start
    from ..governance import ingest  # noqa: F401
    from ..governance._contracts import skip_pyspark_pandas

    skip_pyspark_pandas()  # (before pandera is imported in the background)
    # imported in the background while the warehouse works: the OpenLineage client (~0.25 s
    # CPU; the START event is written once it is in), Ibis and pandera (the curated tables'
    # validation, ~0.75 s) and the quality report's matplotlib (~0.4 s) are needed only at the
    # end of a load; its checks and publishing are SQL on the warehouse's DuckDB connection
    # (`Warehouse.db`), which needs none of them. Measured on 1M events: 0.6 s less per
    # `shelfwise ingest` (7.4 -> 6.8 s from import to the written report) with pandera and
    # matplotlib here, Ibis and the client imported before. (pandera's Ibis checks, imported at
    # its first validation with hypothesis, ~0.15 s; matplotlib's SVG writer at the first chart)
    preload(
        (
            "openlineage.client",
            "ibis.backends.duckdb",
            "pandera.ibis",
            "pandera.backends.ibis.register",
            "pandera.backends.ibis.builtin_checks",
            "shelfwise.reporting._charts",
            "matplotlib.backends.backend_svg",
        )
    )
    try:
        return _ingest_dataset(Path(data), Path(workdir), skip_unchanged, append, map_flags, engine)
    finally:
        preloaded()  # an early failure does not leave a thread importing while Python exits


def _ingest_dataset(
    data: Path,
    workdir: Path,
    skip_unchanged: bool,
    append: bool,
    map_flags: Sequence[str],
    engine: Any = None,
) -> Any:
    from ..datasets import detect_format
    from ..governance import ingest
    from ..governance._erase import converted_copy
    from ..governance._mapping import load_column_map

    # read (and checked) before anything is loaded; a converted directory keeps the original's map
    column_map = load_column_map(data if data.is_dir() else None, map_flags)

    source, source_key = data, str(data.resolve())
    state = workdir / "state" / "sources.json"
    fingerprint = None
    if skip_unchanged and state.exists() and (workdir / "warehouse.duckdb").exists():
        fingerprint = _fingerprint(data, flags=map_flags)
        last = json.loads(state.read_text()).get(source_key)
        # a full load is DIR's snapshot: skipped only while the warehouse still holds what that
        # load left (a later delivery, absorb or reprocess made new table versions: DIR's
        # snapshot is no longer what is curated); a delivery already appended stays skipped
        if last is not None and not append:
            fingerprint[_TABLES] = _table_versions(workdir)
        if last == fingerprint:
            return None
    fmt = detect_format(data) if data.exists() else "canonical"
    notes: list[str] = []
    with ExitStack() as stack:
        if fmt not in (None, "canonical"):
            # the copy holds the shop's raw user ids and the personal columns curation drops:
            # kept for the load only, then removed (whatever the load's outcome), so that no
            # erasure or retention run has a copy to miss; the next load converts again
            data = _converted(stack.enter_context(converted_copy(workdir)), data, fmt, notes)
        report = ingest(data, workdir, append=append, column_map=column_map, engine=engine)
    report.notes[:0] = notes
    from ..governance._consent import sync_users_table

    # consent given or withdrawn in the users table joins the consent register (audited)
    kept: dict[str, int] = {}
    consents = 0
    try:
        consents = sync_users_table(workdir, counts=kept)
    except OSError as exc:  # the data is published: said (`unrecorded`), never a failed run
        report.after_commit(
            "consent register update",
            getattr(exc, "filename", None) or workdir / "governance",
            exc,
            "make the governance folder writable and run `shelfwise ingest` again with the same "
            "data (re-sent rows are recognised, the users table's consent is synced then)",
        )
    if consents:
        report.notes.append(
            f"consent: {consents:,} change(s) from the users table recorded in the consent register"
        )
    if kept.get("resent", 0) or kept.get("older", 0):
        report.notes.append(
            f"consent: {kept['resent'] + kept['older']:,} value(s) of the users table not recorded, the "
            f"consent held since stands ({kept['resent']:,} in rows delivered before, an old file sent "
            f"again; {kept['older']:,} dated before the consent held)"
        )
    # a delivery is added to what is curated, served events included: nothing to replay; nor
    # after a full load with no events file (a catalog snapshot: the curated events, served ones
    # included, are kept as they are; a replay only re-sent them, counted as re-deliveries)
    # (unless the warehouse has no events at all: then the archives are the shop's behaviour)
    from ..storage import read_only

    with read_only(workdir) as (_, curated):
        has_events = "events" in curated
    events_kept = "events" in report.tables and not report.tables["events"].published  # (not replaced)
    replayed = (
        0
        if append or events_kept or ("events" not in report.tables and has_events)
        else _replay_feedback(workdir)
    )
    if replayed:
        report.notes.append(f"replayed {replayed:,} served events from feedback/ on top of the full load")
    from ..reporting import write_quality_report  # (imported in the background meanwhile)

    try:
        report.html_report = str(write_quality_report(workdir, report))
    except OSError as exc:
        report.after_commit(
            "HTML quality report",
            getattr(exc, "filename", None) or workdir / "reports",
            exc,
            "make the reports folder writable; `shelfwise report governance` writes the governance report again",
        )
    if fingerprint is None:  # the files ingested were hashed while staged: not read again
        staged = {Path(f).resolve(): h for t in report.tables.values() for f, h in t.source_files.items()}
        fingerprint = _fingerprint(source, staged, flags=map_flags)
    fingerprint.pop(_TABLES, None)
    if not append:
        fingerprint[_TABLES] = _table_versions(workdir)
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        last = json.loads(state.read_text()) if state.exists() else {}
        last[source_key] = fingerprint
        state.write_text(json.dumps(last, indent=2))
    except OSError as exc:
        report.after_commit(
            "record of the files loaded",
            state,
            exc,
            "make the state folder writable (`train --data` then re-ingests the same files once, "
            "recognising their rows as re-sent)",
        )
    return report


def _converted(folder: Path, data: Path, fmt: str, notes: list[str]) -> Path:
    """`data` converted from `fmt` into `folder` (the load's own), what the conversion said
    added to `notes`; the converted directory."""
    from ..datasets import convert

    converted = folder / fmt
    res = convert(data, converted, fmt)
    notes.append(
        f"{data} is in the {fmt} format: converted to {converted} ({res.files}) for the load, "
        "removed after it"
    )
    # what the conversion itself repaired or could not read: the report's, not only convert's
    for what, n in res.cleaned.items():
        notes.append(f"{data.name}: converting, {n:,} {what}")
    if res.passed_through:
        notes.append(
            f"{data.name}: {res.passed_through:,} line(s) the {fmt} format could not read, passed "
            "on as they are (quarantined as malformed_row with their text: the converted file "
            "is removed after the load)"
        )
    return converted


# the fingerprint's entry for the warehouse's table versions a full load left (a name no file
# has: a relative path never starts with "--")
_TABLES = "--tables"


def _table_versions(workdir: Path) -> str:
    """A digest of every curated table's versions (name, version, run): what changes when any
    later load, absorb or reprocess curates anything."""
    import hashlib

    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT table_name, version, run_id FROM meta.table_versions ORDER BY table_name, version"
        ).fetchall()
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


def _fingerprint(
    data: Path, known: dict[Path, str] | None = None, flags: Sequence[str] = ()
) -> dict[str, str]:
    """sha256 of every file of a dataset directory, and the `--map` flags it was read with
    (what decides "unchanged": the same files read with another mapping are other data);
    `known` gives the hashes of files already read (by resolved path)."""
    from ..storage import file_sha256

    if not data.is_dir():
        return {}
    known = known or {}
    out = {
        str(p.relative_to(data)): known.get(p.resolve()) or file_sha256(p)
        for p in sorted(data.rglob("*"))
        if p.is_file()
    }
    if flags:  # (a name no file has: a relative path never starts with "--")
        out["--map"] = "\n".join(sorted(flags))
    return out


def _replay_feedback(workdir: Path) -> int:
    """Append the archived served events (feedback/*.jsonl) after a full load: one load of a
    folder linking to the archives, so the raw layer and the quarantine name each archive and
    its line (not a temporary file put together from them)."""
    import tempfile

    from ..serving._feedback import FEEDBACK_DIR, ingest_events

    # (an archive an erasure emptied holds nothing to replay)
    files = [f for f in sorted((workdir / FEEDBACK_DIR).glob("events-*.jsonl")) if f.stat().st_size]
    if not files:
        return 0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp) / "events"
        folder.mkdir()
        for f in files:
            (folder / f.name).symlink_to(f.resolve())
        rep = ingest_events(workdir, Path(tmp), archives=files)
    ev = rep.tables.get("events")
    return ev.rows_in if ev else 0
