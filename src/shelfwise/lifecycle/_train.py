"""`shelfwise train`: ingest -> features -> tuned models -> evaluation -> fusion -> bundle.

Every number the run reports is measured on a stated protocol (leave-last-out by default, full
ranking, seen items excluded). Models are fitted on the training part of the split; the
validation fold tunes them, stops SASRec early and trains the fusion ranker; the test fold is
looked at once, for the report. The bundle keeps those fitted models and the full history, so
serving sees each user's latest steps.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShelfwiseError, UnknownModel
from ..evaluation import (
    HEADLINE,
    evaluate_all,
    few_users_said,
    ndcg_at_10,
    repeat_targets_said,
    sessions_said,
)
from ..features import Catalog, Interactions, Split, global_time, leave_last_out, load_interactions
from ..models import RECOMMENDERS, Content, Fusion, NoRankerData, Recommender, product_groups
from ..serving._bundle import BUNDLES_DIR, EVALUATED_DIR, load_evaluated_models, write_bundle
from ..serving._ranking import NO_EVIDENCE
from ._cold_start import diverse_cold_start
from ._console import RunConsole
from ._ingest_job import ingest_dataset
from ._tuning import SEARCH_SPACES, fit_model, planned_trials, tune

DEFAULT_MODELS = ("popularity", "itemknn", "transitions", "als", "ease", "sasrec", "content")


@dataclass
class TrainSettings:
    """What a run does and its budgets. The budgets that decide the models are counted (Optuna
    trials, SASRec epochs, every model refit), so the same data and seed give the same models
    and numbers on a busy and an idle machine; the `*_budget_s` seconds are safety caps, and a
    run that hits one says so (`budget_caps` in the report, the manifest and the log)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    split: str = "leave_last_out"  # or "global_time"
    tune_budget_s: float = 600.0  # cap on Optuna seconds per tunable model (0 = defaults only)
    tune_trials: int | None = None  # at most this many trials per model (None: each model's cap)
    sasrec_epochs: int = 20  # SASRec epochs at most (early stopping on validation ends sooner)
    sasrec_budget_s: float = 1800.0  # cap on SASRec training seconds
    # after evaluation, the served SASRec goes on this many epochs over every step (the latest
    # ones, held out of its fit, included; 0: it serves its training fit). SASRec alone on
    # Beauty's test step (benchmarks/sasrec.py's settings, not the pipeline's): 0.0497 -> 0.0537
    # refreshed 3 epochs (`refreshed` in benchmarks/sasrec-ema.json); without the weight average,
    # in a harness, 0.0479 -> 0.0524 with 1 epoch and 0.0551 with 3, an epoch taking ~6 s on 2
    # cores in the pipeline. One epoch by default: Beauty's whole pipeline must stay within 600 s
    # (583 s with 1, 619.5 s with 3 when it was chosen: benchmarks/recsys-refresh3.json)
    sasrec_refresh_epochs: int = 1
    fusion: bool = True
    # below this many validation users the ranker learns noise and its comparison with its parts
    # (on a fifth of them) decides nothing: the fusion is skipped
    fusion_min_users: int = 50
    max_tune_users: int = 5000  # validation users sampled for tuning and early stopping
    bootstrap_rounds: int = 1000
    seed: int = 0
    sasrec: dict[str, Any] = field(default_factory=dict)  # SASRecConfig overrides
    toplist_width: int = 100  # precomputed recommendations per known user in the bundle
    toplist_max_users: int = 200_000  # beyond this, serving computes lists on request (cached)
    toplist_budget_s: float = 20.0  # seconds spent precomputing; the rest are computed on request
    # MiniLM fine-tuning and the cross-encoder on search judgments are budgeted in optimizer
    # steps (same data + seed = same models on any machine; 0 = off); the seconds are only a
    # safety cap, which the report names when it stops a training early (0 = off too)
    # each search retriever's depth: its top N products are the ranker's candidates (the
    # engine's default, `search._state.CANDIDATES`; recorded in the bundle's search/search.json)
    search_candidates: int = 100
    # the search analyzer's language ("de", "french", ...; None: detected from the catalog's
    # text); recorded, with why, in the report's search section
    search_language: str | None = None
    search_finetune_steps: int = 400
    search_finetune_budget_s: float = 3600.0
    search_cross_steps: int = 300
    search_cross_budget_s: float = 3600.0
    refit_budget_s: float = 600.0  # cap on refitting the served models on all data (0 = off)


@dataclass
class TrainResult:
    bundle: Path
    default_model: str
    protocol: dict[str, Any]
    results: list[dict[str, Any]]
    validation: dict[str, float]
    fusion: dict[str, Any] | None
    timings: dict[str, dict[str, float]]
    tuned: dict[str, dict[str, Any]]
    report_json: Path
    report_html: Path | None = None
    mlflow_runs: dict[str, str] = field(default_factory=dict)
    registry: dict[str, Any] = field(default_factory=dict)  # version, gates, production
    refit: dict[str, Any] = field(default_factory=dict)  # models refit on all data for serving
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"model"/"stage", "reason"}
    #: safety caps the run hit ({"stage", "budget", "reached"}): its numbers are not reproducible
    budget_caps: list[dict[str, str]] = field(default_factory=list)
    #: with --data: the ingestion's report (as `ingest --json` prints it: rows in, curated or
    #: added, quarantined per table and reason), or {"status": "unchanged"} when the files were
    #: loaded before; None without --data
    ingest: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bundle"] = str(self.bundle)
        d["report_json"] = str(self.report_json)
        d["report_html"] = str(self.report_html) if self.report_html else None
        return d


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


SPLITS = ("leave_last_out", "global_time")  # the split protocols `make_split` knows


class ModelsNotInBundle(UnknownModel):
    """`evaluate` named models the current bundle does not have (the CLI says it in its words)."""


def model_names(models: str | Sequence[str]) -> list[str]:
    """The models a caller names: "als, ease" as the command line's `--models` (trimmed, blanks
    left out; a string is never read letter by letter) or a sequence of names."""
    if isinstance(models, str):
        return [m.strip() for m in models.split(",") if m.strip()]
    return list(models)


def check_choices(models: Sequence[str] | None, split: str, *, models_said: str, split_said: str) -> None:
    """The models and split protocol a training names, checked before anything runs (an unknown
    name found after the ingestion and the features was a traceback, and the delivery was
    loaded already): one ShelfwiseError naming the valid choices. `models_said`/`split_said`:
    how the caller gave them (`--models 'a,b'` on the command line)."""
    from ..errors import UnknownName

    if split not in SPLITS:
        raise UnknownName(
            f"{split_said}: unknown split protocol; choose {' or '.join(SPLITS)}",
            kind="split protocol",
            name=split,
            known=SPLITS,
        )
    if models is not None:
        unknown = [m for m in models if m not in RECOMMENDERS]
        if unknown:
            raise UnknownModel(
                f"{models_said}: unknown model(s) {', '.join(map(str, unknown))}; "
                f"known models: {', '.join(sorted(RECOMMENDERS))}",
                kind="model",
                name=unknown[0],
                known=sorted(RECOMMENDERS),
            )
        if not models:
            raise ShelfwiseError(
                f"{models_said}: names no model; known models: {', '.join(sorted(RECOMMENDERS))}"
            )


POSITIONS_MIN_USERS = 5  # users with 3+ steps a pattern of positions needs before it is told


def timestamps_are_positions(inter: Interactions) -> bool:
    """Whether the events' times are their places in each user's sequence: every user's k-th
    step at one same time, a time of its own per k (a sequences file, which carries order only,
    converted with one synthetic hour a step). Real times put two users' k-th steps at two
    times; `POSITIONS_MIN_USERS` users of 3+ steps are needed to tell."""
    off = inter.offsets
    lengths = np.diff(off)
    # (enough users and steps to tell: two users buying on the same two days are not a pattern)
    if int((lengths >= 3).sum()) < POSITIONS_MIN_USERS:
        return False
    pos = np.arange(len(inter)) - np.repeat(off[:-1], lengths)
    ts = np.asarray(inter.timestamp)
    order = np.lexsort((ts, pos))
    p, t = pos[order], ts[order]
    same = p[1:] == p[:-1]
    return bool(np.all(t[1:][same] == t[:-1][same])) and len(np.unique(t)) == len(np.unique(p))


def make_split(inter: Interactions, protocol: str) -> Split:
    if protocol == "leave_last_out":
        return leave_last_out(inter)
    if protocol == "global_time":
        return global_time(inter)
    raise ValueError(f"unknown split protocol {protocol!r} (leave_last_out, global_time)")


def _data_versions(workdir: Path) -> dict[str, Any]:
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        rows = con.sql(
            "SELECT table_name, max(version), arg_max(run_id, version), arg_max(content_hash, version), "
            "arg_max(contract_version, version), arg_max(row_count, version) FROM meta.table_versions GROUP BY 1"
        ).fetchall()
    return {
        r[0]: {"version": r[1], "run_id": r[2], "content_hash": r[3], "contract_version": r[4], "rows": r[5]}
        for r in rows
    }


