"""Emulated WeChat API endpoints (``/cgi-bin/...``, ``/sns/...``), as the bot reaches them via ``api_base_url``."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, request

from bot.emulator.state import EmulatorState

bp = Blueprint("emulator_wechat", __name__)

CS_WINDOW_SECONDS = 48 * 3600
CS_MAX_IN_WINDOW = 5


def state() -> EmulatorState:
    return current_app.extensions["emulator"]


def _json(obj: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False), status=status, mimetype="application/json")


def _err(code: int, msg: str) -> Response:
    return _json({"errcode": code, "errmsg": msg})


def _app_ok(appid: str | None, secret: str | None) -> bool:
    cfg = current_app.extensions["cardbot"].cfg.wechat
    return appid == cfg.appid and secret == cfg.secret


def _token_check() -> Response | None:
    code = state().check_token(request.args.get("access_token"))
    if code:
        return _err(code, {40001: "invalid credential", 42001: "access_token expired", 41001: "access_token missing"}[code])
    return None


@bp.get("/cgi-bin/token")
def token() -> Response:
    a = request.args
    if a.get("grant_type") != "client_credential" or not _app_ok(a.get("appid"), a.get("secret")):
        return _err(40013 if not _app_ok(a.get("appid"), a.get("secret")) else 40002, "invalid appid or secret")
    tok = state().issue_token(force=True)
    return _json({"access_token": tok.value, "expires_in": state().token_ttl})


@bp.post("/cgi-bin/stable_token")
def stable_token() -> Response:
    body = request.get_json(silent=True) or {}
    if not _app_ok(body.get("appid"), body.get("secret")):
        return _err(40013, "invalid appid or secret")
    tok = state().issue_token(force=bool(body.get("force_refresh")))
    return _json({"access_token": tok.value, "expires_in": int(tok.expires_at - state().now())})


@bp.post("/cgi-bin/message/custom/send")
def custom_send() -> Response:
    if (bad := _token_check()) is not None:
        return bad
    body = json.loads(request.get_data() or b"{}")
    openid = body.get("touser", "")
    st = state()
    now = st.now()
    with st.lock:
        last = st.last_user_message.get(openid)
        if last is None or now - last > CS_WINDOW_SECONDS:
            return _err(45015, "response out of time limit or subscription is canceled")
        sent = [t for t in st.cs_sent.get(openid, []) if t >= last]
        if len(sent) >= CS_MAX_IN_WINDOW:
            return _err(45047, "out of response count limit")
        st.cs_sent[openid] = [*sent, now]
    msgtype = body.get("msgtype")
    content = body.get(msgtype, {}) if msgtype else {}
    st.deliver(openid, {"kind": "customer_service", "msgtype": msgtype, "content": content})
    return _err(0, "ok")
