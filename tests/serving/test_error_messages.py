"""A 422 names the field and says the reason once: a body-level problem read ": Value error, give
at least one of ...", a boolean given as text "personalization.bool: ...; personalization.none:
Input should be None" (pydantic's union member types in the location)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, model_validator

from shelfwise.serving._app import _error_answers


class Change(BaseModel):
    personalization: bool | None = None
    marketing: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> Change:
        if self.personalization is None and self.marketing is None:
            raise ValueError("give at least one of personalization, marketing")
        return self


def _client() -> TestClient:
    app = FastAPI()
    _error_answers(app)

    @app.put("/consent")
    def put(change: Change) -> dict:
        return {"ok": True}

    return TestClient(app)


def test_a_422_names_the_field_once_without_pydantics_type_tags() -> None:
    c = _client()
    r = c.put("/consent", json={})
    assert r.status_code == 422
    assert r.json()["details"] == ["body: give at least one of personalization, marketing"]
    r = c.put("/consent", json={"personalization": "maybe"})
    assert r.json()["details"] == [
        "personalization: Input should be a valid boolean, unable to interpret input"
    ]
    r = c.put("/consent", json=["x"])
    assert r.json()["error"].startswith("body: ")
