"""Compiling a contract into warehouse SQL: typed values plus a reason code per failed check.

The compiler emits one SELECT over a raw (all-strings) table that yields, for every row, the typed
value of each column and the list of every check it failed (lazy: all failures are collected, the
first is the primary reason). One contract spec, two dialects: DuckDB's (the default warehouse) and
Spark SQL's (`--engine spark`). The few functions whose names or semantics differ between the two
(regular expressions, format parsing, literals, arrays) go through a `Dialect`; everything else is
SQL both engines read alike. tests/storage/test_spark_parity.py runs the same dirty data through
both and requires the same rows, reasons and values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._contracts import (
    CURRENCY_CODES,
    CURRENCY_SIGNS,
    CURRENCY_SPELLINGS,
    NO_SALE,
    RETURN,
    ColumnSpec,
    Kind,
    TableContract,
)
from ._privacy import ANONYMOUS_PREFIX, PII_PATTERNS
from ._reasons import Reason

NORMALIZE_UDF = "sw_normalize_text"
NORMALIZE_LINES_UDF = "sw_normalize_lines"  # the same, keeping line breaks (ColumnSpec.keep_lines)
# Spark only, DuckDB's own JSON functions run on each Arrow batch (`_duck_json`): Spark's
# get_json_object accepts `{"a": 1} trailing text`, and its from_json(.., map<string,string>)
# reads a number, a boolean or a nested object as text
JSON_VALID_UDF = "sw_json_valid"
JSON_MERGE_UDF = "sw_json_merge"
JSON_COVERED_UDF = "sw_json_covered"


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# the event_ids a server gives an event its client sent without one (where it was spooled,
# `serving._feedback`): they make absorbing exactly-once; they do not tell two events apart
SERVER_ID_PREFIXES = ("spool:", "redis:")


def client_event_id(expr: str) -> str:
    """SQL (DuckDB and Spark alike): the event_id `expr` where the client gave it, NULL where
    the server did. A client's retry of a batch without ids is spooled twice, under two
    server ids: compared by this, the two copies are one event, as two equal rows of a file are."""
    server = " OR ".join(f"{expr} LIKE {lit(p + '%')}" for p in SERVER_ID_PREFIXES)
    return f"(CASE WHEN {server} THEN NULL ELSE {expr} END)"


def _py_to_java_format(fmt: str) -> str:
    """A strptime format as a Java DateTimeFormatter pattern (Spark's parser). Single letters
    read one or two digits as strptime does; `%a` (a day name) is never parsed by Spark and is
    taken off the value instead (`Dialect.strptime`)."""
    # `%Y%m%d`: no separators, so every field has its fixed width
    compact = all(part[:1].isalpha() and len(part) == 1 for part in fmt.split("%")[1:])
    table = {
        "%Y": "yyyy",
        "%y": "yy",
        "%m": "MM" if compact else "M",
        "%d": "dd" if compact else "d",
        "%H": "HH" if compact else "H",
        "%I": "h",
        "%M": "mm" if compact else "m",
        "%S": "ss" if compact else "s",
        "%p": "a",
        "%b": "MMM",
        "%B": "MMMM",
        "%z": "Z",
    }
    out, i = [], 0
    while i < len(fmt):
        tok = fmt[i : i + 2]
        if tok in table:
            out.append(table[tok])
            i += 2
        elif fmt[i].isalpha():
            out.append("'" + fmt[i] + "'")
            i += 1
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


# what a value is trimmed of at both ends before it is checked: the Unicode space separators
# (category Zs: the space, no-break spaces, the em and ideographic spaces...), which is what
# DuckDB's `trim()` removes; tabs and line breaks are kept (`u1\t` is not `u1`). The Spark
# dialect and the one-record check (`_row_check`, the HTTP event path) trim exactly these too.
TRIM_SPACES = " \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"


def trim_id(value: object) -> str:
    """An id as curation reads it (trimmed of `TRIM_SPACES` only; an integer written as a float,
    `101.0`, is that integer, as `_id_value` reads it): for Python code that compares an id given
    by a person or a spooled event with the warehouse's ids."""
    s = str(value).strip(TRIM_SPACES)
    return s[:-2] if s.endswith(".0") and re.fullmatch(_FLOAT_INT, s) else s


def id_sql(expr: str) -> str:
    """DuckDB SQL of an id as curation reads it (`trim_id`), from `expr`, text as received (a
    raw layer's column, a quarantined row's field): what compares a raw row with a person's id."""
    return _id_value(f"trim({expr})", DUCKDB)


class Dialect:
    """DuckDB's spelling of the functions the contract SQL uses (the default)."""

    name = "duckdb"
    null_safe_eq = "IS NOT DISTINCT FROM"  # equal, NULL equal to NULL

    def q(self, name: str) -> str:
        return q(name)

    def lit(self, value: str) -> str:
        return lit(value)

    def matches(self, s: str, pattern: str) -> str:
        """True when `pattern` occurs somewhere in `s`."""
        return f"regexp_matches({s}, {self.lit(pattern)})"

    def full_match(self, s: str, pattern: str) -> str:
        return f"regexp_full_match({s}, {self.lit(pattern)})"

    def replace_all(self, s: str, pattern: str, repl: str) -> str:
        return f"regexp_replace({s}, {self.lit(pattern)}, {self.lit(repl)}, 'g')"

    def group(self, n: int) -> str:
        """The `n`th group of the pattern, in `replace_all`'s replacement."""
        return f"\\{n}"

    def is_in(self, s: str, values: tuple[str, ...]) -> str:
        return f"list_contains([{', '.join(self.lit(m) for m in values)}], {s})"

    def strptime(self, s: str, formats: tuple[str, ...]) -> str:
        if len(formats) == 1:
            return f"try_strptime({s}, {self.lit(formats[0])})"
        return f"try_strptime({s}, [{', '.join(self.lit(f) for f in formats)}])"

    def strptime_tz(self, s: str, fmt: str) -> str:
        """A format with an offset (`%z`): the instant as UTC wall-clock time."""
        return f"TRY_CAST(try_strptime({s}, {self.lit(fmt)}) AS TIMESTAMP)"

    def to_double(self, s: str) -> str:
        return f"TRY_CAST({s} AS DOUBLE)"

    def luhn_sum(self, digits: str) -> str:
        """The Luhn sum of `digits` (a text of digits only): every second digit from the right
        doubled, less 9 when that is above 9; a card number's sum is a multiple of 10."""
        return f"list_sum(list_transform(range(1, strlen({digits}) + 1), i -> {_luhn_term(digits)}))"

    def isfinite(self, x: str) -> str:
        return f"isfinite({x})"

    def not_whole(self, x: str) -> str:
        return f"({x} <> trunc({x}))"

    def length(self, s: str) -> str:
        return f"strlen({s})"

    def endswith(self, s: str, suffix: str) -> str:
        return f"suffix({s}, {self.lit(suffix)})"

    def drop_last(self, s: str, n: int) -> str:
        return f"left({s}, -{n})"

    def json_merge(self, old: str, new: str) -> str:
        """The JSON object `old` with the keys of the object `new` set on it (its other keys
        kept); `new` NULL: `old`; `old` no object: `new`."""
        return (
            f"CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL OR NOT json_valid({old}) "
            f"OR json_type({old}) <> 'OBJECT' THEN {new} ELSE json_merge_patch({old}, {new})::VARCHAR END"
        )

    def json_covered(self, new: str, old: str) -> str:
        """Whether every key of the JSON object `new` has the same value in `old` (`new` NULL:
        true): merging `new` into `old` changes nothing."""

        def at(x: str) -> str:
            # (a JSON Pointer, `~` and `/` escaped: a path `$."k"` failed the load on a key with a `"`)
            return f"""json_extract({x}, '/' || replace(replace(k, '~', '~0'), '/', '~1'))"""

        return (
            f"coalesce(list_bool_and(list_transform(json_keys({new}), k -> {at(old)} IS NOT DISTINCT FROM "
            f"{at(new)})), true)"
        )

    def trim_chars(self, s: str, chars: str) -> str:
        return f"trim({s}, {self.lit(chars)})"

    def trim(self, s: str) -> str:
        """`s` without `TRIM_SPACES` at either end."""
        return f"trim({s})"

    def trimmed_or_null(self, s: str) -> str:
        """`s` trimmed (`trim`), NULL when nothing is left. `trim()` copies every value; most
        values (ids, timestamps) are ASCII with no space at either end, and an ASCII value can
        only lose ASCII spaces (every other `TRIM_SPACES` character is multi-byte), so only a
        value that starts or ends with a space or holds a non-ASCII character is trimmed: about
        0.2 CPU-s per million rows of an 8-column events file, the same values."""
        return (
            f"CASE WHEN {s} = '' THEN NULL WHEN starts_with({s}, ' ') OR suffix({s}, ' ') "
            f"OR strlen({s}) <> length({s}) THEN nullif(trim({s}), '') ELSE {s} END"
        )

    def epoch_seconds(self, num: str) -> str:
        return f"to_timestamp({num})::TIMESTAMP"

    def iso_timestamp(self, s: str) -> str:
        """ISO 8601 with or without an offset, as UTC wall-clock time. Only for a value that
        starts with a four-digit year: the cast also reads `05/01/24` as 24 January of the year
        5 (a US short date, which the formats read as 1 May 2024)."""
        # (the cast does not read a time without seconds followed by an offset, `10:05Z` or
        # `10:05+01:00`, which ISO 8601 allows: given `:00` seconds, it does)
        return (
            f"CASE WHEN substr({s}, 5, 1) = '-' THEN TRY_CAST(coalesce(TRY_CAST({s} AS TIMESTAMPTZ), "
            f"TRY_CAST({_iso_offset_joined(s, self)} AS TIMESTAMPTZ)) AS TIMESTAMP) END"
        )

    def plain_timestamp(self, s: str) -> str:
        return f"TRY_CAST({s} AS TIMESTAMP)"

    def timestamp_literal(self, value: str) -> str:
        return f"TIMESTAMP '{value}'"

    def now_plus_days(self, days: int) -> str:
        return f"now()::TIMESTAMP + INTERVAL {days} DAY"

    def json_valid(self, s: str) -> str:
        return f"json_valid({s})"

    def reasons(self, items: list[str]) -> str:
        if not items:
            return "[]::VARCHAR[]"
        return f"list_filter([{', '.join(items)}], x -> x IS NOT NULL)"

    def no_reasons(self, reasons: str) -> str:
        """True when the list `reasons` (of `reasons`) is empty."""
        return f"len({reasons}) = 0"

    def subquery(self, sql: str, alias: str) -> str:
        return f"({sql})"


class SparkDialect(Dialect):
    """Spark SQL (4.0, session time zone UTC, ANSI mode off: `storage.SparkEngine` sets both).
    Java regular expressions read the patterns here as RE2 does; timestamps are TIMESTAMP_NTZ
    (naive UTC), as the DuckDB warehouse's TIMESTAMP."""

    name = "spark"
    null_safe_eq = "<=>"

    def q(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def lit(self, value: str) -> str:
        # Spark string literals read backslash escapes (and `''` is two adjacent literals)
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def matches(self, s: str, pattern: str) -> str:
        return f"({s} RLIKE {self.lit(pattern)})"

    def full_match(self, s: str, pattern: str) -> str:
        # \z, not $: Java's $ also matches before a final line break
        return f"({s} RLIKE {self.lit('^(?:' + pattern + ')' + chr(92) + 'z')})"

    def replace_all(self, s: str, pattern: str, repl: str) -> str:
        return f"regexp_replace({s}, {self.lit(pattern)}, {self.lit(repl)})"

    def group(self, n: int) -> str:
        return f"${n}"

    def is_in(self, s: str, values: tuple[str, ...]) -> str:
        return f"({s} IN ({', '.join(self.lit(m) for m in values)}))"

    def _one(self, s: str, fmt: str) -> str:
        if fmt.startswith("%a"):  # Spark parses no day names: the value without its own
            s = self.replace_all(s, "^[A-Za-z]{3},? ", "")
            fmt = fmt[2:].lstrip(",").lstrip()
        return f"try_to_timestamp({s}, {self.lit(_py_to_java_format(fmt))})"

    def strptime(self, s: str, formats: tuple[str, ...]) -> str:
        parts = [self._one(s, f) for f in formats]
        one = parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
        return f"CAST({one} AS TIMESTAMP_NTZ)"

    def strptime_tz(self, s: str, fmt: str) -> str:
        return f"CAST({self._one(s, fmt)} AS TIMESTAMP_NTZ)"

    def luhn_sum(self, digits: str) -> str:
        return f"aggregate(sequence(1, length({digits})), 0, (acc, i) -> acc + {_luhn_term(digits)})"

    def to_double(self, s: str) -> str:
        # Java's number parser also reads `1d` and `2f` (a double and a float literal)
        return f"CASE WHEN {s} RLIKE '[dDfF]$' THEN NULL ELSE try_cast({s} AS DOUBLE) END"

    def isfinite(self, x: str) -> str:
        return f"(abs({x}) < CAST('Infinity' AS DOUBLE))"  # NaN sorts above infinity in Spark

    def not_whole(self, x: str) -> str:
        # Spark's trunc is for dates; round(x, 0) stays a double (no BIGINT overflow as floor)
        return f"({x} <> round({x}, 0))"

    def length(self, s: str) -> str:
        return f"length({s})"

    def endswith(self, s: str, suffix: str) -> str:
        return f"endswith({s}, {self.lit(suffix)})"

    def drop_last(self, s: str, n: int) -> str:
        return f"substr({s}, 1, length({s}) - {n})"

    def json_merge(self, old: str, new: str) -> str:
        return f"{JSON_MERGE_UDF}({old}, {new})"  # (DuckDB's `json_merge`, a batch at a time)

    def json_covered(self, new: str, old: str) -> str:
        return f"{JSON_COVERED_UDF}({new}, {old})"  # (DuckDB's `json_covered`)

    def trim_chars(self, s: str, chars: str) -> str:
        return f"trim(BOTH {self.lit(chars)} FROM {s})"

    def trim(self, s: str) -> str:
        # Spark's trim() removes the ASCII space only
        return self.trim_chars(s, TRIM_SPACES)

    def trimmed_or_null(self, s: str) -> str:
        return f"nullif({self.trim(s)}, '')"

    def epoch_seconds(self, num: str) -> str:
        return f"CAST(timestamp_seconds({num}) AS TIMESTAMP_NTZ)"

    def iso_timestamp(self, s: str) -> str:
        # Spark's cast also reads `2024` and `2024-01` as dates: a full date is required first
        # (a time to the minute before an offset is given `:00` seconds, as on DuckDB)
        return (
            f"CASE WHEN {s} RLIKE '^[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}' "
            f"THEN CAST(coalesce(try_cast({s} AS TIMESTAMP_LTZ), "
            f"try_cast({_iso_offset_joined(s, self)} AS TIMESTAMP_LTZ)) AS TIMESTAMP_NTZ) END"
        )

    def plain_timestamp(self, s: str) -> str:
        return self.iso_timestamp(s)

    def timestamp_literal(self, value: str) -> str:
        return f"TIMESTAMP_NTZ '{value}'"

    def now_plus_days(self, days: int) -> str:
        return f"CAST(current_timestamp() AS TIMESTAMP_NTZ) + INTERVAL {days} DAY"

    def json_valid(self, s: str) -> str:
        return f"{JSON_VALID_UDF}({s})"

    def reasons(self, items: list[str]) -> str:
        if not items:
            return "CAST(array() AS ARRAY<STRING>)"
        return f"filter(array({', '.join(items)}), x -> x IS NOT NULL)"

    def no_reasons(self, reasons: str) -> str:
        return f"size({reasons}) = 0"

    def subquery(self, sql: str, alias: str) -> str:
        return f"({sql}) AS {alias}"


DUCKDB = Dialect()
SPARK = SparkDialect()
DIALECTS = {"duckdb": DUCKDB, "spark": SPARK}


@dataclass(frozen=True)
class Check:
    condition: str  # SQL boolean: true when the row FAILS
    reason: Reason
    detail: str  # SQL string expression explaining the failure


@dataclass
class CompiledContract:
    """Levels, so that every expression is computed once per row: `trimmed` computes each
    column's trimmed text (`_t_<col>`) from the loaded strings, `cleaned` that text without the
    words for "no value" (`_s_<col>`), `typed` its typed value (`_v_<col>`) from that, and
    `select_values` and the checks refer to those columns only."""

    trimmed: list[str]  # "<expr> AS _t_<col>" for every contract column (over the loaded row)
    cleaned: list[str]  # "<expr> AS _s_<col>" (over the loaded row + `trimmed`)
    typed: list[str]  # "<expr> AS _v_<col>" (over the loaded row + `cleaned`)
    select_values: list[str]  # "_v_<col> AS <col>" for every contract column
    checks: list[Check]
    dialect: Dialect = field(default_factory=lambda: DUCKDB)

    def query(self, source: str, keep: list[str]) -> str:
        """Typed values + `_reasons` (failed checks) + `_detail` (the first failure) per row of
        `source`; `keep` are extra source columns passed through as they are."""
        d = self.dialect
        reasons, detail = reasons_sql(self.checks, d)
        passed = "".join(f", {c}" for c in keep)
        trimmed = d.subquery(f"SELECT *, {', '.join(self.trimmed)} FROM {source}", "_trimmed")
        cleaned = d.subquery(f"SELECT *, {', '.join(self.cleaned)} FROM {trimmed}", "_cleaned")
        typed = d.subquery(f"SELECT *, {', '.join(self.typed)} FROM {cleaned}", "_typed")
        # the first failure's words only for the rows that failed: a passing row would test
        # every check's condition once more (~0.1 CPU-s per million events rows)
        judged = d.subquery(f"SELECT *, {reasons} AS _reasons FROM {typed}", "_judged")
        return (
            f"SELECT {', '.join(self.select_values)}{passed}, _reasons, "
            f"CASE WHEN {d.no_reasons('_reasons')} THEN NULL ELSE {detail} END AS _detail, "
            f"_source_line FROM {judged}"
        )


TRUE_TOKENS = ("true", "t", "1", "1.0", "yes", "y", "in stock", "in_stock", "instock", "available")
FALSE_TOKENS = (
    "false",
    "f",
    "0",
    "0.0",
    "no",
    "n",
    "out of stock",
    "out_of_stock",
    "sold out",
    "unavailable",
)
# what else a yes or a no is written as (a consent column most of all: `opted out`, `Nein`,
# `No.`, Shopify's `not_subscribed`), compared with the value lower-cased, each run of
# punctuation, dashes, underscores and spaces one space, trimmed (`bool_key`): only for a value
# that is none of the tokens above as written, so the usual column costs nothing more. A consent
# value that is none of these is read as no consent (`ColumnSpec.lenient`: fail closed)
TRUE_WORDS = (
    *TRUE_TOKENS,
    "on",
    "ok",
    "x",
    "opt in",
    "opted in",
    "optin",
    "optedin",
    "subscribed",
    "subscribe",
    "consented",
    "consent given",
    "granted",
    "accepted",
    "agreed",
    "allowed",
    "ja",
    "j",
    "oui",
    "si",
    "sí",
    "sì",
    "sim",
    "tak",
    "da",
)
FALSE_WORDS = (
    *FALSE_TOKENS,
    "off",
    "opt out",
    "opted out",
    "optout",
    "optedout",
    "unsubscribed",
    "unsubscribe",
    "not subscribed",
    "notsubscribed",
    "never subscribed",
    # Magento's newsletter statuses short of a confirmed subscription (a double opt-in not done)
    "not activated",
    "unconfirmed",
    "no consent",
    "not consented",
    "declined",
    "denied",
    "refused",
    "withdrawn",
    "revoked",
    "nein",
    "non",
    "nee",
    "nej",
    "nei",
    "nie",
    "não",
    "nao",
)
_BOOL_PUNCT = r"[^\p{L}\p{N}]+"  # (RE2 and Java alike; `bool_key` in Python)


def bool_key(text: str) -> str:
    """A boolean's text as `TRUE_WORDS` / `FALSE_WORDS` are written: lower case, each run of
    anything but letters and digits one space, trimmed."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())


_TRUE_KEYS = tuple(dict.fromkeys(bool_key(w) for w in TRUE_WORDS))
_FALSE_KEYS = tuple(dict.fromkeys(bool_key(w) for w in FALSE_WORDS))


def parse_bool(text: str) -> bool | None:
    """A yes or no as `bool_expr` reads it (None: neither)."""
    low = text.lower()
    if low in TRUE_TOKENS:
        return True
    if low in FALSE_TOKENS:
        return False
    key = bool_key(text)
    return True if key in _TRUE_KEYS else False if key in _FALSE_KEYS else None


def bool_expr(s: str, d: Dialect) -> str:
    """SQL of the boolean the text `s` says (NULL: neither), as `parse_bool`."""
    lit = d.lit
    low = f"lower({s})"
    key = f"trim({d.replace_all(low, _BOOL_PUNCT, ' ')})"
    return (
        f"CASE WHEN {low} IN ({', '.join(lit(t) for t in TRUE_TOKENS)}) THEN true "
        f"WHEN {low} IN ({', '.join(lit(t) for t in FALSE_TOKENS)}) THEN false "
        f"WHEN {key} IN ({', '.join(lit(t) for t in _TRUE_KEYS)}) THEN true "
        f"WHEN {key} IN ({', '.join(lit(t) for t in _FALSE_KEYS)}) THEN false END"
    )


# what exports write for "no value", in the cases they write it (`nan`, `NaN`, `N/A`, `NULL`).
# Ids, names and categories holding one are missing (`_clean`); a number, boolean or JSON column
# holding one is missing instead of invalid (tested only on the rows that fail to parse: free);
# free text keeps the word (it may be meant); a required event type or timestamp holding one is
# quarantined as invalid. An exact-case list: a constant-list lookup costs ~0.015 s per column
# and million rows, lower() + IN ~0.1 s.
MISSING_TOKENS = ("n/a", "na", "#n/a", "null", "none", "nan", "nil", "undefined", "-", "--", "?")
MISSING_VALUES = tuple(
    sorted({v for m in MISSING_TOKENS for v in (m, m.upper(), m.capitalize(), m.title())} | {"NaN", "N/a"})
)


# the patterns the compiled SQL matches (RE2 in DuckDB, java.util.regex in Spark: the same here)
_NUMERIC = r"-?[0-9]+(\.[0-9]+)?"
_GROUPED_DECIMAL_COMMA = r"-?[0-9]{1,3}(\.[0-9]{3})+,[0-9]+"  # 1.299,00
_DECIMAL_COMMA = r"-?[0-9]+,[0-9]{1,2}"  # 12,99
_GROUPED = r"-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?"  # 1,299.00
_FLOAT_INT = r"-?[0-9]+\.0"  # an integer id written as a float
_ONE_COMMA_GROUP = r"-?[0-9]{1,3},[0-9]{3}"  # 323,136: a decimal comma, or one thousands group
# what tells a file's decimal mark (`decimal_comma_counts`): a comma with one or two decimals, or
# dots grouping thousands before one (12,99; 1.299,00); a point with decimals, or commas
# grouping thousands before one (12.5; 1,299.00)
_COMMA_TELLS = r"-?([0-9]+,[0-9]{1,2}|[0-9]{1,3}(\.[0-9]{3})+,[0-9]+)"
_POINT_TELLS = r"-?([0-9]+\.[0-9]{1,2}|[0-9]{1,3}(,[0-9]{3})+\.[0-9]+|[0-9]+\.[0-9]{4,})"


def decimal_comma_counts(sql: Any, relation: str, columns: list[str]) -> tuple[int, int, int, str | None]:
    """Of a sample of 200,000 values of each of `columns` (SQL expressions of text over
    `relation`): how many write a decimal comma unambiguously (`12,99`, `1.299,00`), how many a
    decimal point (`12.5`, `1,299.00`), how many could be either (`323,136`), and one of those."""
    if not columns:
        return 0, 0, 0, None

    def t(c: str) -> str:  # (the text as `number_expr` reads it: no currency, no spaces)
        return f"regexp_replace(regexp_replace(trim({c}), {lit(CURRENCY_AROUND)}, '', 'g'), {lit(NUMBER_SPACES)}, '', 'g')"

    parts = " UNION ALL ".join(
        f"(SELECT {t(c)} AS v FROM {relation} WHERE {c} IS NOT NULL AND (contains({c}, ',') OR contains({c}, '.')) LIMIT 200000)"
        for c in columns
    )
    row = sql(
        f"""SELECT count(*) FILTER (WHERE regexp_full_match(v, {lit(_COMMA_TELLS)})),
                   count(*) FILTER (WHERE regexp_full_match(v, {lit(_POINT_TELLS)})),
                   count(*) FILTER (WHERE regexp_full_match(v, {lit(_ONE_COMMA_GROUP)})),
                   any_value(v) FILTER (WHERE regexp_full_match(v, {lit(_ONE_COMMA_GROUP)}))
            FROM ({parts})"""
    ).fetchone()
    if not row:
        return 0, 0, 0, None
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), row[3]


_CATEGORY_SEP = r"\s*[>|]\s*"
# a category cell holding several paths separated by ", " (a comma escaped `\,` is a name's):
# group 1 the first path, read where the cell holds a `>`
SEVERAL_PATHS = r"^((?:[^,\\]|\\.)*),\s.*$"


def several_category_paths(header: str | None) -> bool:
    """Whether a category column's header names several categories (`Categories`, WooCommerce's
    and Magento's): its ", " separates paths; a `Category` column's ", " is part of a name."""
    return header is not None and "".join(ch for ch in header.lower() if ch.isalnum()).endswith("categories")


# BigCommerce's catalog (`Product Visible?`, `Current Stock Level` beside its `Category`) writes a
# category path's levels separated by `/` and several categories by `;` (`Furniture/Chairs;Sale`):
# read as `Furniture > Chairs`, the first path kept (`SLASH_SEVERAL` group 1), as WooCommerce's
# `Categories`; another shop's `/` is part of a name (`T-Shirts/Tops`)
SLASH_PATH_HEADERS = ("productvisible", "currentstocklevel")
SLASH_SEVERAL = r"^([^;]*?)\s*;.*$"


def slash_category_paths(header: Sequence[str]) -> bool:
    """Whether a catalog's header is BigCommerce's, whose categories are `A/B;C` (`SLASH_SEVERAL`)."""
    keys = {"".join(ch for ch in h.lower() if ch.isalnum()) for h in header}
    return any(k in keys for k in SLASH_PATH_HEADERS)


# Magento's category paths: `/`-separated under its root category (`Default Category/Furniture/
# Chairs`; the root, `Default Category` or `Root Catalog`, is no category), several joined by `,`:
# read as `Furniture > Chairs`, the first path kept (`MAGENTO_SEVERAL` group 1). A name holding a
# `/` (`T-Shirts/Tops`) is split only under that root
MAGENTO_ROOT = r"(?i)^(?:default category|root catalog)/"
MAGENTO_SEVERAL = r"(?i)^(.*?)\s*,\s*(?:default category|root catalog)/.*$"

MISSING_KINDS = (Kind.ID, Kind.STRING, Kind.CATEGORY)  # read as NULL before anything else


def _missing(text: str, d: Dialect = DUCKDB) -> str:
    return d.is_in(text, MISSING_VALUES)


def _clean(trimmed: str, kind: Kind, d: Dialect = DUCKDB) -> str:
    if kind not in MISSING_KINDS:
        return trimmed
    return f"CASE WHEN {_missing(trimmed, d)} THEN NULL ELSE {trimmed} END"


# text the Python normalizer would leave as it is: printable ASCII with no markup characters and
# no runs of whitespace (NFKC is the identity there, there is nothing to unescape or collapse)
PLAIN_TEXT = "[^ -~]|[<&]|\\s\\s"


def normalized_expr(raw: str, cleaned: str, d: Dialect = DUCKDB, *, keep_lines: bool = False) -> str:
    """NFKC + markup + whitespace normalization of `raw` (`cleaned` is its trimmed text): plain
    values are passed through in SQL; only the others go to the Python UDF. DuckDB evaluates a
    CASE branch on the rows that take it alone, so a column of plain values (or NULLs) never
    calls Python: about 0.45 s per text column and million rows saved."""
    return (
        f"CASE WHEN {cleaned} IS NULL THEN NULL WHEN NOT {d.matches(cleaned, PLAIN_TEXT)} "
        f"THEN {cleaned} ELSE {NORMALIZE_LINES_UDF if keep_lines else NORMALIZE_UDF}({raw}) END"
    )


def _mask(expr: str, d: Dialect = DUCKDB) -> str:
    for _, pattern, token in PII_PATTERNS:
        expr = d.replace_all(expr, pattern, token)
    return expr


# a kept profile column's value that is a date or time (`2023-05-01`, `2023-06-15T10:00:00Z`,
# `05/01/2024 10:00`) or a number written with group separators (`12.500.000`, `1,234,567.50`):
# not personal data, though the phone pattern would read it as a number to mask
NOT_PERSONAL_VALUE = (
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}( [0-9:.]+( ?[AaPp][Mm])?)?"
    r"|[+-]?\d{1,3}([.,' ]\d{3})+([.,]\d{1,2})?)$"
)


def _luhn_term(digits: str) -> str:
    """SQL (both dialects, in a lambda over `i`): the `i`th digit from the right of `digits`,
    as the Luhn sum counts it."""
    digit = f"CAST(substr(reverse({digits}), i, 1) AS INT)"
    return (
        f"(CASE WHEN i % 2 = 0 THEN 2 * {digit} - CASE WHEN {digit} > 4 THEN 9 ELSE 0 END ELSE {digit} END)"
    )


# the name of a column of ids: `Customer ID`, `customer_id`, `CustomerId`, `ID` (not `Paid`)
_ID_NAME = re.compile(r"(?:^|[^A-Za-z0-9])(?:id|Id|ID)$|[a-z0-9](?:Id|ID)$")


def is_id_name(name: str) -> bool:
    """Whether a column's name says it holds ids (`_ID_NAME`)."""
    return _ID_NAME.search(name.strip()) is not None


def mask_profile_value(expr: str, d: Dialect = DUCKDB, *, name: str = "") -> str:
    """`_mask` for a kept profile column's value (an e-mail or phone in `Contact` or `Notes`),
    leaving a date, time or grouped number as it is (`NOT_PERSONAL_VALUE`), and a number of 13
    to 19 digits in one run that fails the Luhn check every card number passes (an EAN-13
    barcode, a loyalty number). In a column of ids (`is_id_name(name)`: Shopify's 13-digit
    `Customer ID`) a value of digits alone is an id, kept whatever its check digit."""
    keep = [d.matches(expr, NOT_PERSONAL_VALUE)]
    if is_id_name(name):
        keep.append(d.full_match(expr, "[0-9]+"))
    else:
        keep.append(f"({d.full_match(expr, '[0-9]{13,19}')} AND {d.luhn_sum(expr)} % 10 <> 0)")
    return f"CASE WHEN {' OR '.join(keep)} THEN {expr} ELSE {_mask(expr, d)} END"


def slash_date_formats(day_first: bool) -> tuple[str, ...]:
    """`05/01/2024` as month/day/year (the default) or day/month/year (a file that shows a first
    field above 12 somewhere and never a second one)."""
    md = "%d/%m" if day_first else "%m/%d"
    # two-digit years first: the warehouse's %Y reads `24` as the year 24
    return tuple(
        f"{md}/{y}{t}" for y in ("%y", "%Y") for t in (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "")
    )


# an ISO date and time to the minute, then an offset (`2026-01-01T10:05Z`, `... 10:05+01:00`)
_ISO_MINUTES_OFFSET = "^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2})(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
# an ISO date and time, a space, then an offset (`2024-03-05 14:22:31 -0500`: Shopify's exports,
# Ruby's `Time#to_s`): DuckDB's cast refuses the space, Spark's reads it
_ISO_SPACED_OFFSET = "^([0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?) ([+-][0-9]{2}(:?[0-9]{2})?)$"


def _iso_offset_joined(s: str, d: Dialect) -> str:
    """SQL: `s` written as both casts read an offset: no space before it (`_ISO_SPACED_OFFSET`),
    a time to the minute given `:00` seconds (`_ISO_MINUTES_OFFSET`); any other value as it is."""
    joined = d.replace_all(s, _ISO_SPACED_OFFSET, d.group(1) + d.group(4))
    return d.replace_all(joined, _ISO_MINUTES_OFFSET, d.group(1) + ":00" + d.group(2))


def iso_offset_joined(s: str) -> str:
    """`_iso_offset_joined` in Python (`_row_check.parse_timestamp`, the one-record path)."""
    return re.sub(_ISO_MINUTES_OFFSET, r"\1:00\2", re.sub(_ISO_SPACED_OFFSET, r"\1\4", s))


# what spreadsheets, mail headers and European systems write, tried (in order) only for a value
# that is neither a number nor ISO 8601
TIMESTAMP_FORMATS = (
    "%Y/%m/%d %H:%M:%S",  # the warehouse's cast reads these already; Python's ISO parser does not
    "%Y/%m/%d %H:%M",
    "%Y/%m/%d",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%b %d, %Y %H:%M:%S",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %b %Y %H:%M:%S",
    "%d %b %Y",
    "%d %B %Y",
    "%a %b %d %H:%M:%S %Y",
)
RFC2822_FORMAT = "%a, %d %b %Y %H:%M:%S %z"  # with an offset: converted to UTC


def timestamp_expr(s: str, *, day_first: bool = False, d: Dialect = DUCKDB) -> str:
    """ISO 8601 (offsets honoured, converted to UTC), epoch seconds / ms / µs / ns, compact
    `YYYYMMDD[HHMMSS]`, or one of the common non-ISO forms (`TIMESTAMP_FORMATS`, slash dates)."""
    num = d.to_double(s)
    formats = (*slash_date_formats(day_first), *TIMESTAMP_FORMATS)
    # an 8- or 14-character number read as seconds or milliseconds would lie before 1990 or after
    # 2500: it is a compact date (length tests: regular expressions here cost ~0.05 s per 1M rows)
    general = (
        f"CASE WHEN {d.full_match(s, _NUMERIC)} THEN "
        f"CASE WHEN {d.length(s)} = 8 THEN {d.strptime(s, ('%Y%m%d',))} "
        f"WHEN {d.length(s)} = 14 THEN {d.strptime(s, ('%Y%m%d%H%M%S',))} "
        f"WHEN abs({num}) <= 1e11 THEN {d.epoch_seconds(num)} "
        f"WHEN abs({num}) > 1e17 THEN {d.epoch_seconds(f'{num} / 1e9')} "
        f"WHEN abs({num}) > 1e14 THEN {d.epoch_seconds(f'{num} / 1e6')} "
        f"ELSE {d.epoch_seconds(f'{num} / 1000.0')} END "
        f"ELSE coalesce({d.iso_timestamp(s)}, {d.strptime(s, formats)}, "
        f"{d.strptime_tz(s, RFC2822_FORMAT)}) END"
    )
    # the common forms first, read by the plain TIMESTAMP cast: ISO 8601 in UTC (`...Z`) and ISO
    # without an offset (`2024-01-05 10:00:00`, 19 characters, the seconds' colon at 17: no room
    # for an offset). That cast equals the TIMESTAMPTZ one for them (it would ignore an offset, so
    # it is never given one) at about a third of its cost: 2.4 -> 0.9 s per 1M ISO `Z` values.
    # What it cannot read takes the general path.
    plain = f"{d.endswith(s, 'Z')} OR ({d.length(s)} = 19 AND substr({s}, 17, 1) = ':')"
    return f"CASE WHEN {plain} THEN coalesce({d.plain_timestamp(s)}, {general}) ELSE {general} END"


CURRENCY = "[$€£¥₹]|[A-Za-z]{3}"  # a symbol or an ISO 4217 code (USD, eur)
# the spaces between a figure and its currency sign or code: a tab or any of `TRIM_SPACES` (the
# no-break space of `49,99\u00a0€`), spelled out: `\s` is ASCII in RE2 and Unicode in Python,
# so the warehouse (batch loads) and `_row_check` (live events) read `49,99\u2009€` apart
MONEY_SPACE = f"[\t{TRIM_SPACES}]"
CURRENCY_AROUND = f"^({CURRENCY}){MONEY_SPACE}*|{MONEY_SPACE}*({CURRENCY})$"
NUMBER_SPACES = "[ \u00a0\u202f]"

# a currency sign or code written before or after a money figure (`€49.99`, `49,99 €`, `EUR 12`,
# Google Shopping's `49.99 EUR`), spaced by a space or a no-break one (`49,99\u00a0€`, which
# `\s` does not match in RE2): group 1 the word or sign, a currency only where
# `currency_of_sign` reads it as one (`von 12`, `ab 12`, `dès 12`, `12 kg` are none). The same
# patterns in the warehouse (the batch loads) and in Python (`_row_check`, the live events)
_MONEY_SIGN = f"[^\t{TRIM_SPACES}0-9.,+-]+"
MONEY_SIGN_BEFORE = f"^{MONEY_SPACE}*({_MONEY_SIGN}){MONEY_SPACE}*[-+]?[0-9]"
MONEY_SIGN_AFTER = f"[0-9]{MONEY_SPACE}*({_MONEY_SIGN}){MONEY_SPACE}*$"
# the signs and spellings that name one currency, upper-cased (`€`, `ZŁ`, `US$`, `EURO`)
SIGN_CODES = {sign.upper(): code for sign, code in CURRENCY_SIGNS + CURRENCY_SPELLINGS}
_CODES = frozenset(CURRENCY_CODES)
_MONEY_BEFORE_RE = re.compile(MONEY_SIGN_BEFORE)
_MONEY_AFTER_RE = re.compile(MONEY_SIGN_AFTER)


def currency_of_sign(sign: str | None) -> str | None:
    """The ISO 4217 code a money text's sign or word names: an upper-case code (ISO 4217's, or a
    withdrawn one), or a sign or spelling that names one currency (`€`, `£`, `US$`, `euro`);
    None for anything else (`$`, which several currencies write; `von`, `ab`, `kg`)."""
    if not sign:
        return None
    return sign if sign in _CODES else SIGN_CODES.get(sign.upper())


def money_sign(text: str | None) -> str | None:
    """The sign or word written before a money figure, else after it (`_MONEY_SIGN`), as written."""
    if not text:
        return None
    for pattern in (_MONEY_BEFORE_RE, _MONEY_AFTER_RE):
        if (m := pattern.search(text)) and (currency_of_sign(m.group(1)) or m.group(1) == "$"):
            return m.group(1)
    return None


def money_currency(text: str | None) -> str | None:
    """The currency a money text names by its own sign or code (`49.99 EUR`, `49,99\u00a0€`,
    `£13`): `money_sign` read by `currency_of_sign`; None where it names none (`von 12`)."""
    return currency_of_sign(money_sign(text))


def sign_of_parts(before: str | None, after: str | None) -> str | None:
    """`money_sign` of a text whose words before and after its figure are `before` and `after`
    (`money_sign_parts_sql`'s two values)."""
    for s in (before, after):
        if s and (currency_of_sign(s) or s == "$"):
            return s
    return None


def money_sign_parts_sql(text: str) -> str:
    """The word or sign written before a money figure and the one after it, as one text (tab
    between: `_MONEY_SIGN` holds no tab), each regular expression evaluated once a row; read
    by `sign_of_parts` over the few distinct values a load has (`money_signs`)."""
    parts = [
        f"coalesce(regexp_extract({text}, {lit(p)}, 1), '')" for p in (MONEY_SIGN_BEFORE, MONEY_SIGN_AFTER)
    ]
    return f"({parts[0]} || chr(9) || {parts[1]})"


def money_signs(sql: Callable[..., Any], table: str, text: str) -> dict[str, str | None]:
    """The distinct `money_sign_parts_sql` values of `text` over `table`'s rows whose figure is
    not plain, each with its sign (`money_sign`; None: the text names no currency)."""
    rows = sql(
        f"SELECT DISTINCT {money_sign_parts_sql(text)} FROM {table} "
        f"WHERE {text} IS NOT NULL AND TRY_CAST(trim({text}) AS DOUBLE) IS NULL"
    ).fetchall()
    out: dict[str, str | None] = {}
    for (parts,) in rows:
        before, _, after = str(parts).partition("\t")
        out[str(parts)] = sign_of_parts(before or None, after or None)
    return out


def money_sign_sql(text: str, signs: dict[str, str | None]) -> str:
    """`money_sign` in the warehouse (DuckDB) for a column whose `money_signs` are `signs`: the
    sign or word as written, NULL for none (one CASE over the few parts a load has, not the
    code lists a row: those made a load's check of a 20,000-row file take 18 s)."""
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in signs.items() if v is not None)
    if not whens:
        return "NULL::VARCHAR"
    return f"CASE {money_sign_parts_sql(text)} {whens} END"


def money_currency_sql(text: str, signs: dict[str, str | None]) -> str:
    """`money_currency` in the warehouse (DuckDB), as `money_sign_sql`: the code each of the
    load's sign parts names, mapped here once (not the code lists a row), NULL for none."""
    whens = " ".join(
        f"WHEN {lit(k)} THEN {lit(c)}" for k, v in signs.items() if (c := currency_of_sign(v)) is not None
    )
    if not whens:
        return "NULL::VARCHAR"
    return f"CASE {money_sign_parts_sql(text)} {whens} END"


def money_row_currencies(
    sql: Callable[..., Any], table: str, texts: Sequence[str], counted: str = "true"
) -> tuple[str | None, dict[str, int]]:
    """The currency each row of `table` names by its money texts' own signs or codes
    (`money_currency` of each text; texts naming two currencies: `UNKNOWN_CURRENCY`; a plain
    figure names none), as SQL for the warehouse (DuckDB) for the rows where `counted` holds
    (read only there), and their number per currency. One CASE over the distinct sign parts the rows have, each text's
    regular expressions evaluated once a row (`money_sign_parts_sql`): a CASE per text nested
    in another that compares them, each written several times, made a load's check slow (the
    per-row code lists once made a 20,000-row file's take 18 s). The SQL is None where no row
    names any currency."""
    from ._contracts import UNKNOWN_CURRENCY

    # each text's two parts hold one tab (`_MONEY_SIGN` holds none; a plain figure's and an empty
    # cell's are a lone tab: no sign), so the texts' parts joined by a tab are one key a row
    key = " || chr(9) || ".join(
        f"CASE WHEN TRY_CAST(trim({t}) AS DOUBLE) IS NULL THEN {money_sign_parts_sql(t)} ELSE chr(9) END"
        for t in texts
    )
    signed = " OR ".join(f"({t} IS NOT NULL AND TRY_CAST(trim({t}) AS DOUBLE) IS NULL)" for t in texts)
    # (only the rows where `counted` holds are read: a file whose currency cells are all filled
    # pays one scan of its cells, not the regular expressions over every money text)
    rows = sql(
        f"SELECT {key}, count(*) FROM {table} WHERE ({counted}) AND ({signed}) GROUP BY ALL"
    ).fetchall()
    codes: dict[str, str] = {}
    counts: dict[str, int] = {}
    for k, n in rows:
        fields = str(k).split("\t")
        named = {
            c
            for before, after in zip(fields[::2], fields[1::2], strict=True)
            if (c := currency_of_sign(sign_of_parts(before or None, after or None)))
        }
        if not named:
            continue
        code = named.pop() if len(named) == 1 else UNKNOWN_CURRENCY
        codes[str(k)] = code
        if n:
            counts[code] = counts.get(code, 0) + int(n)
    if not codes:
        return None, counts
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(c)}" for k, c in codes.items())
    return f"CASE {key} {whens} END", counts


