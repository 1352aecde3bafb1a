"""The command line: a thin layer over the Python API (see DESIGN.md: commands, flags and output
fields are a contract that shops' scripts rely on)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import ShelfwiseError

app = typer.Typer(
    help="shelfwise: a governed search and recommendation engine for online shops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
quarantine_app = typer.Typer(help="List, export and re-process quarantined rows.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")

Workdir = Annotated[
    Path, typer.Option("--workdir", "-w", help="The shop's working directory (warehouse, models, reports).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report.")]
Append = Annotated[
    bool,
    typer.Option(
        "--append",
        help="A delivery: add the rows to what is curated (rows an earlier load curated are recognised as "
        "duplicate_row; keyed tables are upserted) instead of replacing it with a full snapshot.",
    ),
]
MapFlags = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="TABLE.COLUMN=HEADER: read a canonical column from the file's HEADER (repeatable; "
        "overrides the data directory's shelfwise.toml [map.TABLE] entries).",
    ),
]


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


def _run_ingest(
    data: Path, workdir: Path, as_json: bool, *, append: bool = False, map_flags: list[str] | None = None
) -> dict[str, Any]:
    from .lifecycle import ingest_dataset
    from .reporting import summary_lines

    report = ingest_dataset(data, workdir, append=append, map_flags=map_flags or ())
    out = report.to_dict()
    if as_json:
        _print_json(out)
    else:
        for line in summary_lines(report):
            typer.echo(line)
        typer.echo(f"HTML quality report: {report.html_report}")
        typer.echo(f"lineage run id: {report.run_id} (events in {workdir / 'lineage' / 'openlineage.jsonl'})")
    return out


@app.command()
def ingest(
    data: Annotated[
        Path, typer.Option("--data", "-d", help="A canonical dataset directory (or a known public format).")
    ],
    workdir: Workdir,
    append: Append = False,
    map_flags: MapFlags = None,
    as_json: AsJson = False,
) -> None:
    """Governed ingestion: contracts, cleaning + quarantine, privacy, lineage, quality report."""
    _allow(workdir, "ingest")
    _run_ingest(data, workdir, as_json, append=append, map_flags=map_flags)


@app.command()
def demo(
    workdir: Workdir = Path("demo-workdir"),
    products: Annotated[int, typer.Option(help="Products in the demo shop.")] = 5000,
    users: Annotated[int, typer.Option(help="Users in the demo shop.")] = 2000,
    events: Annotated[int, typer.Option(help="Behaviour events in the demo shop.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed gives the same shop).")] = 7,
    train_models: Annotated[bool, typer.Option("--train/--no-train", help="Also train and evaluate.")] = True,
    as_json: AsJson = False,
) -> None:
    """Make a demo shop, run everything on it, and print where the reports are."""
    from .demo import generate_demo

    data = workdir / "demo-data"
    shop = generate_demo(data, products=products, users=users, events=events, seed=seed)
    if not as_json:
        typer.echo(
            f"demo shop written to {data}: {shop.products:,} products, {shop.users:,} users, "
            f"{shop.events:,} event rows ({len(shop.defects):,} injected defects recorded in defects.json)"
        )
    _run_ingest(data, workdir, as_json)
    if train_models:
        from .lifecycle import TrainSettings
        from .lifecycle import train as run_train

        log = (lambda msg: sys.stderr.write(msg + "\n")) if as_json else typer.echo
        if not as_json:
            typer.echo(
                "\ntraining (demo budgets: 6 Optuna trials per model, 5 SASRec epochs, 30 s each of MiniLM "
                "fine-tuning and cross-encoder training) ..."
            )
        result = run_train(
            workdir,
            None,
            TrainSettings(
                tune_trials=6,  # counted budgets: the same demo shop gives the same models anywhere
                sasrec_epochs=5,
                search_finetune_budget_s=30.0,
                search_cross_budget_s=30.0,
            ),
            log=log,
        )
        from .governance._catalog import write_governance_report

        gov_html, _ = write_governance_report(workdir)
        if as_json:
            _print_json(result.to_dict())
        else:
            typer.echo(f"evaluation report: {result.report_html}")
            typer.echo(f"governance report: {gov_html}")
    if not as_json:
        typer.echo("")
        typer.echo("next steps:")
        typer.echo(f"  shelfwise evaluate --workdir {workdir}")
        typer.echo(f"  shelfwise recommend --workdir {workdir} --users USERS.csv --k 10 --out recs.jsonl")
        typer.echo(f"  shelfwise quarantine list --workdir {workdir}")
        typer.echo(f"  shelfwise export --workdir {workdir} --table events --out events.parquet")
        if train_models:
            typer.echo(
                f"  shelfwise serve --workdir {workdir} --port 8000   # then open http://127.0.0.1:8000/docs"
            )


@app.command()
def convert(
    src: Annotated[Path, typer.Option("--src", help="A file or directory in a public format.")],
    out: Annotated[Path, typer.Option("--out", help="The canonical dataset directory to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="movielens | amazon | sequences | homedepot | diginetica | auto")
    ] = "auto",
    as_json: AsJson = False,
) -> None:
    """Convert a public dataset format into a canonical dataset directory."""
    from .datasets import convert as _convert

    res = _convert(src, out, fmt)
    info = {
        "format": res.format,
        "out": str(res.out),
        "files": res.files,
        "passed_through": res.passed_through,
    }
    if as_json:
        _print_json(info)
    else:
        typer.echo(
            f"{src} ({res.format}) -> {out}: " + ", ".join(f"{k} {v:,} rows" for k, v in res.files.items())
        )


@app.command()
def export(
    workdir: Workdir,
    table: Annotated[
        str, typer.Option("--table", help="A curated table: products, events, users, queries, judgments.")
    ],
    out: Annotated[Path, typer.Option("--out", help="FILE.csv, FILE.parquet or FILE.jsonl")],
) -> None:
    """Write a curated table (pseudonymized ids, masked text; never raw personal data)."""
    _allow(workdir, "export")
    from .storage import Warehouse

    _require_workdir(workdir)
    with Warehouse(workdir) as wh:
        n = wh.export(table, out)
    typer.echo(f"wrote {n:,} rows of curated.{table} to {out}")
    if table == "events":
        _say_pending(workdir)


def _say_pending(workdir: Path, log: Any = None) -> int:
    """Tell (on stderr, or `log`) how many acknowledged events wait in the spool: served, not
    yet in the warehouse. An export does not absorb them itself: it reads, it does not load
    (and who may export may not be allowed to ingest)."""
    from .serving._feedback import pending_events

    n = pending_events(workdir)
    if n:
        msg = (
            f"note: {n:,} acknowledged events are still waiting in the spool (not in the warehouse yet): "
            f"a running server absorbs them every --absorb-seconds, or run `shelfwise events absorb "
            f"--workdir {workdir}`"
        )
        (log or (lambda m: typer.echo(m, err=True)))(msg)
    return n


@app.command()
def train(
    workdir: Workdir,
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Ingest this dataset first (canonical or a known format)."),
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models (default: all of the default pipeline).")
    ] = None,
    split: Annotated[str, typer.Option(help="leave_last_out or global_time.")] = "leave_last_out",
    tune_seconds: Annotated[
        float,
        typer.Option(help="Safety cap on Optuna seconds per tunable model (0: no tuning); a hit cap is reported."),
    ] = 600.0,
    tune_trials: Annotated[
        int,
        typer.Option(
            min=0,
            help="Optuna trials per tunable model, the tuning budget (0: each model's own number); "
            "counted, so the same data and seed give the same models.",
        ),
    ] = 0,
    sasrec_epochs: Annotated[
        int, typer.Option(min=1, help="SASRec epochs at most (early stopping on validation ends sooner).")
    ] = 20,
    sasrec_seconds: Annotated[
        float, typer.Option(help="Safety cap on SASRec training seconds; a hit cap is reported.")
    ] = 1800.0,
    no_fusion: Annotated[bool, typer.Option("--no-fusion", help="Skip the LightGBM fusion ranker.")] = False,
    finetune_seconds: Annotated[
        float,
        typer.Option(help="Budget for fine-tuning MiniLM on search judgments, seconds (0: off)."),
    ] = 180.0,
    cross_encoder_seconds: Annotated[
        float,
        typer.Option(
            help="Budget for training the cross-encoder re-ranker on search judgments, seconds (0: off)."
        ),
    ] = 120.0,
    refit_seconds: Annotated[
        float,
        typer.Option(
            help="Safety cap on refitting the served models on all interactions after evaluation, "
            "seconds (0: no refit); a hit cap is reported."
        ),
    ] = 600.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    append: Append = False,
    map_flags: MapFlags = None,
    as_json: AsJson = False,
) -> None:
    """Ingest (with --data), build features, tune and fit models, evaluate, write a bundle."""
    actor = _allow(workdir, "train")
    from .lifecycle import DEFAULT_MODELS, TrainSettings
    from .lifecycle import train as run_train

    settings = TrainSettings(
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else DEFAULT_MODELS,
        split=split,
        tune_budget_s=tune_seconds,
        tune_trials=tune_trials or None,
        sasrec_epochs=sasrec_epochs,
        sasrec_budget_s=sasrec_seconds,
        fusion=not no_fusion,
        search_finetune_budget_s=finetune_seconds,
        search_cross_budget_s=cross_encoder_seconds,
        refit_budget_s=refit_seconds,
        seed=seed,
    )
    if data is None:
        _require_workdir(workdir)
    log = (lambda msg: sys.stderr.write(msg + "\n")) if as_json else typer.echo
    if (append or map_flags) and data is None:
        raise ShelfwiseError("--append and --map apply to the data given with --data")
    # a progress display only for a person watching (the run's lines then print above it)
    progress = not as_json and sys.stderr.isatty() and sys.stdout.isatty()
    result = run_train(
        workdir,
        data,
        settings,
        log=log,
        actor=actor,
        append=append,
        map_flags=tuple(map_flags or ()),
        progress=progress,
    )
    # training absorbs the spool first when it can take the lock; what it could not (a server
    # stopping, an absorb running) or what arrived since is said here
    pending = _say_pending(workdir, log)
    if as_json:
        _print_json({**result.to_dict(), "events_pending": pending})
    else:
        typer.echo(f"bundle: {result.bundle} (default model: {result.default_model})")
        typer.echo(f"evaluation report: {result.report_html}")


@app.command()
def evaluate(
    workdir: Workdir,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models of the bundle (default: all).")
    ] = None,
    sampled: Annotated[
        int | None,
        typer.Option(help="Also a sampled protocol: rank each target among N random unseen items."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate the current bundle's models under its protocol (full ranking by default)."""
    _allow(workdir, "evaluate")
    from .lifecycle import evaluate_workdir

    _require_workdir(workdir)
    chosen = [m.strip() for m in models.split(",")] if models else None
    report = evaluate_workdir(workdir, models=chosen, sampled=sampled)
    if as_json:
        _print_json(report)
        return
    if report.get("nothing_to_evaluate"):
        typer.echo(
            f"nothing to evaluate in bundle {report['bundle_version']}: {report['nothing_to_evaluate']}"
        )
        return
    p = report["protocol"]
    typer.echo(f"protocol: {p['split_description']}; candidates: {p['candidates']}; seen items excluded")
    typer.echo(f"{'model':14s} {'ndcg@10':>8s} {'95% CI':>17s} {'hr@10':>7s} {'mrr@10':>7s} {'cov@10':>7s}")
    for r in report["results"]:
        m, ci = r["metrics"], r["ci95"]["ndcg@10"]
        mark = " *" if r["model"] == report["default_model"] else ""
        typer.echo(
            f"{r['model']:14s} {m['ndcg@10']:8.4f} {ci[0]:8.4f}-{ci[1]:.4f} {m['hr@10']:7.4f} {m['mrr@10']:7.4f} "
            f"{m.get('coverage@10', float('nan')):7.3f}{mark}"
        )
    typer.echo(f"report: {report['report_html']}   (* = the bundle's default model)")


