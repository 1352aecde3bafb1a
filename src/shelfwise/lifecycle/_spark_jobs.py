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

__all__ = ["SCORES_SCHEMA", "recommend_all_spark", "spark_event_rows", "spark_events_reader"]

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
    product ids (best first; fewer when the catalog runs out) and their scores. Lazy: write it
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
        return None, "the curated events are a DuckDB table (ingested without --engine spark): read by DuckDB"
    version, files = int(row[0]), str(row[1])
    return (
        lambda weights: spark_event_rows(engine.session, files, weights),
        f"the curated events v{version} read on Spark from {files}",
    )
