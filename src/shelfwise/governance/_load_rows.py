"""Stage 2 of a table's load: the contract's row checks, compiled to one warehouse query over the
loaded strings (`_compile`): every row's typed values and every check it fails, in `_checked`."""

from __future__ import annotations

from ._compile import compile_contract, lit, q
from ._contracts import Kind
from ._load_state import CHECKED, LoadState, constant

__all__ = ["check_rows", "day_first_dates"]


def check_rows(st: LoadState) -> None:
    """`_checked` (typed values, `_reasons`, `_detail`, `_source_line`) from `st.load`."""
    day_first = day_first_dates(st)
    if day_first:
        st.note(
            f"{st.src.name}: dates like 05/01/2024 read as day/month/year (a first field above 12 occurs, "
            "a second one never does)"
        )
    compiled = compile_contract(
        st.contract,
        min_year=st.settings.min_year,
        max_future_days=st.settings.max_future_days,
        day_first=day_first,
    )
    extra_sel = st.extra_sel
    empty_text = lit("")
    extra_clean = [f"nullif(trim({c}), {empty_text}) AS {c}" for c in extra_sel]
    loaded = st.load
    # a column the file does not have holds one constant in every row of this load (its implied
    # value or NULL, as `_load_raw` wrote it): read as that constant, its cleaning and checks fold
    # to constants in the warehouse instead of running on every row (a typical events file lacks
    # four: ~0.35 CPU-s per million rows, about a tenth of the row checks)
    absent = [c for c in st.contract.column_names if c not in st.mapping]
    if absent:
        constants = ", ".join(f"{constant(st.implied, c)} AS {q(c)}" for c in absent)
        loaded = f"(SELECT * REPLACE ({constants}) FROM {st.load})"
    source = (
        f"(SELECT * EXCLUDE ({', '.join(extra_sel)}), {', '.join(extra_clean)} FROM {loaded})"
        if extra_sel
        else loaded
    )
    st.wh.sql(f"CREATE OR REPLACE TEMP TABLE {CHECKED} AS {compiled.query(source, extra_sel)}")


def day_first_dates(st: LoadState) -> bool:
    """Whether the file writes slash dates day first (`25/01/2024`): some first field is
    above 12 and no second one is. Month first otherwise (a sample of 200,000 such values)."""
    columns = [c.name for c in st.contract.columns if c.kind is Kind.TIMESTAMP]
    if not columns:
        return False
    ts = q(columns[0])

    def part(group: int) -> str:
        return f"TRY_CAST(regexp_extract(v, '^\\s*([0-9]{{1,2}})/([0-9]{{1,2}})/', {group}) AS INTEGER)"

    row = st.wh.sql(
        f"""SELECT count(*) FILTER (WHERE a > 12), count(*) FILTER (WHERE b > 12) FROM (
              SELECT {part(1)} AS a, {part(2)} AS b FROM (
                SELECT {ts} AS v FROM {st.load} WHERE contains({ts}, '/') LIMIT 200000))"""
    ).fetchone()
    return bool(row and row[0] and not row[1])