READS_WAIT_S = 120.0


def train(
    workdir: str | Path,
    data: str | Path | None = None,
    settings: TrainSettings | None = None,
    log: Any = print,
    actor: str | None = None,
    *,
    append: bool = False,
    map_flags: tuple[str, ...] = (),
    progress: bool = False,
    engine: Any = None,
) -> TrainResult:
    """Ingest (with `data`), fit what the data supports, evaluate, write and register a bundle.

    `engine` (a `SparkEngine`): the ingestion and the interactions run on Spark (the curated
    events read from their Parquet version); fitting stays on this machine.

    `log` receives the run's lines (they also go to `<workdir>/logs/train-*.log`, with every
    library warning, which stays off the console); `progress` shows a progress display of the
    long steps on stderr (for a terminal).
    """
    settings = settings or TrainSettings()
    workdir = Path(workdir)
    unknown = set(settings.models) - set(RECOMMENDERS)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; known: {sorted(RECOMMENDERS)}")
    from ..storage import waiting_for_the_warehouse

    # a server's absorb holds the warehouse for seconds: the run's reads wait for it (up to
    # READS_WAIT_S each) rather than losing every fit at the read that met one
    with RunConsole(workdir, log, progress=progress) as console, waiting_for_the_warehouse(READS_WAIT_S):
        result = _train_logged(workdir, data, settings, console, actor, append, map_flags, engine)
        console.log(f"run log (library warnings included): {console.path}")
    return result


def _train_logged(
    workdir: Path,
    data: str | Path | None,
    settings: TrainSettings,
    console: RunConsole,
    actor: str | None,
    append: bool = False,
    map_flags: tuple[str, ...] = (),
    engine: Any = None,
) -> TrainResult:
    from ..governance import DatasetRef, LineageRun
    from ..governance._lineage import warehouse_namespace

    log = console.log
    ingest_run = None
    ingested: dict[str, Any] | None = None
    # an erasure from now on may miss what this run reads: its users leave the bundle it writes.
    # Taken before the run's ingest and absorb: an erasure scrubs the warehouse before it writes
    # its register, and an absorb between the two curated the user's spooled events again
    reading_from = datetime.now(UTC).replace(tzinfo=None)
    if data is not None:
        # the same governed path as `shelfwise ingest`; files unchanged since their last load
        # are not ingested again
        with console.stage("ingest"):
            report = ingest_dataset(
                data, workdir, skip_unchanged=True, append=append, map_flags=map_flags, engine=engine
            )
        if report is None:
            log(f"{data}: unchanged since its last load, not re-ingested")
            ingested = {"status": "unchanged", "data": str(data)}
        else:
            ingest_run = report.run_id
            ingested = report.to_dict()
            failed = [t for t, r in report.tables.items() if r.curated_nothing]
            if failed:  # (it trained on the table as it was, or on none, after a warning)
                from ..errors import ShelfwiseError

                raise ShelfwiseError(
                    f"{data}: the load curated no row of {', '.join(failed)} (every one quarantined: "
                    f"`shelfwise quarantine list`, ingestion run {report.run_id}); nothing trained"
                )
            from ..reporting._quality import ignored_said, load_counts

            log(
                f"ingested {data}{' (appended)' if append else ''}: "
                + ", ".join(
                    f"{t} "
                    + " / ".join(f"{n:,} {label}" for label, n in load_counts(r))
                    + f" (check {r.check().describe()})"
                    for t, r in report.tables.items()
                )
            )
            for warning in report.warnings:
                log(f"warning: {warning}")
            for r in report.tables.values():  # (as `ingest` prints them)
                if r.ignored_columns:
                    log(f"ingest: {ignored_said(r)}")
    from ..serving._feedback import absorb, absorb_mark

    absorbed = absorb(workdir)  # events the server accepted since the last absorb
    if absorbed["status"] == "ok":
        ingest_run = ingest_run or absorbed.get("ingest_run_id")
        log(
            f"absorbed served events: {absorbed['accepted']:,} accepted, {absorbed['quarantined']:,} quarantined"
        )
    elif absorbed["status"] == "busy":
        log(f"served events not absorbed now ({absorbed.get('reason')}); they wait for the next run")
    # served events absorbed after this moment are not in this run's data: a server replays
    # them into its online state on start (`Service`), so a restart forgets no shopper's clicks
    feedback_as_of = absorb_mark(workdir)
    data_versions = _data_versions(workdir)
    ns = warehouse_namespace(workdir)
    lineage = LineageRun(
        workdir,
        "shelfwise.train",
        inputs=[
            DatasetRef(ns, f"curated.{t}", rows=v["rows"], content_hash=v["content_hash"])
            for t, v in data_versions.items()
        ],
    ).start()
    try:
        result = _train(
            workdir,
            settings,
            data_versions,
            lineage.run_id,
            ingest_run,
            console,
            data,
            actor,
            engine,
            feedback_as_of=feedback_as_of,
            reading_from=reading_from,
        )
    except Exception as exc:
        lineage.fail(f"{type(exc).__name__}: {exc}")
        raise
    lineage.complete([DatasetRef("file", str(result.bundle.resolve()), content_hash=result.bundle.name)])
    from ..governance import AuditLog

    AuditLog(workdir).append(
        "train",
        run_id=lineage.run_id,
        bundle=result.bundle.name,
        default_model=result.default_model,
        protocol=result.protocol["split"],
        metrics={r["model"]: round(r["metrics"]["ndcg@10"], 5) for r in result.results},
        skipped=result.skipped,
    )
    result.ingest = ingested
    return result


class _Skips(list[dict[str, str]]):
    """What a run left out and why: {"model" or "stage": name, "reason": one line}, in the
    report, the manifest and the log."""

    def __init__(self, log: Any):
        super().__init__()
        self._log = log

    def add(self, kind: str, name: str, reason: str) -> None:
        self.append({kind: name, "reason": reason})
        self._log(f"{name}: skipped ({reason})")


class _Caps(list[dict[str, str]]):
    """The safety caps (seconds) a run hit before its counted budget was spent: which stage,
    what budget, how far it got. In the report, the manifest and the log: the run's models
    and numbers then depend on how busy the machine was."""

    def __init__(self, log: Any):
        super().__init__()
        self._log = log

    def add(self, stage: str, budget: str, reached: str) -> None:
        self.append({"stage": stage, "budget": budget, "reached": reached})
        self._log(f"{stage}: time cap hit ({budget}; reached {reached}): not reproducible on another machine")


# without validation users to choose by, the default model is the first of these the run has:
# on a few events, text similarity and co-visitation say more than a factorization can learn
FALLBACK_ORDER = ("content", "itemknn", "transitions", "ease", "als", "bpr", "sasrec", "popularity")