def number_expr(s: str, d: Dialect = DUCKDB, *, decimal_comma: bool = False) -> str:
    """A number as shops write it: plain (`12.5`, `1e3`) at the cost of one cast, else without
    a currency symbol or code before or after it, with thousands separators (`1,299.00`,
    `1.299,00`) or a decimal comma (`12,99`; `1,299` is one thousand two hundred and ninety-nine,
    unless `decimal_comma`: the file writes its decimals with a comma (`decimal_comma_counts`),
    and `323,136` is 323.136)."""
    fast = d.to_double(s)
    # (spaces inside a number group thousands: `1 299,00`, with a no-break space in French)
    t = d.replace_all(d.replace_all(s, CURRENCY_AROUND, ""), NUMBER_SPACES, "")
    three = f"WHEN {d.full_match(t, _ONE_COMMA_GROUP)} THEN replace({t}, ',', '.') " if decimal_comma else ""
    text = (
        f"CASE WHEN {d.full_match(t, _GROUPED_DECIMAL_COMMA)} "
        f"THEN replace(replace({t}, '.', ''), ',', '.') "
        f"WHEN {d.full_match(t, _DECIMAL_COMMA)} THEN replace({t}, ',', '.') "
        f"{three}"
        f"WHEN {d.full_match(t, _GROUPED)} THEN replace({t}, ',', '') "
        f"ELSE {t} END"
    )
    slow = d.to_double(text)
    return (
        f"CASE WHEN {d.isfinite(fast)} THEN {fast} WHEN {fast} IS NULL AND {d.isfinite(slow)} THEN {slow} END"
    )


