"""Re-verification on a new browser (the school's rule: 更换手机后只需重新验证，无需重新绑定).

A money action on the H5 pages (a top-up order, signing or cancelling auto top-up, a refund request) from a browser
that this account has not verified answers 428 ``{"error": "reverify", "message", "prompt"}``; the page asks for the
card password once (``POST /api/device/verify``, checked by the card system and counted like a binding try, so
guessing here locks like guessing in the chat), and the browser is then remembered by a long-lived signed cookie
(``[devices] remember_days``). The binding is never touched. The cookie holds the openids verified in this browser
(the simulator plays several); it is HttpOnly and signed with ``[server] secret_key`` (itsdangerous), so a page
script cannot read it and nobody can write one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.binding import Verdict, check_owner, compact, locked
from bot.cards import card_for
from bot.web.auth import login_api
from bot.web.h5 import blueprint, tr

COOKIE = "cardbot_device"
MAX_ACCOUNTS = 5  # a family phone, or the simulator's users, in one browser

bp = blueprint("device", __name__)


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="cardbot-device")


def _max_age() -> int:
    return int(g.svc.cfg.devices.remember_days * 86400)


def verified() -> list[str]:
    """The openids this browser has verified (none for a missing, forged or expired cookie)."""
    raw = request.cookies.get(COOKIE, "")
    try:
        value = _signer().loads(raw, max_age=_max_age()) if raw else []
    except BadSignature:
        return []
    return [o for o in value if isinstance(o, str)] if isinstance(value, list) else []


def token(openids: list[str]) -> str:
    """The cookie's value remembering ``openids`` (the newest last)."""
    return _signer().dumps(openids[-MAX_ACCOUNTS:])


def known_device(view: Callable[..., Any]) -> Callable[..., Any]:
    """For money APIs, inside ``login_api``: a browser this account has not verified is asked for the card password."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.svc.cfg.devices.reverify and g.openid not in verified():
            prompt = {k: tr(f"reverify_{k}") for k in ("title", "placeholder", "ok", "cancel")}
            return jsonify(error="reverify", message=tr("reverify_needed"), prompt=prompt), 428
        return view(*args, **kwargs)

    return wrapper


@bp.post("/api/device/verify")
@login_api
def verify() -> Any:
    """``{"password"}`` → 200 and the cookie; 403 wrong (with tries left); 423 locked; 503 when it could not be checked."""
    body = request.get_json(silent=True)
    password = compact(str(body.get("password", ""))) if isinstance(body, dict) else ""
    with g.svc.session() as db:
        card = card_for(db, g.openid)
    if card is None:
        return jsonify(error="not_bound", message=tr("not_bound")), 409
    center = g.svc.cfg.school.center
    lock = locked(g.svc, g.openid, card.student_no)
    attempt, verdict = check_owner(g.svc, g.openid, card.student_no, password) if lock is None else (None, Verdict.WRONG)
    if attempt is not None and attempt.allowed and verdict is Verdict.UNAVAILABLE:
        return jsonify(error="unavailable", message=tr("verify_unavailable")), 503
    if verdict is Verdict.RIGHT:
        resp: Response = jsonify(result="ok", message=tr("reverify_done"))
        mine = [o for o in verified() if o != g.openid] + [g.openid]
        secure = current_app.config["SESSION_COOKIE_SECURE"]
        resp.set_cookie(COOKIE, token(mine), max_age=_max_age(), httponly=True, secure=secure, samesite="Lax")
        return resp
    lock = lock or (attempt.lock if attempt is not None and (not attempt.allowed or attempt.left <= 0) else None)
    if lock is not None:
        key = "bind_card_locked" if lock.card else "bind_locked"
        return jsonify(error="locked", message=tr(key, until=f"{lock.until:%Y-%m-%d %H:%M}", center=center)), 423
    assert attempt is not None
    return jsonify(error="wrong_password", message=tr("reverify_wrong", left=attempt.left), left=attempt.left), 403


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