def _train(
    workdir: Path,
    settings: TrainSettings,
    data_versions: dict[str, Any],
    lineage_run_id: str,
    ingest_run: str | None,
    console: RunConsole,
    data_dir: str | Path | None = None,
    actor: str | None = None,
    engine: Any = None,
    *,
    feedback_as_of: str | None = None,
    reading_from: datetime | None = None,
) -> TrainResult:
    log = console.log
    t_all = time.monotonic()
    if reading_from is None:  # (a caller of its own: its reads begin here)
        reading_from = datetime.now(UTC).replace(tzinfo=None)
    from ..governance._consent import consent_withdrawn

    withdrawn: set[str] = set()

    def no_consent(users: list[str]) -> set[str]:
        withdrawn.update(consent_withdrawn(workdir, "personalization", among=users))
        return withdrawn

    # the events of users without personalization consent stay in the warehouse (operations)
    # but no model learns from them and the bundle's history does not hold them
    events = None
    if engine is not None and engine.name == "spark":
        from ._spark_jobs import spark_events_reader

        events, how = spark_events_reader(engine, workdir)
        log(f"interactions: {how}")
    inter, catalog = load_interactions(workdir, leave_out=no_consent, events=events)
    if withdrawn:
        from ..governance import Consents, is_anonymous

        # an anonymous session left out although it has consent itself: linked to a customer without
        consents = Consents.of(workdir)
        linked = sum(is_anonymous(p) and consents.allows(p, "personalization") for p in withdrawn)
        log(
            f"consent: left out the events of {len(withdrawn) - linked:,} users without personalization consent"
            + (f" and of {linked:,} anonymous sessions linked to them" if linked else "")
        )
    if inter.n_items == 0:  # (an export that failed: files with a header and no row)
        from ..errors import ShelfwiseError

        raise ShelfwiseError(
            f"{workdir}: nothing to train on: the warehouse has no product and no event (ingest a "
            "products file, an events file or both)" + _quarantined_instead(workdir)
        )
    skipped = _Skips(log)
    caps = _Caps(log)
    if settings.split == "global_time" and timestamps_are_positions(inter):
        from ..errors import ShelfwiseError

        # (its "point in time" cut was a cut by sequence length, stated with invented dates: the
        # test users were exactly those with 34 or more items). Refused when training only: a
        # bundle trained so before is still evaluated and compared as it was measured
        raise ShelfwiseError(
            "--split global_time needs real event times, and these are positions: every user's "
            "k-th step has one same time (a sequences file carries order only; its conversion "
            "gives step k the time 2015-01-01 + k hours), so a global time cut would be a cut by "
            "sequence length; train with --split leave_last_out"
        )
    split = make_split(inter, settings.split) if len(inter) else leave_last_out(inter)
    if len(inter):
        log(
            f"interactions: {len(inter):,} steps, {inter.n_users:,} users, {inter.n_items:,} items; {split.description}"
        )
    else:
        log(
            f"interactions: none yet ({inter.n_items:,} products in the catalog): building search, "
            "content-based similar items and a cold-start list"
        )
    unpublished = int(getattr(catalog, "unpublished", 0) or 0)
    unlisted = 0 if catalog.listed is None else int((~np.asarray(catalog.listed, bool)).sum()) - unpublished
    if unlisted:
        log(
            f"catalog: {unlisted:,} product(s) seen in events have no curated catalog row (quarantined "
            "or never delivered): learned from, never served"
        )
    if unpublished:
        log(
            f"catalog: {unpublished:,} product(s) the catalog says are not published (draft, private, "
            "archived; its `published` column): learned from, never served"
        )
    has_val = len(split.validation) > 0
    models: dict[str, Recommender] = {}
    timings: dict[str, dict[str, float]] = {}
    tuned: dict[str, dict[str, Any]] = {}
    validation: dict[str, float] = {}
    # the catalog's product groups: served lists show one product per group, so the models that
    # count learn per group, tuning scores by the group NDCG@10 and the default is chosen by it
    groups = _served_groups(catalog, inter.n_items)
    group_validation: dict[str, float] = {}
    names = list(settings.models)
    if "content" in names and not _has_text(catalog):
        skipped.add("model", "content", "the catalog titles carry no text to embed")
        names.remove("content")
    if not len(inter):
        if any(n in SEARCH_SPACES for n in names) and settings.tune_budget_s > 0:
            skipped.add("stage", "tuning", "no behaviour events yet: nothing to tune the models on")
        for n in [n for n in names if n != "content"]:
            skipped.add("model", n, "no behaviour events yet: it learns from interactions")
            names.remove(n)
    else:
        if not has_val:
            why = (
                f"no validation users ({split.protocol}: "
                + (
                    "a user needs >= 3 steps"
                    if split.protocol == "leave_last_out"
                    else "nobody new after the cut-off"
                )
                + ")"
            )
            if any(n in SEARCH_SPACES for n in names) and settings.tune_budget_s > 0:
                skipped.add("stage", "tuning", f"{why}: models keep their default settings")
            if "sasrec" in names:
                skipped.add("model", "sasrec", f"{why} to stop its training")
                names.remove("sasrec")
        if "sasrec" in names and not (split.train.lengths() >= 2).any():
            skipped.add("model", "sasrec", "no user has two training steps to learn a next step from")
            names.remove("sasrec")
    stages = [*names, "fusion", "evaluation", "refit", "search", "serving lists", "registry"]
    for i, name in enumerate(names):
        t0 = time.monotonic()
        with console.stage(f"fitting {name}", stages[i + 1 :], total=_planned_trials(name, settings) or None):
            try:
                model = _fit_one(name, split, catalog, settings, tuned, log, has_val, console, caps, groups)
            except Exception as exc:  # one model that cannot learn from this data must not end the run
                import logging

                logging.getLogger("shelfwise.run").exception("%s could not be fitted", name)
                skipped.add("model", name, f"could not be fitted on this data: {type(exc).__name__}: {exc}")
                continue
        secs = time.monotonic() - t0
        models[name] = model
        timings[name] = {"train_seconds": round(secs, 2), "peak_rss_mb": round(_peak_rss_mb(), 1)}
        if has_val:
            validation[name] = ndcg_at_10(
                model, split.validation, listed=catalog.listed if catalog is not None else None
            )
            said = ""
            if groups is not None:
                group_validation[name] = ndcg_at_10(
                    model,
                    split.validation,
                    listed=catalog.listed if catalog is not None else None,
                    groups=groups,
                )
                said = f", group_ndcg@10 {group_validation[name]:.4f}"
            log(f"{name}: fitted in {secs:.1f}s, validation {HEADLINE} {validation[name]:.4f}{said}")
        else:
            log(f"{name}: fitted in {secs:.1f}s (no validation users to score it on)")
    if not models:
        # nothing to learn from and no text: the bundle still needs a model to name; popularity
        # over no events is the catalog in its cold-start order
        from ..models import Popularity

        models["popularity"] = Popularity().fit(inter, groups=groups)
        log("popularity: the only model (nothing else could be fitted): serves the cold-start list")
        timings["popularity"] = {"train_seconds": 0.0, "peak_rss_mb": round(_peak_rss_mb(), 1)}
    fusion_info = None
    chosen_by = None
    if validation:
        chosen_by = {"metric": "ndcg@10", "fold": "validation"}
        choice = validation
        if groups is not None and group_validation:
            choice = group_validation
            chosen_by = {
                "metric": "group_ndcg@10",
                "fold": "validation",
                "why": (
                    f"the catalog has {len(np.unique(groups)):,} product groups and serving shows one "
                    "product per group: the item NDCG@10 would count another size of a style in the "
                    "history as a hit that the served list collapses"
                ),
            }
        default = max(choice, key=lambda n: choice[n])
        if "why" in chosen_by:
            log(
                f"default model: {default} (highest validation {chosen_by['metric']} "
                f"{choice[default]:.4f}; {chosen_by['why']})"
            )
    else:
        default = next(n for n in (*FALLBACK_ORDER, *models) if n in models)
        log(
            f"default model: {default} (no validation users to choose by; the first of {', '.join(FALLBACK_ORDER)})"
        )
    gens = {n: m for n, m in models.items() if n != "popularity"}
    if not settings.fusion:
        pass
    elif not has_val:
        why = "no validation users to train the ranker on" if len(inter) else "no behaviour events yet"
        skipped.add("stage", "fusion", why)
    elif len(split.validation) < settings.fusion_min_users:
        skipped.add(
            "stage",
            "fusion",
            f"{len(split.validation)} validation users; the ranker needs >= {settings.fusion_min_users} "
            "to learn from and to be compared with its parts",
        )
    elif len(models) < 2 or not gens:
        skipped.add("stage", "fusion", f"it blends two or more models; this run has {', '.join(models)}")
    else:
        with console.stage("fusion", stages[len(names) + 1 :]):
            fusion_info = _fit_fusion(models, gens, split, catalog, settings, timings, skipped)
        if fusion_info is not None:
            log(
                fusion_versus_parts(
                    fusion_info,
                    getattr(models["fusion"], "holdout_gains_", None),
                    settings.bootstrap_rounds,
                    settings.seed,
                )
            )
            if groups is not None:
                # its ranker learnt the item labels: made the default only where it also beats its
                # parts by the group NDCG@10 on the validation users its ranker did not learn from
                by_group = _fusion_by_group(models, gens, split, catalog, groups)
                fusion_info["holdout_group_ndcg@10"] = by_group
                parts = {n: v for n, v in by_group.items() if n != "fusion"}
                best = max(parts, key=lambda n: parts[n]) if parts else None
                beats = best is not None and by_group.get("fusion", float("nan")) > parts[best]
                log(
                    f"fusion: held-out validation group_ndcg@10 {by_group.get('fusion', float('nan')):.4f} "
                    f"vs best part {best} {parts.get(best or '', float('nan')):.4f}: "
                    + (
                        "made the default"
                        if beats
                        else "not made the default (lists are served one per group)"
                    )
                )
                if beats:
                    default = "fusion"
                    chosen_by = {
                        "metric": "group_ndcg@10",
                        "fold": "fusion's held-out validation users",
                        "why": str((chosen_by or {}).get("why", "")),
                    }
            elif fusion_info["beats_parts"]:
                default = "fusion"
                chosen_by = {"metric": "ndcg@10", "fold": "fusion's held-out validation users"}
    if len(split.test):
        with console.stage("evaluation", ["refit", "search", "serving lists", "registry"]):
            protocol, results = evaluate_all(
                models,
                split,
                bootstrap_rounds=settings.bootstrap_rounds,
                seed=settings.seed,
                listed=catalog.listed,
                groups=group_codes(catalog.groups),
            )
    else:
        protocol, results = evaluate_all({}, split)  # the protocol, stated; nobody to score
        why = "no test users" if len(inter) else "no behaviour events yet"
        skipped.add("stage", "evaluation", f"{why}: nothing to measure the models on")
    if results and protocol.users:
        # what `evaluate` and the report say beside the numbers, said here too
        if said := repeat_targets_said(protocol.as_dict()):
            log(f"evaluation: {said}")
        if said := sessions_said(protocol.as_dict()):
            log(f"evaluation: {said}")
        if few := few_users_said(protocol.as_dict()):
            log(f"warning: {few}")
    for r in results:
        r.extra.update(timings.get(r.model, {}))
        r.extra["validation_ndcg@10"] = validation.get(r.model)
        if groups is not None:
            r.extra["validation_group_ndcg@10"] = group_validation.get(r.model)
        log(
            f"test {r.model:12s} {HEADLINE} {r.metrics[HEADLINE]:.4f}  hr@10 {r.metrics['hr@10']:.4f}  coverage@10 {r.metrics.get('coverage@10', 0):.3f}"
        )
    if len(inter):
        # the test-fold numbers above are those of the train-fold fits: each model is saved as it
        # was evaluated before its refit on all data, so `shelfwise evaluate` scores the same fits
        evaluated_dir = workdir / BUNDLES_DIR / f".evaluated-{lineage_run_id}"
        with console.stage("refit", ["search", "serving lists", "registry"]):
            refit = _refit_on_all(
                models,
                inter,
                timings,
                settings.refit_budget_s,
                log,
                evaluated_dir,
                caps,
                settings.sasrec_refresh_epochs,
            )
    else:
        evaluated_dir = workdir / BUNDLES_DIR / ".evaluated-none"  # never made: nothing is refit
        refit = {"models": [], "skipped": sorted(models), "seconds": 0.0, "reason": "no events"}
    manifest = {
        "default_model": default,
        "refit": refit,
        "protocol": protocol.as_dict(),
        "metrics": {r.model: r.metrics for r in results},
        "ci95": {r.model: {k: list(v) for k, v in r.ci.items()} for r in results},
        # the metric that chose the default model: the registry's gates read the same one
        "default_chosen_by": chosen_by,
        "data_versions": data_versions,
        "lineage": {
            "train_run_id": lineage_run_id,
            "ingest_run_id": ingest_run,
            "feedback_as_of": feedback_as_of,
        },
        "fusion_generators": fusion_info["generators"] if fusion_info else [],
        "evaluated_models": {
            n: f"{EVALUATED_DIR}/{n}" if n in refit["models"] else f"models/{n}" for n in models
        },
        "settings": asdict(settings),
    }
    synonym_files = [workdir / "config" / "synonyms.txt"]
    if data_dir is not None:
        synonym_files.insert(0, Path(data_dir) / "synonyms.txt")
    with console.stage("search", ["serving lists", "registry"]):
        search_dir, search_info = _build_search(workdir, inter, log, synonym_files, settings)
    if search_info is None:
        skipped.add("stage", "search", "no catalog with text to index")
    for part, stage in (("finetune", "search fine-tune"), ("cross_encoder", "search cross-encoder")):
        if search_info and "stopped" in (search_info.get(part) or {}):
            got = search_info[part]
            caps.add(stage, f"{got.get('planned_steps')} steps", str(got["stopped"]))
    manifest["search"] = search_info
    faq_dir, faq_info = _build_faq(workdir, log)
    manifest["faq"] = faq_info
    t0 = time.monotonic()
    with console.stage("serving lists", ["registry"]):
        arrays = _serving_arrays(workdir, models[default], inter, settings, models.get("popularity"), catalog)
    manifest["serving"] = {
        "toplist_width": int(arrays["toplist"].shape[1]) if "toplist" in arrays else 0,
        "toplist_model": default if "toplist" in arrays else None,
        "purchases": int(len(arrays["purchase_user"])),
        "seconds": round(time.monotonic() - t0, 1),
    }
    log(f"serving: top lists for {len(arrays.get('toplist', [])):,} users in {time.monotonic() - t0:.1f}s")
    manifest["skipped"] = list(skipped)  # both as the last stage left them
    manifest["budget_caps"] = list(caps)
    bundle = write_bundle(
        workdir,
        models=models,
        default_model=default,
        interactions=inter,
        catalog=catalog,
        manifest=manifest,
        extra_dirs={
            **({"search": search_dir} if search_dir else {}),
            **({"faq": faq_dir} if faq_info else {}),
            **({EVALUATED_DIR: evaluated_dir} if evaluated_dir.exists() else {}),
        },
        serving_arrays=arrays,
        make_current=False,  # going live is the registry's decision (below)
    )
    from ..governance._erase import erased_while_training

    late = erased_while_training(workdir, bundle, reading_from)  # (set before ingest and absorb)
    if late["users"]:
        log(
            f"privacy: {late['users']:,} user(s) erased while this run trained left bundle {bundle.name} "
            f"({late['steps']:,} steps)"
        )
    report = {
        "bundle": str(bundle),
        "bundle_version": bundle.name,
        "default_model": default,
        "protocol": protocol.as_dict(),
        "few_users": (few_users_said(protocol.as_dict()) or None) if results else None,
        "results": [r.as_dict() for r in results],
        "validation_ndcg@10": validation,
        **({"validation_group_ndcg@10": group_validation} if groups is not None else {}),
        "default_chosen_by": chosen_by,
        "fusion": fusion_info,
        "tuned": tuned,
        "data_versions": data_versions,
        "lineage_run_id": lineage_run_id,
        "search": search_info,
        "faq": faq_info,
        "skipped": list(skipped),
        "budget_caps": list(caps),
        "seconds": round(time.monotonic() - t_all, 1),
    }
    reports = workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    report_json = reports / "evaluation.json"
    report_json.write_text(json.dumps(report, indent=2, default=str))
    from ..evaluation._report import write_evaluation_report

    # (rendered with the JSON, so that a registry stage that fails leaves no older page beside
    # this run's numbers; rendered again below to say whether the bundle went live)
    html = write_evaluation_report(reports / "evaluation.html", report)
    with console.stage("registry"):
        runs = _track(workdir, report, models, timings)
        report["registry"] = _register(workdir, bundle, runs.get(default), actor, log)
    report_json.write_text(json.dumps(report, indent=2, default=str))
    # the page says whether this bundle went live (a candidate's report replaces the live one's)
    html = write_evaluation_report(reports / "evaluation.html", report)
    log(f"bundle {bundle.name}: default model {default}; report {html}")
    return TrainResult(
        bundle,
        default,
        protocol.as_dict(),
        [r.as_dict() for r in results],
        validation,
        fusion_info,
        timings,
        tuned,
        report_json,
        html,
        runs,
        report["registry"],  # type: ignore[arg-type]
        refit,
        list(skipped),
        list(caps),
    )


