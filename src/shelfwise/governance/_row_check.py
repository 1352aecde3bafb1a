"""The same contracts, checked one record at a time in Python (the HTTP event path).

Ingestion compiles a contract into warehouse SQL (`_compile`); a server answering `POST /events`
cannot run a warehouse query per request, so this module interprets the *same* `TableContract`
for one record and returns the same reason codes. A test runs both on the same tricky rows and
requires that they agree on which rows pass and why (tests/governance/test_row_check.py).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ._compile import (
    CURRENCY_AROUND,
    MISSING_KINDS,
    MISSING_VALUES,
    NUMBER_SPACES,
    RFC2822_FORMAT,
    TIMESTAMP_FORMATS,
    TRIM_SPACES,
    anonymous_sessions,
    is_guest_user_id,
    iso_offset_joined,
    money_currency,
    parse_bool,
    slash_date_formats,
)
from ._contracts import NO_SALE, RETURN, Kind, TableContract
from ._privacy import ANONYMOUS_PREFIX, anonymous_user_id
from ._reasons import Reason

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_CURRENCY = re.compile(CURRENCY_AROUND)
_SPACES = re.compile(NUMBER_SPACES)
_GROUPED_DECIMAL_COMMA = re.compile(r"-?[0-9]{1,3}(\.[0-9]{3})+,[0-9]+")  # 1.299,00
_DECIMAL_COMMA = re.compile(r"-?[0-9]+,[0-9]{1,2}")  # 12,99
_GROUPED = re.compile(r"-?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?")  # 1,299.00
_FLOAT_INT = re.compile(r"-?[0-9]+\.0")
_MISSING = frozenset(MISSING_VALUES)


@dataclass(frozen=True)
class Failure:
    field: str
    reason: Reason
    detail: str


@dataclass
class RecordCheck:
    values: dict[str, Any] = field(default_factory=dict)  # typed values of the contract's columns
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> Reason | None:
        return self.failures[0].reason if self.failures else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = (
        value
        if isinstance(value, str)
        else json.dumps(value)
        if isinstance(value, dict | list)
        else str(value)
    )
    s = s.strip(TRIM_SPACES)  # as the warehouse trims
    return s or None


def parse_number(s: str) -> float | None:
    """A number as `_compile.number_expr` reads it (currency, thousands, decimal comma)."""
    try:
        if "_" in s:  # Python reads 1_000; the warehouse does not
            raise ValueError(s)
        value = float(s)
    except ValueError:
        t = _SPACES.sub("", _CURRENCY.sub("", s))
        if _GROUPED_DECIMAL_COMMA.fullmatch(t):
            t = t.replace(".", "").replace(",", ".")
        elif _DECIMAL_COMMA.fullmatch(t):
            t = t.replace(",", ".")
        elif _GROUPED.fullmatch(t):
            t = t.replace(",", "")
        try:
            if "_" in t:
                raise ValueError(t)
            value = float(t)
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def _iso(s: str) -> datetime | None:
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def _first_format(s: str, formats: tuple[str, ...]) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            continue
    return None


def parse_timestamp(s: str, *, day_first: bool = False) -> datetime | None:
    """As `_compile.timestamp_expr`: ISO 8601 (offsets honoured, to naive UTC), epoch seconds /
    ms / µs / ns, compact `YYYYMMDD[HHMMSS]`, or a common non-ISO form."""
    if _NUMBER.fullmatch(s):
        for digits, fmt in ((8, "%Y%m%d"), (14, "%Y%m%d%H%M%S")):
            if len(s) == digits:
                try:
                    return datetime.strptime(s, fmt)
                except ValueError:
                    return None
        num = float(s)
        for above, per_second in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):  # ns, µs, ms
            if abs(num) > above:
                num /= per_second
                break
        try:
            return datetime.fromtimestamp(num, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    ts = _iso(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    if ts is None and s[4:5] == "-":  # `2024-03-05 14:22:31 -0500`, as `Dialect.iso_timestamp`
        ts = _iso(iso_offset_joined(s))
    if ts is None:
        ts = _first_format(s, (*slash_date_formats(day_first), *TIMESTAMP_FORMATS, RFC2822_FORMAT))
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts


def _id(s: str | None) -> str | None:
    """An id as `_compile._id_value` reads it: `123.0` (a float-writing dataframe) is `123`."""
    return s[:-2] if s is not None and _FLOAT_INT.fullmatch(s) else s


def _normalize(s: str) -> str | None:
    s = unicodedata.normalize("NFKC", s)
    s = re.sub(r"[\s\u200b\ufeff]+", " ", s).strip()
    return s or None


def check_record(
    contract: TableContract,
    record: Mapping[str, Any],
    *,
    known: Mapping[str, Container[str]] | None = None,
    min_year: int = 1990,
    max_future_days: int = 2,
    now: Callable[[], datetime] = lambda: datetime.now(UTC).replace(tzinfo=None),
) -> RecordCheck:
    """Check one record (canonical column names) against `contract`. `known` maps a referenced
    column (e.g. "product_id") to the ids it may name; omit it to skip reference checks."""
    out = RecordCheck()
    fail = out.failures.append
    for c in contract.columns:
        s = _text(record.get(c.name))
        if s is not None and s in _MISSING and c.kind in (*MISSING_KINDS, Kind.FLOAT, Kind.BOOL, Kind.JSON):
            s = None  # missing (not invalid); see `_compile.MISSING_VALUES`
        name = c.name
        value: Any = None
        if c.kind is Kind.ID:
            value = _id(s)
            if c.pseudonymize and value is not None and value.startswith(ANONYMOUS_PREFIX):
                fail(
                    Failure(
                        name,
                        Reason.INVALID_VALUE,
                        f"{name}: the prefix {ANONYMOUS_PREFIX} is reserved for anonymous sessions: {s}",
                    )
                )
            if name == "user_id" and anonymous_sessions(contract):
                session = _text(record.get("session_id"))
                session = _id(None if session in _MISSING else session)
                # no user but a session: anonymous browsing, attributed to its session; so is a
                # guest checkout's placeholder id (`0`) beside a session (as `_compile`)
                if value is None or (session is not None and is_guest_user_id(value)):
                    value = None if session is None else anonymous_user_id(session)
        elif c.kind in (Kind.STRING, Kind.TEXT, Kind.CATEGORY):
            value = _normalize(s) if s is not None else None
        elif c.kind is Kind.FLOAT:
            if s is not None:
                value = parse_number(s)
                if value is None:
                    fail(Failure(name, Reason.INVALID_TYPE, f"{name}: not a number: {s}"))
                elif c.integer and value != int(value):
                    fail(Failure(name, Reason.INVALID_TYPE, f"{name}: not a whole number: {s}"))
                elif c.min_value is not None and value < c.min_value:
                    fail(Failure(name, Reason.OUT_OF_RANGE, f"{name}: below {c.min_value:g}: {s}"))
                elif c.max_value is not None and value > c.max_value:
                    fail(Failure(name, Reason.OUT_OF_RANGE, f"{name}: above {c.max_value:g}: {s}"))
        elif c.kind is Kind.BOOL:
            if s is not None:
                own = dict(c.synonyms).get(s.lower())  # a column's own words first (as `_compile`)
                value = parse_bool(s) if own is None else None if own == "none" else own == "true"
                if own == "none":
                    pass  # a word that says neither (Shopify's `deny`): no value
                elif value is None and c.lenient:
                    value = c.lenient_value  # fail closed, or shown (`ColumnSpec.lenient_value`)
                elif value is None:
                    fail(Failure(name, Reason.INVALID_TYPE, f"{name}: not a boolean: {s}"))
        elif c.kind is Kind.TIMESTAMP:
            if s is not None:
                value = parse_timestamp(s)
                if c.lenient:
                    late = value is not None and value > now() + timedelta(days=max_future_days)
                    if value is not None and (value < datetime(min_year, 1, 1) or late):
                        value = None  # no date (`ColumnSpec.lenient`)
                elif value is None:
                    fail(Failure(name, Reason.UNPARSEABLE_TIMESTAMP, f"{name}: cannot parse: {s}"))
                elif value < datetime(min_year, 1, 1) or value > now() + timedelta(days=max_future_days):
                    fail(Failure(name, Reason.OUT_OF_RANGE, f"{name}: implausible date: {s}"))
        elif c.kind is Kind.JSON:
            if s is not None:
                try:
                    json.loads(s)
                    value = s
                except ValueError:
                    fail(Failure(name, Reason.INVALID_TYPE, f"{name}: not valid JSON: {s[:80]}"))
        elif c.kind is Kind.ENUM and s is not None:
            codes = c.codes  # (as `_compile.enum_expr`)
            norm = s.strip().upper() if codes else s.lower().replace(" ", "_").replace("-", "_")
            synonyms = {a.upper(): b for a, b in c.synonyms} if codes else dict(c.synonyms)
            value = synonyms.get(norm, norm)
            if value not in c.allowed and c.lenient:
                # the row kept (`ColumnSpec.lenient`, `lenient_unknown`); an export's "no value"
                # (`n/a`) is none given, as the batch load reads it
                value = None if s in _MISSING else c.lenient_unknown
            elif value not in c.allowed:
                fail(Failure(name, Reason.INVALID_VALUE, f"{name}: not one of {'/'.join(c.allowed)}: {s}"))
        if c.max_chars is not None and s is not None and len(s) > c.max_chars:
            fail(
                Failure(name, Reason.INVALID_VALUE, f"{name}: longer than {c.max_chars} characters: {len(s)}")
            )
        if c.required and value is None and not any(f.field == name for f in out.failures):
            unset = " (and no session_id)" if name == "user_id" and anonymous_sessions(contract) else ""
            out.failures.insert(0, Failure(name, Reason.MISSING_REQUIRED, f"{name}: empty{unset}"))
        out.values[name] = value
    if "currency" in contract.column_names and out.values.get("currency") is None:
        # (no currency given, or an empty one: the money's own text names it, as a batch load
        # reads such a row; a given one, even unreadable, `XXX`, is the row's)
        out.values["currency"] = _money_text_currency(contract, record)
    _row_rules(contract, record, out)
    for column, _table, _ref_col in contract.references:
        v = out.values.get(column)
        if known is not None and column in known and v is not None and v not in known[column]:
            fail(Failure(column, Reason.UNKNOWN_REFERENCE, f"{column}: not in the catalog: {v}"))
    return out


def _money_text_currency(contract: TableContract, record: Mapping[str, Any]) -> str | None:
    """A record without a currency (none given, or an empty one): the currency its money's own
    text names (`49,99 €`, `EUR\u00a012`), as a batch load reads such a row
    (`_load_rows.money_text_currency`; a row's `value` and `unit_price` naming two: unknown)."""
    from ._contracts import UNKNOWN_CURRENCY

    codes = []
    for m in ("price", "value", "unit_price"):
        s = _text(record.get(m)) if m in contract.column_names else None
        if s is not None and parse_number(s) is not None and (code := _plain_or_code(s)):
            codes.append(code)
    return None if not codes else codes[0] if len(set(codes)) == 1 else UNKNOWN_CURRENCY


def _plain_or_code(s: str) -> str | None:
    """The currency a money text names (None for a plain figure, `12.5`, as the warehouse's)."""
    try:
        float(s)
        return None
    except ValueError:
        return money_currency(s)


def _row_rules(contract: TableContract, record: Mapping[str, Any], out: RecordCheck) -> None:
    """Rules over several columns of one row (the same as `_compile._table_rules`)."""
    if contract.name != "events":
        return
    et = out.values.get("event_type") or ""  # typed by the contract: synonyms already mapped
    if et != "search" and out.values.get("product_id") is None:
        out.failures.append(
            Failure("product_id", Reason.MISSING_REQUIRED, f"product_id: empty (required for {et} events)")
        )
    if et == "search" and _text(record.get("query")) is None:
        out.failures.append(
            Failure("query", Reason.MISSING_REQUIRED, "query: empty (required for search events)")
        )
    if et == "rating":
        v = out.values.get("value")
        if isinstance(v, float) and not 0 <= v <= 10:
            out.failures.append(
                Failure("value", Reason.OUT_OF_RANGE, f"value: a rating must be between 0 and 10: {v:g}")
            )
    # a purchase line's quantity: 0 is no sale, fewer a return (`_compile._events_values`)
    qty, value = out.values.get("quantity"), out.values.get("value")
    s_qty, s_value = _text(record.get("quantity")), _text(record.get("value"))
    unit = out.values.get("unit_price")
    if value is None and isinstance(unit, float):  # (as `_compile._events_values`)
        value = out.values["value"] = unit * (qty if isinstance(qty, float) else 1.0)
    if isinstance(qty, float):
        if qty < 1 and et not in ("purchase", RETURN, NO_SALE):
            out.failures.append(Failure("quantity", Reason.OUT_OF_RANGE, f"quantity: below 1: {s_qty}"))
        elif qty == 0 and et == RETURN:
            out.failures.append(
                Failure("quantity", Reason.OUT_OF_RANGE, f"quantity: a return of 0 units: {s_qty}")
            )
        elif qty != 0 and et == NO_SALE:
            out.failures.append(
                Failure("quantity", Reason.INVALID_VALUE, f"quantity: a no_sale row sells no units: {s_qty}")
            )
    is_return = et == RETURN or (et == "purchase" and isinstance(qty, float) and qty < 0)
    if isinstance(value, float) and value < 0 and not is_return:
        out.failures.append(Failure("value", Reason.OUT_OF_RANGE, f"value: below 0: {s_value}"))
    if et == "purchase" and qty == 0:
        out.values["event_type"] = NO_SALE
    elif is_return:
        out.values["event_type"] = RETURN
    if is_return:
        out.values.update(
            quantity=abs(qty) if isinstance(qty, float) else qty,
            value=abs(value) if isinstance(value, float) else value,
        )
