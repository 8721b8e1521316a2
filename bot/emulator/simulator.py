"""The browser chat simulator at ``/simulator``: a WeChat chat on a phone, driven through the real ``/wechat``.

The page never talks to the bot directly: its JSON API (``/simulator/api/...``) plays WeChat's part, building
signed (or AES) pushes with the ``Pusher`` and posting them over real HTTP, exactly as WeChat's servers would.
With a remote card system (``[cardsystem] adapter = "http"``, the emulator's by default) the page also plays the
school's side: a kiosk (change a card's password, report it lost) and canteen swipes go to the emulator's card system,
whose terminals push each entry, signed, to the bot. With the ``ledger`` adapter the bot's ledger is the card system,
so a swipe is pushed straight to the bot and there is no kiosk.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request
from sqlalchemy import select

import menus
from bot.adapters import cardsys_signing
from bot.autodebit import expires_on
from bot.calendar import add_months, month_start
from bot.clock import SCHOOL_TZ
from bot.config import Config
from bot.emulator.bank import DEMO_ACCOUNTS
from bot.emulator.state import EmulatorState
from bot.emulator.wechat_api import OPENID, make_pusher
from models import Binding, TopupOrder
from models.passwords import initial_password

bp = Blueprint("simulator", __name__, url_prefix="/simulator", template_folder="templates", static_folder="static")

ROSTER = Path(__file__).with_name("demo_roster.csv")
UNAVAILABLE = "该公众号暂时无法提供服务，请稍后再试"
TRANSFERRED = "已转接人工客服，请稍候 / Handed to customer service"
MODES = ("plain", "compat", "aes")
PUSH_ATTEMPTS = 3  # WeChat tries a push three times when the server does not answer within 5 s

USERS = [
    {"openid": "oDemoStudentZhangSan01", "name": "张三", "role": "学生 Student"},
    {"openid": "oDemoStudentLiSi000002", "name": "李四", "role": "学生 Student"},
    {"openid": "oDemoIntlAnna000000003", "name": "Anna", "role": "国际学生 International"},
    {"openid": "oDemoParentZhang000004", "name": "张三家长", "role": "家长 Parent"},
]

TEMPLATE_TITLES = {
    "topup_receipt": "充值成功通知",
    "autodebit_success": "自动充值成功通知",
    "autodebit_failure": "自动充值失败提醒",
    "agreement_expiring": "代扣协议到期提醒",
    "agreement_expired": "代扣协议到期提醒",
    "refund_result": "退款结果通知",
    "card_lost": "校园卡挂失通知",
    "card_found": "校园卡解挂通知",
    "spend_alert": "消费提醒",
    "large_spend_alert": "消费提醒",
    "low_balance_alert": "余额不足提醒",
}
FIELD_LABELS = {
    "amount": "金额",
    "fee": "手续费",
    "balance": "余额",
    "time": "时间",
    "reason": "原因",
    "advice": "建议",
    "status": "状态",
    "date": "日期",
    "result": "结果",
    "card": "卡号",
    "merchant": "商户",
    "threshold": "提醒金额",
}
CLOCK_PRESETS = {
    "peak": "高峰时段 Peak hours",
    "quiet": "免打扰时段 Quiet hours",
    "bank_closed": "银行休息 Bank closed",
    "refund_deadline": "退款截止日 Refund deadline",
    "renewal": "九月续签 September renewal",
    "graduate_freeze": "毕业生冻结日 Graduate freeze",
}
MERCHANTS = ["第一食堂 Canteen 1", "第二食堂 Canteen 2", "校园超市 Campus Store", "图书馆打印 Library Print"]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/", "demo_home", lambda: redirect("/simulator"))  # the demo's front door, instead of a bare 404


def _cfg() -> Config:
    return current_app.extensions["cardbot"].cfg


def _state() -> EmulatorState:
    return current_app.extensions["emulator"]


def _bad(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error="bad_request", message=message), status


def _openid(value: Any) -> str | None:
    return value if isinstance(value, str) and OPENID.match(value) else None


def current_menu(openid: str | None = None) -> dict[str, Any]:
    """What the phone shows: the newest conditional menu matching one of the user's tags (the English menu), else
    the menu published through the API, else ``menus/menu.toml``."""
    return _state().menu_for(openid or "") or menus.load(_cfg().menu_path)


def demo_cards() -> list[dict[str, str]]:
    """The demo roster with each card's initial password, so a newcomer can bind without reading code."""
    if not ROSTER.exists():
        return []
    with ROSTER.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        {
            "student_no": r["student_no"],
            "name": r["name"],
            "password": initial_password(r["id_number"] or None, r["passport_no"] or None),
            "status": r["status"],
            "balance": r["balance"],
            "left_on": r["left_on"],
        }
        for r in rows
    ]


