"""The HTML evaluation report: protocol first, then the comparison table and the plots. A value
the report does not have (a validation score of a model tuned on no validation users, coverage
under the sampled protocol, a metric of no users) reads "—", never 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, select_autoescape

from ..reporting._charts import lines_chart, metric_by_model_chart, scatter_chart
from ._harness import few_users_said, sampled_unscored_said

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>shelfwise - evaluation - {{ r.bundle_version }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#111827;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem} .sub{color:#6b7280;margin-top:0}
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.85rem} th,td{padding:.35rem .5rem;border-bottom:1px solid #e5e7eb;text-align:right}
th:first-child,td:first-child{text-align:left} th{background:#f9fafb} tr.default td{font-weight:700;background:#eff6ff}
.protocol{border:1px solid #bfdbfe;background:#eff6ff;border-radius:8px;padding:.6rem 1rem}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem} .chart{border:1px solid #e5e7eb;border-radius:8px;padding:.5rem}
.chart svg{max-width:100%;height:auto} code{background:#f3f4f6;padding:0 .3rem;border-radius:4px}
</style></head><body>
{% macro num(v, fmt) %}{% if v is none or v is undefined or v != v %}—{% else %}{{ fmt|format(v) }}{% endif %}{% endmacro %}
<h1>Recommendation evaluation</h1>
<p class="sub">bundle <code>{{ r.bundle_version }}</code> · default model <b>{{ r.default_model }}</b> · lineage run <code>{{ r.lineage_run_id }}</code>{% if r.registry %} · registry version {{ r.registry.version }}: <b id="registry-status">{{ "production" if r.registry.production else "a candidate, not live" }}</b> when trained (<code>shelfwise models list</code> says what is live now){% endif %}</p>
{% if r.default_chosen_by and r.default_chosen_by.why %}<p class="protocol" id="default-chosen-by">The default model was chosen by the highest {{ r.default_chosen_by.fold }} <b>{{ r.default_chosen_by.metric }}</b>: {{ r.default_chosen_by.why }}.</p>{% endif %}
{% if p.repeat_group_targets %}<p class="protocol" id="repeat-group-targets">{{ "{:,}".format(p.repeat_group_targets) }} of the users ({{ "%.1f"|format(100 * p.repeat_group_targets / p.users) }}%) have a target in a product group already in their history (another size or colour of a style they saw): no new group for the shopper.</p>{% endif %}
{% if few %}<p class="protocol" id="few-users" style="border-color:#f59e0b;background:#fffbeb"><b>Warning:</b> {{ few }}.</p>{% endif %}
<div class="protocol" id="protocol"><b>Protocol.</b> {{ p.split_description }}. Candidates: <b>{{ p.candidates }}</b>;
seen items excluded: {{ p.exclude_seen }}; {{ "{:,}".format(p.users) }} users, {{ "{:,}".format(p["items"]) }} items;
{% if p.repeat_targets is defined and p.users %}{{ "{:,}".format(p.repeat_targets) }} of the users ({{ "%.1f"|format(100 * p.repeat_targets / p.users) }}%) have a target already in their history:
seen items being excluded, no model can hit it{% if p.split == "leave_last_out" %} (HR@k at most {{ "%.4f"|format(1 - p.repeat_targets / p.users) }}){% endif %};
{% endif %}{% if p.anonymous_sessions %}{{ "{:,}".format(p.anonymous_sessions) }} of the users are sessions without a login: their held-out step is the next item of one visit, a customer's the next across visits (segments <code>anonymous_sessions</code> and <code>customers</code>);
{% endif %}{% if p.groups %}the catalog groups its products into {{ "{:,}".format(p.groups) }} styles (<code>group_id</code>): <code>group_hr@10</code> and <code>group_ndcg@10</code>, beside the item metrics, collapse each list to one product per group as serving does and count a hit on any variant of a held-out product's group;
{% endif %}metrics at k = {{ p.cutoffs|join(", ") }}; 95% intervals from {{ p.bootstrap_rounds }} bootstrap resamples of users.</div>
{% if r.get("skipped") %}<h2>Skipped</h2>
<table id="skipped"><thead><tr><th>model or stage</th><th>why</th></tr></thead><tbody>
{% for s in r.skipped %}<tr><td>{{ s.get("model") or s.get("stage") }}</td><td style="text-align:left">{{ s.reason }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
<h2>All models</h2>
<table id="comparison"><thead><tr><th>model</th><th>NDCG@10</th><th>95% CI</th><th>HR@10</th><th>Recall@20</th><th>MRR@10</th><th>MAP@10</th>
<th>coverage@10</th><th>novelty@10</th>{% if unscored %}<th>unscored targets</th>{% endif %}<th>validation NDCG@10</th><th>train s</th><th>peak RSS MB</th></tr></thead><tbody>
{% for m in r.results %}<tr class="{{ 'default' if m.model == r.default_model else '' }}"><td>{{ m.model }}</td>
<td>{{ num(m.metrics.get("ndcg@10"), "%.4f") }}</td><td>{% set ci = m.ci95.get("ndcg@10") or [none, none] %}{% if ci[0] is none or ci[0] != ci[0] %}—{% else %}{{ "%.4f"|format(ci[0]) }}–{{ "%.4f"|format(ci[1]) }}{% endif %}</td>
<td>{{ num(m.metrics.get("hr@10"), "%.4f") }}</td><td>{{ num(m.metrics.get("recall@20"), "%.4f") }}</td><td>{{ num(m.metrics.get("mrr@10"), "%.4f") }}</td>
<td>{{ num(m.metrics.get("map@10"), "%.4f") }}</td><td>{{ num(m.metrics.get("coverage@10"), "%.3f") }}</td><td>{{ num(m.metrics.get("novelty@10"), "%.2f") }}</td>
{% if unscored %}<td class="unscored">{% set u = m.get("sampled_unscored_targets") %}{% if u is none or u is undefined or u != u %}—{% else %}{{ "%.1f"|format(100 * u) }}%{% endif %}</td>{% endif %}
<td>{% if m.model == "fusion" and m.get("validation_ndcg@10") is none and held %}{{ "%.4f"|format(held.scores.fusion) }} <small>(held-out {{ "{:,}".format(held.users) }} users †)</small>{% else %}{{ num(m.get("validation_ndcg@10"), "%.4f") }}{% endif %}</td><td>{{ m.get("train_seconds", "—") }}</td><td>{{ m.get("peak_rss_mb", "—") }}</td></tr>
{% endfor %}</tbody></table>
{% if held %}<p class="protocol" id="fusion-validation">† The fusion's validation NDCG@10 is measured on the {{ "{:,}".format(held.users) }} validation users held out from its ranker's training, not on every validation user as the other models' are, so it is not comparable with their column. On those same users: fusion {{ "%.4f"|format(held.scores.fusion) }}{% for g, v in held.parts %}, {{ g }} {{ "%.4f"|format(v) }}{% endfor %}{% if held.vs %}; <span id="fusion-difference">fusion minus {{ held.vs.part }} {{ "%+.4f"|format(held.vs.difference) }}, paired 95% interval [{{ "%+.4f"|format(held.vs.ci95[0]) }}, {{ "%+.4f"|format(held.vs.ci95[1]) }}] ({{ held.vs.method }})</span>. {% if held.vs.ci95[0] > 0 %}It beat its best part there, the interval above 0 (these users also chose when its ranker stopped training, so the interval is somewhat optimistic): why training made it the default model.{% elif held.beats %}Its point estimate is above its best part's, which made it the default model, but the interval covers 0: no gain is shown.{% elif held.vs.ci95[1] < 0 %}It did worse than its best part there, so it was not made the default.{% else %}It did not beat its best part there, so it was not made the default (the interval covers 0: no difference is shown either way).{% endif %}{% else %} (point estimates, no interval). {% if held.beats %}It beat its best part there: why training made it the default model.{% else %}It did not beat its best part there, so it was not made the default.{% endif %}{% endif %}</p>{% endif %}
{% if unscored %}<p class="protocol" id="unscored">Unscored targets: the share of a model's sampled targets it scored no higher than the lowest of their negatives (no score: the -inf or 0 a model gives items it has no evidence for); those are placed among the tied negatives by the random tie-break, or last, so their hits are a draw, not the model's judgement.{% for w in unscored_warnings %}<br><b>Warning:</b> {{ w }}.{% endfor %}</p>{% endif %}
<h2>Segments (NDCG@10)</h2>
<table id="segments"><thead><tr><th>model</th>{% for s in segs %}<th>{{ s }}</th>{% endfor %}</tr></thead><tbody>
{% for m in r.results %}<tr><td>{{ m.model }}</td>{% for s in segs %}<td>{% if s in m.segments %}{{ num(m.segments[s]["ndcg@10"], "%.4f") }} <small>({{ m.segments[s].users }})</small>{% else %}—{% endif %}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<div class="grid">
<div class="chart">{{ charts.by_model|safe }}</div>
<div class="chart">{{ charts.by_cutoff|safe }}</div>
<div class="chart">{{ charts.tradeoff|safe }}</div>
</div>
</body></html>
"""


