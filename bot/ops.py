"""Operator endpoints: ``/healthz`` (database and Redis) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    svc = current_app.extensions["cardbot"]
    checks = {"database": "ok", "redis": "ok"}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        checks["database"] = f"down: {type(exc).__name__}"
    if not svc.store.ping():
        checks["redis"] = "down"
    ok = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if ok else "degraded", checks=checks), 200 if ok else 503


@bp.get("/metrics")
def metrics() -> Response:
    svc = current_app.extensions["cardbot"]
    return Response(generate_latest(svc.metrics.registry), mimetype=CONTENT_TYPE_LATEST)
