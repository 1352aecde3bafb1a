"""Features and batch scoring on Spark (`train --engine spark`).

Interactions: the curated events' item rows (filter, event weights) are read on Spark from the
table's Parquet version (`spark_event_rows`), in the table's order, and handed to the one-node
`Interactions` (index maps, funnel collapse), which training needs in one process anyway.

Batch scoring: the top-k of every user of a fitted model as a distributed job.

Training stays on one node (the per-shop models fit in one machine's memory: README, "Scaling
out"); scoring every user is what grows with the shop and splits cleanly. The fitted model - its
factors or neighbour lists and the interactions it answers from (each user's history, the seen
items to exclude) - is broadcast once to the executors, and `mapInPandas` scores the users of
each partition in batches with the model's own `recommend`, so every user gets exactly the
ranking the one-node path gives.

Users and items leave the job as the warehouse's ids: the user pseudonym and the product id.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RANKED_SCHEMA",
    "SCORES_SCHEMA",
    "check_output_folder",
    "recommend_all_spark",
    "recommend_batch_spark",
    "recommend_users_spark",
    "spark_event_rows",
    "spark_events_reader",
]

SCORES_SCHEMA = "user_id string, items array<string>, scores array<float>"


def recommend_all_spark(
    session: Any,
    model: Any,
    k: int = 10,
    *,
    partitions: int | None = None,
    exclude_seen: bool = True,
) -> Any:
    """A Spark DataFrame (`SCORES_SCHEMA`): for every user the fitted `model` knows, its top-k
    product ids (best first; fewer when the catalog runs out, or where the model has no evidence:
    item-kNN and transitions leave those places empty, `evidence_scores`) and their scores. Lazy: write it
    (`.write.parquet(...)`) or collect it. `partitions`: how many tasks score (default: the
    session's parallelism)."""
    import numpy as np

    n_users = int(model.interactions_.n_users)
    shipped = _broadcast(session, model)

    def score(batches: Any) -> Any:
        import pandas as pd

        m = shipped.value if hasattr(shipped, "value") else shipped
        user_ids = m.interactions_.user_ids
        item_ids = np.asarray(m.interactions_.item_ids, dtype=object)
        for pdf in batches:
            users = pdf["user_idx"].to_numpy(np.int64)
            if not len(users):
                continue
            res = m.recommend(users, k, exclude_seen=exclude_seen)
            keep = res.ids >= 0
            yield pd.DataFrame(
                {
                    "user_id": [str(user_ids[u]) for u in users],
                    "items": [
                        item_ids[row[ok]].astype(str).tolist() for row, ok in zip(res.ids, keep, strict=True)
                    ],
                    "scores": [
                        row[ok].astype(float).tolist() for row, ok in zip(res.scores, keep, strict=True)
                    ],
                }
            )

    users = session.range(n_users).withColumnRenamed("id", "user_idx")
    if partitions:
        users = users.repartition(partitions)
    return users.mapInPandas(score, schema=SCORES_SCHEMA)


def _broadcast(session: Any, model: Any) -> Any:
    """The model as a broadcast variable (sent to each executor once, not with every task); a
    Spark Connect session has no broadcast variables: the model then travels with the function."""
    try:
        context = session.sparkContext
    except Exception:  # noqa: BLE001 - Spark Connect raises here (no JVM context on the client)
        return model
    return context.broadcast(model)


def spark_event_rows(session: Any, files: str, weights: dict[str, float]) -> dict[str, Any]:
    """The item events of a curated events version written as Parquet (`files`, a glob), as
    `load_interactions` reads them (`user_id`, `product_id`, `ts` epoch seconds, `w`), computed
    on Spark. Rows come back in the order DuckDB reads the same files (file path, then row
    within the file): ties in time keep their order, so the interactions are the same. (Epoch
    seconds are rounded half to even, as DuckDB casts `epoch(timestamp)` to BIGINT.)"""
    import numpy as np

    from ..features._build import event_weight_sql

    weight, where = event_weight_sql(weights, q="`")
    from pyspark.sql import functions as F

    # (the hidden `_metadata` column is the file source's: taken before the frame becomes a view)
    events = session.read.parquet(files)
    events.select(
        "*", F.col("_metadata.file_path").alias("_file"), F.col("_metadata.row_index").alias("_row")
    ).createOrReplaceTempView("_sw_events")
    rows = session.sql(
        f"""SELECT user_id, product_id, CAST(bround(unix_micros(CAST(`timestamp` AS TIMESTAMP)) / 1000000.0, 0) AS BIGINT) AS ts,
                   CAST({weight} AS DOUBLE) AS w
            FROM _sw_events WHERE {where} ORDER BY _file, _row"""
    ).toArrow()
    return {
        "user_id": np.asarray(rows.column("user_id").to_pylist(), dtype=object),
        "product_id": np.asarray(rows.column("product_id").to_pylist(), dtype=object),
        "ts": rows.column("ts").to_numpy().astype(np.int64),
        "w": rows.column("w").to_numpy().astype(np.float32),
    }


def spark_events_reader(engine: Any, workdir: Any) -> tuple[Any, str]:
    """(what `load_interactions` calls to read the event rows, or None, and what it does in
    words): on Spark when the current curated events version is Parquet (written by `ingest
    --engine spark`); a version in the workdir's DuckDB (ingested there) is read by DuckDB."""
    from ..storage import read_only

    with read_only(workdir) as (con, _):
        row = con.sql(
            "SELECT version, physical_name FROM meta.table_versions WHERE table_name = 'events' "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
    if row is None or not str(row[1]).endswith(".parquet"):
        return None, (
            "the current curated events version is a DuckDB table (an ingestion without --engine spark, "
            "or a re-processing or erasure, publishes one): read by DuckDB"
        )
    version, files = int(row[0]), str(row[1])
    return (
        lambda weights: spark_event_rows(engine.session, files, weights),
        f"the curated events v{version} read on Spark from {files}",
    )


# -- `shelfwise recommend --engine spark` ------------------------------------------------------

RANKED_SCHEMA = "user_id string, rank int, product_id string, score float, source string"


class _Ranker:
    """What one user's answer needs of the current bundle, shipped to the executors: the
    model, the bundle's interactions (histories), the precomputed top list when it is this
    model's, the catalog (what the rule-less `apply` keeps), purchases and the popular list
    (a `RankingView`, slimmer than the server's `Snapshot`: one model, no search index).
    The pseudonym key stays on the driver: executors see only user indices.

    `top` calls the server's own ranking (`serving._ranking.rank_user`) for a known user
    without recent online events and without rules (`--no-rules`): the answer is the one-node
    one, and stays so when serving's ranking changes."""

    def __init__(self, snap: Any, model: str, k: int, n_cand: int) -> None:
        self.model = snap.bundle.models[model]
        self.interactions = snap.bundle.interactions
        self.item_ids = snap.item_ids
        self.item_index = snap.item_index
        self.toplist = snap.toplist if model == snap.toplist_model else None
        self.toplist_model = snap.toplist_model
        self.info = snap.info
        self.purchases = snap.purchases
        # the popular list that fills a thinned list: the whole popular order when a list may
        # need more than the server's short fill list (`rank_user` asks for k + the user's
        # history + the candidates: a heavy user's list would come out shorter than online)
        self.cold = snap.cold_candidates(len(snap.item_ids), None)
        self.k, self.n_cand = k, n_cand
        self.name = model

    def cold_candidates(self, n: int, context: str | None) -> list[str]:
        """The fill's popular order (users without a history get the cold-start list on the
        driver: a list asked for here fills a known user's list)."""
        return self.cold[:n]

    def top(self, user: int) -> tuple[list[str], list[float | None], str]:
        from ..serving._ranking import rank_user
        from ..serving._service import NO_RULES

        ranked = rank_user(self, self.name, self.model, user, self.k, self.n_cand, NO_RULES)
        assert ranked is not None  # (no cache: computed, never "cached only")
        return ranked.items, ranked.scores, ranked.source


def recommend_users_spark(
    session: Any, ranker: _Ranker, users: list[tuple[str, int]], *, partitions: int | None = None
) -> Any:
    """A Spark DataFrame (`RANKED_SCHEMA`, lazy): the top-k of each (shop id, user index) of
    `users`, one row per rank (1 first), scored on the executors with the broadcast `ranker`."""
    import pandas as pd

    shipped = _broadcast(session, ranker)

    def score(batches: Any) -> Any:
        r = shipped.value if hasattr(shipped, "value") else shipped
        for pdf in batches:
            rows: dict[str, list[Any]] = {k: [] for k in ("user_id", "rank", "product_id", "score", "source")}
            for raw, u in zip(pdf["user_id"], pdf["user_idx"], strict=True):
                items, scores, source = r.top(int(u))
                for rank, (p, s) in enumerate(zip(items, scores, strict=True), 1):
                    rows["user_id"].append(raw)
                    rows["rank"].append(rank)
                    rows["product_id"].append(p)
                    rows["score"].append(s)
                    rows["source"].append(source)
            out = pd.DataFrame(rows)
            yield out.astype({"rank": "int32", "score": "float32"})

    frame = session.createDataFrame(
        pd.DataFrame({"user_id": [u for u, _ in users], "user_idx": [i for _, i in users]}),
        "user_id string, user_idx long",
    )
    if partitions:
        frame = frame.repartition(partitions)
    return frame.mapInPandas(score, schema=RANKED_SCHEMA)


_SPARK_OUTPUT = ("part-", "_SUCCESS", "._SUCCESS.crc", ".part-", "_committed_", "_started_")


def check_output_folder(out: Any, workdir: Any) -> str:
    """Where `recommend_batch_spark` may write `out`, or a ShelfwiseError. Spark's overwrite
    deletes the whole target folder, so a local `out` must be new, empty or an earlier output
    (only Spark's part files and markers), and neither the workdir, inside it nor above it
    (`--out .` typed inside the workdir would have deleted the warehouse). A URI (s3a://,
    hdfs://...) cannot be looked into from here: it must not exist yet (a dated folder per run)."""
    from pathlib import Path

    from ..errors import ShelfwiseError

    if "://" in str(out):
        return str(out)
    where, work = Path(out).resolve(), Path(workdir).resolve()
    if where == work or work in where.parents or where in work.parents:
        raise ShelfwiseError(
            f"--out {out}: is the workdir {work}, inside it or above it; Spark replaces the whole "
            "folder it writes: choose a folder of its own"
        )
    if where.exists():
        if not where.is_dir():
            raise ShelfwiseError(f"--out {out}: is a file, not a folder")
        foreign = sorted(p.name for p in where.iterdir() if not p.name.startswith(_SPARK_OUTPUT))
        if foreign:
            raise ShelfwiseError(
                f"--out {out}: holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, "
                "which is not an earlier output; Spark replaces the whole folder it writes: choose a "
                "new or empty folder"
            )
    return where.as_posix()


def _write_private(job: Any, where: str) -> None:
    """Write `job` as Parquet to the local folder `where` readable by its owner only (0700, files
    0600), as the one-node `recommend --out` file: shop user ids beside their lists are customer
    data. Spark writes with the JVM's umask, so it writes into a fresh 0700 folder beside `where`
    (nobody else can enter it while the parts are written), whose output then replaces `where`
    (an earlier output, checked by `check_output_folder`)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    target = Path(where)
    target.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))  # (mode 0700)
    try:
        staged = private / "out"
        job.write.mode("overwrite").parquet(staged.as_posix())  # (new: nothing to overwrite)
        for path in staged.rglob("*"):
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
        os.chmod(staged, 0o700)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def recommend_batch_spark(
    workdir: Any,
    session: Any,
    out: Any,
    users: list[str] | None,
    k: int = 10,
    *,
    model: str | None = None,
    partitions: int | None = None,
) -> dict[str, int]:
    """`shelfwise recommend --engine spark --no-rules`: the top-k of each shop user id of
    `users` (None: every user of the current bundle whose id the raw layer still holds) as
    Parquet files in the folder `out` (a path or a URI every executor can write;
    `RANKED_SCHEMA`, one row per user and rank; score is the model's
    where it scored, null for a precomputed or popular item). What the one-node `recommend
    --no-rules` answers, user for user: the bundle's model (default, or `model`), the user's
    consent read on the driver, unknown or not-personalized users given the cold-start list
    there (one list for all); the known users are ranked on Spark. Returns counts."""

    from ..errors import ShelfwiseError
    from ..governance import shop_user_ids
    from ..serving import Service

    service = Service(workdir, apply_rules=False, load_search=False)
    snap = service.snapshot
    if model is None and service.assign("recommendations", "-")[0] is not None:
        raise ShelfwiseError(
            "an experiment on recommendations is active: it assigns a model per shopper, which the "
            "Spark job does not; name one with --model, or use the one-node `recommend`"
        )
    name = model or snap.bundle.manifest["default_model"]
    if name not in snap.bundle.models:
        raise ShelfwiseError(
            f"no model {name!r} in the current bundle (it has: {', '.join(snap.bundle.models)})"
        )
    all_users = users is None
    ids = shop_user_ids(workdir) if users is None else users  # (the shop ids the raw layer holds)
    known: list[tuple[str, int]] = []
    cold: list[str] = []
    for raw in ids:
        pseudo = service.pseudonymize(raw)
        user = snap.user_index.get(pseudo)
        if all_users and user is None:
            continue  # (--all-users: the bundle's users, not every id the raw layer holds)
        if user is None or not service.personalizes(pseudo):
            cold.append(raw)  # unknown, or not to be personalized: a never-seen user's answer
        else:
            known.append((raw, int(user)))
    n_cand = min(k * service.settings.candidates_factor + 20, len(snap.item_ids))
    job = recommend_users_spark(session, _Ranker(snap, name, k, n_cand), known, partitions=partitions)
    if cold:  # one list for every unknown user (computed here once), written with the job's rows
        items = service.recommend(cold[0], k, model=model).items
        rows = [(u, r, p, None, "cold_start") for u in cold for r, p in enumerate(items, 1)]
        job = job.unionByName(session.createDataFrame(rows, RANKED_SCHEMA))
    # (a local path made absolute, a new folder, an empty one or an earlier output; a URI such
    # as s3a://... or hdfs://... as given, which must not exist yet: every executor writes its
    # part there)
    where = check_output_folder(out, workdir)
    if "://" in where:
        job.write.mode("error").parquet(where)  # (errorifexists: Spark Connect knows it as "error")
    elif "connect" in type(session).__module__:
        # a Spark Connect server writes on its own file system, with its own user and umask (a
        # folder made private here could be one it may not enter; the folder's mode is the
        # server's to set): checked here, the folder may not be the server's, so as a URI it
        # must not exist there yet
        job.write.mode("error").parquet(where)
    else:
        _write_private(job, where)
    counts = {"users": len(known) + len(cold), "scored_on_spark": len(known), "cold_start": len(cold)}
    if all_users:  # a bundle user whose id the raw layer no longer holds (retention) has no shop id
        from ..governance import is_anonymous

        anonymous = sum(1 for p in snap.user_index if is_anonymous(str(p)))  # sessions: no customer
        counts["anonymous_sessions"] = anonymous
        counts["bundle_users_without_shop_id"] = len(snap.user_index) - counts["users"] - anonymous
    return counts