def _json_lines(path: Path, fields: str, pick: Any) -> list[Any]:
    """`pick(obj)` for each JSON object in a JSON-lines file; a bad line is a SourceError naming
    the file, its line number (blank lines count) and the fields it must have."""
    from .errors import SourceError

    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                out.append(pick(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise SourceError(str(path), n, f"not a JSON object with {fields}: {exc}") from exc
    return out


def _read_ids(path: Path, column: str) -> list[str]:
    """Ids from a CSV with a `column` header, a JSON-lines file, or one id per line."""
    import csv

    from .errors import SourceError

    if not path.exists():
        raise SourceError(str(path), None, "file not found")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    if path.suffix == ".jsonl":
        return _json_lines(path, repr(column), lambda obj: str(obj[column]))
    header = next(csv.reader([lines[0]]))
    if column in header:
        col = header.index(column)
        return [row[col] for row in csv.reader(lines[1:]) if len(row) > col]
    return [ln.strip() for ln in lines]


@app.command()
def recommend(
    workdir: Workdir,
    users: Annotated[
        Path, typer.Option("--users", help="CSV with a user_id column, JSONL, or one id per line.")
    ],
    out: Annotated[Path, typer.Option("--out", help="FILE.jsonl: one {user_id, items} per line.")],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per user.")] = 10,
    model: Annotated[
        str | None, typer.Option(help="A model of the bundle (default: its default model).")
    ] = None,
    explain: Annotated[
        bool, typer.Option(help="Add `because`: the history items behind the top item.")
    ] = False,
    context: Annotated[
        str | None, typer.Option(help="A category path prefix: unknown users get what is popular there.")
    ] = None,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="Apply the business rules (config/rules.json, the out-of-stock filter) as "
            "/v1/recommendations does; --no-rules: the model's ranking alone.",
        ),
    ] = True,
) -> None:
    """Top-k items per user, in the shop's own ids: the ranking /v1/recommendations answers for
    the same user (same model, experiments and business rules); seen items excluded; unknown
    users get the cold-start list."""
    _allow(workdir, "recommend")
    from .serving import Service

    _require_workdir(workdir)
    ids = _read_ids(users, "user_id")
    service = Service(workdir, apply_rules=rules, load_search=False)
    snap = service.snapshot
    try:
        snap.recs.model_name(model)
    except KeyError as exc:
        raise ShelfwiseError(str(exc.args[0])) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    cold = 0
    with open(out, "w", encoding="utf-8") as fh:
        for raw in ids:
            ans = service.recommend(raw, k, context=context, model=model)
            line: dict[str, Any] = {
                "user_id": raw,
                "items": ans.items,
                "source": "cold_start" if ans.source == "cold_start" else ans.model,
            }
            if ans.experiment:
                line["experiment"] = {
                    "name": ans.experiment,
                    "variant": ans.variant.name if ans.variant else None,
                }
            user = snap.user_index.get(ans.user) if ans.user else None
            if explain and user is not None and ans.items:
                line["because"] = snap.recs.explain(user, snap.item_index[ans.items[0]])
            cold += line["source"] == "cold_start"
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {len(ids):,} users to {out} ({cold:,} unknown users served the cold-start list)")