def enum_expr(c: ColumnSpec, s: str, d: Dialect = DUCKDB) -> str:
    """An enum value: lower case, spaces and dashes as underscores, synonyms mapped."""
    norm = f"replace(replace(lower({s}), ' ', '_'), '-', '_')"
    codes = c.codes
    if codes:  # codes (ISO 4217's): upper case, as written
        norm = f"upper(trim({s}))"
    if c.synonyms:
        cases = " ".join(f"WHEN {d.lit(a.upper() if codes else a)} THEN {d.lit(b)}" for a, b in c.synonyms)
        norm = f"CASE {norm} {cases} ELSE {norm} END"
    # a value already written as an allowed one (the usual case) is itself: normalizing and the
    # synonyms' CASE run on the other values only
    synonym = {a for a, _ in c.synonyms}
    same = [a for a in c.allowed if a == a.lower().replace(" ", "_").replace("-", "_") and a not in synonym]
    if same:
        norm = f"CASE WHEN {d.is_in(s, tuple(same))} THEN {s} ELSE {norm} END"
    return norm


def compile_contract(
    contract: TableContract,
    *,
    min_year: int = 1990,
    max_future_days: int = 2,
    day_first: bool = False,
    decimal_comma: bool = False,
    several_paths: bool = False,
    slash_paths: bool = False,
    dialect: Dialect = DUCKDB,
) -> CompiledContract:
    """`several_paths`: the category column lists several paths separated by ", " (a header
    named in the plural, WooCommerce's `Categories`: `several_category_paths`), the first kept;
    else a ", " after a `>` is part of a name (`Clothing > Shirts, Tops`). `slash_paths`: the
    catalog is BigCommerce's (`slash_category_paths`): `/` separates levels, `;` categories."""
    d = dialect
    lit, q = d.lit, d.q  # noqa: F811 - the dialect's quoting inside this function
    trimmed: list[str] = []
    cleaned: list[str] = []
    typed: list[str] = []
    values: list[str] = []
    checks: list[Check] = []
    for c in contract.columns:
        raw = q(c.name)
        name = c.name
        s_ref, v_ref = q("_s_" + name), q("_v_" + name)
        t_ref = q("_t_" + name)
        trimmed.append(f"{d.trimmed_or_null(raw)} AS {t_ref}")
        cleaned.append(f"{_clean(t_ref, c.kind, d)} AS {s_ref}")
        s = s_ref  # the cleaned text, computed once
        v = v_ref  # the typed value, computed once
        if c.kind is Kind.ID:
            value = _id_value(s, d)
            if c.pseudonymize:
                # the prefix of anonymous sessions' ids: never a shop's own user id
                checks.append(
                    Check(
                        f"(substr({s}, 1, {len(ANONYMOUS_PREFIX)}) = {lit(ANONYMOUS_PREFIX)})",
                        Reason.INVALID_VALUE,
                        f"{lit(f'{name}: the prefix {ANONYMOUS_PREFIX} is reserved for anonymous sessions: ')} || {s}",
                    )
                )
            if anonymous_sessions(contract) and name == "user_id":
                # no user but a session: anonymous browsing, attributed to its session; so is a
                # guest checkout's placeholder id (WooCommerce's `Customer User ID` 0) beside a
                # session (its order): every guest would otherwise be one customer "0"
                session = _id_value(q("_s_session_id"), d)
                guest = f"({session} IS NOT NULL AND {d.is_in(f'lower({value})', GUEST_USER_IDS)})"
                value = f"CASE WHEN {s} IS NULL OR {guest} THEN {lit(ANONYMOUS_PREFIX)} || ({session}) ELSE {value} END"
        elif c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY):
            value = normalized_expr(raw, s, d, keep_lines=c.keep_lines)
            if c.kind is Kind.TEXT and c.mask_personal:
                value = _mask(value, d)
            if c.kind is Kind.CATEGORY:
                # several paths in one cell (WooCommerce's `Categories`: `Furniture > Tables, Sale`,
                # a comma inside a name written `\,`): the first path, as of a JSON list of paths
                # (counted in the load's warnings: `note_several_paths`); a name with a comma and
                # no `>` is one name
                first = d.replace_all(value, SEVERAL_PATHS, d.group(1))
                magento = d.replace_all(
                    d.replace_all(d.replace_all(value, MAGENTO_SEVERAL, d.group(1)), MAGENTO_ROOT, ""),
                    "/",
                    " > ",
                )
                slashed = d.replace_all(d.replace_all(value, SLASH_SEVERAL, d.group(1)), "/", " > ")
                value = (
                    f"CASE WHEN {d.matches(value, MAGENTO_ROOT)} THEN {magento} "
                    + (f"WHEN true THEN {slashed} " if slash_paths else "")
                    + (f"WHEN {d.matches(value, '>')} THEN {first} " if several_paths else "")
                    + f"ELSE {value} END"
                )
                value = d.replace_all(value, r"\\,", ",")
                value = f"nullif({d.trim_chars(d.replace_all(value, _CATEGORY_SEP, ' > '), ' >')}, '')"
        elif c.kind is Kind.FLOAT:
            value = number_expr(s, d, decimal_comma=decimal_comma)
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL AND NOT {_missing(s, d)})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a number: ')} || {s}",
                )
            )
            if c.integer:
                checks.append(
                    Check(
                        d.not_whole(v),
                        Reason.INVALID_TYPE,
                        f"{lit(name + ': not a whole number: ')} || {s}",
                    )
                )
            if c.min_value is not None:
                checks.append(
                    Check(
                        f"({v} < {c.min_value})",
                        Reason.OUT_OF_RANGE,
                        f"{lit(f'{name}: below {c.min_value:g}: ')} || {s}",
                    )
                )
            if c.max_value is not None:
                checks.append(
                    Check(
                        f"({v} > {c.max_value})",
                        Reason.OUT_OF_RANGE,
                        f"{lit(f'{name}: above {c.max_value:g}: ')} || {s}",
                    )
                )
        elif c.kind is Kind.BOOL:
            value = bool_expr(s, d)
            if c.synonyms:  # a column's own words first (`PUBLISHED_WORDS`: -1 is a draft)
                # (`none`: a word that says neither, read as no value: Shopify's `deny`)
                yes, no, neither = (
                    ", ".join([lit(a) for a, b in c.synonyms if b == word] or ["NULL"])
                    for word in ("true", "false", "none")
                )
                value = (
                    f"CASE WHEN lower({s}) IN ({yes}) THEN true WHEN lower({s}) IN ({no}) THEN false "
                    f"WHEN lower({s}) IN ({neither}) THEN NULL ELSE {value} END"
                )
            if c.lenient:
                # fail closed: a consent no yes or no we know is no consent, the row curated
                # (counted in the load's notes: `unreadable_counts`); `published`: shown
                unread = "true" if c.lenient_value else "false"
                value = f"CASE WHEN {s} IS NULL OR {_missing(s, d)} THEN NULL ELSE coalesce({value}, {unread}) END"
            said = [lit(a) for a, b in c.synonyms if b == "none"]
            neither = f" AND lower({s}) NOT IN ({', '.join(said)})" if said else ""
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL AND NOT {_missing(s, d)}{neither})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a boolean: ')} || {s}",
                )
            )
        elif c.kind is Kind.TIMESTAMP and c.lenient:
            # a date that only qualifies another column (when a consent was given): one that
            # cannot be read, or is implausible, is no date (counted: `unreadable_counts`)
            parsed = timestamp_expr(s, day_first=day_first, d=d)
            value = (
                f"CASE WHEN {parsed} >= {d.timestamp_literal(f'{min_year}-01-01')} "
                f"AND {parsed} <= {d.now_plus_days(max_future_days)} THEN {parsed} END"
            )
        elif c.kind is Kind.TIMESTAMP:
            value = timestamp_expr(s, day_first=day_first, d=d)
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL)",
                    Reason.UNPARSEABLE_TIMESTAMP,
                    f"{lit(name + ': cannot parse: ')} || {s}",
                )
            )
            checks.append(
                Check(
                    f"({v} < {d.timestamp_literal(f'{min_year}-01-01')} OR {v} > {d.now_plus_days(max_future_days)})",
                    Reason.OUT_OF_RANGE,
                    f"{lit(name + ': implausible date: ')} || {s}",
                )
            )
        elif c.kind is Kind.JSON:
            value = f"CASE WHEN {d.json_valid(s)} THEN {s} END"
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND NOT {d.json_valid(s)} AND NOT {_missing(s, d)})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not valid JSON: ')} || left({s}, 80)",
                )
            )
        elif c.kind is Kind.ENUM and c.lenient:
            # a value none of `allowed` is no value, the row curated (warned of, each value
            # with its count: `_load_rows.note_unreadable`)
            # (`ColumnSpec.lenient_unknown`: a currency given but unreadable is `XXX`, told apart)
            norm = enum_expr(c, s, d)
            # (an export's "no value", `n/a`, is none given: no value, as the warning counts it)
            unknown = (
                f" WHEN {s} IS NOT NULL AND NOT {_missing(s, d)} THEN {lit(c.lenient_unknown)}"
                if c.lenient_unknown
                else ""
            )
            # (`is_in`, not a literal IN list: DuckDB runs an IN of more than a few constants as a
            # join of every row, even of a column the file lacks (one NULL a load): the ~200
            # currency codes cost ~1.5 CPU-s per million events rows, the event types' ~0.3)
            value = f"CASE WHEN {d.is_in(norm, c.allowed)} THEN {norm}{unknown} END"
        elif c.kind is Kind.ENUM:
            value = enum_expr(c, s, d)
            checks.append(
                Check(
                    f"({v} IS NOT NULL AND NOT {d.is_in(v, c.allowed)})",
                    Reason.INVALID_VALUE,
                    f"{lit(name + ': not one of ' + '/'.join(c.allowed) + ': ')} || {s}"
                    if len(c.allowed) <= 20
                    else f"{lit(name + ': not a known code: ')} || {s}",
                )
            )
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(c.kind)
        if c.max_chars is not None:
            checks.append(
                Check(
                    f"({d.length(s)} > {c.max_chars})",
                    Reason.INVALID_VALUE,
                    f"{lit(f'{name}: longer than {c.max_chars} characters: ')} || CAST({d.length(s)} AS STRING)",
                )
            )
        if c.required:
            # typed columns: an unparseable value is its own reason; text can become empty by cleaning
            empty = (
                f"({v} IS NULL)"
                if c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY, Kind.ID)
                else f"({s} IS NULL OR ({v} IS NULL AND {_missing(s, d)}))"
                if c.kind in (Kind.FLOAT, Kind.BOOL, Kind.JSON)
                else f"({s} IS NULL)"
            )
            unset = (
                ": empty (and no session_id)"
                if anonymous_sessions(contract) and name == "user_id"
                else ": empty"
            )
            checks.insert(
                0,
                Check(
                    empty,
                    Reason.MISSING_REQUIRED,
                    f"CASE WHEN {s} IS NULL THEN {lit(name + unset)} "
                    f"ELSE {lit(name + ': empty after cleaning: ')} || left({s}, 80) END",
                ),
            )
        typed.append(f"{value} AS {v_ref}")
        values.append(f"{v_ref} AS {q(name)}")
    checks.extend(_table_rules(contract, d))
    names = contract.column_names
    if "in_stock" in names and "stock" in names:
        # a row without an `in_stock` value but with a stock figure is in stock when it holds
        # some (BigCommerce's `Current Stock Level` 0: sold-out products were served, their facet
        # `unknown`); a given `in_stock` wins over the figure (a shop selling on backorder says
        # true at 0)
        stock, given = d.q("_v_stock"), d.q("_v_in_stock")
        values[names.index("in_stock")] = (
            f"coalesce({given}, CASE WHEN {stock} IS NOT NULL THEN {stock} > 0 END) AS {d.q('in_stock')}"
        )
    if contract.name == "events":  # a purchase line of 0 units or fewer: no sale, a return
        curated = _events_values(d, unit_price="unit_price" in contract.column_names)
        values = [
            f"{curated[n]} AS {q(n)}" if n in curated else v
            for n, v in zip(contract.column_names, values, strict=True)
        ]
    return CompiledContract(trimmed, cleaned, typed, values, checks, d)