def write_evaluation_report(path: str | Path, report: dict[str, Any]) -> Path:
    path = Path(path)
    results = report["results"]
    names = [m["model"] for m in results]
    ndcg = [m["metrics"]["ndcg@10"] for m in results]
    cis = [tuple(m["ci95"]["ndcg@10"]) for m in results]
    cutoffs = [k for k in report["protocol"]["cutoffs"]]
    charts = {
        "by_model": metric_by_model_chart(names, ndcg, cis, "NDCG@10 by model (95% CI)"),
        "by_cutoff": lines_chart(
            cutoffs,
            {m["model"]: [m["metrics"][f"ndcg@{k}"] for k in cutoffs] for m in results},
            "NDCG@k vs cutoff",
            "k",
            "NDCG@k",
        ),
        # (a model without a coverage, e.g. under the sampled protocol, has no point here)
        "tradeoff": scatter_chart(
            {
                m["model"]: (m["metrics"]["coverage@10"], m["metrics"]["ndcg@10"])
                for m in results
                if _known(m["metrics"].get("coverage@10")) and _known(m["metrics"].get("ndcg@10"))
            },
            "coverage vs accuracy",
            "catalog coverage@10",
            "NDCG@10",
        ),
    }
    segs = sorted({s for m in results for s in m["segments"]})
    env = Environment(autoescape=select_autoescape(default=True))
    unscored = any("sampled_unscored_targets" in m for m in results)
    held = _fusion_held_out(report)
    html = env.from_string(_TEMPLATE).render(
        r=report,
        p=report["protocol"],
        charts=charts,
        segs=segs,
        few=few_users_said(report["protocol"]),
        unscored=unscored,
        held=held,
        unscored_warnings=[w for w in (sampled_unscored_said(m) for m in results) if w],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def _fusion_held_out(report: dict[str, Any]) -> dict[str, Any] | None:
    """The number that made the fusion the default (or not): its NDCG@10 on the validation users
    held out from its ranker's training, with its generators' on those same users, from train's
    `fusion` record; None when the report has none (no fusion, a sampled report). The report's
    validation column showed "—" for the fusion, and this number lived in `train --json` only."""
    info = report.get("fusion")
    if not isinstance(info, dict) or report.get("protocol", {}).get("candidates", "").startswith("sampled"):
        return None
    scores = info.get("holdout_ndcg@10")
    if not isinstance(scores, dict) or not _known(scores.get("fusion")):
        return None
    if not any(m.get("model") == "fusion" for m in report.get("results", [])):
        return None
    parts = sorted(
        ((g, float(v)) for g, v in scores.items() if g != "fusion" and _known(v)), key=lambda gv: -gv[1]
    )
    vs = info.get("holdout_vs_best_part")  # (a report of a train before it: no interval)
    ok = isinstance(vs, dict) and len(vs.get("ci95") or []) == 2 and all(_known(x) for x in vs["ci95"])
    return {
        "scores": {"fusion": float(scores["fusion"])},
        "users": int(info.get("holdout_users") or 0),
        "parts": parts,
        "beats": bool(info.get("beats_parts")),
        "vs": vs if ok else None,
    }


def _known(v: Any) -> bool:
    return v is not None and bool(np.isfinite(v))
