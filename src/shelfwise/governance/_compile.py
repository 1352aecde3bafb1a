"""Compiling a contract into warehouse SQL: typed values plus a reason code per failed check.

The compiler emits one SELECT over a raw (all-strings) table that yields, for every row, the typed
value of each column and the list of every check it failed (lazy: all failures are collected, the
first is the primary reason). The SQL is DuckDB's dialect; it is plain enough that sqlglot (which
ships with Ibis) transpiles it for Spark when a shop scales out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._contracts import ColumnSpec, Kind, TableContract
from ._privacy import PII_PATTERNS
from ._reasons import Reason

NORMALIZE_UDF = "sw_normalize_text"


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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

    def query(self, source: str, keep: list[str]) -> str:
        """Typed values + `_reasons` (failed checks) + `_detail` (the first failure) per row of
        `source`; `keep` are extra source columns passed through as they are."""
        reasons, detail = reasons_sql(self.checks)
        passed = "".join(f", {c}" for c in keep)
        return (
            f"SELECT {', '.join(self.select_values)}{passed}, {reasons} AS _reasons, {detail} AS _detail, "
            f"_source_line FROM (SELECT *, {', '.join(self.typed)} FROM "
            f"(SELECT *, {', '.join(self.cleaned)} FROM (SELECT *, {', '.join(self.trimmed)} FROM {source})))"
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


MISSING_KINDS = (Kind.ID, Kind.STRING, Kind.CATEGORY)  # read as NULL before anything else


def _missing(text: str) -> str:
    return f"list_contains([{', '.join(lit(m) for m in MISSING_VALUES)}], {text})"


def _clean(trimmed: str, kind: Kind) -> str:
    if kind not in MISSING_KINDS:
        return trimmed
    return f"CASE WHEN {_missing(trimmed)} THEN NULL ELSE {trimmed} END"


# text the Python normalizer would leave as it is: printable ASCII with no markup characters and
# no runs of whitespace (NFKC is the identity there, there is nothing to unescape or collapse)
PLAIN_TEXT = "[^ -~]|[<&]|\\s\\s"


def normalized_expr(raw: str, cleaned: str) -> str:
    """NFKC + markup + whitespace normalization of `raw` (`cleaned` is its trimmed text): plain
    values are passed through in SQL; only the others go to the Python UDF. DuckDB evaluates a
    CASE branch on the rows that take it alone, so a column of plain values (or NULLs) never
    calls Python: about 0.45 s per text column and million rows saved."""
    return (
        f"CASE WHEN {cleaned} IS NULL THEN NULL WHEN NOT regexp_matches({cleaned}, {lit(PLAIN_TEXT)}) "
        f"THEN {cleaned} ELSE {NORMALIZE_UDF}({raw}) END"
    )


def _mask(expr: str) -> str:
    for _, pattern, token in PII_PATTERNS:
        expr = f"regexp_replace({expr}, {lit(pattern)}, {lit(token)}, 'g')"
    return expr


def slash_date_formats(day_first: bool) -> tuple[str, ...]:
    """`05/01/2024` as month/day/year (the default) or day/month/year (a file that shows a first
    field above 12 somewhere and never a second one)."""
    md = "%d/%m" if day_first else "%m/%d"
    # two-digit years first: the warehouse's %Y reads `24` as the year 24
    return tuple(
        f"{md}/{y}{t}" for y in ("%y", "%Y") for t in (" %H:%M:%S", " %H:%M", " %I:%M:%S %p", " %I:%M %p", "")
    )


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


def timestamp_expr(s: str, *, day_first: bool = False) -> str:
    """ISO 8601 (offsets honoured, converted to UTC), epoch seconds / ms / µs / ns, compact
    `YYYYMMDD[HHMMSS]`, or one of the common non-ISO forms (`TIMESTAMP_FORMATS`, slash dates)."""
    num = f"TRY_CAST({s} AS DOUBLE)"
    formats = "[" + ", ".join(lit(f) for f in (*slash_date_formats(day_first), *TIMESTAMP_FORMATS)) + "]"
    # an 8- or 14-character number read as seconds or milliseconds would lie before 1990 or after
    # 2500: it is a compact date (length tests: regular expressions here cost ~0.05 s per 1M rows)
    general = (
        f"CASE WHEN regexp_full_match({s}, '-?[0-9]+(\\.[0-9]+)?') THEN "
        f"CASE WHEN strlen({s}) = 8 THEN try_strptime({s}, '%Y%m%d') "
        f"WHEN strlen({s}) = 14 THEN try_strptime({s}, '%Y%m%d%H%M%S') "
        f"WHEN abs({num}) <= 1e11 THEN to_timestamp({num})::TIMESTAMP "
        f"WHEN abs({num}) > 1e17 THEN to_timestamp({num} / 1e9)::TIMESTAMP "
        f"WHEN abs({num}) > 1e14 THEN to_timestamp({num} / 1e6)::TIMESTAMP "
        f"ELSE to_timestamp({num} / 1000.0)::TIMESTAMP END "
        f"ELSE coalesce(TRY_CAST(TRY_CAST({s} AS TIMESTAMPTZ) AS TIMESTAMP), try_strptime({s}, {formats}), "
        f"TRY_CAST(try_strptime({s}, {lit(RFC2822_FORMAT)}) AS TIMESTAMP)) END"
    )
    # the common forms first, read by the plain TIMESTAMP cast: ISO 8601 in UTC (`...Z`) and ISO
    # without an offset (`2024-01-05 10:00:00`, 19 characters, the seconds' colon at 17: no room
    # for an offset). That cast equals the TIMESTAMPTZ one for them (it would ignore an offset, so
    # it is never given one) at about a third of its cost: 2.4 -> 0.9 s per 1M ISO `Z` values.
    # What it cannot read takes the general path.
    plain = f"suffix({s}, 'Z') OR (strlen({s}) = 19 AND substr({s}, 17, 1) = ':')"
    return f"CASE WHEN {plain} THEN coalesce(TRY_CAST({s} AS TIMESTAMP), {general}) ELSE {general} END"


CURRENCY = "[$€£¥₹]|[A-Za-z]{3}"  # a symbol or an ISO 4217 code (USD, eur)
CURRENCY_AROUND = f"^({CURRENCY})\\s*|\\s*({CURRENCY})$"
NUMBER_SPACES = "[ \u00a0\u202f]"


def number_expr(s: str) -> str:
    """A number as shops write it: plain (`12.5`, `1e3`) at the cost of one cast, else without
    a currency symbol or code before or after it, with thousands separators (`1,299.00`,
    `1.299,00`) or a decimal comma (`12,99`; `1,299` is one thousand two hundred and ninety-nine)."""
    fast = f"TRY_CAST({s} AS DOUBLE)"
    # (spaces inside a number group thousands: `1 299,00`, with a no-break space in French)
    t = f"regexp_replace(regexp_replace({s}, {lit(CURRENCY_AROUND)}, '', 'g'), {lit(NUMBER_SPACES)}, '', 'g')"
    text = (
        f"CASE WHEN regexp_full_match({t}, '-?[0-9]{{1,3}}(\\.[0-9]{{3}})+,[0-9]+') "
        f"THEN replace(replace({t}, '.', ''), ',', '.') "
        f"WHEN regexp_full_match({t}, '-?[0-9]+,[0-9]{{1,2}}') THEN replace({t}, ',', '.') "
        f"WHEN regexp_full_match({t}, '-?[0-9]{{1,3}}(,[0-9]{{3}})+(\\.[0-9]+)?') THEN replace({t}, ',', '') "
        f"ELSE {t} END"
    )
    slow = f"TRY_CAST({text} AS DOUBLE)"
    return f"CASE WHEN isfinite({fast}) THEN {fast} WHEN {fast} IS NULL AND isfinite({slow}) THEN {slow} END"


def enum_expr(c: ColumnSpec, s: str) -> str:
    """An enum value: lower case, spaces and dashes as underscores, synonyms mapped."""
    norm = f"replace(replace(lower({s}), ' ', '_'), '-', '_')"
    if c.synonyms:
        cases = " ".join(f"WHEN {lit(a)} THEN {lit(b)}" for a, b in c.synonyms)
        norm = f"CASE {norm} {cases} ELSE {norm} END"
    return norm


def compile_contract(
    contract: TableContract, *, min_year: int = 1990, max_future_days: int = 2, day_first: bool = False
) -> CompiledContract:
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
        trimmed.append(f"nullif(trim({raw}), '') AS {t_ref}")
        cleaned.append(f"{_clean(t_ref, c.kind)} AS {s_ref}")
        s = s_ref  # the cleaned text, computed once
        v = v_ref  # the typed value, computed once
        if c.kind is Kind.ID:
            # an integer id written as a float by a dataframe library (`123.0`) is that integer
            value = (
                f"CASE WHEN suffix({s}, '.0') AND regexp_full_match({s}, '-?[0-9]+\\.0') "
                f"THEN left({s}, -2) ELSE {s} END"
            )
        elif c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY):
            value = normalized_expr(raw, s)
            if c.kind is Kind.TEXT:
                value = _mask(value)
            if c.kind is Kind.CATEGORY:
                value = f"nullif(trim(regexp_replace({value}, '\\s*[>|]\\s*', ' > ', 'g'), ' >'), '')"
        elif c.kind is Kind.FLOAT:
            value = number_expr(s)
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL AND NOT {_missing(s)})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a number: ')} || {s}",
                )
            )
            if c.integer:
                checks.append(
                    Check(
                        f"({v} <> trunc({v}))",
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
            low = f"lower({s})"
            value = (
                f"CASE WHEN {low} IN ({', '.join(lit(t) for t in TRUE_TOKENS)}) THEN true "
                f"WHEN {low} IN ({', '.join(lit(t) for t in FALSE_TOKENS)}) THEN false END"
            )
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL AND NOT {_missing(s)})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a boolean: ')} || {s}",
                )
            )
        elif c.kind is Kind.TIMESTAMP:
            value = timestamp_expr(s, day_first=day_first)
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND {v} IS NULL)",
                    Reason.UNPARSEABLE_TIMESTAMP,
                    f"{lit(name + ': cannot parse: ')} || {s}",
                )
            )
            checks.append(
                Check(
                    f"({v} < TIMESTAMP '{min_year}-01-01' OR {v} > now()::TIMESTAMP + INTERVAL {max_future_days} DAY)",
                    Reason.OUT_OF_RANGE,
                    f"{lit(name + ': implausible date: ')} || {s}",
                )
            )
        elif c.kind is Kind.JSON:
            value = f"CASE WHEN json_valid({s}) THEN {s} END"
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND NOT json_valid({s}) AND NOT {_missing(s)})",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not valid JSON: ')} || left({s}, 80)",
                )
            )
        elif c.kind is Kind.ENUM:
            value = enum_expr(c, s)
            allowed = ", ".join(lit(a) for a in c.allowed)
            checks.append(
                Check(
                    f"({v} IS NOT NULL AND {v} NOT IN ({allowed}))",
                    Reason.INVALID_VALUE,
                    f"{lit(name + ': not one of ' + '/'.join(c.allowed) + ': ')} || {s}",
                )
            )
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(c.kind)
        if c.required:
            # typed columns: an unparseable value is its own reason; text can become empty by cleaning
            empty = (
                f"({v} IS NULL)"
                if c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY, Kind.ID)
                else f"({s} IS NULL OR ({v} IS NULL AND {_missing(s)}))"
                if c.kind in (Kind.FLOAT, Kind.BOOL, Kind.JSON)
                else f"({s} IS NULL)"
            )
            checks.insert(
                0,
                Check(
                    empty,
                    Reason.MISSING_REQUIRED,
                    f"CASE WHEN {s} IS NULL THEN {lit(name + ': empty')} "
                    f"ELSE {lit(name + ': empty after cleaning: ')} || left({s}, 80) END",
                ),
            )
        typed.append(f"{value} AS {v_ref}")
        values.append(f"{v_ref} AS {q(name)}")
    checks.extend(_table_rules(contract))
    return CompiledContract(trimmed, cleaned, typed, values, checks)


def _table_rules(contract: TableContract) -> list[Check]:
    """Rules that involve several columns of one row."""
    if contract.name != "events":
        return []
    # the event type as the contract types it (synonyms mapped), so these rules see what curation
    # sees; cleaned texts and typed values are computed columns (see `CompiledContract`)
    et = '"_v_event_type"'
    return [
        Check(
            f"(coalesce({et}, '') <> 'search' AND \"_s_product_id\" IS NULL)",
            Reason.MISSING_REQUIRED,
            "'product_id: empty (required for ' || coalesce(\"_s_event_type\", '') || ' events)'",
        ),
        Check(
            f"({et} = 'search' AND \"_s_query\" IS NULL)",
            Reason.MISSING_REQUIRED,
            "'query: empty (required for search events)'",
        ),
        Check(
            f"({et} = 'rating' AND TRY_CAST(\"_s_value\" AS DOUBLE) NOT BETWEEN 0 AND 10)",
            Reason.OUT_OF_RANGE,
            "'value: a rating must be between 0 and 10: ' || \"_s_value\"",
        ),
    ]


def reasons_sql(checks: list[Check]) -> tuple[str, str]:
    """SQL for the list of failed reasons and for the detail of the first one."""
    items = ", ".join(f"CASE WHEN {c.condition} THEN {lit(c.reason.value)} END" for c in checks)
    reasons = f"list_filter([{items}], x -> x IS NOT NULL)" if checks else "[]::VARCHAR[]"
    detail = (
        "CASE " + " ".join(f"WHEN {c.condition} THEN {c.detail}" for c in checks) + " END"
        if checks
        else "NULL"
    )
    return reasons, detail
