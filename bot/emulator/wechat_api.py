"""Emulated WeChat API endpoints (``/cgi-bin/...``, ``/sns/...``, ``/connect/oauth2/authorize``), as the bot reaches
them via ``api_base_url`` / ``oauth_base_url``. Error codes and messages follow WeChat's, so the bot's error
handling is exercised exactly as in production (see docs/wechat-facts.md for the limits).
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from flask import Blueprint, Response, current_app, redirect, request
from werkzeug.wsgi import get_input_stream

import menus
from bot.config import Config
from bot.emulator.push import Pusher, cdata
from bot.emulator.state import EmulatorState

log = logging.getLogger(__name__)
bp = Blueprint("emulator_wechat", __name__)

OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ESCAPED_UNICODE = re.compile(rb"\\u[0-9a-fA-F]{4}")
TEMPLATE_VALUE_MAX = 20
HANG_MAX_SECONDS = 60

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40029: "invalid code",
    40033: "invalid charset. please check your request, if include \\uxxxx will create fail!",
    40037: "invalid template_id",
    40054: "invalid sub button url domain",
    40055: "invalid button url domain",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    42001: "access_token expired",
    42003: "code expired",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    46003: "menu no exist",
    47001: "data format error",
    47003: "argument invalid!",
    40032: "invalid openid list size",
    45056: "too many tags",
    45057: "can't delete the tag that has too many fans",
    45058: "can't modify sys tag",
    45059: "user has too many tags",
    45157: "invalid tag name",
    45158: "tag name too long",
    45159: "invalid tag id",
    65301: "no such conditional menu",
    65302: "no such user",
    65303: "no default menu, cannot create conditional menu",
    65304: "match rule empty",
    65305: "too many conditional menus",
    65320: "matchrule not supported: match by tag_id",
}
TAG_NAME_BYTES, TAGS_MAX, TAGS_PER_USER, TAG_BATCH = 30, 100, 20, 50
CONDITIONAL_MAX = 20
# Conditional menus may only match by user tag (and client platform); sex, region and language are refused.
MATCHRULE_REFUSED = ("sex", "country", "province", "city", "language", "group_id")


def state() -> EmulatorState:
    return current_app.extensions["emulator"]


def config() -> Config:
    return current_app.extensions["cardbot"].cfg


Answer = tuple[int, str, bytes]  # status, content type, body: an answer built without Flask (``TemplateSend``)
_JSON_TYPE = "application/json"


def _json(obj: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False), status=status, mimetype=_JSON_TYPE)


def _err(code: int, msg: str | None = None) -> Response:
    return _json(_error_body(code, msg))


def _error_body(code: int, msg: str | None = None) -> dict[str, Any]:
    return {"errcode": code, "errmsg": msg or ERRMSG.get(code, "error")}


def _err_answer(code: int, msg: str | None = None) -> Answer:
    return 200, _JSON_TYPE, json.dumps(_error_body(code, msg), ensure_ascii=False).encode()


def _as_response(answer: Answer) -> Response:
    status, ctype, body = answer
    return Response(body, status=status, mimetype=ctype)


def _app_ok(appid: str | None, secret: str | None) -> bool:
    cfg = config().wechat
    return appid == cfg.appid and secret == cfg.secret


def _token_check() -> Response | None:
    code = state().check_token(request.args.get("access_token"))
    return _err(code) if code else None


def _fault(name: str) -> Response | None:
    """An injected failure for this call, if a test asked for one (see ``EmulatorState.faults``)."""
    answer = fault_answer(config(), state(), name)
    return None if answer is None else _as_response(answer)


def fault_answer(cfg: Config, st: EmulatorState, name: str) -> Answer | None:
    fault = st.take_fault(name)
    if not fault:
        return None
    if fault == "5xx":
        return 502, "text/html", b"<html><body>502 Bad Gateway</body></html>"
    if fault == "timeout":
        time.sleep(cfg.wechat.request_timeout_seconds + 0.5)
        return _err_answer(-1)
    if fault == "hang":  # the call never gets through, however long the caller waits; ends with a system error
        st.released.wait(HANG_MAX_SECONDS)
        return _err_answer(-1)
    if fault == "garbage":  # a 200 that is not WeChat's JSON (a proxy's page): the caller cannot tell what happened
        return 200, "text/html", b"<html><body>OK</body></html>"
    return _err_answer(int(fault))


def _parsed(raw: bytes) -> dict[str, Any] | int:
    """The JSON object sent, or WeChat's errcode for an empty (44002) or malformed (47001) body."""
    if not raw:
        return 44002
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return 47001
    return body if isinstance(body, dict) else 47001


