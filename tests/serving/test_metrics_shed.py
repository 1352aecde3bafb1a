"""`shelfwise_errors_total` counts failures, not load shed on purpose: a burst answered 503 with
Retry-After (counted by the shed metrics) read as thousands of errors and could trip alerts."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from shelfwise.serving._http_metrics import Metrics, MetricsMiddleware


def test_shed_requests_are_not_errors() -> None:
    app = FastAPI()

    @app.get("/shed")
    def shed() -> JSONResponse:
        return JSONResponse({"error": "overloaded"}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/broken")
    def broken() -> JSONResponse:
        return JSONResponse({"error": "boom"}, status_code=500)

    metrics = Metrics()
    client = TestClient(MetricsMiddleware(app, metrics))
    for _ in range(3):
        assert client.get("/shed").status_code == 503
    assert client.get("/broken").status_code == 500
    errors = {
        s.labels["endpoint"]: s.value
        for m in metrics.errors.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert sum(errors.values()) == 1
