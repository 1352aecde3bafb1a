"""The data catalog and the governance summary of a workdir.

`catalog(workdir)`: every dataset (curated table), contract, model version and rule file with its
owner team and steward, classification, row counts, freshness, latest quality result and lineage
(upstream source files, downstream bundles). `governance_summary(workdir)` adds what a business
reader wants: the quality trend over loads, the quarantine by reason, owners with failing checks,
the models in production and their gates; `write_governance_report` renders it as HTML with
charts (and JSON beside it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._contracts import CONTRACTS, classify_extra_column
from ._ingest_report import FAILING_SHARE, QualityCheck, quality_check
from ._load_state import REPROCESS_JOB

__all__ = [
    "FAILING_SHARE",
    "catalog",
    "failing_deliveries_behind",
    "governance_summary",
    "write_governance_report",
]

MODEL_OWNER = {"owner": "ml-platform", "steward": "ml-engineering-lead"}
RULES_OWNER = {"owner": "merchandising", "steward": "ml-engineering-lead"}


def _check(load: dict[str, Any]) -> QualityCheck:
    """A recorded load's verdict, by the ingest report's own rule (`quality_check`): re-delivered
    rows (a re-sent day used to read 100% quarantined) and withheld rows are not judged."""
    return quality_check(
        load["rows_in"],
        load["rows_quarantined"],
        load.get("rows_redelivered", 0),
        load.get("rows_withheld", 0),
        load.get("rows_set_aside", 0),
        load.get("rows_set_aside_resent", 0),
        load.get("rows_stale", 0),
    )


def _failed_share(load: dict[str, Any]) -> float:
    return _check(load).share


def _loads(con: Any) -> list[dict[str, Any]]:
    """Every table's load recorded in `meta.runs`, oldest first."""
    runs = con.sql(
        "SELECT run_id, job, started_at, status, report FROM meta.runs ORDER BY started_at"
    ).fetchall()
    loads: list[dict[str, Any]] = []
    for run_id, job, started, status, report in runs:
        rep = json.loads(report) if isinstance(report, str) else (report or {})
        for t, tr in (rep.get("tables") or {}).items():
            loads.append(
                {
                    "run_id": run_id,
                    "job": job,
                    "at": str(started),
                    "status": status,
                    "table": t,
                    "rows_in": tr.get("rows_in", 0),
                    "rows_quarantined": tr.get("rows_quarantined", 0),
                    # rows an earlier load curated, sent again (quarantined `duplicate_row`,
                    # status redelivered): an at-least-once export's overlap, not bad data
                    "rows_redelivered": tr.get("rows_redelivered", tr.get("rows_unchanged") or 0),
                    # erased users' rows: never stored, never judged
                    "rows_withheld": tr.get("rows_withheld") or 0,
                    # order lines that are no purchase (`_load_aside`): never judged
                    "rows_set_aside": tr.get("rows_set_aside") or 0,
                    # of them, sent again (among rows_redelivered too: judged by neither)
                    "rows_set_aside_resent": tr.get("rows_set_aside_resent") or 0,
                    # keyed rows older than their curated version (`stale_row`): never judged
                    "rows_stale": tr.get("rows_stale") or 0,
                    "reasons": tr.get("reasons", {}),
                    "source_file": tr.get("source_file"),
                    "mode": tr.get("mode") or "replace",
                }
            )
    return loads


def _up_to(loads: list[dict[str, Any]], run_id: str | None) -> list[dict[str, Any]]:
    """The loads (oldest first) up to and including run `run_id`'s (None: all of them; a run
    not recorded: none)."""
    if run_id is None:
        return loads
    ends = [i for i, x in enumerate(loads) if x["run_id"] == run_id]
    return loads[: ends[-1] + 1] if ends else []


def _latest_delivery(
    loads: list[dict[str, Any]], table: str, upto: str | None = None
) -> dict[str, Any] | None:
    """The load that says the table's quality: its latest delivery (a re-processing of quarantined
    rows is a batch of rows that failed before, not a delivery), with `upto` (a run id) the
    latest one up to that run's."""
    last = [x for x in _up_to(loads, upto) if x["table"] == table and x["job"] != REPROCESS_JOB]
    return last[-1] if last else None


