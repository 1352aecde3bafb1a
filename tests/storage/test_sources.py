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
