"""`/openapi.json` says what the recommendations' `context` is: a category path prefix (the
cold-start list and context-limited rules read it), not a product id or a query."""

from __future__ import annotations

from pathlib import Path

from shelfwise.serving._app import create_app


def test_the_context_parameter_is_described_as_a_category_prefix(tmp_path: Path) -> None:
    schema = create_app(tmp_path).openapi()  # no bundle needed for the document
    params = schema["paths"]["/v1/recommendations/{user_id}"]["get"]["parameters"]
    context = next(p for p in params if p["name"] == "context")
    text = context["description"]
    assert "category path prefix" in text and "Sports > Cycling" in text, text
    assert "product id" not in text and "a query" not in text, text