@bp.get("")
@bp.get("/")
def page() -> Any:
    cfg = _cfg()
    public = urlsplit(cfg.server.public_base_url)
    if request.host != public.netloc:
        # OAuth and the web view live on the public address; the phone must be on the same origin to reach them.
        return redirect(f"{cfg.server.public_base_url}/simulator")
    boot = {
        "account": f"{cfg.school.name} 校园卡",
        "users": USERS,
        "menu": current_menu(),
        "modes": MODES,
        "mode": _state().push_mode,
        "merchants": MERCHANTS,
        "topupUrl": f"{cfg.server.public_base_url}/topup",
        "powerUrl": f"{cfg.server.public_base_url}/power",
        "remote": _remote(),
        "clock": _clock_state(),
    }
    return render_template("simulator.html", boot=boot, cards=demo_cards(), banks=bank_accounts(), account=boot["account"], remote=boot["remote"])


def bank_accounts() -> list[dict[str, str]]:
    """The sandbox bank's demo accounts with their balances now, to sign auto top-up with."""
    bank = current_app.extensions["emulator_bank"]
    with bank.lock:
        return [
            {"number": no, "balance": f"{bank.accounts[no].balance_fen / 100:.2f}", "refuses": "yes" if bank.accounts[no].refuses else ""}
            for no in DEMO_ACCOUNTS
            if no in bank.accounts
        ]


def _clock_presets() -> list[dict[str, str]]:
    """Business moments worth showing: peak hours, quiet hours, the bank closed, the refund deadline, September's
    renewal and the demo graduate's freeze day (each a local time, YYYY-MM-DDTHH:MM)."""
    svc = current_app.extensions["cardbot"]
    cfg = svc.cfg
    today = datetime.now(SCHOOL_TZ).date()
    at = {
        "peak": datetime.combine(today, cfg.topup.peak_hours[-1].start) + timedelta(minutes=15),
        "quiet": datetime.combine(today, cfg.notices.quiet_hours.start) + timedelta(minutes=30),
        "bank_closed": datetime.combine(today, cfg.autodebit.bank_hours.end) + timedelta(minutes=20),
        "refund_deadline": datetime.combine(month_start(today, back=-1).replace(day=cfg.autodebit.refund_request_day), time(12)),
        "renewal": datetime.combine(expires_on(svc, today), time(10)),
    }
    graduates = [c for c in demo_cards() if c["status"] == "graduated" and c["left_on"]]
    if graduates:
        left_on = date.fromisoformat(graduates[0]["left_on"])
        at["graduate_freeze"] = datetime.combine(add_months(left_on, cfg.graduates.freeze_after_months), time(10))
    return [{"key": k, "label": CLOCK_PRESETS[k], "at": f"{v:%Y-%m-%dT%H:%M}"} for k, v in at.items()]


def _clock_state() -> dict[str, Any]:
    clock = current_app.extensions["cardbot"].clock
    return {"now": f"{clock.now():%Y-%m-%dT%H:%M}", "frozen": clock.frozen, "presets": _clock_presets()}


@bp.post("/api/clock")
def api_clock() -> Response | tuple[Response, int]:
    """Set the demo's business time (``{"at": "YYYY-MM-DDTHH:MM"}``, school time, then it stands still) or go back to
    real time (``{"reset": true}``). The bot, the worker thread and the sandbox bank all read this clock."""
    body = request.get_json(silent=True) or {}
    clock = current_app.extensions["cardbot"].clock
    if body.get("reset") is True:
        clock.freeze(None)
        return jsonify(_clock_state())
    try:
        at = datetime.strptime(str(body.get("at", "")), "%Y-%m-%dT%H:%M")
    except ValueError:
        return _bad("at must be YYYY-MM-DDTHH:MM (school time)")
    clock.freeze(at.replace(tzinfo=SCHOOL_TZ))
    return jsonify(_clock_state())


def _remote() -> bool:
    return bool(current_app.extensions["cardbot"].card_system.remote)


@bp.get("/api/menu")
def api_menu() -> Response:
    return jsonify(current_menu(_openid(request.args.get("openid"))))


