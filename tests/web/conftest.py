"""The served demo shop of tests/serving (trained once per session)."""

from tests.serving.conftest import served_workdir  # noqa: F401