def _is_return(d: Dialect) -> str:
    """SQL over the typed columns: the row is a return (its type, or a purchase line of fewer than 0 units)."""
    et, qty = d.q("_v_event_type"), d.q("_v_quantity")
    return f"({et} = {d.lit(RETURN)} OR ({et} = 'purchase' AND {qty} < 0))"


def _events_values(d: Dialect, *, unit_price: bool = False) -> dict[str, str]:
    """The curated event type, quantity and value of an events row (`_contracts.NO_SALE`,
    `RETURN`): a purchase line of 0 units is a no_sale row, one of fewer than 0 a return; a
    return's units and money are curated as positive amounts (what came back, what was refunded).
    A line without a value but with a `unit_price` is worth unit_price x quantity (1 unit where
    the quantity is missing)."""
    et, qty, value = d.q("_v_event_type"), d.q("_v_quantity"), d.q("_v_value")
    if unit_price:
        value = f"coalesce({value}, {d.q('_v_unit_price')} * coalesce({qty}, 1))"
    ret = _is_return(d)
    return {
        "event_type": f"CASE WHEN {et} = 'purchase' AND {qty} = 0 THEN {d.lit(NO_SALE)} "
        f"WHEN {et} = 'purchase' AND {qty} < 0 THEN {d.lit(RETURN)} ELSE {et} END",
        "quantity": f"CASE WHEN {ret} THEN abs({qty}) ELSE {qty} END",
        "value": f"CASE WHEN {ret} THEN abs({value}) ELSE {value} END",
    }