@bp.post("/api/user")
def api_user() -> Response | tuple[Response, int]:
    """Switch the "phone" to another WeChat user: OAuth answers for them; the bot's page session is dropped."""
    openid = _openid((request.get_json(silent=True) or {}).get("openid"))
    if not openid:
        return _bad("openid must match ^[A-Za-z0-9_-]{1,64}$")
    resp = jsonify(openid=openid, following=openid in _state().followers)
    resp.set_cookie("sim_openid", openid, httponly=True, samesite="Lax")
    resp.delete_cookie(current_app.config.get("SESSION_COOKIE_NAME", "session"))
    return resp


@bp.post("/api/mode")
def api_mode() -> Response | tuple[Response, int]:
    mode = (request.get_json(silent=True) or {}).get("mode")
    if mode not in MODES:
        return _bad(f"mode must be one of {', '.join(MODES)}")
    _state().push_mode = mode
    return jsonify(mode=mode)


def _push(openid: str, kind: str, xml: str, mode: str) -> dict[str, Any]:
    """Post one push as WeChat does: up to three attempts of 5 s each; the reply as the phone shows it."""
    st = _state()
    st.user_pushed(openid, kind)
    pusher = make_pusher(_cfg(), mode, on_reply=st.observe_reply)
    last_error = ""
    for _ in range(PUSH_ATTEMPTS):
        try:
            reply = pusher.send(openid, xml)
        except requests.Timeout:
            last_error = "timeout"
            continue
        except (requests.RequestException, AssertionError, ValueError) as exc:
            last_error = type(exc).__name__
            break
        if reply.status != 200:
            last_error = f"HTTP {reply.status}"
            break
        if reply.empty:
            return {"status": reply.status, "type": ""}
        if reply.type == "text":
            st.record_chat(openid, {"kind": "reply", "msgtype": "text", "content": reply.content})
        elif reply.type == "news":
            st.record_chat(openid, {"kind": "reply", "msgtype": "news", "articles": reply.articles})
        elif reply.transferred:
            st.record_chat(openid, {"kind": "system", "content": TRANSFERRED})
        else:
            last_error = f"unsupported reply {reply.type!r}"
            break
        return {"status": reply.status, "type": reply.type, "content": reply.content, "articles": reply.articles}
    st.record_chat(openid, {"kind": "system", "content": UNAVAILABLE, "detail": last_error})
    return {"status": 0, "type": "", "error": last_error}


@bp.post("/api/send")
def api_send() -> Response | tuple[Response, int]:
    """``{openid, type: text|click|view|event, content|key|url|event, mode}`` → the bot's reply."""
    body = request.get_json(silent=True) or {}
    openid = _openid(body.get("openid"))
    if not openid:
        return _bad("openid must match ^[A-Za-z0-9_-]{1,64}$")
    mode = body.get("mode") or _state().push_mode
    if mode not in MODES:
        return _bad(f"mode must be one of {', '.join(MODES)}")
    pusher = make_pusher(_cfg(), mode)
    kind = body.get("type")
    if kind == "text":
        content = body.get("content")
        if not isinstance(content, str) or not content.strip() or len(content) > 2000:
            return _bad("content must be 1-2000 characters")
        _state().record_chat(openid, {"kind": "user", "msgtype": "text", "content": content})
        xml = pusher.xml(openid, "text", {"Content": content, "MsgId": str(_state().next_msgid())})
        push_kind = "message"
    elif kind in ("click", "view"):
        key = body.get("url" if kind == "view" else "key")
        if not isinstance(key, str) or not key or len(key.encode()) > 1024:
            return _bad("key (or url) required")
        xml = pusher.xml(openid, "event", {"Event": kind.upper(), "EventKey": key})
        push_kind = "click" if kind == "click" else "view"
    elif kind == "event":
        event = body.get("event")
        if event not in ("subscribe", "unsubscribe"):
            return _bad("event must be subscribe or unsubscribe")
        fields = {"Event": event, "EventKey": ""} if event == "subscribe" else {"Event": event}
        xml = pusher.xml(openid, "event", fields)
        push_kind = event
    else:
        return _bad("type must be text, click, view or event")
    result = _push(openid, push_kind, xml, mode)
    return jsonify(result)