def _planned_trials(name: str, settings: TrainSettings) -> int:
    """Optuna trials a model's tuning runs (0: not tuned)."""
    return planned_trials(name, settings.tune_trials) if settings.tune_budget_s > 0 else 0


def fusion_versus_parts(
    info: dict[str, Any], gains: dict[str, np.ndarray] | None, rounds: int, seed: int
) -> str:
    """The fusion against its best generator on the validation users held out from its
    ranker's training: sets `beats_parts` (its point estimate above every generator's: what
    makes it the default model) and `holdout_vs_best_part` (the difference of NDCG@10 with its
    paired 95% interval: a percentile bootstrap over those users, the same users resampled for
    both models, `rounds` and `seed` as the evaluation's intervals; `gain_shown` only when the
    interval is above 0); returns the line `train` logs, which calls a difference a gain only
    when its interval excludes 0. `gains`: per held-out user, NDCG@10 of the fusion and of each
    generator (`Fusion.holdout_gains_`; None: no interval)."""
    from ..evaluation import bootstrap_ci

    hold = info.get("holdout_ndcg@10") or {}
    parts = {g: v for g, v in hold.items() if g != "fusion"}
    best = max(parts, key=lambda g: (parts[g], g), default=None)
    best_part = parts[best] if best is not None else -1.0
    info["beats_parts"] = bool(hold and hold["fusion"] > best_part)
    line = f"fusion: held-out validation {HEADLINE} {hold.get('fusion', float('nan')):.4f} vs best part {best_part:.4f}"
    if best is None or not gains or "fusion" not in gains or best not in gains or not len(gains["fusion"]):
        return line + (f" ({best})" if best else "")
    diff = gains["fusion"] - gains[best]
    lo, hi = bootstrap_ci(diff, rounds=rounds, seed=seed)
    shown = lo > 0.0
    info["holdout_vs_best_part"] = {
        "part": best,
        "difference": float(diff.mean()),
        "ci95": [lo, hi],
        "users": len(diff),
        "gain_shown": shown,
        "method": f"paired percentile bootstrap over the held-out users ({rounds:,} rounds, seed {seed})",
    }
    said = f"{diff.mean():+.4f}, paired 95% interval [{lo:+.4f}, {hi:+.4f}] over {len(diff):,} users"
    if shown:
        verdict = "a gain"
    elif hi < 0.0:
        verdict = "below its best part"
    else:
        verdict = "covers 0: no gain shown" + (
            " (made the default on its point estimate)" if info["beats_parts"] else ""
        )
    return f"{line} ({best}): {said}: {verdict}"


