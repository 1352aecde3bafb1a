"""Loaders: public dataset formats -> the canonical dataset directory.

Loaders only *map* a format onto the canonical columns, streaming line by line; they do not clean.
Cleaning and rejection are the governed path's job, so a loader passes a line it cannot parse
through unchanged (it then lands in quarantine as `malformed_row` with its file and line) rather
than dropping it.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from ..errors import SourceError

EVENT_COLUMNS = ["user_id", "product_id", "event_type", "timestamp", "session_id", "query", "value", "text"]


@dataclass
class ConvertResult:
    format: str
    out: Path
    files: dict[str, int] = field(default_factory=dict)  # canonical file -> rows written
    passed_through: int = 0  # source lines that could not be parsed, written for the quarantine
    # fields a format is known to carry scraping debris in, cleaned on the way: what, how many
    # (a page's markup for a title: the title taken from the description; CSS for a price: none)
    cleaned: dict[str, int] = field(default_factory=dict)


def _open_text(path: Path) -> IO[str]:
    """Text of a (possibly gzipped) file; bytes that are not UTF-8 are read as cp1252/latin-1."""
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def _fix(text: str) -> str:
    """Repair a line read with surrogateescape: undecodable bytes are re-read as cp1252/latin-1."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", errors="surrogateescape")
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _JsonlWriter:
    def __init__(self, path: Path):
        self.fh = open(path, "w", encoding="utf-8")
        self.rows = 0

    def write(self, rec: dict[str, Any]) -> None:
        self.fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.rows += 1

    def write_raw(self, line: str) -> None:
        """An unparseable source line, kept so that ingestion quarantines it with its line number."""
        self.fh.write(line.rstrip("\r\n").replace("\n", " ") + "\n")
        self.rows += 1

    def close(self) -> None:
        self.fh.close()


# ---------------------------------------------------------------------------------------------
def convert_movielens(src: Path, out: Path) -> ConvertResult:
    """MovieLens: RecBole atomic files (`*.inter`, `*.item`, `*.user`) or the classic `u.data`/`u.item`/`u.user`."""
    res = ConvertResult("movielens", out)
    inter = next(iter(sorted(src.glob("*.inter"))), None)
    classic = src / "u.data"
    ev = _JsonlWriter(out / "events.jsonl")
    if inter is not None:
        with _open_text(inter) as fh:
            header = [h.split(":")[0] for h in fh.readline().rstrip("\r\n").split("\t")]
            for line in fh:
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) != len(header):
                    ev.write_raw(line)
                    res.passed_through += 1
                    continue
                r = dict(zip(header, parts, strict=True))
                ev.write(
                    {
                        "user_id": r.get("user_id"),
                        "product_id": r.get("item_id"),
                        "event_type": "rating",
                        "timestamp": r.get("timestamp"),
                        "value": r.get("rating"),
                    }
                )
    elif classic.exists():
        with _open_text(classic) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) != 4:
                    ev.write_raw(line)
                    res.passed_through += 1
                    continue
                ev.write(
                    {
                        "user_id": parts[0],
                        "product_id": parts[1],
                        "event_type": "rating",
                        "timestamp": parts[3],
                        "value": parts[2],
                    }
                )
    else:
        raise SourceError(str(src), None, "no MovieLens ratings file (*.inter or u.data)")
    ev.close()
    res.files["events.jsonl"] = ev.rows
    item = next(iter(sorted(src.glob("*.item"))), None)
    if item is not None or (src / "u.item").exists():
        pw = _JsonlWriter(out / "products.jsonl")
        if item is not None:
            with _open_text(item) as fh:
                header = [h.split(":")[0] for h in fh.readline().rstrip("\r\n").split("\t")]
                for line in fh:
                    parts = [_fix(p) for p in line.rstrip("\r\n").split("\t")]
                    r = dict(zip(header, parts, strict=False))
                    year = r.get("release_year", "")
                    genres = (r.get("class") or "").split()
                    pw.write(
                        {
                            "product_id": r.get("item_id"),
                            "title": r.get("movie_title"),
                            "category": " > ".join(["Movies", genres[0]]) if genres else "Movies",
                            "attributes": json.dumps({"year": year, "genres": genres}),
                        }
                    )
        else:
            genre_names = [
                "unknown",
                "Action",
                "Adventure",
                "Animation",
                "Children's",
                "Comedy",
                "Crime",
                "Documentary",
                "Drama",
                "Fantasy",
                "Film-Noir",
                "Horror",
                "Musical",
                "Mystery",
                "Romance",
                "Sci-Fi",
                "Thriller",
                "War",
                "Western",
            ]
            with _open_text(src / "u.item") as fh:
                for line in fh:
                    parts = _fix(line.rstrip("\r\n")).split("|")
                    flags = parts[5:24]
                    genres = [g for g, f in zip(genre_names, flags, strict=False) if f == "1"]
                    pw.write(
                        {
                            "product_id": parts[0],
                            "title": parts[1] if len(parts) > 1 else None,
                            "category": " > ".join(["Movies", genres[0]]) if genres else "Movies",
                            "attributes": json.dumps(
                                {"released": parts[2] if len(parts) > 2 else None, "genres": genres}
                            ),
                        }
                    )
        pw.close()
        res.files["products.jsonl"] = pw.rows
    user = next(iter(sorted(src.glob("*.user"))), None)
    if user is not None or (src / "u.user").exists():
        uw = _JsonlWriter(out / "users.jsonl")
        path = user or (src / "u.user")
        with _open_text(path) as fh:
            if user is not None:
                header = [h.split(":")[0] for h in fh.readline().rstrip("\r\n").split("\t")]
                split: Callable[[str], list[str]] = lambda s: s.split("\t")  # noqa: E731
            else:
                header = ["user_id", "age", "gender", "occupation", "zip_code"]
                split = lambda s: s.split("|")  # noqa: E731
            for line in fh:
                uw.write(dict(zip(header, split(_fix(line.rstrip("\r\n"))), strict=False)))
        uw.close()
        res.files["users.jsonl"] = uw.rows
    return res


