"""Finding and staging source files.

Staging streams a source file once, block by block (memory does not grow with the file):
it decodes each line as UTF-8 and falls back to cp1252/latin-1 for lines that are not (files that
mix encodings keep every line), records the SHA-256 of the file's bytes, skips blank lines, and
prefixes every record with its physical line number, so that the warehouse's CSV reader - which
numbers records, not lines - can still name the exact line of every bad row.

It also repairs what exports from spreadsheets and old systems do to files, saying so in `notes`:
gzip without a `.gz` name, UTF-16 (Excel's "Unicode text"), classic-Mac CR line ends, NUL bytes,
a JSON array instead of JSON lines; and it refuses, with the reason, what is not a table at all
(a ZIP archive or an Excel workbook under a CSV name, a binary file). A quote that opens a CSV
field and never closes would swallow the rest of the file into one field: staging gives such a
line up after `MAX_QUOTED_LINES` lines and rejects it alone (`bad_lines`), keeping every line after it.

A plain CSV file - one UTF-8 file, every line one record (no blank line, no quoted field across
lines, no NUL byte, one kind of line end: LF or CRLF) - needs none of that: with `in_place`, staging reads it once
(hash, checks) and writes nothing; the warehouse reads the original and numbers its rows itself
(`numbered` is False: record k is line k + 1). Writing a numbered copy was most of the cost of
staging a large clean file, and the warehouse's reading of it twice over.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import SourceError

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json")
SPREADSHEET_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")
BLOCK_BYTES = 8 << 20
LINE_COLUMN = "_line"
JSON_DELIMITER = "\x1e"  # never inside valid JSON (control characters must be escaped there)
# a quoted CSV field may span lines; one still open after this many lines (or bytes) had a stray
# opening quote: its first line is rejected alone and the lines after it are read as records again
MAX_QUOTED_LINES = 1000
MAX_QUOTED_BYTES = 4 << 20
BAD_LINE_CHARS = 10_000  # text kept of a rejected line
# a table read from a folder of parts is staged as one file whose records are numbered
# part_index * PART_LINES + line (the raw layer keeps that number; quarantine names part and line)
PART_LINES = 10**10


@dataclass
class StagedFile:
    source: Path  # the table's file, or its folder of parts
    staged: Path | None  # None for parquet (read in place)
    format: str  # csv | jsonl | parquet
    parts: list[Path] = field(default_factory=list)  # the files read (one, or a folder's parts)
    part_sha256: list[str] = field(default_factory=list)
    delimiter: str = ","
    header: list[str] = field(default_factory=list)
    sha256: str = ""  # of the file's bytes as stored (compressed, encoded); of the parts' hashes
    size_bytes: int = 0
    records: int = 0  # records written to the staged file
    # False: `staged` is the source itself (a plain CSV, read in place), without the line column
    numbered: bool = True
    blank_lines: int = 0
    transcoded_lines: int = 0  # lines that were not valid UTF-8 and were read as cp1252/latin-1
    nul_bytes: int = 0  # NUL bytes removed
    # records staging rejected itself: (line, text, why); they count as rows in
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was repaired, in words
    # >1: a record is line * line_scale + k, the k-th of the records read from one line (an order's
    # products packed in one cell, BigCommerce's `Product Details`); quarantine names line and k
    line_scale: int = 1
    # the parts (their index in `parts`) whose text ends without a final newline, as decompressed
    # and decoded (a .csv.gz file's, a folder part's): their last line may have been cut off
    # (`_load_raw.note_unterminated`); a plain CSV read in place (`numbered` False) is judged there
    unterminated: list[int] = field(default_factory=list)


def _same_name(entry: Path, stem: str) -> str | None:
    """The suffix (`.csv`, `.csv.gz`, ...) of `entry` when its name is `stem` plus a suffix, in any
    case; a `stem` ending in `*` is a prefix (`wc-product-export-*`: any name starting so)."""
    low = entry.name.lower()
    if stem.endswith("*"):
        prefix = stem[:-1]
        dot = low.find(".", len(prefix))
        return low[dot:] if low.startswith(prefix) and dot > len(prefix) else None
    if not low.startswith(stem + "."):
        return None
    return low[len(stem) :]


def find_table_file(data_dir: Path, table: str, aliases: tuple[str, ...] = ()) -> Path | None:
    """The source of a canonical table in a dataset directory - a file, or a folder of parts
    named after the table (`events/part-0000.parquet`, ...) - or None. Names match in any case
    (`Events.CSV`), with an optional `.gz`. Without one, a file under one of `aliases`
    (`ratings.csv` for events), which must be unambiguous."""
    found = _find_named(data_dir, table)
    if found is not None or not aliases:
        return found
    by_alias = [p for p in (_find_named(data_dir, a) for a in aliases) if p is not None]
    if len(by_alias) > 1:
        names = ", ".join(p.name for p in by_alias)
        raise SourceError(
            str(data_dir),
            None,
            f"no {table} file, and several that could be it ({names}): name the one to read {table}.<ext>",
        )
    if by_alias:
        _refuse_split_export(data_dir, by_alias[0])
    return by_alias[0] if by_alias else None


def _refuse_split_export(data_dir: Path, found: Path) -> None:
    """An export split in numbered parts (Shopify's `orders_export_1.csv`, `orders_export_2.csv`)
    is refused with its parts named: only the first was read (the others were "not read" and the
    load passed). A folder of parts is read as one table: moving them into one is the fix."""
    if not found.is_file():
        return
    name = found.name.lower()
    stem = name[: len(name) - len(name.split(".", 1)[1]) - 1] if "." in name else name
    m = re.fullmatch(r"(.+?)[ _-]*\d+", stem)
    base = m.group(1) if m else stem  # (`orders_export.csv` beside an `orders_export_2.csv` too)
    parts = sorted(
        p.name
        for p in data_dir.iterdir()
        if p.is_file()
        and _readable_name(p.name)
        and (p == found or re.fullmatch(re.escape(base) + r"[ _-]*\d+", p.name.lower().split(".", 1)[0]))
    )
    if len(parts) > 1:
        raise SourceError(
            str(data_dir),
            None,
            f"an export split in {len(parts)} parts ({', '.join(parts)}): only one would be read; move them "
            f"into one folder named {base!r} (a folder of parts is read as one table)",
        )


def _find_named(data_dir: Path, table: str) -> Path | None:
    candidates = []
    spreadsheets = []
    for p in sorted(data_dir.iterdir()):
        if p.is_dir() and p.name.lower() == table:
            candidates.append(p)
            continue
        suffix = _same_name(p, table)
        if suffix is None or not p.is_file():
            continue
        if suffix.removesuffix(".gz") in SUPPORTED_SUFFIXES:
            candidates.append(p)
        elif suffix in SPREADSHEET_SUFFIXES:
            spreadsheets.append(p)
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise SourceError(
            str(data_dir), None, f"several files for table {table!r} ({names}); keep exactly one"
        )
    if not candidates and spreadsheets:
        raise SourceError(
            str(spreadsheets[0]),
            None,
            "a spreadsheet workbook is not read: save the sheet as CSV (UTF-8) or export Parquet",
        )
    return candidates[0] if candidates else None


def _readable_name(name: str) -> bool:
    return name.lower().removesuffix(".gz").endswith(SUPPORTED_SUFFIXES)


def table_parts(path: Path) -> list[Path]:
    """The files a table is read from: the file itself, or the data files of its folder (and of
    sub-folders, such as `dt=2024-01-01/`), in path order; names starting with `.` or `_`
    (`_SUCCESS`, `.part-0.crc`) are not data."""
    if not path.exists():
        raise SourceError(str(path), None, "file not found")
    if path.is_file():
        return [path]
    parts = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and _readable_name(p.name)
        and not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
    )
    if not parts:
        raise SourceError(
            str(path), None, "a table folder with no .csv, .tsv, .jsonl, .json or .parquet file in it"
        )
    formats = sorted({file_format(p) for p in parts})
    if len(formats) > 1:
        raise SourceError(
            str(path), None, f"the parts of a table must share one format (found {', '.join(formats)})"
        )
    return parts


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def _decode_line(line: bytes) -> tuple[str, bool]:
    try:
        return line.decode("utf-8"), False
    except UnicodeDecodeError:
        try:
            return line.decode("cp1252"), True
        except UnicodeDecodeError:
            return line.decode("latin-1"), True


def _decode_block(block: bytes) -> tuple[bytes, int]:
    """The block as UTF-8 bytes, and how many of its lines had to be transcoded."""
    try:
        block.decode("utf-8")
        return block, 0
    except UnicodeDecodeError:
        pass
    out, transcoded = [], 0
    for line in block.split(b"\n"):
        text, changed = _decode_line(line)
        transcoded += changed
        out.append(text.encode("utf-8") if changed else line)
    return b"\n".join(out), transcoded


def _sniff_delimiter(header: str, suffix: str) -> str:
    if suffix == ".tsv":
        return "\t"
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _split_header(header: str, delimiter: str) -> list[str]:
    import csv

    row = next(csv.reader(io.StringIO(header), delimiter=delimiter), [])
    return [c.strip().strip("\ufeff") for c in row]


def sniff_header(first_line: str, suffix: str) -> tuple[str, list[str]]:
    """A delimited file's delimiter (`,`, tab, `;` or `|`: the most frequent in its first line;
    tab for `.tsv`) and its first line split by it, names trimmed: as ingestion reads a header
    (the CLI's files of ids and queries are read alike)."""
    delimiter = _sniff_delimiter(first_line, suffix)
    return delimiter, _split_header(first_line, delimiter)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK_BYTES):
            h.update(chunk)
    return h.hexdigest()


