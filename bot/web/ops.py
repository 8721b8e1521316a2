"""Operator endpoints: ``/healthz`` (database and Redis) and ``/metrics`` (Prometheus text)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
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
    """Off (404) without ``[server] admin_token``; with it, the bearer token is required."""
    svc = current_app.extensions["cardbot"]
    token = svc.cfg.server.admin_token
    if not token:
        abort(404)
    sent = request.headers.get("Authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return Response("unauthorized", status=401, mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(svc.metrics.registry), mimetype=CONTENT_TYPE_LATEST)