def failing_deliveries_behind(workdir: str | Path, runs: dict[str, str | None]) -> dict[str, list[str]]:
    """table -> the deliveries behind its version (`runs`: table -> the run that published
    it) that failed their quality check, each described: every load since the table's last full
    load, up to that run (a version made by appending holds every delivery appended since; the
    latest alone, often an absorb of served events, hid a failed delivery before it)."""
    from ..storage import read_only
    from ..storage._warehouse import WAREHOUSE_FILE

    if not runs or not (Path(workdir) / WAREHOUSE_FILE).exists():
        return {}
    with read_only(Path(workdir)) as (con, _):
        loads = _loads(con)
    out: dict[str, list[str]] = {}
    for table, run_id in runs.items():
        mine = [x for x in _up_to(loads, run_id) if x["table"] == table and x["job"] != REPROCESS_JOB]
        full = [i for i, x in enumerate(mine) if x["mode"] != "append"]
        behind = mine[full[-1] :] if full else mine
        checked = [(x, _check(x)) for x in behind]
        bad = [
            f"{Path(str(x['source_file'] or '?')).name} (run {x['run_id']}, {str(x['at'])[:19]}) {got.describe()}"
            for x, got in checked
            if not got.passed
        ]
        if bad:
            out[table] = bad
    return out


def _age_hours(ts: Any) -> float | None:
    if ts is None:
        return None
    t = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round((datetime.now(UTC) - t).total_seconds() / 3600, 2)


def catalog(workdir: str | Path) -> dict[str, Any]:
    from ..storage import read_only

    workdir = Path(workdir)
    datasets: list[dict[str, Any]] = []
    with read_only(workdir) as (con, tables):
        versions = con.sql(
            "SELECT table_name, max(version), arg_max(created_at, version), arg_max(row_count, version), "
            "arg_max(contract_version, version), arg_max(run_id, version), count(*) FROM meta.table_versions GROUP BY 1"
        ).fetchall()
        loads = _loads(con)
        # the columns a load kept beyond the contract (`x_<header>`: MovieLens's age, gender,
        # occupation), classified by name as ingestion judged them when it kept them
        extra: dict[str, dict[str, str]] = {}
        for t, col in con.sql(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'curated' "
            "AND starts_with(column_name, 'x_') ORDER BY table_name, ordinal_position"
        ).fetchall():
            extra.setdefault(t, {})[col] = classify_extra_column(col[2:]).value
        quarantine = (
            dict(
                con.sql(
                    "SELECT table_name, count(*) FROM quarantine.rows WHERE status = 'open' GROUP BY 1"
                ).fetchall()
            )
            if _has_quarantine(con)
            else {}
        )
        # the open quarantine by table and reason: what a steward has to act on now
        open_reasons: dict[str, dict[str, int]] = {}
        if _has_quarantine(con):
            for t, r, n in con.sql(
                "SELECT table_name, reason, count(*) FROM quarantine.rows WHERE status = 'open' "
                "GROUP BY 1, 2 ORDER BY 3 DESC"
            ).fetchall():
                open_reasons.setdefault(t, {})[r] = int(n)
    bundles = _bundles(workdir)
    for name, version, created, rows, contract_version, run_id, n_versions in sorted(versions):
        contract = CONTRACTS.get(name)
        # the quality of the data as delivered: the latest delivery's load
        last = [x for x in loads if x["table"] == name and x["job"] != REPROCESS_JOB]
        latest = _latest_delivery(loads, name)
        check = _check(latest) if latest else quality_check(0, 0)
        datasets.append(
            {
                "name": f"curated.{name}",
                "owner": contract.owner if contract else "data-platform",
                "steward": contract.steward if contract else "data-steward",
                "description": contract.description if contract else "",
                "classification": (contract.classification() if contract else {}) | extra.get(name, {}),
                "contract_version": contract_version,
                "contract_in_force": contract.version if contract else None,
                "rows": rows,
                "versions": n_versions,
                "latest_version": version,
                "updated_at": str(created),
                "freshness_hours": _age_hours(created),
                "quality": {
                    "latest_load": latest["at"] if latest else None,
                    "rows_in": latest["rows_in"] if latest else None,
                    "rows_quarantined": latest["rows_quarantined"] if latest else None,
                    "rows_redelivered": latest["rows_redelivered"] if latest else None,
                    "rows_withheld": latest["rows_withheld"] if latest else None,
                    # of the rows the delivery sent for the first time (and judged), the share
                    # that failed: the ingest report's `contract_check` (`quality_check`)
                    "quarantined_share": round(check.share, 4),
                    "passed": check.passed,
                    "reasons": latest["reasons"] if latest else {},
                    "open_quarantine": quarantine.get(name, 0),
                    "open_reasons": open_reasons.get(name, {}),
                },
                "lineage": {
                    "upstream": sorted({x["source_file"] for x in last if x.get("source_file")}),
                    "producing_run": run_id,
                    "downstream": [b["version"] for b in bundles if name in b["data_versions"]],
                },
            }
        )
    from ._model_versions import registered_versions

    models = (
        [{**m, **MODEL_OWNER} for m in registered_versions(workdir, use_snapshot=True)]
        if (workdir / "mlflow.db").exists()
        else []
    )
    rules_path = workdir / "config" / "rules.json"
    rules = None
    if rules_path.exists():
        doc = json.loads(rules_path.read_text())
        rules = {"file": str(rules_path), "version": doc.get("version"), **RULES_OWNER}
    return {
        "workdir": str(workdir),
        "generated_at": datetime.now(UTC).isoformat(),
        "datasets": datasets,
        "contracts": [
            {"name": c.name, "version": c.version, "owner": c.owner, "steward": c.steward, "key": list(c.key)}
            for c in CONTRACTS.values()
        ],
        "models": models,
        "rules": rules,
        "loads": loads,
    }