class _Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...


class _HashingReader(io.RawIOBase):
    """A file read through this feeds every byte it reads to `digest`: the hash is of the file's
    bytes as stored, whatever decompression or decoding happens above."""

    def __init__(self, fh: BinaryIO, digest: hashlib._Hash):
        self._fh, self._digest, self.size = fh, digest, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._digest.update(memoryview(buffer)[:n])
            self.size += n
        return n or 0

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Recoded:
    """UTF-8 bytes of a stream in another encoding (UTF-16), read in blocks."""

    def __init__(self, stream: _Readable, encoding: str):
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")

    def read(self, n: int) -> bytes:
        while True:
            chunk = self._stream.read(n)
            text = self._decoder.decode(chunk, final=not chunk)
            if text or not chunk:
                return text.encode("utf-8")


class _CrLines:
    """Classic-Mac line ends (CR alone) read as LF."""

    def __init__(self, stream: _Readable):
        self._stream = stream

    def read(self, n: int) -> bytes:
        return self._stream.read(n).replace(b"\r", b"\n")


_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13, 12, 27))


def _sniff(
    source: Path, buffered: io.BufferedReader[Any], notes: list[str]
) -> tuple[_Readable, bytes, str | None]:
    """The stream to stage from (decompressed, decoded to UTF-8, line ends repaired), the first
    bytes it holds, and the format the content shows when it is not what the name says."""
    head = buffered.peek(1 << 16)[: 1 << 16]
    stream: _Readable = buffered
    gz = head[:2] == b"\x1f\x8b"
    if gz:
        gzf = gzip.GzipFile(fileobj=buffered)
        if not source.name.lower().endswith(".gz"):
            notes.append("gzip-compressed without a .gz name: decompressed")
        try:
            head = gzf.peek(1 << 16)[: 1 << 16]
        except (OSError, EOFError) as exc:
            raise SourceError(str(source), None, f"unreadable gzip file: {exc}") from exc
        stream = gzf
    elif source.name.lower().endswith(".gz"):
        raise SourceError(str(source), None, "unreadable file: named .gz but not gzip-compressed")
    if head.startswith(b"PK\x03\x04"):
        raise SourceError(
            str(source),
            None,
            "a ZIP archive (an Excel .xlsx workbook or a zipped export), not CSV or JSON lines: "
            "unzip it, or save the sheet as CSV",
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise SourceError(
            str(source), None, "an Excel .xls workbook, not CSV or JSON lines: save the sheet as CSV"
        )
    if head.startswith(b"PAR1") and not gz:
        return stream, head, "parquet"
    encoding = None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif len(head) >= 4 and head[1:200:2].count(0) > 0.9 * len(head[1:200:2]):
        encoding = "utf-16-le"  # no byte-order mark: ASCII text with a NUL after every byte
    elif len(head) >= 4 and head[0:200:2].count(0) > 0.9 * len(head[0:200:2]):
        encoding = "utf-16-be"
    if encoding:
        notes.append(f"{encoding.upper()} text (e.g. Excel's 'Unicode text'): decoded and stored as UTF-8")
        stream = _Recoded(stream, encoding)
        head = head.decode(encoding, errors="replace").encode("utf-8")
    sample = head[:4096]
    if sample and sum(sample.count(bytes([b])) for b in _CONTROL) > 0.1 * len(sample):
        raise SourceError(str(source), None, "a binary file, not text: expected CSV, JSON lines or Parquet")
    if b"\r" in head and b"\n" not in head:
        notes.append("line ends are CR alone (classic Mac): read as line feeds")
        stream = _CrLines(stream)
        head = head.replace(b"\r", b"\n")
    return stream, head, None


def stage_file(source: Path, staged_dir: Path, *, in_place: bool = False) -> StagedFile:
    """Stage a table's file, or the parts of its folder as one file (see the module docstring);
    with `in_place`, a plain CSV file is not copied (`numbered` False)."""
    parts = table_parts(source)
    if in_place and len(parts) == 1 and source.is_file() and file_format(source) == "csv":
        plain = _plain_csv(source)
        if plain is not None:
            return plain
    info = StagedFile(source=source, staged=None, format=file_format(parts[0]), parts=parts)
    staged_dir.mkdir(parents=True, exist_ok=True)
    staged = staged_dir / (source.name.removesuffix(".gz") + ".staged")
    dst: BinaryIO | None = None
    try:
        for k, part in enumerate(parts):
            digest = hashlib.sha256()
            notes: list[str] = []
            try:
                raw = _HashingReader(open(part, "rb"), digest)
                with io.BufferedReader(raw, BLOCK_BYTES) as buffered:
                    stream, head, shown = (
                        (buffered, b"", "parquet")
                        if info.format == "parquet"
                        else _sniff(part, buffered, notes)
                    )
                    if shown == "parquet":
                        if len(parts) > 1 and info.format != "parquet":
                            raise SourceError(
                                str(part),
                                None,
                                "a Parquet file among text files: a table's parts share one format",
                            )
                        info.format = "parquet"
                    else:
                        if dst is None:
                            dst = open(staged, "wb")
                            info.staged = staged
                        base = k * PART_LINES
                        if info.format == "jsonl" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
                            notes.append(
                                "a JSON array, not JSON lines: read element by element (its rows are numbered "
                                "by element: line N in the quarantine is the N-th element)"
                            )
                            _stage_json_array(part, stream, dst, info, base)
                        else:
                            _stage_stream(part, stream, dst, info, base, notes, many=len(parts) > 1)
                    while buffered.read(BLOCK_BYTES):  # the rest of the file, for its hash
                        pass
            except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
                raise SourceError(str(part), None, f"unreadable file: {exc}") from exc
            info.part_sha256.append(digest.hexdigest())
            info.size_bytes += raw.size
            info.notes.extend(notes if len(parts) == 1 else [f"{part.name}: {n}" for n in notes])
    finally:
        if dst is not None:
            dst.close()
    info.sha256 = (
        info.part_sha256[0]
        if source.is_file()
        else hashlib.sha256("\n".join(info.part_sha256).encode()).hexdigest()
    )
    return info


def _plain_csv(source: Path) -> StagedFile | None:
    """The file as its own staged file when it is a plain CSV (module docstring), else None
    (staged as usual: what makes it not plain is repaired or numbered there). One pass: the
    file's hash, its header and the checks of every block; nothing is written."""
    digest = hashlib.sha256()
    notes: list[str] = []
    info = StagedFile(source=source, staged=source, format="csv", parts=[source], numbered=False)
    raw = _HashingReader(open(source, "rb"), digest)
    with io.BufferedReader(raw, BLOCK_BYTES) as buffered:
        try:
            stream, _, shown = _sniff(source, buffered, notes)
        except SourceError:
            return None  # (staging says why)
        if shown or notes or stream is not buffered:  # gzip, UTF-16, CR line ends: repaired there
            return None
        carry = b""
        while b"\n" not in carry:
            chunk = buffered.read(BLOCK_BYTES)
            if not chunk:
                break
            carry += chunk
        cut = carry.find(b"\n")
        if cut < 0:
            return None
        first, carry = carry[:cut], carry[cut + 1 :]
        # one kind of line end throughout: the warehouse's strict reader fails on a file that
        # mixes LF and CRLF (staging makes every line LF)
        crlf = first.endswith(b"\r")
        first = first.removesuffix(b"\r")
        try:
            header_text = first.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            return None
        if not header_text.strip() or b"\x00" in first or b"\r" in first:
            return None
        info.delimiter = _sniff_delimiter(header_text, Path(source.name.lower()).suffix)
        sep = info.delimiter.encode()[0]
        if _open_quote(first, sep, False):  # a header across lines: staged
            return None
        info.header = _split_header(header_text, info.delimiter)
        for block in _blocks(buffered, carry):
            cr = block.count(b"\r")
            if b"\x00" in block or cr != (block.count(b"\r\n") if crlf else 0):
                return None
            if crlf and cr != block.count(b"\n"):
                return None
            try:
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if not _plain_block(block, sep):
                return None
            info.records += block.count(b"\n") + (not block.endswith(b"\n"))
    info.sha256 = digest.hexdigest()
    info.part_sha256 = [info.sha256]
    info.size_bytes = raw.size
    return info


def _open_quote(line: bytes, sep: int, in_quote: bool) -> bool:
    """Whether a CSV line leaves a quoted field open (starting inside one or not), as the
    warehouse's reader sees it: a quote opens a field only at the field's start (`12" pan` is a
    literal quote), and inside a quoted field `""` is an escaped quote."""
    i, n = 0, len(line)
    while True:
        j = line.find(b'"', i)
        if j < 0:
            return in_quote
        if in_quote:
            if j + 1 < n and line[j + 1] == 34:
                i = j + 2
                continue
            in_quote = False
        elif j == 0 or line[j - 1] == sep:
            in_quote = True
        i = j + 1


_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")  # a literal first byte: re scans for it fast


def _plain_block(block: bytes, sep: int | None) -> bool:
    """No blank line and, for CSV (`sep` given), no line that leaves a quoted field open: the
    common case, checked with a few scans of the block and one step per line that has a quote."""
    payload = block[:-1] if block.endswith(b"\n") else block
    if not payload or _BLANK_LINE.search(b"\n" + payload + b"\n"):
        return False
    if sep is None:
        return True
    pos = payload.find(b'"')
    while pos >= 0:
        start = payload.rfind(b"\n", 0, pos) + 1
        end = payload.find(b"\n", pos)
        end = len(payload) if end < 0 else end
        if _open_quote(payload[start:end], sep, False):
            return False
        pos = payload.find(b'"', end)
    return True


class _Records:
    """Numbers the records of a staged file, line by line where a block is not plain: blank
    lines skipped, a quoted field that spans lines kept with its record, a quote that never
    closes given up (its line rejected alone, the lines after it read again)."""

    def __init__(self, info: StagedFile, sep: bytes, quoted: bool, line_no: int):
        self.info, self.sep, self.quoted, self.line_no = info, sep, quoted, line_no
        self.out: list[bytes] = []
        self.pending: list[bytes] = []  # the lines of a record whose quoted field is still open
        self.pending_no = 0
        self.pending_bytes = 0
        self.stray_crs = 0  # carriage returns removed from inside records (`_unstray`)

    def _unstray(self, line: bytes, in_quote: bool) -> bytes:
        """A CSV line (starting inside a quoted field or not) without the carriage returns that
        sit outside its quoted fields and end no line (junk an export left, `u2,A2\r,view`: the
        reader takes one for a line end and fails the whole file); one inside a quoted field is
        the value's and stays, and the line's own CR end is left to its reader. Fields are told
        as the reader tells them (`_open_quote`: a quote opens a field only at its start, `""`
        inside one is an escaped quote), on the text as it will be read: with a CR removed, the
        quote after it may open a field (`u1,\r"Lamp`), which decides whether the record goes on
        over the next line."""
        if not self.quoted or b"\r" not in line.rstrip(b"\r"):
            return line
        sep, out, n, i = self.sep[0], bytearray(), len(line), 0
        end = len(line.rstrip(b"\r"))  # (CRs from here on end the line)
        while i < n:
            c = line[i]
            if in_quote:
                out.append(c)
                if c == 34:
                    if i + 1 < n and line[i + 1] == 34:
                        out.append(34)
                        i += 1
                    else:
                        in_quote = False
            elif c == 13 and i < end:
                self.stray_crs += 1  # (dropped)
            else:
                if c == 34 and (not out or out[-1] == sep):
                    in_quote = True
                out.append(c)
            i += 1
        return bytes(out)

    def plain(self, lines: list[bytes], crlf: bool) -> None:
        """Every line one non-blank record (a plain block): numbered in one pass."""
        if crlf:
            lines = [line.rstrip(b"\r") for line in lines]
        sep = self.sep
        self.out += [b"%d%b%b" % (n, sep, line) for n, line in enumerate(lines, self.line_no + 1)]
        self.line_no += len(lines)
        self.info.records += len(lines)

    def lines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.line_no += 1
            self._feed(self.line_no, line)

    def _feed(self, line_no: int, line: bytes) -> None:
        line = self._unstray(line, bool(self.pending))
        if self.pending:
            self.pending.append(line)
            self.pending_bytes += len(line)
            if not _open_quote(line, self.sep[0], True):
                record = b"\n".join(ln.rstrip(b"\r") for ln in self.pending)
                fields, width = self._fields(record), len(self.info.header)
                if fields != width and all(
                    self._fields(ln.rstrip(b"\r")) == width for ln in self.pending[1:]
                ):
                    # a quote opened a field on the first line and one on a later line closed it:
                    # a stray quote, not a value over lines (one has the header's fields), which
                    # swallowed the valid lines between (each a record of the header's fields on
                    # its own) into one malformed row
                    self._give_up(
                        f"a quote opens a field on this line and one {len(self.pending) - 1} line(s) "
                        f"later closes it, making a record of {fields} fields where the header has "
                        f"{len(self.info.header)}: a stray quote (the lines after it are read again)"
                    )
                    return
                self.out.append(b"%d%b%b" % (self.pending_no, self.sep, record))
                self.info.records += 1
                self.pending = []
            elif len(self.pending) > MAX_QUOTED_LINES or self.pending_bytes > MAX_QUOTED_BYTES:
                self._give_up(
                    f"a quoted field opens on this line and is still open {MAX_QUOTED_LINES} lines later"
                )
            return
        if not line.strip(b"\r \t"):
            self.info.blank_lines += 1
            return
        if self.quoted and b'"' in line and _open_quote(line, self.sep[0], False):
            self.pending, self.pending_no, self.pending_bytes = [line], line_no, len(line)
            return
        self.out.append(b"%d%b%b" % (line_no, self.sep, line.rstrip(b"\r")))
        self.info.records += 1

    def _fields(self, record: bytes) -> int:
        """The fields of a CSV record spanning lines, as the warehouse's reader splits it (a
        quote opens a field at its start, `""` escapes one inside); -1 when it reads as more than
        one record."""
        import csv

        text = record.decode("utf-8", errors="replace")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=self.sep.decode()))
        return len(rows[0]) if len(rows) == 1 else -1

    def _give_up(self, why: str) -> None:
        first, rest, no = self.pending[0], self.pending[1:], self.pending_no
        self.pending = []
        text, _ = _decode_line(first.rstrip(b"\r"))
        self.info.bad_lines.append((no, text[:BAD_LINE_CHARS], why))
        for k, line in enumerate(rest, no + 1):
            self._feed(k, line)

    def finish(self) -> None:
        while self.pending:
            self._give_up("a quoted field opens on this line and never closes")

    def flush(self, dst: BinaryIO) -> None:
        if self.out:
            dst.write(b"\n".join(self.out) + b"\n")
            self.out = []