def _id_value(s: str, d: Dialect) -> str:
    """An id's value: an integer id written as a float by a dataframe library (`123.0`) is
    that integer."""
    return f"CASE WHEN {d.endswith(s, '.0')} AND {d.full_match(s, _FLOAT_INT)} THEN {d.drop_last(s, 2)} ELSE {s} END"


# user ids that name no customer but a guest checkout (compared without case): WooCommerce writes
# `Customer User ID` 0 for every guest order, other exports -1, `guest` or `anonymous`. An events
# row with one and a session id (its order) is an anonymous session's, as a row without a user
# id is (`_load_anonymous` counts them for the load's notes); without a session id it is read
# as written (a dataset whose visitor ids count from 0)
GUEST_USER_IDS = ("0", "-1", "guest", "anonymous")


def is_guest_user_id(raw_id: str) -> bool:
    """Whether a raw user id is a guest checkout's placeholder (`GUEST_USER_IDS`), no customer."""
    value = raw_id.strip().lower()
    if value.endswith(".0") and value[:-2].lstrip("-").isdigit():
        value = value[:-2]
    return value in GUEST_USER_IDS


def anonymous_sessions(contract: TableContract) -> bool:
    """Whether a row without a user id but with a session id is an anonymous session's (events:
    real shops log anonymous browsing so) instead of a row missing its user."""
    names = contract.column_names
    return "user_id" in names and "session_id" in names and contract.column("user_id").pseudonymize