def _has_quarantine(con: Any) -> bool:
    n = con.sql(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'quarantine' AND table_name = 'rows'"
    ).fetchone()
    return bool(n and n[0])


def _bundles(workdir: Path) -> list[dict[str, Any]]:
    out = []
    for b in sorted((workdir / "bundles").glob("[0-9]*")):
        try:
            m = json.loads((b / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        out.append({"version": m["version"], "data_versions": m.get("data_versions", {})})
    return out


def governance_summary(workdir: str | Path) -> dict[str, Any]:
    from ._audit import AuditLog

    workdir = Path(workdir)
    cat = catalog(workdir)
    reasons: dict[str, int] = {}  # the open quarantine (not one load's), as `quarantine list` counts it
    for d in cat["datasets"]:
        for r, n in (d["quality"].get("open_reasons") or {}).items():
            reasons[r] = reasons.get(r, 0) + int(n)
    failing = sorted(
        {(d["owner"], d["steward"], d["name"]) for d in cat["datasets"] if not d["quality"]["passed"]}
    )
    trend = [
        {
            "at": x["at"],
            "table": x["table"],
            "job": x["job"],
            "quarantined_share": round(_failed_share(x), 4),
        }
        for x in cat["loads"]
    ]
    production = [m for m in cat["models"] if "production" in m["aliases"]]
    verification = AuditLog(workdir).verify()
    return {
        "generated_at": cat["generated_at"],
        "quality_trend": trend,
        "quarantine_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "owners_with_failing_checks": [{"owner": o, "steward": s, "dataset": d} for o, s, d in failing],
        "models_in_production": production,
        "candidates": [m for m in cat["models"] if "candidate" in m["aliases"]],
        "audit": {"entries": verification.entries, "intact": verification.ok},
        "catalog": cat,
    }


def write_governance_report(workdir: str | Path) -> tuple[Path, Path]:
    """reports/governance.html (charts) and reports/governance.json."""
    from html import escape

    from ..reporting._charts import bar_chart, lines_chart
    from ..reporting._html import html_table

    workdir = Path(workdir)
    s = governance_summary(workdir)
    out = workdir / "reports"
    out.mkdir(parents=True, exist_ok=True)
    js = out / "governance.json"
    js.write_text(json.dumps(s, indent=2, default=str))
    run_order = list(dict.fromkeys(x["at"] for x in s["quality_trend"]))
    series: dict[str, list[float]] = {}
    for x in s["quality_trend"]:
        ys = series.setdefault(x["table"], [float("nan")] * len(run_order))
        ys[run_order.index(x["at"])] = 100.0 * x["quarantined_share"]
    trend_svg = (
        lines_chart(
            [float(i + 1) for i in range(len(run_order))],
            series,
            title="Quarantined share per load (%)",
            xlabel="load (oldest first)",
            ylabel="% quarantined",
        )
        if series
        else "<p>No loads yet.</p>"
    )
    reasons = s["quarantine_by_reason"]
    reasons_svg = (
        bar_chart(
            list(reasons.keys()),
            [float(v) for v in reasons.values()],
            title="Quarantine by reason (latest loads)",
        )
        if reasons
        else "<p>Nothing quarantined.</p>"
    )

    ds_rows = [
        {
            "dataset": d["name"],
            "owner": d["owner"],
            "steward": d["steward"],
            "rows": d["rows"],
            "fresh (h)": d["freshness_hours"],
            "quarantined": f"{100 * d['quality']['quarantined_share']:.1f}%",
            "check": "passed" if d["quality"]["passed"] else "FAILING",
            "contract": d["contract_version"],
            "downstream bundles": len(d["lineage"]["downstream"]),
        }
        for d in s["catalog"]["datasets"]
    ]
    model_rows = [
        {
            "version": m["version"],
            "bundle": m["bundle"],
            "aliases": ",".join(m["aliases"]) or m["status"],
            "model": m["default_model"],
            "ndcg@10": f"{m['ndcg@10']:.4f}" if m.get("ndcg@10") is not None else "",
            "gates": ", ".join(f"{g['name']}: {'pass' if g['passed'] else 'FAIL'}" for g in m["gates"]),
            "approved by": m.get("approved_by") or "",
        }
        for m in s["catalog"]["models"]
    ]
    failing = s["owners_with_failing_checks"]
    html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shelfwise governance</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}
table{{border-collapse:collapse;margin:1rem 0;font-size:14px}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
th{{background:#f4f4f4}}.ok{{color:#1a7f37}}.bad{{color:#b42318}}.cards{{display:flex;flex-wrap:wrap;gap:1rem}}
.card{{border:1px solid #ddd;border-radius:8px;padding:1rem;min-width:180px}}.card b{{font-size:1.6rem;display:block}}</style>
</head><body>
<h1>Governance summary</h1>
<p>{escape(str(workdir))} · generated {escape(s["generated_at"][:19])} UTC</p>
<div class="cards">
<div class="card" id="card-datasets"><b>{len(ds_rows)}</b>datasets</div>
<div class="card" id="card-failing"><b class="{"bad" if failing else "ok"}">{len(failing)}</b>failing checks</div>
<div class="card" id="card-production"><b>{len(s["models_in_production"])}</b>models in production</div>
<div class="card" id="card-audit"><b class="{"ok" if s["audit"]["intact"] else "bad"}">{"intact" if s["audit"]["intact"] else "TAMPERED"}</b>audit trail ({s["audit"]["entries"]} entries)</div>
</div>
<h2>Quality trend</h2>{trend_svg}
<h2>Quarantine by reason</h2>{reasons_svg}
<h2>Owners with failing checks</h2>
{html_table(failing, ["owner", "steward", "dataset"]) if failing else '<p class="ok">Every dataset passed its latest check.</p>'}
<h2>Datasets</h2>{html_table(ds_rows, list(ds_rows[0]) if ds_rows else ["dataset"])}
<h2>Models and their gates</h2>{html_table(model_rows, list(model_rows[0]) if model_rows else ["version"])}
</body></html>"""
    page = out / "governance.html"
    page.write_text(html)
    return page, js