def _fit_fusion(
    models: dict[str, Recommender],
    gens: dict[str, Recommender],
    split: Split,
    catalog: Catalog,
    settings: TrainSettings,
    timings: dict[str, dict[str, float]],
    skipped: _Skips,
) -> dict[str, Any] | None:
    """The LightGBM ranker over the generators' candidates, trained on the validation fold;
    None (and a reason) when the fold gives it nothing to learn from."""
    t0 = time.monotonic()
    fusion = Fusion(seed=settings.seed)
    try:
        fusion.fit(
            split.train,
            generators=gens,
            validation=split.validation,
            item_category=catalog.category_codes if (catalog.category_codes >= 0).any() else None,
            item_price=catalog.prices if np.isfinite(catalog.prices).any() else None,
            item_brand=_brand_codes(catalog),
            item_attributes=_item_attributes(catalog),
        )
        info = fusion.ranker_report_
    except NoRankerData as exc:  # a few users: none of them has what it did next among the candidates
        skipped.add("stage", "fusion", str(exc))
        return None
    timings["fusion"] = {
        "train_seconds": round(time.monotonic() - t0, 2),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    models["fusion"] = fusion
    info["generators"] = list(gens)
    return info


def _quarantined_instead(workdir: Path) -> str:
    """Where the products and events went when none was curated: the open quarantine's rows of
    those tables by reason (ESCI's judgments, products without a title: all quarantined, and
    train said only "no product and no event")."""
    from ..storage import read_only

    try:
        with read_only(workdir) as (con, _):
            rows = con.sql(
                "SELECT table_name, reason, count(*) FROM quarantine.rows WHERE status = 'open' "
                "AND table_name IN ('products', 'events') GROUP BY 1, 2 ORDER BY 3 DESC"
            ).fetchall()
    except Exception:  # noqa: BLE001 - (no quarantine yet: nothing to add)
        return ""
    if not rows:
        return ""
    said = "; ".join(f"{n:,} {t} rows {r}" for t, r, n in rows[:4])
    return (
        f"; the quarantine holds them instead ({said}): `shelfwise quarantine list --workdir {workdir}` "
        "shows why (a product needs a title; an event a user or a session, a type and a time)"
    )


def _register(workdir: Path, bundle: Path, run_id: str | None, actor: str | None, log: Any) -> dict[str, Any]:
    """Register the bundle as a candidate; in single-user mode it goes live at once, otherwise
    it waits for its gates and an approval (`shelfwise models promote`)."""
    from ..governance import People
    from ._registry import Registry

    reg = Registry(workdir)
    version = reg.register(bundle, run_id, actor)
    gates = {g.name: g.passed for g in reg.gates(version)}
    live = not People(workdir).governed
    if live:
        reg.promote_unattended(version, actor)
        failed = [n for n, ok in gates.items() if not ok]
        log(
            f"registry: version {version} is production (single-user mode); gates {gates}"
            + (
                f"\nwarning: it went live although {', '.join(failed)} failed (single-user mode puts every "
                "trained bundle live; `shelfwise models rollback` serves the one before)"
                if failed
                else ""
            )
        )
    else:
        log(
            f"registry: version {version} registered as candidate; gates {gates}; a steward, engineer or admin "
            f"approves it (`shelfwise models approve --version {version}`, not the person who trained it), then "
            "`shelfwise models promote` puts it live"
        )
    return {"version": version, "gates": gates, "production": live}


def _serving_arrays(
    workdir: Path,
    model: Recommender,
    inter: Interactions,
    settings: TrainSettings,
    popularity: Recommender | None = None,
    catalog: Catalog | None = None,
) -> dict[str, np.ndarray]:
    """What serving answers from without running a model: the default model's top list for
    every known user (seen items excluded; business rules still apply at serve time), each
    user's purchases with their time (repurchase windows), and the cold-start order of every
    item (`cold_start`): by popularity, ties (every item, in a shop with no events yet) broken
    by how relevant the shop's search judgments found the item, then by catalog order, taken
    round-robin over the categories (`_cold_start`)."""
    from ..storage import read_only

    out: dict[str, np.ndarray] = {}
    width = min(settings.toplist_width, inter.n_items)
    if 0 < inter.n_users <= settings.toplist_max_users and width > 0:
        # rows left at -1 when the time budget runs out are computed by the server on request
        top = np.full((inter.n_users, width), -1, np.int32)
        t0 = time.monotonic()
        for start in range(0, inter.n_users, 1024):
            if time.monotonic() - t0 > settings.toplist_budget_s:
                break
            batch = np.arange(start, min(start + 1024, inter.n_users))
            # the full history (the model was fitted on the training part): what serving would use
            got = model.recommend(batch, width, exclude_seen=True, history=inter).ids
            # a user the model has no evidence for (`evidence_scores`: every place -1) is
            # computed too: NO_EVIDENCE in the first place, so the server does not read the row
            # as "not precomputed" and run the model again on every request
            got[got[:, 0] < 0, 0] = NO_EVIDENCE
            top[batch] = got
        out["toplist"] = top
    rows: list[tuple[Any, ...]] = []
    judged: list[tuple[Any, ...]] = []
    with read_only(workdir) as (con, tables):
        if "events" in tables:
            rows = con.sql(
                "SELECT user_id, product_id, max(epoch(timestamp))::BIGINT FROM curated.events "
                "WHERE event_type = 'purchase' AND product_id IS NOT NULL GROUP BY 1, 2"
            ).fetchall()
        if "judgments" in tables:
            judged = con.sql(
                "SELECT product_id, sum(relevance - (SELECT min(relevance) FROM curated.judgments)) "
                "FROM curated.judgments WHERE relevance IS NOT NULL GROUP BY 1"
            ).fetchall()
    users = {u: i for i, u in enumerate(inter.user_ids)}
    items = {p: i for i, p in enumerate(inter.item_ids)}
    trip = [(users[u], items[p], ts) for u, p, ts in rows if u in users and p in items]
    out["purchase_user"] = np.array([t[0] for t in trip], np.int32)
    out["purchase_item"] = np.array([t[1] for t in trip], np.int32)
    out["purchase_ts"] = np.array([t[2] for t in trip], np.int64)
    pop = (
        np.asarray(popularity.score(np.array([0]))[0], np.float64)
        if popularity is not None
        else inter.item_counts().astype(np.float64)
    )
    prior = np.zeros(inter.n_items)
    for p, gain in judged:
        if p in items and gain is not None:
            prior[items[p]] = float(gain)
    if catalog is None:
        out["cold_start"] = diverse_cold_start(pop, prior, [""] * inter.n_items)
    else:
        order = diverse_cold_start(pop, prior, catalog.categories, catalog.in_stock)
        if catalog.listed is not None:  # a product known from events alone is never served
            order = order[np.asarray(catalog.listed, bool)[order]]
        out["cold_start"] = order
    return out


def _build_faq(workdir: Path, log: Any) -> tuple[Path, dict[str, Any] | None]:
    """The shop's FAQ encoded into the bundle (issue 18), so `ask` and POST /v1/ask do not
    encode it per run; nothing when the shop has no faq table."""
    from ..insights._faq_stage import build_faq_stage

    path = workdir / "tmp" / "faq-build"
    info = build_faq_stage(workdir, path)
    if info:
        log(f"faq: {info['entries']:,} entries encoded in {info['seconds']}s")
        if twins := info["near_twins"]["pairs"]:
            first = info["near_twins"]["examples"][0]
            log(
                f"faq: {twins:,} pair(s) of entries ask nearly the same question and answer it "
                f"differently (e.g. {first['faq_ids'][0]} {first['questions'][0]!r} and "
                f"{first['faq_ids'][1]} {first['questions'][1]!r}): the shopper's exact words decide "
                "which answers; merge true duplicates, or put the words that tell them apart in the "
                "questions (near_twins in the report's faq)"
            )
    return path, info


def _build_search(
    workdir: Path, inter: Interactions, log: Any, synonym_files: list[Path], settings: TrainSettings
) -> tuple[Path | None, dict[str, Any] | None]:
    """The search index (and ranker, when judgments exist) when the catalog has text; the
    shop's synonyms come from the first of `synonym_files` that exists."""
    import shutil

    from ..features._text_encoder import has_text
    from ..search import SearchEngine, load_query_log, load_search_data, load_synonyms
    from ..search._build import load_ctr

    catalog, queries, gains = load_search_data(workdir)
    if catalog is None or not has_text(catalog.title):
        return None, None  # (the caller records and logs the skip)
    t0 = time.monotonic()
    counts = inter.item_counts()
    index = {p: i for i, p in enumerate(inter.item_ids)}
    popularity = np.array([counts[index[p]] if p in index else 0 for p in catalog.product_ids], np.float32)
    path = workdir / "tmp" / "search-build"
    if path.exists():
        shutil.rmtree(path)
    synonyms_file = next((p for p in synonym_files if p.exists()), None)
    parts: dict[str, float] = {}  # where the stage's time goes: each call's own (kept or not)

    @contextmanager
    def timed(part: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        parts[part] = round(time.monotonic() - start, 1)

    ctr, query_log = load_ctr(workdir, catalog.product_ids), load_query_log(workdir)
    with timed("index"):
        engine = SearchEngine(path, candidates=settings.search_candidates).build(
            catalog,
            popularity=popularity,
            ctr=ctr,
            synonyms=load_synonyms(synonyms_file),
            query_log=query_log,
            language=settings.search_language,
        )
    info: dict[str, Any] = {"products": len(catalog), "ranker": None, "candidates": engine.candidates}
    an = engine.analyzer_
    info["language"] = {"language": an.language, "why": an.why, "compound_words": len(an.vocabulary)}
    log(f"search: text analyzed as {an.language.capitalize()}: {an.why}")
    info["build_seconds"] = engine.build_seconds_

    info["encoders"] = {
        "main": engine.semantic_.encoder,
        "multilingual": engine.multilingual_ is not None,
    }
    if gains and settings.search_finetune_budget_s > 0 and settings.search_finetune_steps > 0:
        from ..search import FinetuneSettings

        with timed("MiniLM fine-tuning"):
            ft = engine.finetune_encoder(
                queries,
                gains,
                seed=settings.seed,
                settings=FinetuneSettings(
                    max_steps=settings.search_finetune_steps,
                    budget_s=settings.search_finetune_budget_s,
                    seed=settings.seed,
                ),
            )
        info["finetune"] = {k: v for k, v in ft.items() if k != "settings"}
        info["encoders"]["main"] = engine.semantic_.encoder
        log(
            "search: MiniLM fine-tuned on "
            f"{ft.get('pairs', 0):,} judged pairs: held-out semantic NDCG@10 "
            f"{_r4(ft.get('validation_ndcg@10_untuned'))} untuned -> {_r4(ft.get('validation_ndcg@10_tuned'))} tuned, "
            f"kept={ft['kept']}, {ft.get('steps', 0)} of {ft.get('planned_steps', 0)} steps"
            + (f" ({ft['skipped']})" if "skipped" in ft else "")
            + (f"; {ft['stopped']}" if "stopped" in ft else "")
        )
    from ..governance._consent import consent_withdrawn
    from ..search._clicks import load_click_groups

    # searches of users without personalization consent are behaviour no model learns from
    clicks = load_click_groups(
        workdir, leave_out=lambda users: consent_withdrawn(workdir, "personalization", among=users)
    )
    if gains or clicks:
        with timed("ranker"):
            info["ranker"] = engine.fit_ranker(queries, gains, clicks=clicks, seed=settings.seed)
        r = info["ranker"]
        log(
            f"search: ranker on {len(gains):,} judged queries and {r['click_groups']:,} click groups "
            f"({r['personalized_groups']:,} with the shopper's history; {r['served_pages']:,} served pages, "
            f"position-corrected: {r['position_bias_correction']}): "
            f"held-out ({r['holdout_label']}) NDCG@10 {_r4(r.get('holdout_ndcg@10'))}, kept={r['kept']}"
            + (f" [{r['holdout_protocol']}]" if r.get("holdout_protocol") else " [rounds chosen on them too]")
        )
    if gains and settings.search_cross_budget_s > 0 and settings.search_cross_steps > 0:
        from ..search import CrossSettings

        with timed("cross-encoder"):
            ce = engine.fit_cross_encoder(
                queries,
                gains,
                seed=settings.seed,
                settings=CrossSettings(
                    max_steps=settings.search_cross_steps,
                    budget_s=settings.search_cross_budget_s,
                    seed=settings.seed,
                ),
            )
        info["cross_encoder"] = ce
        log(
            f"search: cross-encoder on {ce.get('pairs', 0):,} pairs: held-out NDCG@10 "
            f"{_r4(ce.get('holdout_ndcg@10'))}, kept={ce['kept']}, {ce.get('steps', 0)} of {ce.get('planned_steps', 0)} steps"
            + (f" ({ce['skipped']})" if "skipped" in ce else "")
            + (f"; {ce['stopped']}" if "stopped" in ce else "")
        )
    with timed("saving"):
        engine.save()
    info["seconds"] = round(time.monotonic() - t0, 1)
    info["part_seconds"] = parts
    learned = ", ".join(f"{k} {v}s" for k, v in parts.items() if k not in ("index", "saving"))
    log(
        f"search: {len(catalog):,} products indexed (tantivy + MiniLM/faiss) in {parts['index']}s; "
        f"search built in {info['seconds']}s" + (f" ({learned})" if learned else "")
    )
    return path, info


def _r4(value: Any) -> Any:
    """A number (or a dict of them) to 4 decimals, as a log line prints it (reports keep them whole)."""
    if isinstance(value, dict):
        return {k: _r4(v) for k, v in value.items()}
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    return value


def _has_text(catalog: Catalog) -> bool:
    from ..features._text_encoder import has_text

    return has_text(catalog.titles)


def _brand_codes(catalog: Catalog) -> np.ndarray | None:
    """Brand code per item (-1 unknown), or None when the catalog names no brand."""
    if not catalog.brands or not any(catalog.brands):
        return None
    codes: dict[str, int] = {}
    return np.array([codes.setdefault(b.lower(), len(codes)) if b else -1 for b in catalog.brands], np.int64)


def _item_attributes(catalog: Catalog) -> Any:
    """SASRec's item attributes (`attribute_matrix`): each item's brand, every level of its
    category path (`A`, `A > B`, ...) and each value of its `attributes` object (a list counts
    each element), those two or more items share; an `attributes` key whose values are nearly
    all different (a date, a sales rank, a free-text bullet) is left out. None when fewer than
    `MIN_ATTRIBUTE_SHARE` of the items hold a shared value (too little to be worth the cost)."""
    if "item_attributes" not in catalog.derived:  # SASRec, its refit and the fusion read it
        catalog.derived["item_attributes"] = _attribute_matrix_of(catalog)
    return catalog.derived["item_attributes"]


def _attribute_matrix_of(catalog: Catalog) -> Any:
    """`_item_attributes`, computed."""
    from collections import Counter

    from ..models._sasrec import attribute_matrix

    n = len(catalog.categories)
    brands = catalog.brands or [""] * n
    extra = catalog.attributes or [""] * n
    rows = []
    for cat, brand, attrs in zip(catalog.categories, brands, extra, strict=True):
        levels = [p.strip().lower() for p in cat.split(">")] if cat else []
        values = ["category:" + " > ".join(levels[: i + 1]) for i in range(len(levels)) if levels[i]]
        if brand:
            values.append("brand:" + brand.strip().lower())
        values += _attribute_values(attrs)
        rows.append(values)
    # a key whose values are mostly distinct says little that items share
    keys = Counter(v.split("=", 1)[0] for r in rows for v in r if v.startswith("attribute:"))
    distinct = Counter(v.split("=", 1)[0] for v in {v for r in rows for v in r if v.startswith("attribute:")})
    noisy = {k for k, n in keys.items() if distinct[k] > 0.5 * n}
    if noisy:
        rows = [[v for v in r if v.split("=", 1)[0] not in noisy] for r in rows]
    matrix = attribute_matrix(rows)
    if matrix is None or np.count_nonzero(np.diff(matrix.indptr)) < MIN_ATTRIBUTE_SHARE * n:
        return None
    return matrix


#: the share of items that must hold a shared attribute value for SASRec to read attributes
MIN_ATTRIBUTE_SHARE = 0.05


def _attribute_values(text: str) -> list[str]:
    """`key=value` for each scalar of a product's attributes object (JSON text), each element of
    a list; nested objects and unreadable text give none."""
    if not text:
        return []
    try:
        obj = json.loads(text)
    except ValueError:
        return []
    if not isinstance(obj, dict):
        return []
    out = []
    for key, value in obj.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str | int | float | bool) and str(v).strip():
                out.append(f"attribute:{str(key).strip().lower()}={str(v).strip().lower()}")
    return out


def _title_embeddings(catalog: Catalog) -> np.ndarray:
    """MiniLM embeddings of the catalog's titles (item order), computed once per catalog."""
    from ..features._text_encoder import encode_texts

    cached = getattr(catalog, "_title_embeddings", None)
    if cached is None:
        cached = encode_texts(catalog.titles)
        catalog._title_embeddings = cached  # type: ignore[attr-defined]
    return cached


def _refit_on_all(
    models: dict[str, Recommender],
    inter: Interactions,
    timings: dict[str, dict[str, float]],
    budget_s: float,
    log: Any,
    evaluated_dir: Path | None = None,
    caps: _Caps | None = None,
    sasrec_refresh_epochs: int = 0,
) -> dict[str, Any]:
    """Refit the evaluated models on every interaction, with their tuned settings, for serving.

    The reported metrics are those of the models fitted on the training part of the split (the
    only honest ones); what the bundle serves has also learnt from each user's latest steps,
    which leave-last-out held out (often the freshest co-occurrences). SASRec goes on from its
    training fit for `sasrec_refresh_epochs` epochs over every step (a whole new training would
    have no validation to stop it; 0: it serves its training fit); the fusion keeps its ranker
    (trained on the validation fold) and refreshes its item statistics, its generators being
    refit in place.
    Each model is first saved under `evaluated_dir` as it was evaluated (its train-fold fit).
    Every model is refit; `budget_s` caps the seconds (no model starts after it, and `caps`
    records that the served models then depend on the machine's speed).
    """
    if budget_s <= 0:
        return {"models": [], "skipped": sorted(models), "seconds": 0.0, "reason": "off"}
    t0 = time.monotonic()
    done: list[str] = []
    # in the run's order, not by measured cost: which models are refit, and the report, must not
    # depend on the machine's speed (unless the cap is hit, which is then reported)
    order = [n for n in models if n not in ("sasrec", "fusion")]
    capped = False

    def over(left: str) -> bool:
        """Past the cap: nothing more starts, and the first time the run's caps say so."""
        nonlocal capped
        if time.monotonic() - t0 <= budget_s:
            return False
        if not capped and caps is not None:
            caps.add("refit", f"{budget_s:g} s", f"stopped before {left}; refit: {', '.join(done) or 'none'}")
        capped = True
        return True

    for name in order:
        if over(name):
            break
        if evaluated_dir is not None:
            models[name].save(evaluated_dir / name)
        models[name].fit(inter)
        done.append(name)
    from ..models import SASRec

    sasrec = models.get("sasrec")
    refresh = sasrec_refresh_epochs > 0 and getattr(sasrec, "net_", None) is not None
    if isinstance(sasrec, SASRec) and refresh and not over("sasrec's refresh"):
        if evaluated_dir is not None:
            sasrec.save(evaluated_dir / "sasrec")
        sasrec.refresh(inter, sasrec_refresh_epochs)
        done.append("sasrec")
    if "fusion" in models and not over("fusion's item statistics"):
        if evaluated_dir is not None:
            models["fusion"].save(evaluated_dir / "fusion")
        models["fusion"].fit(inter)  # item statistics; the ranker and generators stay as set
        done.append("fusion")
    secs = round(time.monotonic() - t0, 1)
    skipped = sorted(set(models) - set(done))
    log(f"refit on all {len(inter):,} steps for serving: {', '.join(done) or 'none'} in {secs}s")
    return {"models": done, "skipped": skipped, "seconds": secs, "steps": len(inter)}


def _fit_one(
    name: str,
    split: Split,
    catalog: Catalog,
    settings: TrainSettings,
    tuned: dict[str, dict[str, Any]],
    log: Any,
    has_val: bool = True,
    console: RunConsole | None = None,
    caps: _Caps | None = None,
    groups: np.ndarray | None = None,
) -> Recommender:
    """One model fitted on the training part: SASRec stopped early on the validation fold,
    the others tuned on it (with their defaults when there are no validation users). With
    product `groups`, the models that count learn per group and tuning scores by group."""
    cls = RECOMMENDERS[name]
    ran = [0]  # Optuna trials that ended, scored or failed (a NaN score): the cap is what stops short

    def step() -> None:
        ran[0] += 1
        if console is not None:
            console.advance()

    if name == "sasrec":
        from ..models import SASRec

        cfg = {
            "epochs": settings.sasrec_epochs,
            "max_seconds": settings.sasrec_budget_s,
            "seed": settings.seed,
            **SASRec.upgrade_params(settings.sasrec),
        }
        if cfg.get("item_text", "auto") == "auto":  # titles with words: SASRec reads them too
            cfg["item_text"] = _has_text(catalog)
        wanted = catalog is not None and cfg.get("item_attributes", "auto") is not False
        attributes = _item_attributes(catalog) if wanted else None
        if cfg.get("item_attributes", "auto") == "auto" or attributes is None:
            # brands, categories or attribute values that items share (none: nothing to read)
            cfg["item_attributes"] = attributes is not None
        model = SASRec(**cfg)

        def validate(m: Recommender) -> float:
            step()  # one validation per `eval_every` epochs: the progress of the run
            return ndcg_at_10(
                m,
                split.validation,
                max_users=settings.max_tune_users,
                seed=settings.seed,
                listed=catalog.listed if catalog is not None else None,
            )

        model.fit(
            split.train,
            item_embeddings=_title_embeddings(catalog) if cfg["item_text"] else None,
            item_attributes=attributes if cfg["item_attributes"] else None,
            validation=validate,
        )
        tuned[name] = {
            "params": cfg,
            "epochs": model.epochs_,
            "stopped_by": model.stopped_by_,
            "best_validation_ndcg@10": model.best_validation_,
        }
        if model.stopped_by_ == "time cap" and caps is not None:
            caps.add(
                "sasrec training",
                f"{model.epochs} epochs, capped at {model.max_seconds:g} s",
                f"epoch {model.epochs_} of {model.epochs}",
            )
        return model
    if name == "content":
        return Content().fit(split.train, item_embeddings=_title_embeddings(catalog))
    params, trials, best = tune(
        name,
        split,
        budget_s=settings.tune_budget_s if has_val else 0.0,
        max_trials=settings.tune_trials,
        max_users=settings.max_tune_users,
        seed=settings.seed,
        on_trial=step,
        listed=catalog.listed if catalog is not None else None,
        groups=groups,
    )
    planned = planned_trials(name, settings.tune_trials) if has_val and settings.tune_budget_s > 0 else 0
    if trials:
        tuned[name] = {
            "params": params,
            "trials": len(trials),
            "planned_trials": planned,
            "best_validation_ndcg@10": max(t["validation_ndcg@10"] for t in trials),
        }
        # (4 significant digits in the log: a regularization may be 1e-5; the report keeps them whole)
        shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in params.items()}
        log(f"{name}: {len(trials)} Optuna trials, best {shown}")
    if ran[0] < planned and caps is not None:
        caps.add(
            f"tuning {name}",
            f"{planned} trials, capped at {settings.tune_budget_s:g} s",
            f"{ran[0]} of {planned} trials",
        )
    return best if best is not None else fit_model(cls(**params), split.train, groups)