def _blocks(stream: _Readable, carry: bytes) -> Iterator[bytes]:
    """The stream in blocks that end at a line end (the last one may not)."""
    while True:
        chunk = stream.read(BLOCK_BYTES)
        data = carry + chunk
        if chunk:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        else:
            if data:
                yield data
            return


def _clean_block(block: bytes, info: StagedFile) -> bytes:
    """UTF-8 (lines in other encodings transcoded), without NUL bytes."""
    block, transcoded = _decode_block(block)
    info.transcoded_lines += transcoded
    if b"\x00" in block:
        info.nul_bytes += block.count(b"\x00")
        block = block.replace(b"\x00", b"")
    return block


def _stage_stream(
    source: Path,
    stream: _Readable,
    dst: BinaryIO,
    info: StagedFile,
    line_base: int,
    notes: list[str],
    *,
    many: bool,
) -> None:
    """Stage one file (or one part of a table: `line_base` numbers its lines after the earlier
    parts'; it must have the first part's header, which is written once)."""
    suffix = Path(source.name.lower().removesuffix(".gz")).suffix
    nul_before = info.nul_bytes
    carry = b""
    if info.format == "csv":
        while b"\n" not in carry:
            chunk = stream.read(BLOCK_BYTES)
            if not chunk:
                break
            carry += chunk
        cut = carry.find(b"\n")
        first, carry = (carry, b"") if cut < 0 else (carry[:cut], carry[cut + 1 :])
        header_text, _ = _decode_line(first.rstrip(b"\r").replace(b"\x00", b""))
        header_text = header_text.lstrip("\ufeff")
        if not header_text.strip():
            if many and not carry.strip():
                notes.append("empty: no header, no rows")
                return
            raise SourceError(
                str(source), 1, "the file is empty: a CSV file needs a header line naming its columns"
            )
        delimiter, header = sniff_header(header_text, suffix)
        if not info.header:
            info.delimiter, info.header = delimiter, header
            dst.write(f"{LINE_COLUMN}{info.delimiter}{header_text}\n".encode())
        elif (delimiter, header) != (info.delimiter, info.header):
            raise SourceError(
                str(source),
                1,
                f"its header ({', '.join(header)}) is not that of the table's first part "
                f"({', '.join(info.header)}): the parts of a table share one header",
            )
        records = _Records(info, info.delimiter.encode(), quoted=True, line_no=line_base + 1)
    else:
        records = _Records(info, JSON_DELIMITER.encode(), quoted=False, line_no=line_base)
    sep = records.sep[0] if records.quoted else None
    ended = True  # (no line after the header: nothing that could be cut)
    for raw_block in _blocks(stream, carry):
        ended = raw_block.rstrip(b"\x00").endswith((b"\n", b"\r"))
        block = _clean_block(raw_block, info)
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        # a CR that ends no line: the block is read line by line (`_Records._unstray`)
        stray = sep is not None and b"\r" in block and block.count(b"\r") != block.count(b"\r\n")
        if not records.pending and not stray and _plain_block(block, sep):
            records.plain(lines, b"\r" in block)
        else:
            records.lines(lines)
        records.flush(dst)
    records.finish()
    records.flush(dst)
    if not ended:
        info.unterminated.append(line_base // PART_LINES)
    if info.nul_bytes > nul_before:
        notes.append(f"{info.nul_bytes - nul_before} NUL byte(s) removed")
    if records.stray_crs:
        notes.append(
            f"{records.stray_crs} carriage return(s) inside a line and outside quotes removed (the reader "
            "would have ended the line there)"
        )


def _stage_json_array(
    source: Path, stream: _Readable, dst: BinaryIO, info: StagedFile, line_base: int
) -> None:
    """A JSON array of records, parsed element by element (memory holds one block), each element
    written as a record numbered by its place in the array (1: the first element): a row's
    number is its identity in the raw layer and the quarantine, and the elements of an array
    written on one line all started on line 1 (three events read as nine quarantined rows, two
    valid ones among them, and a repeated event id lost another). Errors name the line."""
    decoder = json.JSONDecoder()
    sep = JSON_DELIMITER.encode()
    text, pos, line = "", 0, line_base + 1
    element = line_base
    started = done = False
    blocks = _blocks(stream, b"")
    exhausted = False

    def more() -> bool:
        nonlocal text, pos, exhausted
        block = next(blocks, None)
        if block is None:
            exhausted = True
            return False
        text = text[pos:] + _clean_block(block, info).decode("utf-8")
        pos = 0
        return True

    while not done:
        while True:  # skip to the next value
            while pos < len(text) and text[pos] in " \t\r\n,\ufeff":
                line += text[pos] == "\n"
                pos += 1
            if pos < len(text) or not more():
                break
        if pos >= len(text):
            raise SourceError(
                str(source), line - line_base, "the JSON array is not closed (no ']' at the end)"
            )
        if not started:
            if text[pos] != "[":
                raise SourceError(str(source), line - line_base, "expected a JSON array or JSON lines")
            started, pos = True, pos + 1
            continue
        if text[pos] == "]":
            done = True
            pos += 1
            while True:  # nothing may follow the array (JSON lines of arrays would lose lines)
                rest = text[pos:].lstrip(" \t\r\n")
                if rest:
                    line += text.count("\n", pos, len(text) - len(rest))
                    raise SourceError(
                        str(source),
                        line - line_base,
                        "more data after the JSON array: a .json file holds one JSON array, or one JSON object per line",
                    )
                if not more():
                    break
            break
        while True:
            try:
                value, end = decoder.raw_decode(text, pos)
                break
            except json.JSONDecodeError as exc:
                if exhausted or not more():
                    raise SourceError(
                        str(source),
                        line - line_base + text.count("\n", pos, exc.pos),
                        f"invalid JSON: {exc.msg}",
                    ) from exc
        element += 1
        dst.write(b"%d%b%b\n" % (element, sep, json.dumps(value, ensure_ascii=False).encode("utf-8")))
        info.records += 1
        line += text.count("\n", pos, end)
        pos = end


def outside_workdir(out: str | Path, workdir: str | Path, flag: str = "--out") -> Path:
    """`out` when it is outside the workdir, else a ShelfwiseError: an export, a list of
    recommendations or answers written inside it could replace the people register, the audit
    trail or the live bundle's pointer (a reader's `export --out W/governance/people.json` locked
    the whole team out). The workdir's own files are written by the commands that own them."""
    from ..errors import ShelfwiseError

    where, work = Path(out).resolve(), Path(workdir).resolve()
    if where == work or work in where.parents:
        raise ShelfwiseError(
            f"{flag} {out}: inside the workdir {work}, which holds the shop's governed files (people, "
            "audit trail, bundles): write it outside the workdir"
        )
    return Path(out)
