"""The Spark tests' session (local[2]) and the skip when Spark cannot run here."""

from __future__ import annotations

import shutil

import pytest


def skip_without_spark() -> None:
    """Skip the calling test module when Java or pyspark is missing (module level)."""
    if shutil.which("java") is None:
        pytest.skip(
            "no Java: the Spark engine needs Java 17 (scripts/system-deps.sh)", allow_module_level=True
        )
    pytest.importorskip("pyspark", reason="the `spark` extra is not installed (make install)")


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from shelfwise.storage import SparkEngine

    engine = SparkEngine(tmp_path_factory.mktemp("spark"), master="local[2]")
    session = engine.session
    yield session
    engine.close()
