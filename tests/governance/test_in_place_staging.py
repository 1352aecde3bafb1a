"""A plain CSV file is read in place (no numbered copy): the quarantine names the same file
lines as when the file is staged as a copy, rejected lines (too many fields) included; a file
with a quoted field across lines, a BOM and CRLF line ends is staged as before, and its lines
are named exactly too."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.governance import ingest
from shelfwise.storage import _sources
from tests.conftest import curated_rows

HEADER = "user_id,product_id,event_type,timestamp,session_id,query,value,text"


def _events(quoted_newline: bool) -> tuple[list[str], dict[int, str]]:
    """The file's lines and the line (1 = header) -> reason the quarantine must name."""
    lines, bad = [HEADER], {}
    for i in range(1, 400):
        ts = f"2026-01-0{1 + i % 5}T10:{i % 60:02d}:00Z"
        line = f"u{i % 37},p{i % 11},view,{ts},s{i},,,"
        if i % 50 == 7:
            line, bad[len(lines) + 1] = f"u{i},p1,view,{ts},s{i},,,,extra", "malformed_row"
        elif i % 50 == 8:  # right after a rejected line: consecutive rejects share a shift
            line, bad[len(lines) + 1] = f"u{i},p1,view,{ts},s{i},,,,x,y", "malformed_row"
        elif i % 61 == 5:
            line, bad[len(lines) + 1] = f"u{i},p1,view,not a time,s{i},,,", "unparseable_timestamp"
        elif i % 97 == 3:  # no user and no session (with a session: anonymous browsing, curated)
            line, bad[len(lines) + 1] = f",p1,view,{ts},,,,", "missing_required"
        elif quoted_newline and i % 45 == 1:  # a review text across two lines: one record
            lines.append(f'u{i},p2,review,{ts},s{i},,,"great')
            line = 'pan, really"'
        lines.append(line)
    return lines, bad


def _ingest(tmp_path: Path, name: str, lines: list[str], *, crlf: bool, bom: bool) -> Path:
    data, work = tmp_path / f"data-{name}", tmp_path / f"work-{name}"
    data.mkdir()
    end = "\r\n" if crlf else "\n"
    (data / "events.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + (end.join(lines) + end).encode())
    ingest(data, work)
    assert (data / "events.csv").exists()  # the source read in place is never removed
    return work


def _quarantined(work: Path) -> dict[int, str]:
    return {
        int(line): reason
        for line, reason in curated_rows(
            work, "SELECT source_line, reason FROM quarantine.rows WHERE table_name = 'events'"
        )
    }


@pytest.mark.parametrize("crlf,bom", [(False, False), (True, True)])
def test_a_plain_file_read_in_place_names_the_lines_a_copy_names(tmp_path, monkeypatch, crlf, bom):
    lines, bad = _events(quoted_newline=False)
    staged = []
    real = _sources._plain_csv
    monkeypatch.setattr(_sources, "_plain_csv", lambda p: staged.append(real(p)) or staged[-1])
    in_place = _ingest(tmp_path, "in-place", lines, crlf=crlf, bom=bom)
    assert staged and staged[0] is not None and not staged[0].numbered  # read in place
    monkeypatch.setattr(_sources, "_plain_csv", lambda p: None)  # staged as a numbered copy
    copied = _ingest(tmp_path, "copy", lines, crlf=crlf, bom=bom)
    assert _quarantined(in_place) == _quarantined(copied) == bad
    # (user ids are pseudonyms keyed per workdir: the rows are compared without them)
    rows = 'SELECT product_id, "timestamp", session_id FROM curated.events ORDER BY session_id'
    assert curated_rows(in_place, rows) == curated_rows(copied, rows)
    raw = "SELECT _source_line, session_id FROM raw.events ORDER BY _source_line"
    assert curated_rows(in_place, raw) == curated_rows(copied, raw)


def test_a_quoted_field_across_lines_with_a_bom_and_crlf_is_staged_and_named_exactly(tmp_path):
    lines, bad = _events(quoted_newline=True)
    work = _ingest(tmp_path, "quoted", lines, crlf=True, bom=True)
    assert _sources._plain_csv(tmp_path / "data-quoted" / "events.csv") is None  # a numbered copy
    assert _quarantined(work) == bad
    # (a review is curated as a rating; whitespace in text, the line break too, is normalised)
    texts = curated_rows(work, "SELECT DISTINCT event_type, text FROM curated.events WHERE text IS NOT NULL")
    assert texts == [("rating", "great pan, really")]


def test_a_file_mixing_lf_and_crlf_line_ends_is_staged_and_named_exactly(tmp_path):
    """DuckDB's strict reader fails on mixed line ends: such a file is staged (every line LF)."""
    lines, bad = _events(quoted_newline=False)
    data = tmp_path / "data"
    data.mkdir()
    body = "".join(line + ("\r\n" if n % 3 else "\n") for n, line in enumerate(lines))
    (data / "events.csv").write_bytes(body.encode())
    assert _sources._plain_csv(data / "events.csv") is None
    ingest(data, tmp_path / "work")
    assert _quarantined(tmp_path / "work") == bad


@pytest.mark.slow  # (~6 s alone; a 22 MB file)
def test_a_file_read_by_several_threads_keeps_every_row_on_its_line(tmp_path):
    """Rows read in place are numbered by their place in a table read in parallel (DuckDB keeps
    the file's order): a file of several of DuckDB's per-thread CSV ranges (8 MB each), with a
    rejected line in a later range, still names every row's own line."""
    rejected = 300_001
    lines = [HEADER]
    for n in range(2, 400_002):  # each row's session id is its line number: ~22 MB
        extra = ",x" if n == rejected else ""
        lines.append(f"u{n % 997},p{n % 89},view,2026-01-0{1 + n % 5}T10:00:00Z,s{n},,,{extra}")
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    (data / "events.csv").write_text("\n".join(lines) + "\n")
    ingest(data, work)
    [(rows, misplaced)] = curated_rows(
        work, "SELECT count(*), count(*) FILTER (WHERE session_id <> 's' || _source_line) FROM raw.events"
    )
    assert (rows, misplaced) == (len(lines) - 2, 0)
    assert _quarantined(work) == {rejected: "malformed_row"}