def _body_json() -> dict[str, Any] | Response:
    """The JSON object sent, or WeChat's error answer for an empty or malformed body."""
    body = _parsed(request.get_data())
    return _err(body) if isinstance(body, int) else body


# --- what WeChat knows of its users ------------------------------------------------
def follows_observer(emulated: EmulatorState) -> Callable[[Any], None]:
    """WeChat knows who follows the account: a (un)subscribe push to ``/wechat`` from any Pusher — the simulator's,
    the tests' ``wx`` — updates the follower set that template sends check (43004). Registered with the webhook,
    which hands it every correctly signed push it decoded."""

    def observe(msg: Any) -> None:
        event = getattr(msg, "event", "") if msg.type == "event" else ""
        if event in ("subscribe", "unsubscribe"):
            emulated.user_pushed(msg.source, event)

    return observe


# --- access_token ------------------------------------------------------------
@bp.get("/cgi-bin/token")
def token() -> Response:
    a = request.args
    if (bad := _fault("token")) is not None:
        return bad
    if a.get("appid") != config().wechat.appid:
        return _err(40013)
    if a.get("secret") != config().wechat.secret:
        return _err(40125)
    if a.get("grant_type") != "client_credential":
        return _err(40002)
    if not state().count_call("token", config().emulator.token_daily_limit):
        return _err(45009)
    tok = state().issue_token(force=True)
    return _json({"access_token": tok.value, "expires_in": state().token_ttl})


@bp.post("/cgi-bin/stable_token")
def stable_token() -> Response:
    if (bad := _fault("stable_token")) is not None:
        return bad
    body = request.get_json(silent=True) or {}
    if body.get("appid") != config().wechat.appid:
        return _err(40013)
    if body.get("secret") != config().wechat.secret:
        return _err(40125)
    if body.get("grant_type") != "client_credential":
        return _err(40002)
    if not state().count_call("stable_token", config().emulator.stable_token_daily_limit):
        return _err(45009)
    tok = state().issue_token(force=bool(body.get("force_refresh")))
    return _json({"access_token": tok.value, "expires_in": int(tok.expires_at - state().now())})


# --- custom menu -------------------------------------------------------------
def _nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def _leaf_error(b: dict[str, Any], sub: bool) -> int:
    """WeChat's code for the first problem of a button that sends an event or opens a page (0 = fine)."""
    kind = b.get("type")
    if kind in menus.TYPES_WITH_KEY:
        key = b.get("key")
        if not isinstance(key, str) or not key or _nbytes(key) > menus.KEY_BYTES:
            return 40026 if sub else 40019
    elif kind == "view":
        url = b.get("url")
        if not isinstance(url, str) or not url or _nbytes(url) > menus.URL_BYTES:
            return 40027 if sub else 40020
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            return 40054 if sub else 40055
    elif kind == "miniprogram":
        if not b.get("appid") or not b.get("pagepath"):
            return 40024 if sub else 40017
    else:
        return 40024 if sub else 40017
    return 0


def menu_errcode(menu: dict[str, Any]) -> int:
    """Check a menu as WeChat's menu/create does, with the limits of ``menus`` (counted in UTF-8 bytes)."""
    buttons = menu.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= menus.TOP_MAX:
        return 40016
    for b in buttons:
        if not isinstance(b, dict):
            return 47001
        name = b.get("name")
        if not isinstance(name, str) or not name or _nbytes(name) > menus.NAME_TOP_BYTES:
            return 40018
        subs = b.get("sub_button")
        if not subs:
            if code := _leaf_error(b, sub=False):
                return code
            continue
        if not isinstance(subs, list) or len(subs) > menus.SUB_MAX:
            return 40023
        for s in subs:
            if not isinstance(s, dict):
                return 47001
            sname = s.get("name")
            if not isinstance(sname, str) or not sname or _nbytes(sname) > menus.NAME_SUB_BYTES:
                return 40025
            if code := _leaf_error(s, sub=True):
                return code
    return 0


