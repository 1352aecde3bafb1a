"""The shop's search synonyms, live: `config/synonyms.txt`, changed with `shelfwise rules
synonyms --file` or the console, read by every serving process on its next search.

`shelfwise train` builds a bundle's synonyms from the first synonyms file it finds (the data
folder's, then `config/synonyms.txt`); synonyms only touch the query (a query word adds its
synonyms before retrieval), so a new list needs no new index. When `config/synonyms.txt`
exists, serving uses it instead of the bundle's list; without it, the bundle's.

The file is plain text (one group per line, `a, b, c` or `a => b, c`, `#` comments) with a
first line `# shelfwise synonyms version N ...` written on every save: the version is bumped,
the previous file kept under `config/synonyms-history/`, and the change audited as a
`rules.change` with `what: synonyms` (the same permission as the rules). Each process notices a
change by the file's stat (mtime, size, inode: one `stat` call per search, microseconds), so
every worker of a multi-worker server sees a save on its next request without a broker.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ShelfwiseError

__all__ = [
    "SYNONYMS_FILE",
    "LiveSynonyms",
    "check_synonyms",
    "save_synonyms",
    "synonyms_text",
    "synonyms_version",
]

log = logging.getLogger("shelfwise.serving")

SYNONYMS_FILE = Path("config") / "synonyms.txt"
_HEADER = re.compile(r"^#\s*shelfwise synonyms version (\d+)\b.*$", re.MULTILINE)
MAX_BYTES = 1_000_000  # a synonyms list, not a thesaurus dump: every query scans it


def synonyms_version(text: str) -> int:
    """The version on the file's header line (0 for a file written by hand without one)."""
    m = _HEADER.search(text)
    return int(m.group(1)) if m else 0


def _body(text: str) -> str:
    """The text without its header line(s): what a person edits."""
    return _HEADER.sub("", text).lstrip("\n")


def check_synonyms(text: str, source: str = "synonyms") -> dict[str, list[str]]:
    """The groups the text defines, as serving will read them; a clear error naming the line
    for a line that defines nothing (`a =>`, `=> b`, a single word)."""
    from ..search import parse_synonyms

    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ShelfwiseError(f"{source}: over {MAX_BYTES:,} bytes; keep the list to real synonyms")
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=>" in line:
            lhs, rhs = line.split("=>", 1)
            if "=>" in rhs:
                raise ShelfwiseError(f"{source}: line {n}: more than one '=>': {raw.strip()!r}")
            if not [t for t in lhs.split(",") if t.strip()] or not [t for t in rhs.split(",") if t.strip()]:
                raise ShelfwiseError(
                    f"{source}: line {n}: 'a => b, c' needs words on both sides: {raw.strip()!r}"
                )
        elif len({" ".join(t.lower().split()) for t in line.split(",") if t.strip()}) < 2:
            # ("a, a" is one word twice: as empty a group as "a" alone)
            raise ShelfwiseError(
                f"{source}: line {n}: a group needs two or more different words separated by commas "
                f"(or 'a => b'): {raw.strip()!r}"
            )
    return parse_synonyms(text)


def synonyms_text(
    workdir: str | Path, bundle_synonyms: dict[str, list[str]] | None = None
) -> tuple[str, int]:
    """(the list to edit, its version): the file without its header, or, without a file, the
    bundle's synonyms written one `a => b, c` line each (version 0)."""
    path = Path(workdir) / SYNONYMS_FILE
    if path.exists():
        text = path.read_text(encoding="utf-8")
        return _body(text), synonyms_version(text)
    lines = [f"{a} => {', '.join(b)}" for a, b in sorted((bundle_synonyms or {}).items()) if b]
    return "\n".join(lines) + ("\n" if lines else ""), 0


def save_synonyms(workdir: str | Path, text: str, actor: str = "cli") -> dict[str, Any]:
    """Validate and install a synonyms list as the next version: the previous file kept under
    config/synonyms-history/, the change audited; one change at a time. Returns version,
    sha256, groups."""
    from ._rules import config_lock

    workdir = Path(workdir)
    body = _body(text.replace("\r\n", "\n"))
    groups = check_synonyms(body)

    with config_lock(workdir, "synonyms"):  # (one change at a time, as the rules)
        return _install_synonyms(workdir, body, groups, actor)


def _install_synonyms(workdir: Path, body: str, groups: Any, actor: str) -> dict[str, Any]:
    from ..governance import AuditLog
    from ._rules import _write_atomically

    path = workdir / SYNONYMS_FILE
    previous = synonyms_version(path.read_text(encoding="utf-8")) if path.exists() else 0
    version = previous + 1
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = f"# shelfwise synonyms version {version} (saved by {actor} at {when}; change it with `shelfwise rules synonyms`)\n{body}"
    if not doc.endswith("\n"):
        doc += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        hist = workdir / "config" / "synonyms-history"
        hist.mkdir(exist_ok=True)
        (hist / f"synonyms-v{previous}.txt").write_bytes(path.read_bytes())
    _write_atomically(path, doc)  # whole or not at all: serving processes may be reading it
    sha = hashlib.sha256(doc.encode("utf-8")).hexdigest()
    AuditLog(workdir).append(
        "rules.change",
        actor=actor,
        what="synonyms",
        file=str(SYNONYMS_FILE),
        version=version,
        sha256=sha,
        previous_version=previous,
        synonyms=len(groups),
    )
    return {"version": version, "sha256": sha, "synonyms": len(groups), "file": str(path)}


class LiveSynonyms:
    """The synonyms serving uses now: `check()` stats the file (reloading it when its stamp
    moved) and returns the stamp, part of every search cache key; `apply(engine)` sets the
    engine's synonyms to the file's, or back to the bundle's own when there is no file."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / SYNONYMS_FILE
        self.groups: dict[str, list[str]] | None = None  # None: no file, the bundle's synonyms
        self.version = 0
        self.stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._bundle: weakref.WeakKeyDictionary[Any, dict[str, list[str]]] = weakref.WeakKeyDictionary()
        self._loaded = False
        self.check()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def check(self) -> tuple[int, int, int] | None:
        stamp = self._stat()
        if self._loaded and stamp == self.stamp:
            return self.stamp
        with self._lock:
            if self._loaded and stamp == self.stamp:
                return self.stamp
            if stamp is None:
                groups, version = None, 0
            else:
                from ..search import parse_synonyms

                try:  # as leniently as `shelfwise train` reads it (a save checks strictly)
                    text = self.path.read_text(encoding="utf-8")
                    groups, version = parse_synonyms(text), synonyms_version(text)
                except (OSError, UnicodeDecodeError) as exc:
                    # a file being replaced or not text: keep the last good list
                    log.error("synonyms not reloaded, still using version %s: %s", self.version, exc)
                    return self.stamp
            self.groups, self.version, self.stamp, self._loaded = groups, version, stamp, True
            if stamp is not None:
                log.info("synonyms version %s loaded (%d words)", version, len(groups or {}))
        return self.stamp

    def apply(self, engine: Any) -> None:
        with self._lock:
            base = self._bundle.setdefault(engine, engine.synonyms_)
            want = base if self.groups is None else self.groups
        if engine.synonyms_ is not want:
            engine.synonyms_ = want  # one reference assignment: a query reads the old or the new list

    def bundle_synonyms(self, engine: Any) -> dict[str, list[str]]:
        """The engine's own synonyms (its bundle's), whatever it uses now."""
        with self._lock:
            return self._bundle.get(engine, engine.synonyms_)
