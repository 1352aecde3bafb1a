from __future__ import annotations

import gzip

import pytest

from shelfwise.errors import SourceError
from shelfwise.storage import find_table_file, stage_file


def test_staging_numbers_lines_and_repairs_encodings(tmp_path):
    src = tmp_path / "events.csv"
    src.write_bytes(b'a,b\n1,caf\xc3\xa9\n\n2,caf\xe9\n3,"multi\nline"\n4,x\r\n')
    st = stage_file(src, tmp_path / "st")
    assert st.records == 4 and st.blank_lines == 1 and st.transcoded_lines == 1
    assert st.header == ["a", "b"]
    text = st.staged.read_text(encoding="utf-8")
    assert text.splitlines() == ["_line,a,b", "2,1,café", "4,2,café", '5,3,"multi', 'line"', "7,4,x"]
    assert len(st.sha256) == 64


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_plain_blocks_and_irregular_blocks_number_lines_alike(tmp_path, monkeypatch, block):
    """Blocks with no blank line and no line-spanning quote are numbered in one pass; the others
    line by line. Whatever the block boundaries, the line numbers are the file's."""
    import shelfwise.storage._sources as sources

    monkeypatch.setattr(sources, "BLOCK_BYTES", block)
    body = ["a,b"] + [f"{i},v{i}" for i in range(1, 30)]
    body[10] = ""  # a blank line
    body[12] = "   \r"  # a whitespace-only line
    body[20] = '20,"spans\nlines"'
    body[25] = '25,"quoted ""x"", one line"'
    src = tmp_path / "e.csv"
    src.write_bytes("\r\n".join(body).encode())  # CRLF, no newline at the end
    st = stage_file(src, tmp_path / "st")
    lines = st.staged.read_text(encoding="utf-8").splitlines()[1:]
    numbered = [ln for ln in lines if ln.split(",", 1)[0].isdigit() and not ln.startswith("lines")]
    expected = [n + 1 for n in range(1, len(body)) if n not in (10, 12)]
    # a record's number is its first physical line; the quoted field's second line is its own row
    assert [int(ln.split(",", 1)[0]) for ln in numbered] == [e if e <= 21 else e + 1 for e in expected]
    assert st.records == len(body) - 3 and st.blank_lines == 2
    assert '27,25,"quoted ""x"", one line"' in lines  # physical line 27


def test_staging_gzip_semicolon_and_errors(tmp_path):
    src = tmp_path / "events.csv.gz"
    with gzip.open(src, "wb") as fh:
        fh.write(b"a;b\n1;2\n")
    st = stage_file(src, tmp_path / "st")
    assert st.delimiter == ";" and st.records == 1
    with pytest.raises(SourceError, match="file not found"):
        stage_file(tmp_path / "none.csv", tmp_path / "st")
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(SourceError, match="unreadable"):
        stage_file(tmp_path / "bad.csv.gz", tmp_path / "st")


def test_find_table_file_refuses_ambiguity(tmp_path):
    (tmp_path / "events.csv").write_text("x\n")
    assert find_table_file(tmp_path, "events") == tmp_path / "events.csv"
    (tmp_path / "events.jsonl").write_text("{}\n")
    with pytest.raises(SourceError, match="several files"):
        find_table_file(tmp_path, "events")