def _template_view(item: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """Title and labelled rows for a template message, from the ``[notices]`` table that names its fields."""
    for kind, tpl in cfg.notices.templates.items():
        if tpl.template_id == item["template_id"]:
            labels = {v: FIELD_LABELS.get(k, k) for k, v in tpl.fields.items()}
            rows = [{"label": labels.get(k, k), "value": v} for k, v in item["data"].items()]
            return {**item, "title": TEMPLATE_TITLES.get(kind, kind), "rows": rows}
    return {**item, "title": item["template_id"], "rows": [{"label": k, "value": v} for k, v in item["data"].items()]}


@bp.get("/api/messages")
def api_messages() -> Response | tuple[Response, int]:
    """Poll: everything the phone shows for ``openid`` after message id ``since``."""
    openid = _openid(request.args.get("openid"))
    if not openid:
        return _bad("openid must match ^[A-Za-z0-9_-]{1,64}$")
    try:
        since = int(request.args.get("since", "0"))
    except ValueError:
        return _bad("since must be an integer")
    cfg = _cfg()
    items = [_template_view(m, cfg) if m.get("kind") == "template" else m for m in _state().transcript_since(openid, since)]
    return jsonify(messages=items, following=openid in _state().followers)


def _yuan_to_fen(text: Any) -> int | None:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value > 1000 or value != value.quantize(Decimal("0.01")):
        return None
    return int(value * 100)


@bp.post("/api/swipe")
def api_swipe() -> Response | tuple[Response, int]:
    """Spend at a canteen terminal: the card system reports the entry to ``/integration/card-entries``."""
    body = request.get_json(silent=True) or {}
    openid = _openid(body.get("openid"))
    if not openid:
        return _bad("openid must match ^[A-Za-z0-9_-]{1,64}$")
    fen = _yuan_to_fen(body.get("amount"))
    if fen is None:
        return _bad("amount must be 0.01-1000 yuan with at most 2 decimals")
    merchant = body["merchant"] if isinstance(body.get("merchant"), str) else MERCHANTS[0]
    svc = current_app.extensions["cardbot"]
    with svc.session() as db:
        binding = db.scalars(select(Binding).where(Binding.openid == openid)).first()
        student_no = binding.cardholder.student_no if binding else ""
    if not student_no:
        return jsonify(error="not_bound", message="请先绑定校园卡 / Bind a card first."), 409
    if _remote():
        return _swipe_at_card_system(student_no, fen, merchant[:64])
    entry = {
        "entry_id": f"SIM{uuid.uuid4().hex[:20]}",
        "student_no": student_no,
        "amount_fen": -fen,
        "merchant": merchant[:64],
        "occurred_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    raw = json.dumps(entry, ensure_ascii=False).encode()
    url = f"{_cfg().server.public_base_url}/integration/card-entries"
    headers = {"Content-Type": "application/json", **cardsys_signing.sign(_cfg().cardsystem.secret, "POST", urlsplit(url).path, raw)}
    try:
        r = requests.post(url, data=raw, headers=headers, timeout=10)
    except requests.RequestException as exc:
        return jsonify(error="unreachable", message=type(exc).__name__), 502
    try:
        answer: Any = r.json()
    except ValueError:
        answer = r.text[:200]
    return jsonify(status=r.status_code, entry=entry, response=answer)


def _swipe_at_card_system(student_no: str, fen: int, merchant: str) -> Response | tuple[Response, int]:
    """The emulator's canteen terminal debits its own account and pushes the entry to the bot; both answers shown."""
    url = f"{_cfg().server.public_base_url}/emulator/cardsys/terminals/swipe"
    try:
        r = requests.post(url, json={"student_no": student_no, "amount_fen": fen, "merchant": merchant}, timeout=15)
        answer = r.json()
    except (requests.RequestException, ValueError) as exc:
        return jsonify(error="unreachable", message=type(exc).__name__), 502
    if r.status_code != 200:  # the terminal refused (lost card, not enough money): nothing was pushed
        return jsonify(status=r.status_code, entry=None, response=answer)
    push = answer["push"]
    return jsonify(status=push["status"], entry=answer["entry"], response=push.get("response", push.get("error")))


@bp.get("/api/prepay")
def api_prepay() -> Response | tuple[Response, int]:
    """What the pay sheet shows for ``package=prepay_id=...``: the amount and who is paid."""
    match = re.fullmatch(r"prepay_id=([\w-]{1,64})", request.args.get("package", ""))
    if not match:
        return _bad("package must be prepay_id=...")
    svc = current_app.extensions["cardbot"]
    with svc.session() as db:
        order = db.scalars(select(TopupOrder).where(TopupOrder.prepay_id == match.group(1))).first()
        if order is None:
            return jsonify(error="not_found", message="unknown prepay_id"), 404
        total = order.total_fen
    return jsonify(total_fen=total, payee=_cfg().school.name, description="校园卡充值 Campus card top-up")
