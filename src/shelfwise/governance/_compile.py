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
    select_values: list[str]  # "<expr> AS <col>" for every contract column
    checks: list[Check]


def _clean(raw: str) -> str:
    return f"nullif(trim({raw}), '')"


def _mask(expr: str) -> str:
    for _, pattern, token in PII_PATTERNS:
        expr = f"regexp_replace({expr}, {lit(pattern)}, {lit(token)}, 'g')"
    return expr


def timestamp_expr(s: str) -> str:
    """ISO 8601 (offsets honoured, converted to UTC) or epoch seconds / milliseconds."""
    num = f"TRY_CAST({s} AS DOUBLE)"
    return (
        f"CASE WHEN regexp_full_match({s}, '-?[0-9]+(\\.[0-9]+)?') THEN "
        f"CASE WHEN abs({num}) > 1e11 THEN to_timestamp({num} / 1000.0)::TIMESTAMP "
        f"ELSE to_timestamp({num})::TIMESTAMP END "
        f"ELSE TRY_CAST(TRY_CAST({s} AS TIMESTAMPTZ) AS TIMESTAMP) END"
    )


def enum_expr(c: ColumnSpec, s: str) -> str:
    """An enum value: lower case, spaces and dashes as underscores, synonyms mapped."""
    norm = f"replace(replace(lower({s}), ' ', '_'), '-', '_')"
    if c.synonyms:
        cases = " ".join(f"WHEN {lit(a)} THEN {lit(b)}" for a, b in c.synonyms)
        norm = f"CASE {norm} {cases} ELSE {norm} END"
    return norm


def compile_contract(
    contract: TableContract, *, min_year: int = 1990, max_future_days: int = 2
) -> CompiledContract:
    values: list[str] = []
    checks: list[Check] = []
    for c in contract.columns:
        raw = q(c.name)
        s = _clean(raw)
        name = c.name
        if c.kind is Kind.ID:
            value = s
        elif c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY):
            value = f"{NORMALIZE_UDF}({raw})"
            if c.kind is Kind.TEXT:
                value = _mask(value)
            if c.kind is Kind.CATEGORY:
                value = f"nullif(trim(regexp_replace({value}, '\\s*[>|]\\s*', ' > ', 'g'), ' >'), '')"
        elif c.kind is Kind.FLOAT:
            num_text = f"replace(regexp_replace({s}, '^[$€£¥]\\s*', ''), ',', '')"
            value = (
                f"CASE WHEN isfinite(TRY_CAST({num_text} AS DOUBLE)) THEN TRY_CAST({num_text} AS DOUBLE) END"
            )
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND ({value}) IS NULL)",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a number: ')} || {s}",
                )
            )
            if c.min_value is not None:
                checks.append(
                    Check(
                        f"(({value}) < {c.min_value})",
                        Reason.OUT_OF_RANGE,
                        f"{lit(f'{name}: below {c.min_value:g}: ')} || {s}",
                    )
                )
            if c.max_value is not None:
                checks.append(
                    Check(
                        f"(({value}) > {c.max_value})",
                        Reason.OUT_OF_RANGE,
                        f"{lit(f'{name}: above {c.max_value:g}: ')} || {s}",
                    )
                )
        elif c.kind is Kind.BOOL:
            low = f"lower({s})"
            value = (
                f"CASE WHEN {low} IN ('true','t','1','yes','y') THEN true "
                f"WHEN {low} IN ('false','f','0','no','n') THEN false END"
            )
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND ({value}) IS NULL)",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not a boolean: ')} || {s}",
                )
            )
        elif c.kind is Kind.TIMESTAMP:
            value = timestamp_expr(s)
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND ({value}) IS NULL)",
                    Reason.UNPARSEABLE_TIMESTAMP,
                    f"{lit(name + ': cannot parse: ')} || {s}",
                )
            )
            checks.append(
                Check(
                    f"(({value}) < TIMESTAMP '{min_year}-01-01' OR ({value}) > now()::TIMESTAMP + INTERVAL {max_future_days} DAY)",
                    Reason.OUT_OF_RANGE,
                    f"{lit(name + ': implausible date: ')} || {s}",
                )
            )
        elif c.kind is Kind.JSON:
            value = f"CASE WHEN json_valid({s}) THEN {s} END"
            checks.append(
                Check(
                    f"({s} IS NOT NULL AND NOT json_valid({s}))",
                    Reason.INVALID_TYPE,
                    f"{lit(name + ': not valid JSON: ')} || left({s}, 80)",
                )
            )
        elif c.kind is Kind.ENUM:
            value = enum_expr(c, s)
            allowed = ", ".join(lit(a) for a in c.allowed)
            checks.append(
                Check(
                    f"(({value}) IS NOT NULL AND ({value}) NOT IN ({allowed}))",
                    Reason.INVALID_VALUE,
                    f"{lit(name + ': not one of ' + '/'.join(c.allowed) + ': ')} || {s}",
                )
            )
        else:  # pragma: no cover - every kind is handled above
            raise AssertionError(c.kind)
        if c.required:
            # typed columns: an unparseable value is its own reason; text can become empty by cleaning
            empty = (
                f"(({value}) IS NULL)"
                if c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY, Kind.ID)
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
        values.append(f"{value} AS {q(name)}")
    checks.extend(_table_rules(contract))
    return CompiledContract(values, checks)


def _table_rules(contract: TableContract) -> list[Check]:
    """Rules that involve several columns of one row."""
    if contract.name != "events":
        return []
    # the event type as the contract types it (synonyms mapped), so these rules see what curation sees
    et = enum_expr(contract.column("event_type"), _clean(q("event_type")))
    return [
        Check(
            f"(coalesce({et}, '') <> 'search' AND nullif(trim(\"product_id\"), '') IS NULL)",
            Reason.MISSING_REQUIRED,
            "'product_id: empty (required for ' || coalesce(trim(\"event_type\"), '') || ' events)'",
        ),
        Check(
            f"({et} = 'search' AND nullif(trim(\"query\"), '') IS NULL)",
            Reason.MISSING_REQUIRED,
            "'query: empty (required for search events)'",
        ),
        Check(
            f"({et} = 'rating' AND TRY_CAST(nullif(trim(\"value\"), '') AS DOUBLE) NOT BETWEEN 0 AND 10)",
            Reason.OUT_OF_RANGE,
            "'value: a rating must be between 0 and 10: ' || trim(\"value\")",
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