# ---------------------------------------------------------------------------------------------
def _parse_loose_json(line: str) -> dict[str, Any] | None:
    """A JSON object, or the Python-literal dicts of the 2014 Amazon metadata; None if neither."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        try:
            obj = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return obj if isinstance(obj, dict) else None


def _json_records(paths: list[Path], writer: _JsonlWriter, res: ConvertResult) -> Iterator[dict[str, Any]]:
    """The objects of JSON-lines files; a line that is neither JSON nor a Python dict is passed through."""
    for path in paths:
        with _open_text(path) as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = _parse_loose_json(_fix(line))
                if rec is None:
                    writer.write_raw(_fix(line))
                    res.passed_through += 1
                    continue
                yield rec


def convert_amazon_reviews(src: Path, out: Path) -> ConvertResult:
    """Amazon reviews JSON lines (`reviewerID`, `asin`, `overall`, `unixReviewTime`, ...) + `meta_*.json`."""
    res = ConvertResult("amazon", out)
    review_files = [
        p
        for p in sorted(src.iterdir())
        if p.is_file()
        and not p.name.startswith("meta_")
        and p.name.removesuffix(".gz").endswith((".json", ".jsonl"))
    ]
    if not review_files:
        raise SourceError(str(src), None, "no Amazon review file (*.json or *.json.gz)")
    ev = _JsonlWriter(out / "events.jsonl")
    for r in _json_records(review_files, ev, res):
        text = r.get("reviewText")
        if r.get("summary"):
            text = f"{r['summary']}. {text or ''}".strip()
        ev.write(
            {
                "user_id": r.get("reviewerID"),
                "product_id": r.get("asin"),
                "event_type": "rating",
                "timestamp": r.get("unixReviewTime"),
                "value": r.get("overall"),
                "text": text,
            }
        )
    ev.close()
    res.files["events.jsonl"] = ev.rows
    metas = sorted(src.glob("meta_*.json*"))
    if metas:
        pw = _JsonlWriter(out / "products.jsonl")
        for m in _json_records(metas, pw, res):
            cats = m.get("category") or m.get("categories") or []
            if cats and isinstance(cats[0], list):  # 2014: a list of category paths
                if len(cats) > 1:  # (the first kept, counted: it was kept without a word)
                    said = "products.category: several category paths, the first kept"
                    res.cleaned[said] = res.cleaned.get(said, 0) + 1
                cats = cats[0]
            cats = [html.unescape(str(c)) for c in cats]  # ("Arts, Music &amp; Photography")
            desc = m.get("description")
            if isinstance(desc, list):
                desc = " ".join(str(d) for d in desc)
            attrs = {k: m[k] for k in ("feature", "details", "main_cat", "rank", "date") if m.get(k)}
            title = _markup_free(m.get("title"))
            if title is None and m.get("title"):
                # Amazon's 2018 metadata often holds a fragment of the page's markup where the
                # title was (`<span class="a-size-medium ...`: 93% of Magazine Subscriptions):
                # the description's first sentence names the product, else brand and category
                title = (
                    _first_sentence(desc)
                    or " - ".join(str(x) for x in (m.get("brand"), cats[-1] if cats else None) if x)
                    or None
                )
                key = "products.title: markup replaced by " + ("a derived title" if title else "nothing")
                res.cleaned[key] = res.cleaned.get(key, 0) + 1
            price = m.get("price")
            if isinstance(price, str) and price.strip() and not _PRICE.fullmatch(price.strip()):
                price = None  # a page's CSS or script where the price was: no price, not a bad row
                res.cleaned["products.price: not a price, left empty"] = (
                    res.cleaned.get("products.price: not a price, left empty", 0) + 1
                )
            pw.write(
                {
                    "product_id": m.get("asin"),
                    "title": title,
                    "description": desc,
                    "category": " > ".join(cats) if cats else None,
                    "brand": m.get("brand"),
                    "price": price,
                    "attributes": json.dumps(attrs, ensure_ascii=False) if attrs else None,
                }
            )
        pw.close()
        res.files["products.jsonl"] = pw.rows
    return res


_PRICE = re.compile(r"\$?\s*\d[\d,]*(\.\d+)?(\s*-\s*\$?\s*\d[\d,]*(\.\d+)?)?")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")  # a whole tag (`Kids <12` holds none)
_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_CODE = re.compile(r"<[A-Za-z!/]|/>|\{[^{}]*:[^{}]*;|<script|<style", re.IGNORECASE)


def _markup_free(text: Any) -> str | None:
    """A field's text with whole tags taken out (`<b>Allure</b>` is Allure); None when what is
    left is still (a piece of) a web page's markup or code: a tag cut short (`<span class="...`),
    a tag's end (` Magazines" />`), CSS (`.a-box{color:#fff;}`). Braces alone are text
    (`June 19 2014{the Country Issue}`), as are a lone letter or a number (`Q`, `2600`)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = _SCRIPT.sub(" ", html.unescape(text))  # (a script's or style's content is code, not text)
    text = " ".join(_TAG.sub(" ", text).split())
    return None if not text or _CODE.search(text) or not re.search(r"\w", text) else text