def _table_rules(contract: TableContract, d: Dialect = DUCKDB) -> list[Check]:
    """Rules that involve several columns of one row."""
    if contract.name != "events":
        return []
    # the event type as the contract types it (synonyms mapped), so these rules see what curation
    # sees; cleaned texts and typed values are computed columns (see `CompiledContract`)
    et, s_pid, s_et = d.q("_v_event_type"), d.q("_s_product_id"), d.q("_s_event_type")
    s_query, s_value = d.q("_s_query"), d.q("_s_value")
    qty, s_qty = d.q("_v_quantity"), d.q("_s_quantity")
    return [
        Check(
            f"(coalesce({et}, '') <> 'search' AND {s_pid} IS NULL)",
            Reason.MISSING_REQUIRED,
            f"'product_id: empty (required for ' || coalesce({s_et}, '') || ' events)'",
        ),
        Check(
            f"({et} = 'search' AND {s_query} IS NULL)",
            Reason.MISSING_REQUIRED,
            "'query: empty (required for search events)'",
        ),
        Check(
            f"({et} = 'rating' AND TRY_CAST({s_value} AS DOUBLE) NOT BETWEEN 0 AND 10)",
            Reason.OUT_OF_RANGE,
            f"'value: a rating must be between 0 and 10: ' || {s_value}",
        ),
        # a quantity is 1 or more units; a purchase line's 0 is no sale, its fewer a return
        # (`_events_values`), and a return may say its units either way; a no_sale row sells none
        Check(
            f"({qty} < 1 AND coalesce({et}, '') NOT IN ('purchase', {d.lit(RETURN)}, {d.lit(NO_SALE)}))",
            Reason.OUT_OF_RANGE,
            f"'quantity: below 1: ' || {s_qty}",
        ),
        Check(
            f"({qty} = 0 AND {et} = {d.lit(RETURN)})",
            Reason.OUT_OF_RANGE,
            f"'quantity: a return of 0 units: ' || {s_qty}",
        ),
        Check(
            f"({qty} <> 0 AND {et} = {d.lit(NO_SALE)})",
            Reason.INVALID_VALUE,
            f"'quantity: a no_sale row sells no units: ' || {s_qty}",
        ),
        # money is 0 or more; a return's line total may be written below 0 (what was refunded)
        Check(
            f"({d.q('_v_value')} < 0 AND NOT coalesce({_is_return(d)}, false))",
            Reason.OUT_OF_RANGE,
            f"'value: below 0: ' || {s_value}",
        ),
    ]


def reasons_sql(checks: list[Check], d: Dialect = DUCKDB) -> tuple[str, str]:
    """SQL for the list of failed reasons and for the detail of the first one."""
    reasons = d.reasons([f"CASE WHEN {c.condition} THEN {d.lit(c.reason.value)} END" for c in checks])
    if checks and d.name == "duckdb":
        # the list of every check's outcome built and filtered only for a row that fails one:
        # nearly every row passes, and a list of ~30 items made and filtered on each cost ~1.2
        # CPU-s per million events rows (the same list: a condition that is NULL fails no check)
        failed = " OR ".join(f"({c.condition})" for c in checks)
        reasons = f"CASE WHEN {failed} THEN {reasons} ELSE {d.reasons([])} END"
    detail = (
        "CASE " + " ".join(f"WHEN {c.condition} THEN {c.detail}" for c in checks) + " END"
        if checks
        else "NULL"
    )
    return reasons, detail
