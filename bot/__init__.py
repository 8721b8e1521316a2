"""The Flask application factory (in the style of Flask's tutorial)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from bot.config import Config, ConfigError, load_config
from bot.logs import request_id, setup_logging
from bot.runtime import Runtime, build_runtime
from bot.web.auth import SESSION_LIFETIME
from bot.web.instrument import HARDENING, begin, observe

if TYPE_CHECKING:
    from bot.chat.router import Routes


def create_app(cfg: Config | None = None, services: Runtime | None = None, routes: Sequence[Routes] = ()) -> Flask:
    """``routes``: handlers answered besides the bot's own (tests, experiments); a key answered twice is refused."""
    cfg = cfg or load_config()
    cfg.check_production()
    setup_logging()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=cfg.server.secret_key,
        MAX_CONTENT_LENGTH=max(cfg.server.max_body_bytes, 256 * 1024),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=cfg.server.secure_cookies or cfg.server.public_base_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="cardbot_session",
        JSON_AS_ASCII=False,
    )
    if isinstance(app.json, DefaultJSONProvider):
        app.json.ensure_ascii = False
    svc = services or build_runtime(cfg)
    app.extensions["cardbot"] = svc

    from bot.chat import webhook
    from bot.chat.routes import build_router
    from bot.web import alerts, autodebit, bills, device, integration, ops, pay_notify, power, topup

    try:
        app.extensions["router"] = build_router(*routes).understand(str(cfg.faq_path))
    except ValueError as exc:  # the school's FAQ file: a bad edit stops the start, named
        raise ConfigError(f"faq.path: {exc}") from None
    webhook.mount(app, svc, app.extensions["router"])
    app.register_blueprint(ops.bp)
    for feature in (bills, topup, power, autodebit, pay_notify, integration, device, alerts):
        feature.init_app(app)
    if cfg.admin_enabled:
        from bot import admin

        admin.init_app(app)
    if cfg.emulator.enabled:
        from bot import emulator

        emulator.init_app(app)

    _instrument(app, svc)
    return app


def _instrument(app: Flask, svc: Runtime) -> None:
    @app.before_request
    def _start() -> None:
        g.t0 = begin(request.headers.get("X-Request-Id", ""))

    @app.after_request
    def _finish(resp: Any) -> Any:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        observe(svc, endpoint, request.method, resp.status_code, g.get("t0", time.perf_counter()))
        resp.headers["X-Request-Id"] = request_id.get()
        for name, value in HARDENING.items():
            resp.headers.setdefault(name, value)
        return resp

    @app.errorhandler(SQLAlchemyError)
    def _db_down(exc: Exception) -> Any:
        app.logger.warning("database error: %s", type(exc).__name__)
        return jsonify(error="unavailable", message="服务暂时繁忙，请稍后再试 / Service busy, please retry shortly."), 503

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return exc
        import redis

        if isinstance(exc, redis.RedisError):
            return jsonify(error="unavailable", message="服务暂时繁忙，请稍后再试 / Service busy, please retry shortly."), 503
        if isinstance(exc, RecursionError):  # a deeply nested JSON body: Flask's get_json(silent=True) only catches ValueError
            return jsonify(error="invalid_request", message="请求格式不正确 / Malformed request."), 400
        app.logger.exception("unhandled error")
        return jsonify(error="internal", message="服务出错了，请稍后再试 / Something went wrong."), 500


__all__ = ["create_app", "load_config"]