_SENTENCE_END = re.compile(r"[.!?](?=\s)")
# a word a period ends without ending the sentence: the usual abbreviations (titles, company
# forms, "St", "Vol", "No", months), a single initial and initials (U.S, J.K); "Set.", "Tea."
# and "Kit." end theirs
_ABBREVIATION = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sr|Jr|St|Mt|Ft|Inc|Co|Corp|Ltd|Llc|Bros|Vol|Vols|No|Nos|Ed|Eds|Pp|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|etc|vs|approx|incl|[A-Z]|(?:[A-Za-z]\.)+[A-Za-z])\.$",
    re.IGNORECASE,
)
MIN_TITLE_CHARS = 12


def _first_sentence(text: Any, limit: int = 100) -> str | None:
    """A description's first sentence as a title (cut at a word, up to `limit` characters)."""
    clean = _markup_free(text)
    if clean is None:
        return None
    first = clean
    for m in _SENTENCE_END.finditer(clean):
        head = clean[: m.start() + 1]
        # not after an abbreviation ("Dr. Oz The Good Life" was titled "Dr"; "St.", "Inc.",
        # "U.S.") nor before there are words enough to name a product
        if len(head) >= MIN_TITLE_CHARS and not _ABBREVIATION.search(head):
            first = head
            break
    first = first.rstrip(".").strip()
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0].rstrip(" ,;:-") + "..."
    return first or None


# ---------------------------------------------------------------------------------------------
SEQUENCE_EPOCH = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp())