def _track(
    workdir: Path,
    report: dict[str, Any],
    models: dict[str, Recommender],
    timings: dict[str, dict[str, float]],
) -> dict[str, str]:
    """One MLflow run per model in the workdir's SQLite tracking store."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    from ..governance._model_versions import no_telemetry, tracking_uri

    no_telemetry()
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(workdir))
    # the experiment's artifacts live in the workdir too, not in whatever directory train ran from
    if mlflow.get_experiment_by_name("shelfwise-recommendations") is None:
        mlflow.create_experiment(
            "shelfwise-recommendations", artifact_location=(workdir / "mlruns").resolve().as_uri()
        )
    mlflow.set_experiment("shelfwise-recommendations")
    runs = {}
    data_version = ",".join(f"{t}@v{v['version']}" for t, v in sorted(report["data_versions"].items()))
    for r in report["results"]:
        name = r["model"]
        with mlflow.start_run(run_name=f"{name}-{report['bundle_version']}") as run:
            params = {k: str(v)[:250] for k, v in models[name].get_params().items()}
            mlflow.log_params({"model": name, **params})
            metrics = {k.replace("@", "_at_"): float(v) for k, v in r["metrics"].items() if np.isfinite(v)}
            metrics.update({k: float(v) for k, v in timings.get(name, {}).items()})
            mlflow.log_metrics(metrics)
            mlflow.set_tags(
                {
                    "data_version": data_version,
                    "lineage_run_id": report["lineage_run_id"],
                    "bundle_version": report["bundle_version"],
                    "protocol": f"{report['protocol']['split']}, {report['protocol']['candidates']}",
                    "default_model": str(name == report["default_model"]),
                }
            )
            runs[name] = run.info.run_id
    return runs


class HistoryTrimmedWarning(UserWarning):
    """`evaluate` on a bundle whose history retention trimmed: not train's test numbers."""


