from __future__ import annotations

import gzip

import pytest

from shelfwise.errors import SourceError
from shelfwise.storage import file_sha256, find_table_file, stage_file


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


def test_a_quote_inside_a_field_is_a_literal(tmp_path):
    """`12" pan` (inches) does not open a quoted field: every line stays its own record."""
    src = tmp_path / "products.csv"
    src.write_text('product_id,title\np1,12" pizza pan\np2,Blue shoe\np3,"6"" ruler"\np4,Hammer\n')
    st = stage_file(src, tmp_path / "st")
    assert st.records == 4 and not st.bad_lines
    assert st.staged.read_text().splitlines()[1:] == [
        '2,p1,12" pizza pan',
        "3,p2,Blue shoe",
        '4,p3,"6"" ruler"',
        "5,p4,Hammer",
    ]


@pytest.mark.parametrize("at_end", [False, True])
def test_a_quote_that_never_closes_rejects_its_line_alone(tmp_path, monkeypatch, at_end):
    import shelfwise.storage._sources as sources

    monkeypatch.setattr(sources, "MAX_QUOTED_LINES", 3)
    rows = ["a,b", '1,"ok\nstill ok"', '2,"broken'] + [f"{i},v{i}" for i in range(3, 6 if at_end else 9)]
    src = tmp_path / "e.csv"
    src.write_text("\n".join(rows) + "\n")
    st = stage_file(src, tmp_path / "st")
    assert [(line, text) for line, text, _ in st.bad_lines] == [(4, '2,"broken')]
    assert "open" in st.bad_lines[0][2] or "never closes" in st.bad_lines[0][2]
    body = st.staged.read_text().splitlines()[1:]
    assert body[:2] == ['2,1,"ok', 'still ok"']
    # every line after the broken one is read again as a record, with its own line number
    assert body[2:] == [f"{i + 2},{i},v{i}" for i in range(3, 6 if at_end else 9)]
    assert st.records == 1 + len(body[2:])


def test_exports_are_repaired_and_said_so(tmp_path):
    text = "product_id\ttitle\np1\tCafé\np2\tTea\n"
    cases = {
        "utf16.csv": (text.encode("utf-16"), "UTF-16"),
        "utf16le_nobom.csv": (text.encode("utf-16-le"), "UTF-16-LE"),
        "cr.csv": (text.replace("\n", "\r").encode(), "CR alone"),
        "nul.csv": (text.replace("Tea", "T\x00ea").encode(), "NUL"),
        "gz.csv": (gzip.compress(text.encode()), "gzip"),
    }
    for name, (data, note) in cases.items():
        src = tmp_path / name
        src.write_bytes(data)
        st = stage_file(src, tmp_path / "st")
        assert st.header == ["product_id", "title"], name
        assert st.staged.read_text(encoding="utf-8").splitlines()[1:] == ["2\tp1\tCafé", "3\tp2\tTea"], name
        assert any(note in n for n in st.notes), (name, st.notes)
        assert st.sha256 == file_sha256(src) and st.size_bytes == len(data)  # the bytes as stored


def test_what_is_not_a_table_is_refused_with_the_reason(tmp_path):
    for name, data, reason in [
        ("a.csv", b"PK\x03\x04" + bytes(100), "ZIP archive"),
        ("b.csv", b"\xd0\xcf\x11\xe0" + bytes(100), "Excel .xls"),
        ("c.csv", bytes(range(32)) * 20, "binary file"),
        ("d.csv.gz", b"plain text\n", "not gzip"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SourceError, match=reason):
            stage_file(tmp_path / name, tmp_path / "st")


def test_a_json_array_is_read_element_by_element(tmp_path):
    import json

    src = tmp_path / "products.json"
    src.write_text(json.dumps([{"product_id": "p1", "title": "Shoe"}, 7, {"product_id": "p2"}], indent=2))
    st = stage_file(src, tmp_path / "st")
    lines = st.staged.read_text().rstrip("\n").split("\n")  # (splitlines() also cuts at \x1e)
    # numbered by element: an array on one line numbered every element 1 (line numbers are not
    # unique), and rows sharing a number were joined with each other
    assert st.records == 3 and [ln.split("\x1e")[0] for ln in lines] == ["1", "2", "3"]
    assert json.loads(lines[0].split("\x1e")[1]) == {"product_id": "p1", "title": "Shoe"}
    (tmp_path / "bad.json").write_text('[\n{"a": 1},\n{"a": \n')
    with pytest.raises(SourceError, match="bad.json:4: invalid JSON"):
        stage_file(tmp_path / "bad.json", tmp_path / "st")
    (tmp_path / "arrays.jsonl").write_text("[1, 2]\n[3, 4]\n")  # JSON lines of arrays: not one array
    with pytest.raises(SourceError, match="arrays.jsonl:2: more data after the JSON array"):
        stage_file(tmp_path / "arrays.jsonl", tmp_path / "st")


def test_find_table_file_ignores_case_and_names_spreadsheets(tmp_path):
    (tmp_path / "Events.CSV").write_text("x\n")
    assert find_table_file(tmp_path, "events") == tmp_path / "Events.CSV"
    (tmp_path / "products.xlsx").write_bytes(b"PK")
    with pytest.raises(SourceError, match="save the sheet as CSV"):
        find_table_file(tmp_path, "products")


def test_a_folder_of_parts_is_staged_as_one_table(tmp_path):
    from shelfwise.storage._sources import PART_LINES

    folder = tmp_path / "events"
    (folder / "dt=2024-02").mkdir(parents=True)
    (folder / "part-0.csv").write_text("a,b\n1,x\n2,y\n")
    (folder / "dt=2024-02" / "part-1.csv.gz").write_bytes(gzip.compress(b"a,b\n\n3,z\n"))
    (folder / "part-2.csv").write_text("")  # an empty part (writers leave them)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-0.csv.crc").write_text("x")
    assert find_table_file(tmp_path, "events") == folder
    st = stage_file(folder, tmp_path / "st")
    assert [p.name for p in st.parts] == ["part-1.csv.gz", "part-0.csv", "part-2.csv"]
    assert st.records == 3 and st.header == ["a", "b"] and len(st.part_sha256) == 3
    assert st.staged.read_text().splitlines() == [
        "_line,a,b",
        f"{3},3,z",  # part 0: dt=2024-02/part-1.csv.gz sorts first; its blank line 2 skipped
        f"{PART_LINES + 2},1,x",
        f"{PART_LINES + 3},2,y",
    ]
    assert any("part-2.csv: empty" in n for n in st.notes)
    (folder / "part-3.csv").write_text("a,c\n1,2\n")
    with pytest.raises(SourceError, match="part-3.csv:1: its header"):
        stage_file(folder, tmp_path / "st")
    (folder / "part-3.csv").unlink()
    (folder / "part-4.jsonl").write_text("{}\n")
    with pytest.raises(SourceError, match="share one format"):
        stage_file(folder, tmp_path / "st")