def convert_sequences(src: Path, out: Path) -> ConvertResult:
    """One user per line: `user item item ...` in chronological order (S3-Rec, SASRec files).

    The files carry order only; each interaction gets a synthetic timestamp one hour after the
    previous one of that user, so order-based splits (leave-one-out) see the true order.
    An `*_item2attributes.json` beside the file becomes `products.attributes`.
    """
    res = ConvertResult("sequences", out)
    found = [src] if src.is_file() else sorted(p for p in src.glob("*.txt"))
    if not found:
        raise SourceError(str(src), None, "no sequence file (*.txt: `user item item ...` per line)")
    if len(found) > 1:  # two shops' sequences (their ids collide): never one of them in silence
        raise SourceError(
            str(src),
            None,
            f"{len(found)} sequence files ({', '.join(p.name for p in found)}): one shop's sequences are "
            "one file; give the file itself (--src DIR/NAME.txt), or a folder holding only it",
        )
    path = found[0]
    ev = _JsonlWriter(out / "events.jsonl")
    items: set[str] = set()
    with _open_text(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                ev.write_raw(line if line.strip() else "(empty sequence line)")
                res.passed_through += 1
                continue
            user, seq = parts[0], parts[1:]
            for pos, item in enumerate(seq):
                items.add(item)
                ev.write(
                    {
                        "user_id": user,
                        "product_id": item,
                        "event_type": "purchase",
                        "timestamp": SEQUENCE_EPOCH + pos * 3600,
                    }
                )
    ev.close()
    res.files["events.jsonl"] = ev.rows
    attr_file = path.with_name(path.stem + "_item2attributes.json")
    if attr_file.exists():
        attrs = json.loads(attr_file.read_text())
        pw = _JsonlWriter(out / "products.jsonl")
        for item in sorted(items | set(attrs), key=lambda x: (len(x), x)):
            a = attrs.get(item, [])
            pw.write(
                {"product_id": item, "title": f"item {item}", "attributes": json.dumps({"attribute_ids": a})}
            )
        pw.close()
        res.files["products.jsonl"] = pw.rows
    return res


# ---------------------------------------------------------------------------------------------
def convert_homedepot(src: Path, out: Path) -> ConvertResult:
    """Home Depot style judgments: `search_term,product_uid,relevance` (+ `product_title`), latin-1."""
    res = ConvertResult("homedepot", out)
    path = src if src.is_file() else next(iter(sorted(src.glob("*.csv"))), None)
    if path is None:
        raise SourceError(str(src), None, "no Home Depot CSV file")
    queries: dict[str, str] = {}
    titles: dict[str, str] = {}
    jw = open(out / "judgments.csv", "w", encoding="utf-8", newline="")
    j = csv.writer(jw)
    j.writerow(["query_id", "product_id", "relevance"])
    n = 0
    with _open_text(path) as fh:
        reader = csv.DictReader(_fix(line) for line in fh)
        missing = {"search_term", "product_uid", "relevance"} - set(reader.fieldnames or [])
        if missing:
            raise SourceError(str(path), 1, f"missing column(s) {sorted(missing)} for the Home Depot format")
        for r in reader:
            term = (r.get("search_term") or "").strip()
            qid = queries.setdefault(term, f"q{len(queries) + 1}")
            j.writerow([qid, r.get("product_uid"), r.get("relevance")])
            n += 1
            if r.get("product_title"):
                titles[r["product_uid"]] = r["product_title"]
    jw.close()
    res.files["judgments.csv"] = n
    with open(out / "queries.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query_id", "query"])
        for term, qid in queries.items():
            w.writerow([qid, term])
    res.files["queries.csv"] = len(queries)
    if titles:
        with open(out / "products.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["product_id", "title"])
            for pid, title in titles.items():
                w.writerow([pid, title])
        res.files["products.csv"] = len(titles)
    return res


# ---------------------------------------------------------------------------------------------
def convert_diginetica(src: Path, out: Path) -> ConvertResult:
    """DIGINETICA item views: `session_id;user_id;item_id;timeframe;eventdate` (anonymous sessions)."""
    res = ConvertResult("diginetica", out)
    path = src if src.is_file() else next(iter(sorted(src.glob("*.csv"))), None)
    if path is None:
        raise SourceError(str(src), None, "no DIGINETICA CSV file")
    ev = _JsonlWriter(out / "events.jsonl")
    with _open_text(path) as fh:
        header = fh.readline().strip().split(";")
        for line in fh:
            parts = line.rstrip("\r\n").split(";")
            if len(parts) != len(header):
                ev.write_raw(line)
                res.passed_through += 1
                continue
            r = dict(zip(header, parts, strict=True))
            user = r.get("user_id")
            # a session without a user is anonymous browsing: no user id, its session's (the
            # contract attributes it to `~anonymous:<session>`, never a customer; it was made a
            # user "session-N", profiled and counted a marketing contact)
            user = None if user in (None, "", "NA") else user
            # eventdate is a day; timeframe is milliseconds since the start of the session's day,
            # kept to the millisecond (whole seconds made two views 450 ms apart one row and the
            # second a duplicate_row). A timeframe that is no such number is written as it came
            # (`2016-05-09 +abc ms`: an invalid timestamp to the quarantine), never the day's
            # midnight without a word
            try:
                day = datetime.fromisoformat(r["eventdate"]).replace(tzinfo=UTC)
                ms = int(r["timeframe"])
                if not 0 <= ms < 86_400_000 * 2:  # (a session may run past its day's midnight)
                    raise ValueError(ms)
                ts: Any = (day + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
            except (KeyError, ValueError):
                ts = f"{r.get('eventdate')} +{r.get('timeframe')} ms"
            ev.write(
                {
                    "user_id": user,
                    "product_id": r.get("item_id"),
                    "event_type": "view",
                    "timestamp": ts,
                    "session_id": r.get("session_id"),
                }
            )
    ev.close()
    res.files["events.jsonl"] = ev.rows
    return res


CONVERTERS: dict[str, Callable[[Path, Path], ConvertResult]] = {
    "movielens": convert_movielens,
    "amazon": convert_amazon_reviews,
    "sequences": convert_sequences,
    "homedepot": convert_homedepot,
    "diginetica": convert_diginetica,
}


def detect_format(src: Path) -> str | None:
    """Which known format a path holds; 'canonical' for a canonical dataset directory; None if unknown."""
    from ..storage._sources import find_table_file

    if src.is_dir():
        # a column map (shelfwise.toml) says the directory is read as canonical tables
        if (src / "shelfwise.toml").is_file():
            return "canonical"
        if find_table_file(src, "events") or find_table_file(src, "products"):
            return "canonical"
        names = [p.name for p in src.iterdir()]
        if any(n.endswith(".inter") for n in names) or "u.data" in names:
            return "movielens"
        if any(n.startswith("meta_") for n in names) or any(
            n.removesuffix(".gz").endswith(".json")
            and not n.startswith("meta_")
            and _first_line_has(src / n, "reviewerID")
            for n in names
        ):
            return "amazon"
        files = [src / n for n in names if (src / n).is_file()]
    else:
        files = [src]
    for f in files:
        first = _first_line(f)
        if "search_term" in first and "product_uid" in first:
            return "homedepot"
        if first.startswith("session_id;"):
            return "diginetica"
        if f.suffix == ".txt" and first and all(tok.isdigit() for tok in first.split()[:5]):
            return "sequences"
    return None


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as fh:
            return fh.readline(10000)
    except (OSError, EOFError):
        return ""


def _first_line_has(path: Path, needle: str) -> bool:
    return needle in _first_line(path)


def convert(src: str | Path, out: str | Path, fmt: str = "auto") -> ConvertResult:
    """Convert `src` (a file or directory in a known format) into the canonical directory `out`."""
    src, out = Path(src), Path(out)
    if not src.exists():
        raise SourceError(str(src), None, "not found")
    if fmt == "auto":
        detected = detect_format(src)
        if detected is None or detected == "canonical":
            raise SourceError(
                str(src),
                None,
                "cannot tell the format"
                if detected is None
                else "already a canonical dataset directory; ingest it directly",
            )
        fmt = detected
    if fmt not in CONVERTERS:
        raise SourceError(str(src), None, f"unknown format {fmt!r} (known: {', '.join(CONVERTERS)})")
    out.mkdir(parents=True, exist_ok=True)
    return CONVERTERS[fmt](src, out)
