"""Finding and staging source files.

Staging streams a source file once, block by block (memory does not grow with the file):
it decodes each line as UTF-8 and falls back to cp1252/latin-1 for lines that are not (files that
mix encodings keep every line), records the SHA-256 of the bytes, skips blank lines, and prefixes
every record with its physical line number, so that the warehouse's CSV reader - which numbers
records, not lines - can still name the exact line of every bad row.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import SourceError

SUPPORTED_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson", ".json")
BLOCK_BYTES = 8 << 20
LINE_COLUMN = "_line"
JSON_DELIMITER = "\x1e"  # never inside valid JSON (control characters must be escaped there)


@dataclass
class StagedFile:
    source: Path
    staged: Path | None  # None for parquet (read in place)
    format: str  # csv | jsonl | parquet
    delimiter: str = ","
    header: list[str] = field(default_factory=list)
    sha256: str = ""
    size_bytes: int = 0
    records: int = 0
    blank_lines: int = 0
    transcoded_lines: int = 0  # lines that were not valid UTF-8 and were read as cp1252/latin-1


def find_table_file(data_dir: Path, table: str) -> Path | None:
    """The source file of a canonical table in a dataset directory, or None."""
    candidates = []
    for suffix in SUPPORTED_SUFFIXES:
        for name in (f"{table}{suffix}", f"{table}{suffix}.gz"):
            p = data_dir / name
            if p.is_file():
                candidates.append(p)
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise SourceError(
            str(data_dir), None, f"several files for table {table!r} ({names}); keep exactly one"
        )
    return candidates[0] if candidates else None


def file_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def _open(path: Path) -> BinaryIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


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


_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")  # a literal first byte: re scans for it fast


def _plain_block(block: bytes, quoted: bool) -> bool:
    """No blank line in `block` and, for CSV, no line with an odd number of quotes (which would
    open a quoted field continuing on the next line): the common case, checked with a few scans
    of the block and one step per line that has a quote, not per line."""
    payload = block[:-1] if block.endswith(b"\n") else block
    if not payload or _BLANK_LINE.search(b"\n" + payload + b"\n"):
        return False
    if not quoted:
        return True
    pos = payload.find(b'"')
    while pos >= 0:
        start = payload.rfind(b"\n", 0, pos) + 1
        end = payload.find(b"\n", pos)
        end = len(payload) if end < 0 else end
        if payload.count(b'"', start, end) % 2:
            return False
        pos = payload.find(b'"', end)
    return True


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


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(BLOCK_BYTES):
            h.update(chunk)
    return h.hexdigest()


def stage_file(source: Path, staged_dir: Path) -> StagedFile:
    """Stage one source file for loading (see the module docstring)."""
    if not source.exists():
        raise SourceError(str(source), None, "file not found")
    fmt = file_format(source)
    info = StagedFile(source=source, staged=None, format=fmt)
    if fmt == "parquet":
        h = hashlib.sha256()
        with open(source, "rb") as fh:
            while chunk := fh.read(BLOCK_BYTES):
                h.update(chunk)
                info.size_bytes += len(chunk)
        info.sha256 = h.hexdigest()
        return info
    staged_dir.mkdir(parents=True, exist_ok=True)
    info.staged = staged_dir / (source.name.removesuffix(".gz") + ".staged")
    h = hashlib.sha256()
    try:
        with _open(source) as src, open(info.staged, "wb") as dst:
            _stage_stream(src, dst, info, h)
    except (OSError, EOFError) as exc:  # e.g. a truncated gzip file
        raise SourceError(str(source), None, f"unreadable file: {exc}") from exc
    info.sha256 = h.hexdigest()
    return info


def _stage_stream(src: BinaryIO, dst: BinaryIO, info: StagedFile, h: hashlib._Hash) -> None:
    suffix = Path(info.source.name.lower().removesuffix(".gz")).suffix
    first = src.readline()
    h.update(first)
    info.size_bytes += len(first)
    line_no = 1
    if info.format == "csv":
        header_text, _ = _decode_line(first.rstrip(b"\r\n"))
        header_text = header_text.lstrip("\ufeff")
        if not header_text.strip():
            raise SourceError(
                str(info.source), 1, "the file is empty: a CSV file needs a header line naming its columns"
            )
        info.delimiter = _sniff_delimiter(header_text, suffix)
        info.header = _split_header(header_text, info.delimiter)
        dst.write(f"{LINE_COLUMN}{info.delimiter}{header_text}\n".encode())
        sep = info.delimiter.encode()
    else:
        sep = JSON_DELIMITER.encode()
        line_no = 0
    carry = first if info.format != "csv" else b""
    in_quote = False
    quoted = info.format == "csv"
    while True:
        chunk = src.read(BLOCK_BYTES)
        h.update(chunk)
        info.size_bytes += len(chunk)
        data = carry + chunk
        if chunk:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            block, carry = data[: cut + 1], data[cut + 1 :]
        else:
            block, carry = data, b""
            if not block:
                break
        block, transcoded = _decode_block(block)
        info.transcoded_lines += transcoded
        lines = block.split(b"\n")
        if block.endswith(b"\n"):
            lines.pop()
        out = []
        if not in_quote and _plain_block(block, quoted):
            # every line is one non-blank record (no quoted field spans lines): numbered in one pass
            if b"\r" in block:
                lines = [line.rstrip(b"\r") for line in lines]
            out = [b"%d%b%b" % (n, sep, line) for n, line in enumerate(lines, line_no + 1)]
            line_no += len(lines)
            info.records += len(out)
        elif quoted and (in_quote or b'"' in block):
            for line in lines:
                line_no += 1
                if in_quote:
                    out.append(line)  # continuation of a quoted field that spans lines
                elif line.strip(b"\r \t"):
                    out.append(b"%d%b%b" % (line_no, sep, line.rstrip(b"\r")))
                    info.records += 1
                else:
                    info.blank_lines += 1
                    continue
                if line.count(b'"') % 2:
                    in_quote = not in_quote
        else:
            for line in lines:
                line_no += 1
                if line.strip(b"\r \t"):
                    out.append(b"%d%b%b" % (line_no, sep, line.rstrip(b"\r")))
                else:
                    info.blank_lines += 1
            info.records += len(out)
        if out:
            dst.write(b"\n".join(out) + b"\n")
        if not chunk:
            break
