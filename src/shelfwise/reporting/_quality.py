"""The HTML data-quality report of an ingestion run."""

from __future__ import annotations

import html
from pathlib import Path

from jinja2 import Environment, select_autoescape

from ..governance import CONTRACTS, IngestReport, Reason, TableReport
from ..storage import Warehouse

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shelfwise - data quality - {{ r.run_id }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#111827;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#6b7280;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.9rem} th,td{padding:.4rem .6rem;border-bottom:1px solid #e5e7eb;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f9fafb}
.ok{color:#16a34a;font-weight:600} .bad{color:#dc2626;font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap} .card{border:1px solid #e5e7eb;border-radius:8px;padding:.8rem 1rem;min-width:150px}
.card b{display:block;font-size:1.4rem} .grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.chart{border:1px solid #e5e7eb;border-radius:8px;padding:.5rem;overflow:auto} .chart svg{max-width:100%;height:auto}
code{background:#f3f4f6;padding:0 .3rem;border-radius:4px} ul.notes li{margin:.2rem 0}
</style></head><body>
<h1>Data quality report</h1>
<p class="sub">run <code>{{ r.run_id }}</code> · {{ r.started_at }} · {{ r.data_dir }} · {{ "%.1f"|format(r.seconds) }} s · status <b>{{ r.status }}</b></p>
<div class="cards">
<div class="card">rows in<b>{{ "{:,}".format(total_in) }}</b></div>
<div class="card">{{ 'inserted + updated (a delivery)' if r.mode == 'append' else 'curated' }}<b>{{ "{:,}".format(total_cur) }}</b></div>
<div class="card">quarantined<b>{{ "{:,}".format(total_q) }}</b></div>
{% if total_w %}<div class="card">withheld (erased users)<b>{{ "{:,}".format(total_w) }}</b></div>{% endif %}
<div class="card">nothing lost<b class="{{ 'ok' if balanced else 'bad' }}">{{ 'yes' if balanced else 'NO' }}</b></div>
</div>
<h2>Tables</h2>
<table><tr><th>table</th><th>source</th><th>contract</th><th>rows in</th><th>{{ 'inserted + updated' if r.mode == 'append' else 'curated' }}</th><th>quarantined</th>{% if total_w %}<th>withheld</th>{% endif %}<th>balanced</th><th>check</th><th>version</th></tr>
{% for t in r.tables.values() %}<tr><td>{{ t.table }}</td><td>{{ t.source_file.split('/')[-1] }}</td><td>{{ t.contract_version }}</td>
<td>{{ "{:,}".format(t.rows_in) }}</td><td>{{ "{:,}".format(t.rows_curated) }}{% if t.mode == 'append' %} ({{ "{:,}".format(t.rows_inserted or 0) }} inserted, {{ "{:,}".format(t.rows_updated or 0) }} updated; {{ "{:,}".format(t.rows_unchanged or 0) }} unchanged (re-delivered); {{ "{:,}".format(t.rows_total) }} in all){% endif %}</td><td>{{ "{:,}".format(t.rows_quarantined) }}</td>{% if total_w %}<td>{{ "{:,}".format(t.rows_withheld) }}</td>{% endif %}
<td class="{{ 'ok' if t.balanced else 'bad' }}">{{ 'yes' if t.balanced else 'no' }}</td>{% set c = t.check() %}<td class="{{ 'ok' if c.passed else 'bad' }}">{{ c.describe() }}</td><td>v{{ t.curated_version }}</td></tr>{% endfor %}
</table>
<h2>Quarantine by reason</h2>
<table><tr><th>table</th><th>reason</th><th>meaning</th><th>rows</th></tr>
{% for t in r.tables.values() %}{% for reason, n in t.reasons.items() %}<tr><td>{{ t.table }}</td><td><code>{{ reason }}</code></td><td>{{ meaning.get(reason, '') }}</td><td>{{ "{:,}".format(n) }}</td></tr>{% endfor %}{% endfor %}
</table>
<div class="grid">
{% for c in charts %}<div class="chart">{{ c|safe }}</div>{% endfor %}
</div>
{% if r.warnings %}<h2>Warnings</h2><ul class="notes">{% for n in r.warnings %}<li><strong>{{ n }}</strong></li>{% endfor %}</ul>{% endif %}
{% if ignored %}<h2>Ignored columns</h2><ul class="notes">{% for n in ignored %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% if r.notes %}<h2>Notes</h2><ul class="notes">{% for n in r.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<h2>Privacy</h2>
<ul class="notes"><li>User ids are replaced by keyed HMAC-SHA256 pseudonyms (the key is in the workdir's secret store, not in the warehouse).</li>
<li>E-mail addresses, phone numbers, card numbers, IBANs and IP addresses in free text are masked before curation.</li>
{% for t in r.tables.values() %}{% if t.personal_columns_dropped %}<li>{{ t.table }}: personal columns kept out of the curated layer: {{ t.personal_columns_dropped|join(', ') }}</li>{% endif %}{% endfor %}
</ul>
<h2>Rules in force</h2>
<ul class="notes"><li>Robot traffic: more than {{ r.settings.bot_max_events }} view/click/cart/search events by one user within {{ r.settings.bot_window_seconds }} s quarantines that user's events (a delivery's events counted with those an earlier load curated close to them).</li>
<li>Timestamps: ISO 8601 (offsets converted to UTC), epoch seconds / ms / µs / ns, compact YYYYMMDD[HHMMSS], slash dates (month or day first, as the table's files show), "05 Jan 2024" forms and RFC 2822; plausible from {{ r.settings.min_year }} to {{ r.settings.max_future_days }} days ahead.</li>
<li>Conflicting duplicate keys: the last row in file order wins (products and users with updated_at on every row of the key: the latest). Exact duplicate events: the first is kept.</li></ul>
<p class="sub">Lineage: OpenLineage run <code>{{ r.run_id }}</code> in <code>lineage/openlineage.jsonl</code>.</p>
</body></html>"""


def _charts(wh: Warehouse, report: IngestReport) -> list[str]:
    # matplotlib is imported here, not with the module: `summary_lines` (the CLI's plain-text
    # answer) needs none of it (`shelfwise ingest` imports it in the background meanwhile)
    from .._lazy import preloaded

    preloaded()
    from ._charts import bar_chart, long_tail_chart, missing_chart, stacked_time_chart

    # (laid out, not cropped: drawing each chart once keeps the report a small part of a load)
    charts = []
    labels, values = [], []
    for t in report.tables.values():
        for reason, n in t.reasons.items():
            labels.append(f"{t.table}: {reason}")
            values.append(n)
    if labels:
        charts.append(bar_chart(labels, values, "Quarantined rows by reason", "rows", fast=True))
    tables = wh.curated_tables()
    if "events" in tables:
        # grouped by the day as a DATE, formatted once a day (not once a row: 3x the query's cost)
        rows = wh.sql(
            """SELECT strftime(d, '%Y-%m-%d'), event_type, n FROM (
                 SELECT "timestamp"::DATE AS d, event_type, count(*) AS n FROM curated.events GROUP BY ALL)
               ORDER BY d, event_type"""
        ).fetchall()
        days = sorted({r[0] for r in rows})
        # a no_sale row is the shop's record of a product-day, no shopper's action: its own
        # series, labelled so, not read as the day's activity
        label = {"no_sale": "no_sale (shop's record, no action)"}
        types = sorted({label.get(r[1], r[1]) for r in rows})
        idx = {d: i for i, d in enumerate(days)}
        series = {t: [0.0] * len(days) for t in types}
        for d, t, n in rows:
            series[label.get(t, t)][idx[d]] = n
        if days:
            charts.append(stacked_time_chart(days, series, "Curated events over time", fast=True))
        counts = [
            r[0]
            for r in wh.sql(
                "SELECT count(*) FROM curated.events WHERE product_id IS NOT NULL GROUP BY product_id"
            ).fetchall()
        ]
        if counts:
            charts.append(long_tail_chart(counts, "Popularity long tail", fast=True))
    missing: list[tuple[str, float]] = []
    for tname in tables:
        cols = wh.columns(tname)
        if not cols:
            continue
        # the share of NULLs (NULL for an empty table, drawn as 0)
        exprs = ", ".join(f'(count(*) - count("{c}")) / nullif(count(*), 0)' for c in cols)
        fr = wh.sql(f'SELECT {exprs} FROM curated."{tname}"').fetchone()
        if fr:
            missing.extend((f"{tname}.{c}", float(v or 0.0)) for c, v in zip(cols, fr, strict=True))
    if missing:
        charts.append(missing_chart(missing, "Missing values by column", fast=True))
    return charts


def write_quality_report(workdir: str | Path, report: IngestReport) -> Path:
    """Write `reports/quality-<run>.html` (and `reports/quality.html`, the latest) into the workdir."""
    workdir = Path(workdir)
    out_dir = workdir / "reports"
    out_dir.mkdir(parents=True, exist_ok=True)
    with Warehouse(workdir) as wh:
        charts = _charts(wh, report)
    env = Environment(autoescape=select_autoescape(default=True))
    total_in = sum(t.rows_in for t in report.tables.values())
    total_cur = sum(t.rows_curated for t in report.tables.values())
    total_q = sum(t.rows_quarantined for t in report.tables.values())
    # rows of erased users a delivery re-sent: in no layer, counted (rows in = curated +
    # quarantined + withheld)
    total_w = sum(t.rows_withheld for t in report.tables.values())
    page = env.from_string(_TEMPLATE).render(
        r=report,
        charts=charts,
        total_in=total_in,
        total_cur=total_cur,
        total_q=total_q,
        total_w=total_w,
        balanced=all(t.balanced for t in report.tables.values()),
        meaning={r.value: r.description for r in Reason},
        ignored=[ignored_said(t) for t in report.tables.values() if t.ignored_columns],
    )
    path = out_dir / f"quality-{report.run_id}.html"
    path.write_text(page, encoding="utf-8")
    (out_dir / "quality.html").write_text(page, encoding="utf-8")
    return path


def load_counts(t: TableReport) -> list[tuple[str, int]]:
    """What a table's load did, as (label, rows): a full load's curated rows; a delivery's
    inserted and updated (keyed tables) rows - never "added", which read as new rows for a price
    feed that only updated prices; then its quarantined rows, and for a delivery how many of
    those were re-sent (rows curated before, or quarantined before: "inserted 354 unchanged 189
    quarantined 221" did not visibly add up to its 575 rows, the 189 being among the 221)."""
    if t.mode == "append":
        keyed = bool((c := CONTRACTS.get(t.table)) and c.key)
        done = [("inserted", t.rows_inserted or 0)]
        done += [("updated", t.rows_updated or 0)] if keyed or t.rows_updated else []
        # (re-sent: rows curated before and bad rows quarantined before, as the catalog counts)
        return [*done, ("quarantined", t.rows_quarantined), ("of them re-sent", t.rows_redelivered or 0)]
    return [("curated", t.rows_curated), ("quarantined", t.rows_quarantined)]


def ignored_said(t: TableReport) -> str:
    """A table's columns outside its contract, left out of the load (`ignored_columns`), and how
    to read one: the summary and the HTML report say them (the JSON report lists them)."""
    cols = ", ".join(repr(c) for c in t.ignored_columns)
    return (
        f"{len(t.ignored_columns):,} column(s) not in the {t.table} contract, ignored: {cols} "
        f"(to read one as a column of the contract: --map {t.table}.COLUMN=HEADER"
        + (
            ", or to keep one as a product attribute: --map products.attributes.KEY=HEADER"
            if t.table == "products"
            else ""
        )
        + ")"
    )


def personal_said(t: TableReport) -> str:
    """A table's profile columns left out of the curated layer because their names say personal
    data (`personal_columns_dropped`), and how to read one that is not."""
    cols = ", ".join(repr(c) for c in t.personal_columns_dropped)
    return (
        f"{len(t.personal_columns_dropped):,} personal column(s) left out of the curated layer: {cols} "
        f"(one that is a column of the contract is read with --map {t.table}.COLUMN=HEADER)"
    )


def summary_lines(report: IngestReport) -> list[str]:
    """A readable plain-text summary (the CLI prints it): per table, its counts, whether the
    rows balance (in = curated + quarantined + withheld) and - a separate fact - the load's
    quality check, the verdict the catalog and the registry's gate say (`quality_check`)."""
    delivery = " (a delivery appended to what is curated)" if report.mode == "append" else ""
    lines = [f"ingestion run {report.run_id} ({report.seconds:.1f} s){delivery}"]
    for t in report.tables.values():
        width = {"curated": 10, "quarantined": 8}  # a delivery's inserted, updated, unchanged: 7
        counts = "  ".join(f"{label} {n:>{width.get(label, 7)},}" for label, n in load_counts(t))
        lines.append(
            f"  {t.table:<10} in {t.rows_in:>10,}  {counts}"
            + (f"  withheld {t.rows_withheld:,}" if t.rows_withheld else "")
            + f"  [{'balanced' if t.balanced else 'UNBALANCED'}]"
        )
        lines.append(
            f"      check {t.check().describe()}"
            + (f"; the table now has {t.rows_total:,} rows" if t.mode == "append" else "")
        )
        if t.rows_set_aside:  # (a re-run said "set aside 0" of the lines the first run set aside)
            again = f", {t.rows_set_aside_resent:,} of them sent before" if t.rows_set_aside_resent else ""
            lines.append(
                f"      set aside {t.rows_set_aside:,} (no purchase or no product, not judged{again})"
            )
        if t.rows_stale:  # (a re-send out of order: the newer curated row stays)
            lines.append(
                f"      {t.rows_stale:,} row(s) older than their curated version (updated_at) did not "
                "replace it (quarantined as stale_row, superseded; not judged)"
            )
        if t.rows_retracted:  # (an order's latest status wins over its curated purchase)
            why = ", ".join(f"{n:,} {r}" for r, n in sorted(t.retracted.items()))
            lines.append(
                f"      took out {t.rows_retracted:,} earlier purchase line(s) of orders now cancelled, refunded "
                f"or unpaid ({why}; quarantined as superseded, not among this delivery's rows)"
            )
        if t.anonymous_rows:
            lines.append(
                f"      {t.anonymous_rows:,} anonymous row(s) (no user_id) attributed to their session"
            )
        if t.no_sale_rows or t.return_rows:  # curated, but neither a sale nor a fault
            lines.append(
                f"      of the curated: {t.no_sale_rows:,} no-sale row(s) (a purchase line of 0 units: "
                f"no sale that day, not a purchase) and {t.return_rows:,} return(s) (fewer than 0 units, or "
                "typed return: not a sale)"
            )
        for reason, n in t.reasons.items():
            lines.append(f"      {reason:<22} {n:>8,}")
        if t.ignored_columns:  # (an unmapped `Order Date` was left out without a word)
            lines.append(f"      {ignored_said(t)}")
        if t.personal_columns_dropped:  # (a consent column named "email" was, without a word)
            lines.append(f"      {personal_said(t)}")
    for warning in report.warnings:
        lines.append(f"  warning: {html.unescape(warning)}")
    for note in report.notes:
        lines.append(f"  note: {html.unescape(note)}")
    return lines