def evaluate_workdir(
    workdir: str | Path,
    *,
    models: list[str] | None = None,
    sampled: int | None = None,
    bootstrap_rounds: int = 1000,
    seed: int = 0,
    bundle_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Re-evaluate the current bundle's models (`bundle_dir`: another bundle's, a candidate not
    yet live) under its protocol (the same deterministic split of the bundle's data), full
    ranking unless `sampled` negatives are asked for."""
    from ..errors import ShelfwiseError, whole_number
    from ..evaluation._report import write_evaluation_report
    from ..serving import Bundle, current_bundle

    if sampled is not None:
        sampled = whole_number(
            sampled, "sampled", "the number of random unseen items to rank among", minimum=1
        )
    workdir = Path(workdir)
    current = current_bundle(workdir)
    bundle = Bundle.load(bundle_dir or current)
    nothing = _nothing_to_evaluate(bundle)
    if nothing is not None:
        # (a search-first shop: no recommendation to evaluate, its search measured at training)
        return nothing | {"search": search_quality(bundle.manifest.get("search"))}
    split = make_split(bundle.interactions, bundle.manifest["protocol"]["split"])
    missing = set(models or []) - set(bundle.models)
    if missing:
        raise ModelsNotInBundle(
            f"models {sorted(missing)} are not in bundle {bundle.version} ({sorted(bundle.models)})",
            kind="model of the bundle",
            name=sorted(missing)[0],
            known=sorted(bundle.models),
        )
    # the fits that were evaluated by `train` (fitted without the test targets), not the served
    # refits on every interaction: scoring those on the test fold would score training data
    evaluated, not_evaluable = load_evaluated_models(bundle)
    chosen = {n: m for n, m in evaluated.items() if models is None or n in models}
    if not chosen:
        raise ShelfwiseError(
            f"bundle {bundle.version} keeps no fit of {sorted(models or bundle.models)} made without "
            "the test targets (it predates evaluated fits); retrain to evaluate"
        )
    protocol, results = evaluate_all(
        chosen,
        split,
        sampled=sampled,
        bootstrap_rounds=bootstrap_rounds,
        seed=seed,
        listed=bundle.listed,
        groups=None if bundle.groups is None else np.asarray(bundle.groups.codes, np.int64),
    )
    report = {
        "bundle": str(bundle.path),
        "bundle_version": bundle.version,
        "default_model": bundle.manifest["default_model"],
        "protocol": protocol.as_dict(),
        # a test fold too small to act on, in words (null otherwise): what the text output and
        # the HTML report say beside the numbers, for a script reading the JSON
        "few_users": few_users_said(protocol.as_dict()) or None,
        "results": [r.as_dict() for r in results],
        "seed": seed,  # (a sampled protocol's negatives and ties: merged only with the same draw)
        "lineage_run_id": bundle.manifest["lineage"]["train_run_id"],
        "data_versions": bundle.manifest["data_versions"],
        "fits": "train fold (as evaluated by train; the served models are refit on every interaction)",
        "not_evaluable": not_evaluable,
        # the bundle's search, as training measured it on its held-out judged queries (a shop
        # with events and judgments read no search number from `evaluate`)
        "search": search_quality(bundle.manifest.get("search")),
    }
    trimmed = bundle.manifest.get("retention")
    if trimmed:  # retention removed old steps of the bundle's history since train measured it
        report["history_trimmed"] = trimmed
        import warnings

        warnings.warn(
            HistoryTrimmedWarning(
                f"bundle {bundle.version}'s history was trimmed by retention ({trimmed['steps_removed']:,} "
                f"steps begun before {trimmed['cutoff']} removed): these numbers are measured on what is "
                "left, not train's (the registry and the manifest keep train's)"
            ),
            stacklevel=2,
        )
    reports = workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    if sampled:
        for r in report["results"]:
            r["validation_ndcg@10"] = None  # train validated under full ranking, not this protocol
        live = bundle_dir is None or Path(bundle_dir).resolve() == Path(current).resolve()
        path = reports / (f"evaluation-sampled{sampled}" + ("" if live else f"-{bundle.version}") + ".json")
        # (the full-ranking numbers of this bundle stay in train's report, named here: the
        # workdir's `evaluation.json`, or `evaluation-<bundle>.json` when that one is another
        # bundle's, a candidate trained after it)
        report["full_ranking_report"] = None
        for candidate in (reports / "evaluation.json", reports / f"evaluation-{bundle.version}.json"):
            full = _report_of(candidate)
            if full is not None and full.get("bundle_version") == bundle.version:
                report["full_ranking_report"] = str(candidate)
                break
        # `--models a,b` again: the models not asked for keep their sampled lines, as in the
        # full-ranking report (rewritten whole, the other models' sampled numbers were lost);
        # only a report of this bundle under the same protocol is merged
        previous = _report_of(path)
        written = report
        if (
            previous is not None
            and previous.get("bundle_version") == bundle.version
            # (compared as written: the protocol's cutoffs are a tuple here, a list once read)
            and previous.get("protocol") == json.loads(json.dumps(report["protocol"], default=str))
            and previous.get("seed", 0) == seed  # (another draw of negatives: not the same numbers)
        ):
            earlier = {r["model"]: r for r in previous.get("results", [])}
            now = {r["model"]: r for r in report["results"]}
            written = {
                **report,
                "results": [now.pop(m, r) for m, r in earlier.items()] + list(now.values()),
            }
        path.write_text(json.dumps(written, indent=2, default=str))
        report["report_html"] = str(write_evaluation_report(path.with_suffix(".html"), written))
        return report
    # `reports/evaluation.json` is train's report: of this bundle, what evaluate cannot recompute
    # (train's own validation numbers, fusion, tuning, search, skips, caps, timings) is carried
    # over, and the models not asked for keep their lines; another bundle's report is left alone
    previous = _report_of(reports / "evaluation.json")
    name = "evaluation"
    if previous is not None and previous.get("bundle_version") != bundle.version:
        name, previous = f"evaluation-{bundle.version}", None
    earlier = {r["model"]: r for r in (previous or {}).get("results", [])}
    for r in report["results"]:
        r["validation_ndcg@10"] = None
        r.update({k: v for k, v in earlier.get(r["model"], {}).items() if k in _TRAIN_ONLY})
    written = report
    if previous is not None:
        now = {r["model"]: r for r in report["results"]}
        written = {
            **previous,
            **{k: v for k, v in report.items() if k != "results"},
            "results": [now.pop(m, r) for m, r in earlier.items()] + list(now.values()),
        }
    (reports / f"{name}.json").write_text(json.dumps(written, indent=2, default=str))
    report["report_html"] = str(write_evaluation_report(reports / f"{name}.html", written))
    return report


# per-model fields of train's report that evaluate does not measure (it scores the test fold)
_TRAIN_ONLY = ("validation_ndcg@10", "train_seconds", "peak_rss_mb")


def _report_of(path: Path) -> dict[str, Any] | None:
    """The evaluation report in `path`; None when there is none (or it cannot be read)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def search_quality(search: Any) -> dict[str, Any] | None:
    """What training measured of a bundle's search on its held-out judged queries (the ranker's
    and the cross-encoder's held-out NDCG@10, with how they were held out), or None when it
    measured nothing (no judgments)."""
    if not isinstance(search, dict):
        return None
    ranker = search.get("ranker") or {}
    if not isinstance(ranker, dict) or not ranker.get("holdout_ndcg@10"):
        return None
    cross = search.get("cross_encoder") if isinstance(search.get("cross_encoder"), dict) else {}
    return {
        "held_out": ranker.get("holdout_label"),
        "held_out_queries": ranker.get("holdout_queries"),
        "ndcg@10": ranker.get("holdout_ndcg@10"),
        "protocol": ranker.get("holdout_protocol")
        or "the held-out queries also chose the ranker's boosting rounds (too few to halve)",
        "ranker_kept": ranker.get("kept"),
        "cross_encoder_ndcg@10": (cross or {}).get("holdout_ndcg@10"),
        "candidates": "the whole catalog; unjudged products count as irrelevant",
    }


def _nothing_to_evaluate(bundle: Any) -> dict[str, Any] | None:
    """The report of a bundle whose data has no test users (a shop with no or few events yet):
    `nothing_to_evaluate` says why, `results` is empty; None when there is something."""
    inter = bundle.interactions
    protocol = bundle.manifest.get("protocol", {}).get("split", "leave_last_out")
    if len(inter) == 0:
        reason = "no behaviour events yet: no user to evaluate recommendations for"
    elif len(make_split(inter, protocol).test) == 0:
        reason = f"no test users in the bundle's {len(inter):,} steps under {protocol}"
        if protocol == "leave_last_out":
            reason += " (a user needs >= 3 steps)"
    else:
        return None
    return {
        "bundle": str(bundle.path),
        "bundle_version": bundle.version,
        "default_model": bundle.manifest["default_model"],
        "protocol": bundle.manifest.get("protocol"),
        "few_users": None,  # (no test fold at all: `nothing_to_evaluate` says why)
        "results": [],
        "nothing_to_evaluate": reason,
        "skipped": bundle.manifest.get("skipped", []),
    }


def group_codes(groups: list[str]) -> np.ndarray | None:
    """An int code per item of the catalog's groups (`Catalog.groups`); None where it has none."""
    if not groups:
        return None
    return np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1].astype(np.int64)


def _served_groups(catalog: Catalog | None, n_items: int) -> np.ndarray | None:
    """The catalog's product groups as an int code per item, where some group holds several
    products (as served: one product per group); None otherwise (a catalog without groups)."""
    return product_groups(group_codes(catalog.groups) if catalog is not None else None, n_items)


def _fusion_by_group(
    models: dict[str, Recommender],
    gens: dict[str, Recommender],
    split: Split,
    catalog: Catalog | None,
    groups: np.ndarray,
) -> dict[str, float]:
    """The group NDCG@10 of the fusion and of each of its generators on the validation users
    its ranker held out (the same draw as `Fusion`'s: its seed and share)."""
    from ..features import Fold

    fusion = models["fusion"]
    fold = split.validation
    hold = np.random.default_rng(getattr(fusion, "seed", 0)).random(len(fold.users)) < getattr(
        fusion, "holdout", 0.2
    )
    sub = Fold(fold.name, fold.users[hold], fold.history, fold.targets[np.flatnonzero(hold)])
    listed = catalog.listed if catalog is not None else None
    return {
        n: ndcg_at_10(m, sub, listed=listed, groups=groups) for n, m in {"fusion": fusion, **gens}.items()
    }
