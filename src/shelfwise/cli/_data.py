"""Data in and out: `ingest`, `demo`, `convert`, `export`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import (
    Append,
    AsJson,
    EngineName,
    MapFlags,
    SparkMaster,
    SparkRemote,
    WarehouseDir,
    Workdir,
    app,
    leave_quickly,
    print_json,
    say_pending,
    shop,
)

__all__ = ["convert", "demo", "export", "ingest"]


def _run_ingest(
    data: Path,
    workdir: Path,
    as_json: bool,
    *,
    append: bool = False,
    map_flags: list[str] | None = None,
    engine: Any = None,
) -> dict[str, Any]:
    report = shop(workdir).ingest(data, append=append, column_map=map_flags or (), engine=engine)
    out = report.to_dict()
    if as_json:
        print_json(out)
    else:
        from ..reporting import summary_lines  # (after the load: imported before, it held it up)

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
    engine: EngineName = "duckdb",
    spark_remote: SparkRemote = None,
    spark_master: SparkMaster = None,
    warehouse: WarehouseDir = None,
) -> None:
    """Governed ingestion: contracts, cleaning + quarantine, privacy, lineage, quality report."""
    from ..storage import engine_from

    chosen = engine_from(engine, workdir, remote=spark_remote, master=spark_master, warehouse=warehouse)
    try:
        out = _run_ingest(data, workdir, as_json, append=append, map_flags=map_flags, engine=chosen)
    finally:
        chosen.close()
    # the warehouse, the report and the lineage are written and closed: no teardown needed
    # (Spark's session and JVM are left to their own shutdown)
    leave_quickly(chosen.name == "duckdb")
    # a full snapshot that curated no row of a file with rows: the load failed (its warning says
    # whether the earlier version stays), as `audit` exits 1 on a broken chain
    if any(t.get("curated_nothing") for t in (out.get("tables") or {}).values()):
        raise typer.Exit(1)
    # published, but a record after the commit could not be written: exit 5, each said in one line
    if out.get("unrecorded"):
        for line in out["unrecorded"]:
            typer.echo(line, err=True)
        raise typer.Exit(5)


DEMO_TRIALS = 6  # the demo's tuning budget: Optuna trials per tuned model


def _demo_trials(trials: int) -> str:
    """The demo's tuning budget as its models run it: a model whose own cap on trials is lower
    (a small search space, or a costly trial: popularity 4, EASE 3) runs that many."""
    from ..lifecycle import DEFAULT_MODELS
    from ..lifecycle._tuning import planned_trials

    fewer = [f"{name} {n}" for name in DEFAULT_MODELS if 0 < (n := planned_trials(name, trials)) < trials]
    if not fewer:
        return f"{trials} Optuna trials per tuned model"
    return f"up to {trials} Optuna trials per tuned model ({', '.join(fewer)}: each model's own cap)"


@app.command()
def demo(
    workdir: Workdir = Path("demo-workdir"),
    products: Annotated[int, typer.Option(help="Products in the demo shop.")] = 5000,
    users: Annotated[int, typer.Option(help="Users in the demo shop.")] = 2000,
    events: Annotated[int, typer.Option(help="Behaviour events in the demo shop.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed gives the same shop).")] = 7,
    end: Annotated[
        datetime | None,
        typer.Option(
            "--end",
            formats=["%Y-%m-%d"],
            help="The day the demo's browsing and buying end; ratings and reviews follow purchases by up to "
            "5 days (default: the latest day at least 6 days ago that is whole weeks after 2026-09-30, "
            "so the same seed gives the same shop with its dates shifted).",
        ),
    ] = None,
    train_models: Annotated[bool, typer.Option("--train/--no-train", help="Also train and evaluate.")] = True,
    as_json: AsJson = False,
) -> None:
    """Make a demo shop, run everything on it, and print where the reports are."""
    from ..demo import current_end, generate_demo
    from ..errors import ShelfwiseError

    data = workdir / "demo-data"
    last = end.replace(tzinfo=UTC) if end else current_end()
    if last > current_end():  # its last ratings would lie in the future (quarantined as such)
        raise ShelfwiseError(
            f"--end {last:%Y-%m-%d}: too late; a demo's events run up to 5 days past its end and none "
            f"may lie in the future: choose {current_end():%Y-%m-%d} or earlier"
        )
    # who may not ingest (nor train) here is told before the demo's files are written into the
    # team's workdir (an analyst's `demo` left demo-data/ there, then was refused)
    shop(workdir).authorize("ingest")
    if train_models:
        shop(workdir).authorize("train")
    made = generate_demo(data, products=products, users=users, events=events, seed=seed, end=last)
    if not as_json:
        typer.echo(
            f"demo shop written to {data}: {made.products:,} products, {made.users:,} users, "
            f"{made.events:,} event rows ending {last:%Y-%m-%d}, ratings and reviews a few days after "
            f"({len(made.defects):,} injected defects recorded in defects.json)"
        )
    _run_ingest(data, workdir, as_json)
    if train_models:
        from ..lifecycle import TrainSettings

        log = (lambda msg: sys.stderr.write(msg + "\n")) if as_json else typer.echo
        if not as_json:
            typer.echo(
                f"\ntraining (demo budgets: {_demo_trials(DEMO_TRIALS)}, 5 SASRec epochs, 60 steps each "
                "of MiniLM fine-tuning and cross-encoder training) ..."
            )
        result = shop(workdir).train(
            settings=TrainSettings(
                # counted budgets: the same demo shop gives the same models on any machine
                tune_trials=DEMO_TRIALS,
                sasrec_epochs=5,
                search_finetune_steps=60,
                search_cross_steps=60,
            ),
            log=log,
        )
        gov_html = shop(workdir).governance_report()["html"]
        if as_json:
            print_json(result.to_dict())
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
        if (data / "faq_questions.csv").exists():
            typer.echo(
                f"  shelfwise report ask --workdir {workdir} --questions {data / 'faq_questions.csv'}"
                "   # the FAQ answers shoppers' questions"
            )
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
    from ..datasets import convert as _convert

    res = _convert(src, out, fmt)
    info = {
        "format": res.format,
        "out": str(res.out),
        "files": res.files,
        "passed_through": res.passed_through,
        "cleaned": res.cleaned,
    }
    if as_json:
        print_json(info)
    else:
        typer.echo(
            f"{src} ({res.format}) -> {out}: " + ", ".join(f"{k} {v:,} rows" for k, v in res.files.items())
        )
        for what, n in res.cleaned.items():  # the source's known debris, and what became of it
            typer.echo(f"  cleaned: {what} ({n:,} rows)")


@app.command()
def export(
    workdir: Workdir,
    table: Annotated[
        str, typer.Option("--table", help="A curated table: products, events, users, queries, judgments.")
    ],
    out: Annotated[Path, typer.Option("--out", help="FILE.csv, FILE.parquet or FILE.jsonl")],
) -> None:
    """Write a curated table (pseudonymized ids, masked text; never raw personal data)."""
    n = shop(workdir).export(table, out)
    typer.echo(f"wrote {n:,} rows of curated.{table} to {out}")
    if table == "events":
        say_pending(workdir)
