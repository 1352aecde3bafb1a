"""One smoke test on a local cluster (`local-cluster[2,1,1024]`: a master, two worker JVMs with one
core and 1 GB each, separate executor processes): the batch scoring job's model really travels to
other processes (broadcast, unpickled by each executor's Python) and every user comes back with the
one-node top 10. Slow: three JVMs start."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.features import Interactions
from shelfwise.lifecycle._spark_jobs import recommend_all_spark
from shelfwise.models import ItemKNN
from shelfwise.storage import SparkEngine
from tests.storage.conftest import skip_without_spark

pytestmark = pytest.mark.slow

skip_without_spark()


def test_batch_scoring_on_a_local_cluster(tmp_path, spark_engine):
    spark_engine.close()  # one SparkContext per process: the shared local[2] one stops first
    rng = np.random.default_rng(3)
    n = 3000
    inter = Interactions.from_arrays(
        rng.integers(0, 120, n).astype(str), rng.integers(0, 90, n).astype(str), np.arange(n), collapse=False
    )
    model = ItemKNN(neighbours=15)
    model.fit(inter)
    one_node = model.recommend(np.arange(inter.n_users), 10)
    want = {
        str(inter.user_ids[u]): [str(inter.item_ids[i]) for i in row if i >= 0]
        for u, row in enumerate(one_node.ids)
    }
    engine = SparkEngine(tmp_path, master="local-cluster[2,1,1024]")
    try:
        session = engine.session
        job = recommend_all_spark(session, model, 10, partitions=4)
        got = {r["user_id"]: list(r["items"]) for r in job.collect()}
        executors = session.sparkContext._jsc.sc().getExecutorMemoryStatus().size()
    finally:
        engine.close()
    assert got == want
    assert executors >= 3  # the driver and two executors