@app.command()
def search(
    workdir: Workdir,
    queries: Annotated[Path, typer.Option("--queries", help="CSV with query_id,query (or JSON lines).")],
    out: Annotated[Path, typer.Option("--out", help="FILE.jsonl: one {query_id, items} per line.")],
    k: Annotated[int, typer.Option("--k", min=1, max=1000, help="Items per query.")] = 10,
    candidates: Annotated[
        Path | None,
        typer.Option(
            "--candidates",
            help="JSON lines {query_id, items}: re-rank these lists only (the ranker alone: no rules).",
        ),
    ] = None,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules/--no-rules",
            help="Apply the business rules (config/rules.json, the out-of-stock filter) as /v1/search "
            "does; --no-rules: the search ranking alone.",
        ),
    ] = True,
) -> None:
    """Search the catalog: lexical + semantic retrieval, fused and re-ranked; the same results
    /v1/search answers for the same query (business rules included)."""
    _allow(workdir, "search")
    import csv

    from .errors import SourceError
    from .search import Filters, SearchEngine
    from .serving import Service, current_bundle

    _require_workdir(workdir)
    bundle = current_bundle(workdir)
    if not (bundle / "search").exists():
        raise ShelfwiseError(f"{bundle}: no search index (the catalog had no text when it was trained)")
    if not queries.exists():
        raise SourceError(str(queries), None, "file not found")
    rows: list[tuple[str, str]] = []
    if queries.suffix == ".jsonl":
        rows = _json_lines(
            queries, "query_id and query", lambda obj: (str(obj["query_id"]), str(obj.get("query") or ""))
        )
    else:
        with open(queries, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or "query_id" not in header or "query" not in header:
                raise SourceError(str(queries), 1, "the header must name the columns query_id and query")
            qi, ti = header.index("query_id"), header.index("query")
            for n, row in enumerate(reader, 2):
                if len(row) <= max(qi, ti):
                    raise SourceError(str(queries), n, f"expected {len(header)} fields, found {len(row)}")
                rows.append((row[qi], row[ti]))
    given: dict[str, list[str]] = {}
    if candidates is not None:
        if not candidates.exists():
            raise SourceError(str(candidates), None, "file not found")
        pairs = _json_lines(
            candidates,
            "query_id and items",
            lambda obj: (str(obj["query_id"]), [str(x) for x in obj["items"]]),
        )
        given = dict(pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        if candidates is not None:  # re-ranking given lists has no HTTP twin: the ranker alone
            engine = SearchEngine.load(bundle / "search")
            for lo in range(0, len(rows), 512):
                chunk = rows[lo : lo + 512]
                cands = [given.get(q) for q, _ in chunk]
                for (qid, _), hits in zip(
                    chunk, engine.search_many([t for _, t in chunk], k, cands), strict=True
                ):
                    fh.write(
                        json.dumps({"query_id": qid, "items": [p for p, _ in hits]}, ensure_ascii=False)
                        + "\n"
                    )
        else:  # the serving path itself (its whole pipeline), so an offline evaluation measures
            # what shoppers get; batched as the server batches concurrent misses
            from .serving._service import SearchArgs

            service = Service(workdir, apply_rules=rules)
            for lo in range(0, len(rows), 256):
                chunk = [(qid, text) for qid, text in rows[lo : lo + 256]]
                jobs = [(SearchArgs(text, k, Filters()), "full") for _, text in chunk if text.strip()]
                answers = iter(service.search_batch(jobs))
                for qid, text in chunk:
                    items = next(answers).items if text.strip() else []
                    fh.write(json.dumps({"query_id": qid, "items": items}, ensure_ascii=False) + "\n")
    typer.echo(f"wrote {len(rows):,} queries to {out}")


@app.command()
def audit(
    workdir: Workdir,
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(help="Entries to list (newest).")] = 50,
) -> None:
    """List the audit trail and verify its hash chain (exit status 1 when it was tampered with)."""
    _allow(workdir, "audit.read")
    from .governance import AuditLog

    _require_workdir(workdir)
    log = AuditLog(workdir)
    check = log.verify()
    entries = log.entries()
    if as_json:
        _print_json({"verification": check.as_dict(), "entries": entries[-limit:]})
    else:
        for e in entries[-limit:]:
            if "unparseable" in e:
                typer.echo(f"?  {e['unparseable'][:100]}")
                continue
            typer.echo(
                f"{e['seq']:>5} {e['at'][:19]} {e['actor']:<12} {e['action']:<22} {e['outcome']:<7} {json.dumps(e['details'], default=str)[:90]}"
            )
        if check.ok:
            typer.echo(f"audit log verified: {check.entries} entries, hash chain intact ({log.path})")
        else:
            typer.echo(f"AUDIT LOG TAMPERED: line {check.first_bad_line}: {check.reason} ({log.path})")
    if not check.ok:
        raise typer.Exit(1)


@quarantine_app.command("list")
def quarantine_list(
    workdir: Workdir,
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
    status: Annotated[str, typer.Option(help="open | released | superseded | redelivered | all")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Summary by reason, and the first rows with their file, line and detail."""
    _allow(workdir, "quarantine.read_raw")
    from .governance import Quarantine

    _require_workdir(workdir)
    qr = Quarantine(workdir)
    rows = qr.list(table, reason, None if status == "all" else status, limit=limit)
    if as_json:
        _print_json({"summary": qr.summary(), "rows": rows})
        return
    for s in qr.summary():
        typer.echo(f"{s['table']:<10} {s['reason']:<22} {s['status']:<10} {s['rows']:>8,}")
    typer.echo("")
    for r in rows:
        typer.echo(
            f"#{r['quarantine_id']} {r['table']} {Path(r['source_file']).name}:{r['source_line']} "
            f"[{r['reason']}] {r['detail']}"
        )


@quarantine_app.command("export")
def quarantine_export(
    workdir: Workdir,
    out: Annotated[Path, typer.Option("--out", help="JSON lines file to write (fix it, then reprocess it).")],
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code.")] = None,
) -> None:
    """Export open quarantined rows (raw fields + _quarantine_id) for fixing."""
    _allow(workdir, "quarantine.read_raw")
    from .governance import Quarantine

    _require_workdir(workdir)
    n = Quarantine(workdir).export(out, table, reason)
    typer.echo(f"wrote {n:,} quarantined rows to {out}")


@quarantine_app.command("reprocess")
def quarantine_reprocess(
    workdir: Workdir,
    table: Annotated[str, typer.Option(help="The table whose rows to re-process.")],
    file: Annotated[
        Path | None, typer.Option("--file", help="Fixed rows (from `quarantine export`).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Re-run quarantined rows through the governed path; rows that now pass are released into curated."""
    _allow(workdir, "quarantine.reprocess")
    from .governance import Quarantine

    _require_workdir(workdir)
    res = Quarantine(workdir).reprocess(table, file)
    if as_json:
        _print_json(res)
    else:
        typer.echo(
            f"{table}: retried {res['retried']:,}, released {res['released']:,}, "
            f"still quarantined {res['still_quarantined']:,}"
        )


@app.command()
def lineage(workdir: Workdir, as_json: AsJson = False) -> None:
    """The OpenLineage run events of the workdir."""
    _allow(workdir, "lineage.read")
    from .governance import read_lineage

    _require_workdir(workdir)
    events = read_lineage(workdir)
    if as_json:
        _print_json(events)
        return
    for e in events:
        outs = ", ".join(f"{o['name']}" for o in e.get("outputs", []))
        typer.echo(f"{e['eventTime']} {e['eventType']:<8} {e['job']['name']} run {e['run']['runId']} {outs}")


@app.command()
def serve(
    workdir: Workdir,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use --redis-url when > 1).")] = 1,
    redis_url: Annotated[
        str | None, typer.Option(help="Shared online state and event stream, e.g. redis://host:6379/0.")
    ] = None,
    max_k: Annotated[int, typer.Option(help="Largest k a request may ask for.")] = 100,
    max_body_bytes: Annotated[int, typer.Option(help="Largest POST body.")] = 1 << 20,
    max_events: Annotated[int, typer.Option(help="Most events in one POST /v1/events.")] = 1000,
    absorb_seconds: Annotated[
        float,
        typer.Option(help="Ingest accepted events into the warehouse at start and this often (0: never)."),
    ] = 30.0,
    drain_seconds: Annotated[
        float,
        typer.Option(
            help="On a graceful stop (SIGTERM), absorb the acknowledged events for at most this long; "
            "what is left waits in the spool (0: leave it all there)."
        ),
    ] = 20.0,
    reload_seconds: Annotated[
        float, typer.Option(help="Check for a new production bundle this often (0: never).")
    ] = 2.0,
    search_budget_ms: Annotated[
        float,
        typer.Option(
            help="Time a search-cache miss may take from arrival to answer; stages are skipped "
            "(ranker, then encoder) to keep it under load (0: always the cheapest).",
            min=0,
        ),
    ] = 40.0,
    search_queue: Annotated[
        int, typer.Option(help="Search misses that may wait or be in progress; more get 503.", min=1)
    ] = 256,
    search_max_wait_ms: Annotated[
        float,
        typer.Option(help="Refuse a search miss (503 + Retry-After) whose predicted wait is longer.", min=0),
    ] = 500.0,
) -> None:
    """Serve /v1/search, /v1/recommendations, /v1/items/{id}/similar and /v1/events over HTTP."""
    _allow(workdir, "serve.run")
    import os
    import shutil
    from dataclasses import asdict

    import uvicorn

    from .serving import ServeSettings, current_bundle
    from .serving._app import CONFIG_ENV

    current_bundle(workdir)  # a clear error before any worker starts
    # one core per worker process: the encoder (onnxruntime), faiss and LightGBM would otherwise
    # start a spinning thread per core, which a server shares with its own event loop and clients
    os.environ.setdefault("SHELFWISE_ENCODER_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = ServeSettings(
        max_k=max_k,
        max_body_bytes=max_body_bytes,
        max_events_per_request=max_events,
        absorb_interval_s=absorb_seconds,
        reload_interval_s=reload_seconds,
        redis_url=redis_url,
        drain_seconds=drain_seconds,
        search_budget_ms=search_budget_ms,
        search_queue=search_queue,
        search_max_wait_ms=search_max_wait_ms,
    )
    os.environ[CONFIG_ENV] = json.dumps({"workdir": str(workdir), "settings": asdict(settings)})
    if workers > 1:  # Prometheus metrics summed over the worker processes
        prom = workdir / "run" / "prometheus"
        shutil.rmtree(prom, ignore_errors=True)
        prom.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    uvicorn.run(
        "shelfwise.serving._app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=15,
        log_level="info",
    )


events_app = typer.Typer(help="Events posted to the server: the feedback loop.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("absorb")
def events_absorb(
    workdir: Workdir,
    redis_url: Annotated[str | None, typer.Option(help="Also drain this Redis event stream.")] = None,
    as_json: AsJson = False,
) -> None:
    """Ingest the events the server accepted (governed path) and quarantine the rejected ones."""
    _allow(workdir, "events.absorb")
    from .serving._feedback import absorb

    _require_workdir(workdir)
    client = _redis(redis_url)
    res = absorb(workdir, client)
    from .serving._feedback import pending_events

    res["pending"] = pending_events(workdir, client)  # acknowledged since, or left by a busy absorb
    if as_json:
        _print_json(res)
    else:
        typer.echo(", ".join(f"{k}: {v}" for k, v in res.items()))
    if res.get("status") == "busy":
        raise typer.Exit(3)


rules_app = typer.Typer(
    help="Business rules applied at serve time (versioned, audited).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")


@rules_app.command("set")
def rules_set(
    workdir: Workdir,
    file: Annotated[Path, typer.Option("--file", help="A rules JSON file (README: business rules).")],
    as_json: AsJson = False,
) -> None:
    """Validate and install a rules file as the next version (a running server picks it up)."""
    actor = _allow(workdir, "rules.change")
    from .serving._rules import save_rules

    doc = _read_json(file, "rules")
    rules = save_rules(workdir, doc, actor=actor or "cli")
    if as_json:
        _print_json(rules.as_dict())
    else:
        typer.echo(f"rules version {rules.version} installed ({len(rules.items)} merchandising rules)")


@rules_app.command("show")
def rules_show(workdir: Workdir) -> None:
    """Print the rules in force."""
    from .serving._rules import RULES_FILE, Rules

    rules = Rules.load(workdir)
    path = workdir / RULES_FILE
    _print_json({**rules.as_dict(), "file": json.loads(path.read_text()) if path.exists() else None})


experiments_app = typer.Typer(
    help="A/B experiments: configuration and the online report.", no_args_is_help=True
)
app.add_typer(experiments_app, name="experiments")


@experiments_app.command("set")
def experiments_set(
    workdir: Workdir,
    file: Annotated[Path, typer.Option("--file", help="An experiments JSON file.")],
) -> None:
    """Install the experiments configuration (a running server picks it up; audited)."""
    actor = _allow(workdir, "experiments.change")
    from .serving._experiments import save_experiments

    doc = _read_json(file, "experiments")
    exps = save_experiments(workdir, doc, actor=actor)
    typer.echo(f"{len(exps)} experiment(s) installed: {', '.join(e.name for e in exps)}")


@experiments_app.command("report")
def experiments_report(
    workdir: Workdir,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    as_json: AsJson = False,
) -> None:
    """Per variant: users, exposures, CTR, add-to-cart rate, conversion, revenue per user (95% CI)."""
    _allow(workdir, "evaluate")
    from .serving._experiments import experiment_report
    from .serving._feedback import absorb

    _require_workdir(workdir)
    absorb(workdir)  # count the newest attributed events
    rep = experiment_report(workdir, experiment)
    if as_json:
        _print_json(rep)
        return
    typer.echo(rep["protocol"])
    for name, e in rep["experiments"].items():
        typer.echo(f"\nexperiment {name}")
        for var, m in e["variants"].items():
            typer.echo(
                f"  {var:12s} users {m['users']:6d} exposures {m['exposures']:7d} "
                f"ctr {m['ctr']:.4f} [{m['ctr_ci95'][0]:.4f}, {m['ctr_ci95'][1]:.4f}] "
                f"cart {m['add_to_cart_rate']:.4f} conv {m['conversion']:.4f} "
                f"rev/user {m['revenue_per_user']:.2f} [{m['revenue_per_user_ci95'][0]:.2f}, {m['revenue_per_user_ci95'][1]:.2f}]"
            )


users_app = typer.Typer(
    help="People and services of the shop, their roles and API keys.", no_args_is_help=True
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    workdir: Workdir,
    name: Annotated[str, typer.Option(help="Login name of the person or service.")],
    role: Annotated[str, typer.Option(help="admin, steward, scientist, engineer, analyst or service.")],
    as_json: AsJson = False,
) -> None:
    """Register a person or service and print their API key (shown once; stored hashed).
    The first person of a workdir must be an admin; afterwards only admins add people."""
    from .governance import People

    people = People(workdir)
    by = None
    if people.governed:
        actor = _allow(workdir, "users.manage")
        by = people.load()[actor] if actor else None
    key = people.add(name, role, by)
    if as_json:
        _print_json({"name": name, "role": role, "api_key": key})
    else:
        typer.echo(f"{name} ({role}) registered. API key (shown once, keep it secret):\n{key}")


@users_app.command("list")
def users_list(workdir: Workdir, as_json: AsJson = False) -> None:
    """Who is registered, with which role (never the keys)."""
    from .governance import People

    _allow(workdir, "users.manage")
    rows = [
        {
            "name": p.name,
            "role": p.role.value,
            "active": p.active,
            "created_at": p.created_at,
            "created_by": p.created_by,
        }
        for p in People(workdir).load().values()
    ]
    if as_json:
        _print_json(rows)
    else:
        for r in rows:
            typer.echo(
                f"{r['name']:<20} {r['role']:<10} {'active' if r['active'] else 'inactive':<8} {r['created_at']}"
            )


models_app = typer.Typer(
    help="The gated model registry (MLflow aliases candidate / production).", no_args_is_help=True
)
app.add_typer(models_app, name="models")
Version = Annotated[str | None, typer.Option(help="Registry version (default: the candidate).")]


def _registry(workdir: Path) -> Any:
    from .lifecycle._registry import Registry

    _require_workdir(workdir)
    return Registry(workdir)


def _version_or_candidate(reg: Any, version: str | None) -> str:
    v = version or reg.candidate()
    if v is None:
        raise ShelfwiseError("no candidate version; name one with --version (see `shelfwise models list`)")
    return str(v)


@models_app.command("list")
def models_list(workdir: Workdir, as_json: AsJson = False) -> None:
    """Every registered bundle version with its aliases, headline metric, gates and approvals."""
    _allow(workdir, "models.read")
    rows = _registry(workdir).versions()
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        gates = (
            "all gates pass"
            if all(g["passed"] for g in r["gates"])
            else "gates failing: " + ", ".join(g["name"] for g in r["gates"] if not g["passed"])
        )
        typer.echo(
            f"v{r['version']:<4} {r['bundle']} {','.join(r['aliases']) or r['status']:<12} {r['default_model']:<12} "
            f"ndcg@10 {r['ndcg@10'] or 0:.4f}  {gates}  approved by {r['approved_by'] or '-'}"
        )


@models_app.command("gates")
def models_gates(workdir: Workdir, version: Version = None, as_json: AsJson = False) -> None:
    """Evaluate the promotion gates of a version (default: the candidate)."""
    from dataclasses import asdict

    _allow(workdir, "models.read")
    reg = _registry(workdir)
    v = _version_or_candidate(reg, version)
    gates = reg.gates(v)
    if as_json:
        _print_json({"version": v, "gates": [asdict(g) for g in gates]})
        return
    for g in gates:
        typer.echo(f"{'PASS' if g.passed else 'FAIL'}  {g.name:<28} {g.detail}")


@models_app.command("approve")
def models_approve(workdir: Workdir, version: Version = None) -> None:
    """Sign off a version for production (an approving role; not the person who trained it)."""
    actor = _allow(workdir, "models.approve")
    reg = _registry(workdir)
    v = _version_or_candidate(reg, version)
    reg.approve(v, actor or "single-user")
    typer.echo(f"version {v} approved by {actor or 'single-user'}")


@models_app.command("promote")
def models_promote(workdir: Workdir, version: Version = None, as_json: AsJson = False) -> None:
    """Put a version live: its gates must pass and it must be approved; serving follows."""
    from dataclasses import asdict

    actor = _allow(workdir, "models.promote")
    reg = _registry(workdir)
    v = _version_or_candidate(reg, version)
    gates = reg.promote(v, actor)
    if as_json:
        _print_json({"version": v, "production": True, "gates": [asdict(g) for g in gates]})
    else:
        typer.echo(f"version {v} is production; bundles/CURRENT moved, servers follow")


@models_app.command("rollback")
def models_rollback(workdir: Workdir) -> None:
    """Production goes back to the version it replaced."""
    actor = _allow(workdir, "models.rollback")
    v = _registry(workdir).rollback(actor)
    typer.echo(f"version {v} is production again")


privacy_app = typer.Typer(help="Personal data: the right to erasure.", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("erase")
def privacy_erase(
    workdir: Workdir,
    user: Annotated[str, typer.Option("--user", help="The shop's own id of the user to erase.")],
    redis_url: Annotated[
        str | None, typer.Option(help="Also forget the user's online state in this Redis.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Remove a user from raw, curated, quarantine, spool and every bundle (no retrain); audited."""
    from .governance._erase import erase_user

    actor = _allow(workdir, "privacy.erase")
    client = _redis(redis_url)
    rep = erase_user(workdir, user, actor=actor, redis_client=client)
    if as_json:
        _print_json(rep)
        return
    typer.echo(f"erased {rep['pseudonym']} (lineage run {rep['lineage_run_id']})")
    for group in ("warehouse", "files", "bundles"):
        for name, n in rep[group].items():
            if n:
                typer.echo(f"  {group:<9} {name:<40} {n:>7,} rows")
    typer.echo(f"note: {rep['not_covered']}")


retention_app = typer.Typer(help="How long data is kept (config/retention.json).", no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("enforce")
def retention_enforce(workdir: Workdir, as_json: AsJson = False) -> None:
    """Delete what is older than the retention periods (events, quarantine, served log, bundles)."""
    from .governance._retention import enforce_retention

    actor = _allow(workdir, "retention.enforce")
    rep = enforce_retention(workdir, actor=actor)
    if as_json:
        _print_json(rep)
        return
    typer.echo("policy: " + ", ".join(f"{k}={v}" for k, v in rep["policy"].items()))
    for name, n in rep["deleted"].items():
        typer.echo(f"  {name:<32} {n:>9,} deleted")


@app.command("catalog")
def catalog_cmd(workdir: Workdir, as_json: AsJson = False) -> None:
    """Datasets, contracts, models and rules with owner, steward, classification, rows,
    freshness, latest quality result and lineage (upstream / downstream)."""
    from .governance._catalog import catalog

    _allow(workdir, "catalog.read")
    _require_workdir(workdir)
    cat = catalog(workdir)
    if as_json:
        _print_json({k: v for k, v in cat.items() if k != "loads"})
        return
    for d in cat["datasets"]:
        q = d["quality"]
        typer.echo(
            f"{d['name']:<20} owner {d['owner']:<14} steward {d['steward']:<14} rows {d['rows']:>9,} "
            f"v{d['latest_version']:<3} fresh {d['freshness_hours']:>7.1f}h  "
            f"{'passed' if q['passed'] else 'FAILING'} ({100 * q['quarantined_share']:.1f}% quarantined)  "
            f"downstream bundles {len(d['lineage']['downstream'])}"
        )
        personal = [c for c, k in d["classification"].items() if k == "personal"]
        if personal:
            typer.echo(f"{'':<20} personal columns (pseudonymized): {', '.join(personal)}")
    for m in cat["models"]:
        typer.echo(
            f"model v{m['version']:<4} {m['bundle']} {','.join(m['aliases']) or m['status']:<12} owner {m['owner']}"
        )
    if cat["rules"]:
        typer.echo(f"rules v{cat['rules']['version']} owner {cat['rules']['owner']}")


report_app = typer.Typer(help="Reports for the business.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("governance")
def report_governance(workdir: Workdir, as_json: AsJson = False) -> None:
    """Quality trend, quarantine by reason, owners with failing checks, models in production and
    their gates: reports/governance.html (charts) and reports/governance.json."""
    from .governance._catalog import write_governance_report

    _allow(workdir, "catalog.read")
    _require_workdir(workdir)
    page, js = write_governance_report(workdir)
    if as_json:
        _print_json({k: v for k, v in json.loads(js.read_text()).items() if k != "catalog"})
    else:
        typer.echo(f"governance report: {page} (JSON: {js})")


@report_app.command("search")
def report_search(workdir: Workdir, as_json: AsJson = False) -> None:
    """Search analytics: top queries, zero-result queries, CTR per query (logged and served):
    reports/search-analytics.html and .json."""
    from .search._analytics import write_search_report
    from .serving._feedback import absorb

    _allow(workdir, "catalog.read")
    _require_workdir(workdir)
    absorb(workdir)  # count the newest attributed events
    page, js = write_search_report(workdir)
    if as_json:
        _print_json(json.loads(js.read_text()))
    else:
        typer.echo(f"search analytics: {page} (JSON: {js})")


def _redis(url: str | None) -> Any:
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url)


def _read_json(file: Path, what: str) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ShelfwiseError(f"{file}: cannot read a JSON {what} file: {exc}") from None


def _allow(workdir: Path, action: str) -> str | None:
    """The identity permitted to do `action` (None in single-user mode); denials raise and are audited."""
    from .governance import authorize

    person = authorize(workdir, action)
    return person.name if person else None


def _require_workdir(workdir: Path) -> None:
    if not (workdir / "warehouse.duckdb").exists():
        raise ShelfwiseError(
            f"{workdir}: not a shelfwise workdir (no warehouse.duckdb; run `shelfwise ingest` first)"
        )


def _take_identity(argv: list[str]) -> list[str]:
    """`--as NAME` may stand anywhere on the command line; it sets SHELFWISE_AS for this run."""
    import os

    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--as" and i + 1 < len(argv):
            os.environ["SHELFWISE_AS"] = argv[i + 1]
            i += 2
            continue
        if a.startswith("--as="):
            os.environ["SHELFWISE_AS"] = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear line and exit with status 2 (4: access denied)."""
    from .errors import AccessDenied  # (not through `governance`: `--help` needs no warehouse)

    argv = _take_identity(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and rv:  # click turns typer.Exit(n) into a return value here
            return rv
    except AccessDenied as exc:
        typer.echo(f"denied: {exc}", err=True)
        return 4
    except ShelfwiseError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        return 130
    except Exception as exc:  # usage errors: typer raises those of its own vendored click
        import click
        from typer.exceptions import TyperException

        if isinstance(exc, click.exceptions.ClickException | TyperException) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        raise
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
