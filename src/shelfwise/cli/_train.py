"""Models from the data: `train`, `evaluate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ShelfwiseError
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
    print_json,
    say_pending,
    shop,
)

__all__ = ["evaluate", "train"]


def _model_list(models: str) -> list[str]:
    """`--models a,b`: the names, trimmed, blanks left out (`lifecycle.model_names`)."""
    from ..lifecycle._train import model_names

    return model_names(models)


def _check_train_flags(models: str | None, split: str) -> None:
    """`--models` and `--split` checked before anything runs (`lifecycle.check_choices`)."""
    from ..lifecycle._train import check_choices

    check_choices(
        None if models is None else _model_list(models),
        split,
        models_said=f"--models {models!r}",
        split_said=f"--split {split!r}",
    )


def _check_evaluated_models(workdir: Path, chosen: list[str]) -> None:
    """After `evaluate` refused `chosen`: a ShelfwiseError naming the bundle's models, in the
    command line's words, when some of `chosen` are not in the current bundle; otherwise
    nothing (the refusal is raised again as it is)."""
    from ..models import read_manifest
    from ..serving import current_bundle

    manifest = read_manifest(current_bundle(workdir))
    missing = [m for m in chosen if m not in manifest.models]
    if missing:
        raise ShelfwiseError(
            f"--models: {', '.join(missing)} not in bundle {manifest.version}; its models: "
            f"{', '.join(sorted(manifest.models))}"
        ) from None


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
        typer.Option(
            help="Safety cap on Optuna seconds per tunable model (0: no tuning); a hit cap is reported."
        ),
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
    sasrec_refresh_epochs: Annotated[
        int,
        typer.Option(
            min=0,
            help="After evaluation, the served SASRec trains this many more epochs on every "
            "interaction, the latest ones its fit held out included (0: it serves its training fit).",
        ),
    ] = 1,
    no_fusion: Annotated[bool, typer.Option("--no-fusion", help="Skip the LightGBM fusion ranker.")] = False,
    search_candidates: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Search: each retriever's depth, its top N products being the ranker's candidates "
            "(deeper: more relevant products to rank, more milliseconds a query; default: the "
            "pipeline's, 100).",
        ),
    ] = None,
    search_language: Annotated[
        str | None,
        typer.Option(
            help="Search: the catalog's language for keyword search (stemming, stopwords, accents, "
            "German compounds): auto, english, german, french, spanish, italian, dutch (or en, de, "
            "fr, es, it, nl); default auto, detected from the catalog's text.",
        ),
    ] = None,
    finetune_steps: Annotated[
        int, typer.Option(min=0, help="Budget for fine-tuning MiniLM on search judgments, steps (0: off).")
    ] = 400,
    finetune_seconds: Annotated[
        float,
        typer.Option(
            help="Safety cap on the MiniLM fine-tuning, seconds (0: off); the report says when it is hit."
        ),
    ] = 3600.0,
    cross_encoder_steps: Annotated[
        int,
        typer.Option(
            min=0, help="Budget for training the cross-encoder re-ranker on search judgments, steps (0: off)."
        ),
    ] = 300,
    cross_encoder_seconds: Annotated[
        float,
        typer.Option(
            help="Safety cap on the cross-encoder training, seconds (0: off); the report says when it is hit."
        ),
    ] = 3600.0,
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
    engine: EngineName = "duckdb",
    spark_remote: SparkRemote = None,
    spark_master: SparkMaster = None,
    warehouse: WarehouseDir = None,
) -> None:
    """Ingest (with --data), build features, tune and fit models, evaluate, write a bundle.
    --engine spark: the ingestion and the interactions run on Spark; fitting stays here."""
    _check_train_flags(models, split)
    from ..lifecycle import DEFAULT_MODELS, TrainSettings
    from ..storage import engine_from

    settings = TrainSettings(
        models=tuple(_model_list(models)) if models else DEFAULT_MODELS,
        split=split,
        tune_budget_s=tune_seconds,
        tune_trials=tune_trials or None,
        sasrec_epochs=sasrec_epochs,
        sasrec_budget_s=sasrec_seconds,
        sasrec_refresh_epochs=sasrec_refresh_epochs,
        fusion=not no_fusion,
        search_candidates=search_candidates or TrainSettings.search_candidates,
        search_language=_search_language(search_language),
        search_finetune_steps=finetune_steps,
        search_finetune_budget_s=finetune_seconds,
        search_cross_steps=cross_encoder_steps,
        search_cross_budget_s=cross_encoder_seconds,
        refit_budget_s=refit_seconds,
        seed=seed,
    )
    log = (lambda msg: sys.stderr.write(msg + "\n")) if as_json else typer.echo
    # a progress display only for a person watching (the run's lines then print above it)
    progress = not as_json and sys.stderr.isatty() and sys.stdout.isatty()
    chosen = engine_from(engine, workdir, remote=spark_remote, master=spark_master, warehouse=warehouse)
    try:
        result = shop(workdir).train(
            data,
            settings=settings,
            append=append,
            column_map=map_flags or (),
            log=log,
            progress=progress,
            engine=chosen if chosen.name == "spark" else None,
        )
    finally:
        chosen.close()
    # training absorbs the spool first when it can take the lock; what it could not (a server
    # stopping, an absorb running) or what arrived since is said here
    pending = say_pending(workdir, log)
    if as_json:
        print_json({**result.to_dict(), "events_pending": pending})
    else:
        typer.echo(f"bundle: {result.bundle} (default model: {result.default_model})")
        typer.echo(f"evaluation report: {result.report_html}")
    # the delivery was published, but a record after its commit could not be written: exit 5,
    # each said in one line, as `shelfwise ingest` does
    unrecorded = (result.ingest or {}).get("unrecorded") or []
    if unrecorded:
        for line in unrecorded:
            typer.echo(line, err=True)
        raise typer.Exit(5)


@app.command()
def evaluate(
    workdir: Workdir,
    models: Annotated[
        str | None, typer.Option(help="Comma-separated models of the bundle (default: all).")
    ] = None,
    sampled: Annotated[
        int | None,
        typer.Option(
            help="A sampled protocol instead of full ranking: rank each target among N random unseen "
            "items (a report of its own; the full-ranking report is left as it was); 0: full ranking.",
            min=0,
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="A registry version's bundle (a candidate before approval) instead of the current one."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate the current bundle's models under its protocol (full ranking by default)."""
    from ..evaluation import few_users_said, repeat_targets_said, sampled_unscored_said, sessions_said
    from ..lifecycle._train import ModelsNotInBundle

    chosen = _model_list(models) if models else None
    try:  # (--sampled 0: no sampled protocol, as before)
        report = shop(workdir).evaluate(chosen, sampled=sampled or None, version=version)
    except ModelsNotInBundle:  # (after the Shop checked who and where): said in the CLI's words
        if chosen:
            _check_evaluated_models(workdir, chosen)
        raise
    if as_json:
        print_json(report)
        return
    if report.get("nothing_to_evaluate"):
        typer.echo(
            f"nothing to evaluate in bundle {report['bundle_version']}: {report['nothing_to_evaluate']}"
        )
        _say_search(report)
        return
    p = report["protocol"]
    typer.echo(f"protocol: {p['split_description']}; candidates: {p['candidates']}; seen items excluded")
    # (a ceiling only the report showed: 22.6% of Diginetica's test sessions end on a seen item)
    if said := repeat_targets_said(p):
        typer.echo(f"  {said}")
    if said := sessions_said(p):
        typer.echo(f"  {said}")
    if few := few_users_said(p):
        typer.echo(f"  warning: {few}")
    # under the sampled protocol, each model's share of targets it left unscored (placed at the
    # floor of their negatives by the random tie-break), beside its sampled numbers
    unscored = any("sampled_unscored_targets" in r for r in report["results"])
    head = f" {'unscored':>8s}" if unscored else ""
    typer.echo(
        f"{'model':14s} {'ndcg@10':>8s} {'95% CI':>17s} {'hr@10':>7s} {'mrr@10':>7s} {'cov@10':>7s}{head}"
    )
    starred = False
    for r in report["results"]:
        m, ci = r["metrics"], r["ci95"]["ndcg@10"]
        mark = " *" if r["model"] == report["default_model"] else ""
        starred = starred or bool(mark)
        # (no catalog coverage under a sampled protocol: each list ranks its own candidates)
        cov = m.get("coverage@10")
        cov_text = f"{cov:7.3f}" if cov is not None and cov == cov else f"{'—':>7s}"
        share = r.get("sampled_unscored_targets")
        un_text = (
            (f"{100 * share:7.1f}%" if share is not None and share == share else f"{'—':>8s}")
            if unscored
            else ""
        )
        typer.echo(
            f"{r['model']:14s} {m['ndcg@10']:8.4f} {ci[0]:8.4f}-{ci[1]:.4f} {m['hr@10']:7.4f} {m['mrr@10']:7.4f} "
            f"{cov_text}{' ' + un_text if unscored else ''}{mark}"
        )
    if unscored:
        typer.echo(
            "  unscored = the share of a model's sampled targets it scored no higher than the lowest of "
            "their negatives: placed by the random tie-break, a draw rather than a measure"
        )
        for r in report["results"]:
            if said := sampled_unscored_said(r):
                typer.echo(f"  warning: {said}")
    # the legend only under a starred row (the default model not asked for: no row is starred)
    legend = "   (* = the bundle's default model)" if starred else ""
    _say_search(report)
    typer.echo(f"report: {report['report_html']}{legend}")


def _say_search(report: dict[str, Any]) -> None:
    """What training measured of the bundle's search (on its held-out judged queries), if it did."""
    if sq := report.get("search"):
        nd = sq["ndcg@10"]
        typer.echo(
            f"search, measured at training on {sq['held_out_queries']} held-out {sq['held_out']} queries "
            f"({sq['protocol']}; candidates: {sq['candidates']}): NDCG@10 hybrid "
            f"{nd.get('hybrid') or 0:.4f}, reranked {nd.get('reranked') or 0:.4f}, ranker kept: {sq['ranker_kept']}"
        )


def _search_language(value: str | None) -> str | None:
    """`--search-language` as the analyzer names it (None: detected), or a usage error."""
    from ..search._analyze import language_name

    try:
        return language_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--search-language") from None
