"""The /alerts H5 page (提醒设置) and its JSON API: which alerts this account wants and at which thresholds.

``GET /api/alerts`` the page's state · ``POST /api/alerts`` ``{"spend", "low_balance", "low_threshold", "large_spend",
"large_threshold"}`` (thresholds in whole yuan) → 200 with the state. Identity is the OAuth session's openid only;
not a money action, so no re-verification.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request

from bot import alerts
from bot.web.auth import csrf_token, login_api, login_page
from bot.web.h5 import blueprint, tr

bp = blueprint("alerts", __name__)


@bp.get("/alerts")
@login_page
def page() -> Any:
    data = alerts.page_state(g.svc, g.openid) | {"csrf": csrf_token(), "texts": {k: tr(f"alerts_js_{k}") for k in ("saved", "error")}}
    return render_template("alerts/page.html", data=data)


@bp.get("/api/alerts")
@login_api
def show() -> Any:
    return jsonify(alerts.page_state(g.svc, g.openid))


@bp.post("/api/alerts")
@login_api
def save() -> Any:
    body = request.get_json(silent=True)
    alerts.save(g.svc, g.openid, body if isinstance(body, dict) else {})
    return jsonify(alerts.page_state(g.svc, g.openid))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
