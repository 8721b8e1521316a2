"""Identity for H5 pages: WeChat OAuth (snsapi_base) into a signed session cookie, never an openid in a URL.

``state`` is bound to the browser session (CSRF for the OAuth round trip) and every state-changing
API call must echo the session's CSRF token in ``X-CSRF-Token``.

A signed cookie cannot be recalled, so the session carries its login time and the user's session generation:
it ends ``SESSION_LIFETIME`` after login on the business clock however often it is replayed, and unbinding
bumps the generation in Redis (``bot.sessions.end_sessions``), which ends every session of that openid at once.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import requests
from flask import abort, current_app, g, jsonify, redirect, request, session

from bot.adapters.wechat_api import WeChatAPIError
from bot.sessions import session_generation
from bot.web.ratelimit import RateLimiter

SESSION_LIFETIME = timedelta(hours=12)


def _svc() -> Any:
    return current_app.extensions["cardbot"]


def authorize_url(redirect_uri: str, state: str) -> str:
    cfg = _svc().cfg.wechat
    query = urlencode({"appid": cfg.appid, "redirect_uri": redirect_uri, "response_type": "code", "scope": "snsapi_base", "state": state})
    return f"{cfg.oauth_base_url}/connect/oauth2/authorize?{query}#wechat_redirect"


def page_url(path: str) -> str:
    return f"{_svc().cfg.server.public_base_url}{path}"


def _here_without_oauth() -> str:
    """This page's path and query (e.g. ``?month=2026-10``) without OAuth's ``code`` and ``state``."""
    rest = [(k, v) for k, v in request.args.items(multi=True) if k not in ("code", "state")]
    return request.path + (f"?{urlencode(rest)}" if rest else "")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def current_openid() -> str | None:
    """The session's openid while the session is younger than ``SESSION_LIFETIME`` and not ended; checked once a request."""
    if "h5_openid" not in g:
        openid, svc = session.get("openid"), _svc()
        login_at, gen = session.get("login_at"), session.get("gen")
        alive = (
            isinstance(openid, str)
            and isinstance(login_at, int)
            and isinstance(gen, int)
            and svc.clock.now().timestamp() - login_at < SESSION_LIFETIME.total_seconds()
            and gen == session_generation(svc, openid)
        )
        if openid and not alive:
            session.clear()
        g.h5_openid = openid if alive else None
    return g.h5_openid


def login_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """For GET pages: run the OAuth round trip when the session has no openid yet."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        code, state = request.args.get("code"), request.args.get("state")
        if code and state:
            expected = session.pop("oauth_state", None)
            if not expected or not hmac.compare_digest(expected, state):
                abort(403)
            try:
                openid = _svc().wechat.oauth_openid(code)
            except WeChatAPIError:
                abort(403)
            except (requests.RequestException, ValueError):  # WeChat unreachable, timing out or answering non-JSON (502)
                abort(503)
            session.clear()
            session.update(openid=openid, login_at=int(_svc().clock.now().timestamp()), gen=session_generation(_svc(), openid))
            session.permanent = False
            return redirect(_here_without_oauth())
        if not current_openid():
            state = secrets.token_urlsafe(16)
            session["oauth_state"] = state
            return redirect(authorize_url(page_url(_here_without_oauth()), state))
        return view(*args, **kwargs)

    return wrapper


def login_api(view: Callable[..., Any]) -> Callable[..., Any]:
    """For JSON APIs: a session openid, a per-openid rate limit and, on writes, the CSRF header are required."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        openid = current_openid()
        if not openid:
            return jsonify(error="not_signed_in", message="请从公众号菜单重新打开页面 / Please reopen this page from the menu."), 401
        cfg = _svc().cfg.server
        write = request.method not in ("GET", "HEAD")
        wait = RateLimiter(_svc().store).hit("h5w" if write else "h5r", openid, cfg.h5_writes_per_minute if write else cfg.h5_reads_per_minute)
        if wait:
            resp = jsonify(error="rate_limited", message="操作太频繁，请稍后再试 / Too many requests, please wait a moment.")
            resp.headers["Retry-After"] = str(wait)
            return resp, 429
        if write:
            sent = request.headers.get("X-CSRF-Token", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                return jsonify(error="csrf", message="页面已过期，请刷新 / Page expired, please refresh."), 403
        return view(*args, **kwargs)

    return wrapper