@bp.post("/cgi-bin/menu/create")
def menu_create() -> Response:
    if (bad := _token_check() or _fault("menu")) is not None:
        return bad
    if not state().count_call("menu_create", config().emulator.menu_daily_limit):
        return _err(45009)
    if ESCAPED_UNICODE.search(request.get_data()):
        return _err(40033)
    body = _body_json()
    if isinstance(body, Response):
        return body
    if code := menu_errcode(body):
        return _err(code)
    with state().lock:
        state().menu = {"button": body["button"]}
    return _err(0, "ok")


@bp.get("/cgi-bin/menu/get")
def menu_get() -> Response:
    if (bad := _token_check()) is not None:
        return bad
    menu = state().menu
    if menu is None:
        return _err(46003)
    answer: dict[str, Any] = {"menu": menu}
    if state().conditional_menus:
        answer["conditionalmenu"] = state().conditional_menus
    return _json(answer)


@bp.get("/cgi-bin/menu/delete")
def menu_delete() -> Response:
    """Deletes the default menu and every conditional one, as WeChat does."""
    if (bad := _token_check()) is not None:
        return bad
    with state().lock:
        state().menu = None
        state().conditional_menus.clear()
    return _err(0, "ok")


@bp.post("/cgi-bin/menu/addconditional")
def menu_addconditional() -> Response:
    """A menu for the users one ``matchrule`` picks: only ``tag_id`` (and ``client_platform_type``) is accepted; a rule
    on sex, region or language is refused with 65320. A default menu must exist first (65303)."""
    if (bad := _token_check() or _fault("menu")) is not None:
        return bad
    if not state().count_call("menu_create", config().emulator.menu_daily_limit):
        return _err(45009)
    if ESCAPED_UNICODE.search(request.get_data()):
        return _err(40033)
    body = _body_json()
    if isinstance(body, Response):
        return body
    rule = body.get("matchrule")
    if not isinstance(rule, dict) or not any(str(v) for v in rule.values()):
        return _err(65304)
    if any(rule.get(k) not in (None, "") for k in MATCHRULE_REFUSED):
        return _err(65320)
    if code := menu_errcode(body):
        return _err(code)
    st = state()
    with st.lock:
        if st.menu is None:
            return _err(65303)
        tag = str(rule.get("tag_id", ""))
        if tag and (not tag.isdigit() or int(tag) not in st.tags):
            return _err(45159)
        if len(st.conditional_menus) >= CONDITIONAL_MAX:
            return _err(65305)
        menuid = str(400000000 + next(st._ids))
        st.conditional_menus.append({"button": body["button"], "matchrule": {k: str(v) for k, v in rule.items()}, "menuid": menuid})
    return _json({"menuid": menuid})


@bp.post("/cgi-bin/menu/delconditional")
def menu_delconditional() -> Response:
    if (bad := _token_check()) is not None:
        return bad
    body = _body_json()
    if isinstance(body, Response):
        return body
    st = state()
    with st.lock:
        kept = [m for m in st.conditional_menus if m["menuid"] != str(body.get("menuid"))]
        if len(kept) == len(st.conditional_menus):
            return _err(65301)
        st.conditional_menus[:] = kept
    return _err(0, "ok")


@bp.post("/cgi-bin/menu/trymatch")
def menu_trymatch() -> Response:
    """The menu a user sees: the newest conditional menu whose tag the user has, else the default one."""
    if (bad := _token_check()) is not None:
        return bad
    body = _body_json()
    if isinstance(body, Response):
        return body
    openid = str(body.get("user_id", ""))
    if not OPENID.match(openid):
        return _err(40003)
    menu = state().menu_for(openid)
    return _err(46003) if menu is None else _json({"button": menu["button"]})


# --- user tags -------------------------------------------------------------------
@bp.post("/cgi-bin/tags/create")
def tags_create() -> Response:
    if (bad := _token_check() or _fault("tags")) is not None:
        return bad
    body = _body_json()
    if isinstance(body, Response):
        return body
    name = (body.get("tag") or {}).get("name") if isinstance(body.get("tag"), dict) else None
    if not isinstance(name, str) or not name.strip():
        return _err(45157)
    if _nbytes(name) > TAG_NAME_BYTES:
        return _err(45158)
    st = state()
    with st.lock:
        if name in st.tags.values():
            return _err(45157)
        if len(st.tags) >= TAGS_MAX:
            return _err(45056)
        tag_id = 100 + len(st.tags)  # 0-99 are WeChat's own
        st.tags[tag_id] = name
    return _json({"tag": {"id": tag_id, "name": name}})


@bp.get("/cgi-bin/tags/get")
def tags_get() -> Response:
    if (bad := _token_check()) is not None:
        return bad
    st = state()
    with st.lock:
        tags = [{"id": i, "name": n, "count": sum(i in t for t in st.user_tags.values())} for i, n in st.tags.items()]
    return _json({"tags": tags})


def _batch(tagging: bool) -> Response:
    if (bad := _token_check() or _fault("tags")) is not None:
        return bad
    body = _body_json()
    if isinstance(body, Response):
        return body
    openids, tag_id = body.get("openid_list"), body.get("tagid")
    if not isinstance(openids, list) or not 1 <= len(openids) <= TAG_BATCH:
        return _err(40032)
    st = state()
    tag = int(str(tag_id)) if str(tag_id).isdigit() else -1
    with st.lock:
        if tag not in st.tags:
            return _err(45159)
        if any(not isinstance(o, str) or not OPENID.match(o) for o in openids):
            return _err(40003)
        if tagging and any(tag not in st.user_tags.get(o, set()) and len(st.user_tags.get(o, set())) >= TAGS_PER_USER for o in openids):
            return _err(45059)
        for o in openids:
            if tagging:
                st.user_tags.setdefault(o, set()).add(tag)
            else:
                st.user_tags.get(o, set()).discard(tag)
    return _err(0, "ok")


@bp.post("/cgi-bin/tags/members/batchtagging")
def tags_batchtagging() -> Response:
    return _batch(tagging=True)


@bp.post("/cgi-bin/tags/members/batchuntagging")
def tags_batchuntagging() -> Response:
    return _batch(tagging=False)


# --- customer-service messages ------------------------------------------------
@bp.post("/cgi-bin/message/custom/send")
def custom_send() -> Response:
    """Allowed after a user's message (``cs_max_in_window`` within ``cs_window_hours``) or a menu click
    (``cs_click_max`` within ``cs_click_window_seconds``): 45015 when no window is open, 45047 when spent."""
    if (bad := _token_check() or _fault("custom")) is not None:
        return bad
    body = _body_json()
    if isinstance(body, Response):
        return body
    openid = body.get("touser", "")
    if not isinstance(openid, str) or not OPENID.match(openid):
        return _err(40003)
    msgtype = body.get("msgtype")
    if msgtype not in ("text", "news", "link", "image", "miniprogrampage", "mpnews", "msgmenu"):
        return _err(40008)
    emu = config().emulator
    st = state()
    with st.lock:
        now = st.now()
        windows: list[tuple[float, int]] = []
        last = st.last_user_message.get(openid)
        if last is not None and now - last <= emu.cs_window_hours * 3600:
            windows.append((last, emu.cs_max_in_window))
        click = st.last_click.get(openid)
        if click is not None and now - click <= emu.cs_click_window_seconds:
            windows.append((click, emu.cs_click_max))
        if not windows:
            return _err(45015)
        sent = st.cs_sent.get(openid, [])
        if not any(sum(1 for t in sent if t >= start) < limit for start, limit in windows):
            return _err(45047)
        earliest = min(start for start, _ in windows)
        st.cs_sent[openid] = [*(t for t in sent if t >= earliest), now]
    content = body.get(msgtype, {})
    st.deliver(openid, {"kind": "customer_service", "msgtype": msgtype, "content": content})
    return _err(0, "ok")


# --- template messages ---------------------------------------------------------
def template_fields(cfg: Config) -> dict[str, set[str]]:
    """template_id -> the field keys the account's template has (from ``[notices]``)."""
    known: dict[str, set[str]] = {}
    for tpl in cfg.notices.templates.values():
        known.setdefault(tpl.template_id, set()).update(tpl.fields.values())
    return known


def _template_data_error(data: Any, fields: set[str]) -> str | None:
    if not isinstance(data, dict) or not data:
        return "data format error"
    for key, entry in data.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if key not in fields or not isinstance(value, str):
            return f"argument invalid! data.{key} invalid"
        if len(value) > TEMPLATE_VALUE_MAX or "\n" in value or "\r" in value:
            return f"argument invalid! data.{key}.value invalid"
    return None


TEMPLATE_SEND = "/cgi-bin/message/template/send"


class TemplateSend:
    """``POST /cgi-bin/message/template/send`` answered here, every other request passed on to ``app`` (Flask).

    The outbox's drain calls it hundreds of times a second on the same cores as the bot (bench row 3c), so it is plain
    WSGI in front of Flask, as the bot's own ``/wechat`` is (bot.chat.webhook): no request context, routing, session
    or response objects — the emulator's answer is WeChat's JSON, which carries none of the bot's headers. What it
    checks is unchanged (``template_send``); the template fields are read from the config once."""

    def __init__(self, app: Any, cfg: Config, st: EmulatorState) -> None:
        self.app, self.cfg, self.st = app, cfg, st
        self.fields = template_fields(cfg)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != TEMPLATE_SEND or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        token = next((v for k, v in parse_qsl(environ.get("QUERY_STRING", "")) if k == "access_token"), None)
        status, ctype, body = template_send(self.cfg, self.st, self.fields, token, get_input_stream(environ).read())
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]


def template_send(cfg: Config, st: EmulatorState, known: dict[str, set[str]], token: str | None, raw: bytes) -> Answer:
    """WeChat's template send: token, injected fault, body, openid, template, follower, refusal, data, url, quota;
    then the message is delivered and its job-finish report pushed back (``auto_deliver_pushes``)."""
    if code := st.check_token(token):
        return _err_answer(code)
    if (bad := fault_answer(cfg, st, "template")) is not None:
        return bad
    body = _parsed(raw)
    if isinstance(body, int):
        return _err_answer(body)
    openid = body.get("touser", "")
    if not isinstance(openid, str) or not OPENID.match(openid):
        return _err_answer(40003)
    template_id = body.get("template_id")
    fields = known.get(template_id) if isinstance(template_id, str) else None
    if fields is None:
        return _err_answer(40037)
    if openid not in st.followers:
        return _err_answer(43004)
    if (openid, template_id) in st.refused_templates:
        return _err_answer(43101)
    if problem := _template_data_error(body.get("data"), fields):
        return _err_answer(47001 if problem == "data format error" else 47003, problem)
    url = body.get("url")
    if url not in (None, "") and (not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https")):
        return _err_answer(47003, "argument invalid! url invalid")
    if not st.count_call("template", cfg.emulator.template_daily_quota):
        return _err_answer(45009)
    msgid = st.next_msgid()
    data = {k: v["value"] for k, v in body["data"].items()}
    item = {"kind": "template", "template_id": template_id, "data": data, "url": url or "", "msgid": msgid}
    st.deliver(openid, item)
    if cfg.emulator.auto_deliver_pushes:
        status = st.take_fault("template_status") or "success"
        xml = job_finish_xml(openid, msgid, status)
        if st.take_fault("template_report_first"):  # the report reaches the bot before the answer to its send
            push_event(cfg, st, openid, xml)
        else:
            threading.Thread(target=push_event, args=(cfg, st, openid, xml, cfg.emulator.push_delay_seconds), daemon=True).start()
    if st.take_fault("template_slow"):  # sent, but the answer comes too late: the caller sees a timeout
        time.sleep(cfg.wechat.request_timeout_seconds + 0.5)
    return 200, _JSON_TYPE, json.dumps({"errcode": 0, "errmsg": "ok", "msgid": msgid}).encode()


def job_finish_xml(openid: str, msgid: int | str, status: str, create_time: int | None = None) -> str:
    return (
        f"<xml><ToUserName>{cdata('gh_cardbot_demo')}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>{cdata('event')}</MsgType>"
        f"<Event>{cdata('TEMPLATESENDJOBFINISH')}</Event><MsgID>{msgid}</MsgID><Status>{cdata(status)}</Status></xml>"
    )


def make_pusher(cfg: Config, mode: str = "plain", on_push: Any = None, timeout: float = 5.0, on_reply: Any = None) -> Pusher:
    """A Pusher that posts to the bot's ``/wechat`` over real HTTP, as WeChat's servers do (5 s timeout)."""
    base = cfg.server.public_base_url

    def post(path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        r = requests.post(base + path, data=body, headers=headers, timeout=timeout)
        return r.status_code, r.text

    return Pusher(cfg.wechat, post, mode=mode, on_push=on_push, on_reply=on_reply)


def push_event(cfg: Config, st: EmulatorState, openid: str, xml: str, delay: float = 0.0) -> None:
    """Push a platform event to the bot (in a background thread); the outcome is kept in ``st.pushes``."""
    if delay:
        time.sleep(delay)
    record: dict[str, Any] = {"openid": openid, "xml": xml}
    for _attempt in range(3):  # like WeChat: a push that fails or times out is tried three times in all
        try:
            reply = make_pusher(cfg, st.push_mode).send(openid, xml)
            record.update(status=reply.status, reply=reply.raw)
            if reply.status == 200:
                break
        except (requests.RequestException, AssertionError, ValueError) as exc:
            record.update(status=0, reply=type(exc).__name__)
            log.warning("emulator push to /wechat failed: %s", type(exc).__name__)
    with st.lock:
        st.pushes.append(record)


# --- OAuth for H5 pages -----------------------------------------------------------
def _error_page(code: int, text: str, status: int = 400) -> Response:
    body = (
        '<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f'<title>微信</title><div style="font:16px sans-serif;text-align:center;padding:60px 20px;color:#333">'
        f'<p>{html.escape(text)}</p><p style="color:#999">{code}</p></div>'
    )
    return Response(body, status=status, mimetype="text/html")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


@bp.get("/connect/oauth2/authorize")
def oauth_authorize() -> Any:
    """The "phone" is the simulator's current user (cookie ``sim_openid``; tests may pass it as a query)."""
    a = request.args
    cfg = config()
    if a.get("appid") != cfg.wechat.appid:
        return _error_page(10003, "appid 参数错误 / invalid appid")
    redirect_uri = a.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or target.netloc != urlsplit(cfg.server.public_base_url).netloc:
        return _error_page(10003, "redirect_uri 域名与后台配置不一致 / redirect_uri domain not registered")
    if a.get("response_type") != "code":
        return _error_page(10004, "response_type 参数错误 / invalid response_type")
    scope = a.get("scope", "")
    if scope not in ("snsapi_base", "snsapi_userinfo"):
        return _error_page(10005, "scope 参数错误或没有 scope 权限 / invalid scope")
    openid = request.cookies.get("sim_openid") or a.get("sim_openid") or ""
    if not OPENID.match(openid):
        return _error_page(10001, "请在微信客户端打开链接 / Please open this link in WeChat", status=403)
    code = state().issue_code(openid, cfg.wechat.appid, scope)
    return redirect(_with_query(redirect_uri, code=code, state=a.get("state", "")), code=302)


@bp.get("/sns/oauth2/access_token")
def oauth_access_token() -> Response:
    a = request.args
    if (bad := _fault("oauth")) is not None:
        return bad
    if a.get("appid") != config().wechat.appid:
        return _err(40013)
    if a.get("secret") != config().wechat.secret:
        return _err(40125)
    if a.get("grant_type") != "authorization_code":
        return _err(40002)
    code, entry = state().redeem_code(a.get("code", ""), a.get("appid", ""))
    if entry is None:
        return _err(code)
    return _json(
        {
            "access_token": "OAT" + a.get("code", "")[:24],
            "expires_in": 7200,
            "refresh_token": "ORT" + a.get("code", "")[:24],
            "openid": entry.openid,
            "scope": entry.scope,
        }
    )
