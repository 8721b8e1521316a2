"""Emulated WeChat Pay API v3 (direct merchant, JSAPI), reached through ``[pay] api_base_url``.

Like the real service it checks the merchant's ``Authorization`` signature on every request (merchant public key),
signs every response and notify with the platform key (serial = ``[pay] public_key_id``), encrypts notify resources
with AES-256-GCM under the APIv3 key, stamps notifies with the bot's business clock, and retries notifies on
WeChat's schedule (scaled by ``[emulator] notify_retry_scale``), sometimes sending two at once
(``notify_duplicate_rate``).

``POST /emulator/pay/confirm`` is the phone's side of ``WeixinJSBridge.invoke('getBrandWCPayRequest')``: the
simulator's shim posts the page's pay params there; the paySign is verified and the order is paid or cancelled.

Refunds (``/v3/refund/domestic/refunds``) follow v3: only a paid order, never more than it was paid in all, one
refund per ``out_refund_no`` (a repeat gets the same refund; the same number for something else is refused). A
refund answers PROCESSING, settles after ``REFUND_SETTLE_SECONDS`` (scaled like the notify retries), then sends a
signed, encrypted ``REFUND.*`` notify to its notify_url on the payment notifies' schedule.

Tests reach the state through ``app.extensions["emulator_pay"]`` (``notify_enabled``, ``notify_log``, ``orders``,
``refunds``, ``faults``). Faults, by endpoint (``"query"``, ``"close"``, ``"refund"``, ``"refund_query"``), as
``bot.emulator.state`` describes: ``"5xx"`` answers 500 SYSTEM_ERROR without acting; ``"lost"`` acts, then answers
500 as if the answer got lost; ``"paid_meanwhile"`` (close only) lets the student's payment land just before the
close, which WeChat then refuses; refund only: ``"not_enough"`` refuses with 403 NOT_ENOUGH (the merchant's
balance), ``"abnormal"`` / ``"closed"`` make the refund end ABNORMAL / CLOSED instead of SUCCESS.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Blueprint, Flask, Response, current_app, request

from bot.clock import Clock
from bot.config import Config
from bot.emulator.state import pop_fault

log = logging.getLogger(__name__)
bp = Blueprint("emulator_pay", __name__)

BEIJING = timezone(timedelta(hours=8))
OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
REFUND_SETTLE_SECONDS = 60  # PROCESSING → final state, scaled by ``notify_retry_scale``
AUTH = re.compile(r"^WECHATPAY2-SHA256-RSA2048 (.+)$")
RETRY_SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)


SUMMARIES = {"TRANSACTION.SUCCESS": "支付成功", "REFUND.SUCCESS": "退款成功", "REFUND.ABNORMAL": "退款异常", "REFUND.CLOSED": "退款关闭"}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).isoformat(timespec="seconds")


def rsa_sign(key: Any, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: Any, message: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def signed_notify(
    resource: dict[str, Any],
    *,
    private_key: Any,
    serial: str,
    apiv3_key: str,
    event_type: str = "TRANSACTION.SUCCESS",
    notify_id: str | None = None,
    kind: str = "transaction",
    at: float | None = None,
) -> tuple[dict[str, str], bytes]:
    """A notify exactly as WeChat Pay builds it: AES-256-GCM resource, envelope signed with the platform key.
    Retries and duplicates of one notification share its ``id``; each copy is encrypted and signed afresh, stamped
    ``at`` (epoch seconds, default now): the emulator passes the bot's business clock, a test a stale or future time.
    ``kind`` is ``transaction`` or ``refund``."""
    at = time.time() if at is None else at
    nonce = secrets.token_hex(6)  # 12 ASCII characters, as WeChat uses
    associated = kind
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), associated.encode())
    envelope = {
        "id": notify_id or str(uuid.uuid4()),
        "create_time": rfc3339(at),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": SUMMARIES.get(event_type, "通知"),
        "resource": {
            "original_type": kind,
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated,
            "nonce": nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False)
    ts, sig_nonce = str(int(at)), secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Serial": serial,
        "Wechatpay-Timestamp": ts,
        "Wechatpay-Nonce": sig_nonce,
        "Wechatpay-Signature": rsa_sign(private_key, f"{ts}\n{sig_nonce}\n{body}\n"),
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }
    return headers, body.encode()


@dataclass(frozen=True)
class Notification:
    """What one notify attempt sends, read afresh under the lock before each attempt."""

    url: str
    resource: dict[str, Any]
    notify_id: str
    event_type: str
    kind: str
    log: dict[str, Any]


@dataclass
class Order:
    appid: str
    mchid: str
    out_trade_no: str
    description: str
    total: int
    openid: str
    notify_url: str
    time_expire: float
    prepay_id: str
    trade_state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: float | None = None
    refunded: int = 0
    time_expire_text: str = ""
    notify_id: str = ""

    def transaction(self) -> dict[str, Any]:
        desc = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "CLOSED": "订单已关闭", "REFUND": "转入退款"}[self.trade_state]
        tx: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "trade_state": self.trade_state,
            "trade_state_desc": desc,
            "payer": {"openid": self.openid},
            "amount": {"total": self.total, "currency": "CNY"},
        }
        if self.transaction_id:
            tx.update(
                transaction_id=self.transaction_id,
                trade_type="JSAPI",
                bank_type="OTHERS",
                attach="",
                success_time=rfc3339(self.success_time or 0),
            )
            tx["amount"].update(payer_total=self.total, payer_currency="CNY")
        return tx

    def notification(self) -> Notification:
        return Notification(
            self.notify_url, self.transaction(), self.notify_id, "TRANSACTION.SUCCESS", "transaction", {"out_trade_no": self.out_trade_no}
        )


@dataclass
class Refund:
    refund_id: str
    out_refund_no: str
    out_trade_no: str
    transaction_id: str
    mchid: str
    amount: int
    total: int
    at: float
    reason: str = ""
    notify_url: str = ""
    outcome: str = "SUCCESS"  # what PROCESSING turns into (a fault may make it ABNORMAL or CLOSED)
    status: str = "PROCESSING"
    success_at: float | None = None
    notify_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def _amount(self) -> dict[str, Any]:
        return {"total": self.total, "refund": self.amount, "payer_total": self.total, "payer_refund": self.amount}

    def as_json(self) -> dict[str, Any]:
        """The refund as the apply and query endpoints answer it."""
        answer: dict[str, Any] = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(self.at),
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": self.total,
                "refund": self.amount,
                "payer_total": self.total,
                "payer_refund": self.amount,
                "settlement_refund": self.amount,
                "settlement_total": self.total,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if self.success_at is not None:
            answer["success_time"] = rfc3339(self.success_at)
        return answer

    def notify_resource(self) -> dict[str, Any]:
        """The decrypted resource of a REFUND.* notify (v3 names the state ``refund_status`` there)."""
        resource: dict[str, Any] = {
            "mchid": self.mchid,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "refund_status": self.status,
            "user_received_account": "支付用户零钱",
            "amount": self._amount(),
        }
        if self.success_at is not None:
            resource["success_time"] = rfc3339(self.success_at)
        return resource

    def notification(self) -> Notification:
        event = f"REFUND.{self.status}"
        return Notification(
            self.notify_url,
            self.notify_resource(),
            self.notify_id,
            event,
            "refund",
            {"out_trade_no": self.out_trade_no, "out_refund_no": self.out_refund_no, "event_type": event},
        )


@dataclass
class PayEmulator:
    cfg: Config
    lock: threading.RLock = field(default_factory=threading.RLock)
    orders: dict[str, Order] = field(default_factory=dict)
    prepay: dict[str, str] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    bills: dict[str, bytes] = field(default_factory=dict)
    notify_enabled: bool = True
    notify_log: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, Any] = field(default_factory=dict)
    clock_offset: float = 0.0
    clock: Clock = field(default_factory=Clock)  # the bot's business clock: notifies are signed by it
    _keys: dict[str, Any] = field(default_factory=dict)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def take_fault(self, name: str) -> Any:
        with self.lock:
            return pop_fault(self.faults, name)

    def pay(self, order: Order) -> None:
        """The student's payment goes through (the caller holds the lock and schedules the notify)."""
        order.trade_state = "SUCCESS"
        digits = "".join(secrets.choice("0123456789") for _ in range(16))
        order.transaction_id = "4200" + datetime.fromtimestamp(self.now(), BEIJING).strftime("%Y%m%d") + digits
        order.success_time = self.now()
        order.notify_id = str(uuid.uuid4())

    def key(self, name: str) -> Any:
        """``merchant_public`` (verifies requests and paySign) or ``platform_private`` (signs responses and notifies)."""
        if name not in self._keys:
            e = self.cfg.emulator
            if name == "merchant_public":
                self._keys[name] = serialization.load_pem_public_key(Path(e.merchant_public_key_path).read_bytes())
            else:
                self._keys[name] = serialization.load_pem_private_key(Path(e.platform_private_key_path).read_bytes(), None)
        return self._keys[name]

    # --- notifies --------------------------------------------------------------
    def schedule_notify(self, order: Order) -> None:
        if self.notify_enabled:
            no = order.out_trade_no
            threading.Thread(target=self._notify_loop, args=(lambda: self.orders[no].notification(),), daemon=True, name="emu-pay-notify").start()

    def schedule_refund(self, refund: Refund) -> None:
        """PROCESSING for a while, then the refund's outcome, then its notify (when it named a notify_url)."""
        threading.Thread(target=self._settle_refund, args=(refund.out_refund_no,), daemon=True, name="emu-pay-refund").start()

    def _settle_refund(self, out_refund_no: str) -> None:
        time.sleep(REFUND_SETTLE_SECONDS * self.cfg.emulator.notify_retry_scale)
        with self.lock:
            r = self.refunds[out_refund_no]
            r.status = r.outcome
            if r.status == "SUCCESS":
                r.success_at = self.now()
            elif r.status == "CLOSED":  # the money stays with the merchant: refundable again
                order = self.orders[r.out_trade_no]
                order.refunded -= r.amount
                if not any(x.out_trade_no == order.out_trade_no and x.status != "CLOSED" for x in self.refunds.values()):
                    order.trade_state = "SUCCESS"
            notify = self.notify_enabled and bool(r.notify_url)
        if notify:
            self._notify_loop(lambda: self.refunds[out_refund_no].notification())

    def _notify_loop(self, current: Callable[[], Notification]) -> None:
        scale = self.cfg.emulator.notify_retry_scale
        for attempt, delay in enumerate((0, *RETRY_SCHEDULE), start=1):
            time.sleep(delay * scale)
            with self.lock:
                n = current()
            copies = 2 if random.random() < self.cfg.emulator.notify_duplicate_rate else 1
            with ThreadPoolExecutor(max_workers=copies) as pool:
                results = list(pool.map(lambda _n, a=attempt, m=n: self._post_notify(m, a), range(copies)))
            if any(s in (200, 204) for s in results) or -1 in results:
                return

    def _post_notify(self, n: Notification, attempt: int) -> int:
        headers, body = signed_notify(
            n.resource,
            private_key=self.key("platform_private"),
            serial=self.cfg.pay.public_key_id,
            apiv3_key=self.cfg.pay.apiv3_key,
            event_type=n.event_type,
            notify_id=n.notify_id,
            kind=n.kind,
            at=self.clock.now().timestamp(),
        )
        try:
            status = requests.post(n.url, data=body, headers=headers, timeout=5).status_code
        except requests.ConnectionError:
            status = -1  # nobody listens any more (the app shut down): stop, the emulator went with it
        except requests.RequestException:
            status = 0
        with self.lock:
            self.notify_log.append({**n.log, "attempt": attempt, "status": status})
        return status


def emu() -> PayEmulator:
    return current_app.extensions["emulator_pay"]


def _signed(status: int, obj: dict[str, Any] | None = None) -> Response:
    """A response signed like WeChat Pay's (the SDK verifies every 2xx)."""
    body = "" if obj is None else json.dumps(obj, ensure_ascii=False)
    ts, nonce = str(int(time.time())), secrets.token_hex(16)
    resp = Response(body, status=status, mimetype="application/json")
    resp.headers.update(
        {
            "Request-ID": uuid.uuid4().hex,
            "Wechatpay-Serial": emu().cfg.pay.public_key_id,
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(emu().key("platform_private"), f"{ts}\n{nonce}\n{body}\n"),
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        }
    )
    return resp


def _error(status: int, code: str, message: str) -> Response:
    return _signed(status, {"code": code, "message": message})


def _busy() -> Response:
    return _error(500, "SYSTEM_ERROR", "系统错误")


def _check_auth() -> Response | None:
    """Verify the merchant's ``Authorization`` header over method, path+query, timestamp, nonce and body."""
    m = AUTH.match(request.headers.get("Authorization", ""))
    if not m:
        return _error(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
    parts = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
    cfg = emu().cfg
    if parts.get("mchid") != cfg.pay.mchid:
        return _error(401, "SIGN_ERROR", "商户号与签名不匹配")
    if parts.get("serial_no") != cfg.pay.cert_serial_no:
        return _error(401, "SIGN_ERROR", "证书序列号错误")
    try:
        skew = abs(time.time() - int(parts.get("timestamp", "")))
    except ValueError:
        return _error(401, "SIGN_ERROR", "时间戳错误")
    if skew > 300:
        return _error(401, "SIGN_ERROR", "请求时间与系统时间相差过大")
    path = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    message = f"{request.method}\n{path}\n{parts['timestamp']}\n{parts.get('nonce_str', '')}\n{request.get_data(as_text=True)}\n"
    if not rsa_verify(emu().key("merchant_public"), message, parts.get("signature", "")):
        return _error(401, "SIGN_ERROR", "签名错误")
    return None


def _body() -> dict[str, Any] | None:
    try:
        data = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _parse_time(text: Any) -> float | None:
    try:
        dt = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo else None


# --- orders ---------------------------------------------------------------------
@bp.post("/v3/pay/transactions/jsapi")
def jsapi() -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    b = _body()
    if b is None:
        return _error(400, "PARAM_ERROR", "请求体不是合法的JSON")
    cfg, e = emu().cfg, emu()
    amount, payer = b.get("amount") or {}, b.get("payer") or {}
    expire = _parse_time(b.get("time_expire")) if b.get("time_expire") else e.now() + 7200
    problems = [
        (b.get("appid") != cfg.wechat.appid, "appid和mch_id不匹配"),
        (b.get("mchid") != cfg.pay.mchid, "商户号mchid与appid不匹配"),
        (not isinstance(b.get("description"), str) or not 0 < len(b["description"]) <= 127, "description 长度应在1-127之间"),
        (not isinstance(b.get("out_trade_no"), str) or not OUT_TRADE_NO.match(b["out_trade_no"]), "out_trade_no 格式错误"),
        (not isinstance(b.get("notify_url"), str) or not b["notify_url"].startswith(("https://", "http://")), "notify_url 格式错误"),
        (not isinstance(amount, dict) or type(amount.get("total")) is not int or amount["total"] <= 0, "amount.total 应为正整数（分）"),
        (isinstance(amount, dict) and amount.get("currency", "CNY") != "CNY", "currency 仅支持 CNY"),
        (not isinstance(payer, dict) or not isinstance(payer.get("openid"), str) or not payer["openid"], "payer.openid 缺失"),
        (expire is None, "time_expire 格式错误，应为 RFC3339"),
    ]
    for failed, message in problems:
        if failed:
            return _error(400, "PARAM_ERROR", message)
    assert expire is not None
    with e.lock:
        old = e.orders.get(b["out_trade_no"])
        if old is not None:
            if old.trade_state == "SUCCESS":
                return _error(400, "ORDERPAID", "该订单已支付")
            if old.trade_state == "CLOSED":
                return _error(400, "ORDER_CLOSED", "该订单已关闭")
            if (old.total, old.openid, old.description) != (amount["total"], payer["openid"], b["description"]):
                return _error(400, "INVALID_REQUEST", "201 商户订单号重复")
            return _signed(200, {"prepay_id": old.prepay_id})
        order = Order(
            appid=b["appid"],
            mchid=b["mchid"],
            out_trade_no=b["out_trade_no"],
            description=b["description"],
            total=amount["total"],
            openid=payer["openid"],
            notify_url=b["notify_url"],
            time_expire=expire,
            time_expire_text=str(b.get("time_expire", "")),
            prepay_id="wx" + datetime.now(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(12),
        )
        e.orders[order.out_trade_no] = order
        e.prepay[order.prepay_id] = order.out_trade_no
    return _signed(200, {"prepay_id": order.prepay_id})


def _find(out_trade_no: str) -> Order | None:
    with emu().lock:
        return emu().orders.get(out_trade_no)


@bp.get("/v3/pay/transactions/out-trade-no/<out_trade_no>")
def query(out_trade_no: str) -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    if request.args.get("mchid") != emu().cfg.pay.mchid:
        return _error(400, "PARAM_ERROR", "mchid 参数错误")
    if emu().take_fault("query") in ("5xx", "lost"):
        return _busy()
    order = _find(out_trade_no)
    if order is None:
        return _error(404, "ORDER_NOT_EXIST", "订单不存在")
    with emu().lock:
        return _signed(200, order.transaction())


@bp.post("/v3/pay/transactions/out-trade-no/<out_trade_no>/close")
def close(out_trade_no: str) -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    b = _body() or {}
    if b.get("mchid") != emu().cfg.pay.mchid:
        return _error(400, "PARAM_ERROR", "mchid 参数错误")
    e = emu()
    fault = e.take_fault("close")
    if fault == "5xx":
        return _busy()
    with e.lock:
        order = e.orders.get(out_trade_no)
        if order is None:
            return _error(404, "ORDER_NOT_EXIST", "订单不存在")
        if fault == "paid_meanwhile" and order.trade_state == "NOTPAY":
            e.pay(order)
            e.schedule_notify(order)
        if order.trade_state in ("SUCCESS", "REFUND"):
            return _error(400, "ORDERPAID", "订单已支付")
        order.trade_state = "CLOSED"
    return _busy() if fault == "lost" else _signed(204)


# --- the phone: WeixinJSBridge getBrandWCPayRequest ---------------------------------
@bp.post("/emulator/pay/confirm")
def confirm() -> Response:
    """The simulator's shim: verify the page's paySign like the WeChat client does, then pay (or cancel)."""

    def fail(desc: str, status: int = 400) -> Response:
        body = json.dumps({"err_msg": "get_brand_wcpay_request:fail", "err_desc": desc}, ensure_ascii=False)
        return Response(body, status=status, mimetype="application/json")

    b = request.get_json(silent=True)
    if not isinstance(b, dict):
        return fail("bad request")
    e = emu()
    fields = [str(b.get(k) or "") for k in ("appId", "timeStamp", "nonceStr", "package")]
    if not all(isinstance(b.get(k), str) for k in ("appId", "timeStamp", "nonceStr", "package")) or not all(fields) or b.get("signType") != "RSA":
        return fail("支付参数缺失 / missing pay params")
    if b["appId"] != e.cfg.wechat.appid:
        return fail("appId 不正确 / wrong appId")
    if not rsa_verify(e.key("merchant_public"), "".join(f + "\n" for f in fields), str(b.get("paySign", ""))):
        return fail("支付验证签名失败 / paySign does not verify")
    prepay_id = b["package"].removeprefix("prepay_id=")
    with e.lock:
        order = e.orders.get(e.prepay.get(prepay_id, ""))
        if order is None:
            return fail("订单不存在 / unknown prepay_id")
        if b.get("openid") != order.openid:
            return fail("当前用户不是下单用户 / payer is not the order's user", 403)
        if b.get("outcome") == "cancel":
            return Response(json.dumps({"err_msg": "get_brand_wcpay_request:cancel"}), mimetype="application/json")
        if order.trade_state != "NOTPAY":
            return fail("订单已支付或已关闭 / order already paid or closed", 409)
        if e.now() >= order.time_expire:
            return fail("订单已过期 / order expired", 409)
        e.pay(order)
    e.schedule_notify(order)
    return Response(json.dumps({"err_msg": "get_brand_wcpay_request:ok"}), mimetype="application/json")


# --- bills -------------------------------------------------------------------------
def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _order_columns(o: Any, at: float, state: str) -> list[str]:
    """The trade bill's first columns, which a payment row and a refund row of one order share."""
    when = datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M:%S")
    return [when, o.appid, o.mchid, "0", "", o.transaction_id or "", o.out_trade_no, o.openid, "JSAPI", state, "OTHERS", "CNY"]


def _bill_rows(day: str, bill_type: str) -> list[list[str]]:
    e = emu()
    rows: list[list[str]] = []

    def on_day(ts: float | None) -> bool:
        return ts is not None and datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d") == day

    with e.lock:
        if bill_type in ("ALL", "SUCCESS"):
            for o in e.orders.values():
                if o.transaction_id and on_day(o.success_time):
                    rows.append(
                        [
                            *_order_columns(o, o.success_time or 0, "SUCCESS"),
                            _yuan(o.total),
                            "0.00",
                            "0",
                            "0",
                            "0.00",
                            "0.00",
                            "",
                            "",
                            o.description,
                            "",
                            _yuan(o.total * 6 // 1000),
                            "0.60%",
                            _yuan(o.total),
                            "0.00",
                            "",
                        ]
                    )
        if bill_type in ("ALL", "REFUND"):
            for r in e.refunds.values():
                if r.status != "CLOSED" and on_day(r.at):
                    o = e.orders[r.out_trade_no]
                    rows.append(
                        [
                            *_order_columns(o, r.at, "REFUND"),
                            "0.00",
                            "0.00",
                            r.refund_id,
                            r.out_refund_no,
                            _yuan(r.amount),
                            "0.00",
                            "ORIGINAL",
                            r.status,
                            o.description,
                            "",
                            "0.00",
                            "0.60%",
                            _yuan(o.total),
                            _yuan(r.amount),
                            "",
                        ]
                    )
    return rows


@bp.get("/v3/bill/tradebill")
def trade_bill() -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    a = request.args
    day, bill_type, tar = a.get("bill_date", ""), a.get("bill_type", "ALL"), a.get("tar_type", "")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) or bill_type not in ("ALL", "SUCCESS", "REFUND") or tar not in ("", "GZIP"):
        return _error(400, "PARAM_ERROR", "参数错误")
    rows = _bill_rows(day, bill_type)
    if not rows:
        return _error(400, "NO_STATEMENT_EXIST", "账单文件不存在")
    total = sum(int(r[12].replace(".", "")) for r in rows)
    refund = sum(int(r[16].replace(".", "")) for r in rows)
    lines = [
        BILL_HEADER,
        *(",".join("`" + v for v in r) for r in rows),
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        ",".join("`" + v for v in (str(len(rows)), _yuan(total), _yuan(refund), "0.00", "0.00", _yuan(total), _yuan(refund))),
    ]
    text = ("\n".join(lines) + "\n").encode()
    token = secrets.token_urlsafe(16)
    with emu().lock:
        emu().bills[token] = gzip.compress(text) if tar == "GZIP" else text
    return _signed(
        200,
        {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(text).hexdigest(),  # noqa: S324 (WeChat's choice)
            "download_url": f"{emu().cfg.pay.api_base_url}/v3/billdownload/file?token={token}",
        },
    )


@bp.get("/v3/billdownload/file")
def bill_download() -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    with emu().lock:
        data = emu().bills.get(request.args.get("token", ""))
    if data is None:
        return _error(404, "RESOURCE_NOT_EXISTS", "账单不存在或已过期")
    return Response(data, mimetype="application/octet-stream")


# --- refunds --------------------------------------------------------------------------
@bp.post("/v3/refund/domestic/refunds")
def refund() -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    b = _body()
    if b is None:
        return _error(400, "PARAM_ERROR", "请求体不是合法的JSON")
    e = emu()
    amount = b.get("amount") or {}
    problems = [
        (not isinstance(b.get("out_refund_no"), str) or not OUT_REFUND_NO.match(b["out_refund_no"]), "out_refund_no 格式错误"),
        (not isinstance(b.get("out_trade_no", ""), str) or not isinstance(b.get("transaction_id", ""), str), "订单号格式错误"),
        (not b.get("out_trade_no") and not b.get("transaction_id"), "transaction_id 与 out_trade_no 必填其一"),
        (
            not isinstance(amount, dict) or type(amount.get("refund")) is not int or type(amount.get("total")) is not int or amount["refund"] <= 0,
            "amount 参数错误",
        ),
        (isinstance(amount, dict) and amount.get("currency", "CNY") != "CNY", "currency 仅支持 CNY"),
        (not isinstance(b.get("reason", ""), str) or len(b.get("reason", "")) > 80, "reason 长度不能超过80"),
        (
            not isinstance(b.get("notify_url", ""), str) or (b.get("notify_url") and not b["notify_url"].startswith(("https://", "http://"))),
            "notify_url 格式错误",
        ),
    ]
    for failed, message in problems:
        if failed:
            return _error(400, "PARAM_ERROR", message)
    fault = e.take_fault("refund")
    if fault == "5xx":
        return _busy()
    if fault == "not_enough":
        return _error(403, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
    with e.lock:
        order = e.orders.get(b.get("out_trade_no", ""))
        if order is None and b.get("transaction_id"):
            order = next((o for o in e.orders.values() if o.transaction_id == b["transaction_id"]), None)
        if (old := e.refunds.get(b["out_refund_no"])) is not None:
            if old.out_trade_no != getattr(order, "out_trade_no", None) or (old.amount, old.total) != (amount["refund"], amount["total"]):
                return _error(400, "INVALID_REQUEST", "商户退款单号已存在，且与原退款请求参数不一致")
            return _busy() if fault == "lost" else _signed(200, old.as_json())
        if order is None:
            return _error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if order.trade_state not in ("SUCCESS", "REFUND"):
            return _error(400, "INVALID_REQUEST", "订单未支付，不能退款" if order.trade_state == "NOTPAY" else "订单已关闭，不能退款")
        if amount["total"] != order.total:
            return _error(400, "PARAM_ERROR", "订单金额与原订单不一致")
        if order.refunded >= order.total:
            return _error(400, "INVALID_REQUEST", "订单已全额退款")
        if amount["refund"] > order.total - order.refunded:
            return _error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        r = Refund(
            "50" + secrets.token_hex(14),
            b["out_refund_no"],
            order.out_trade_no,
            order.transaction_id,
            order.mchid,
            amount["refund"],
            order.total,
            e.now(),
            b.get("reason", ""),
            b.get("notify_url", ""),
            outcome={"abnormal": "ABNORMAL", "closed": "CLOSED"}.get(fault, "SUCCESS"),
        )
        e.refunds[r.out_refund_no] = r
        order.refunded += r.amount
        order.trade_state = "REFUND"
        answer = r.as_json()
    e.schedule_refund(r)
    return _busy() if fault == "lost" else _signed(200, answer)


@bp.get("/v3/refund/domestic/refunds/<out_refund_no>")
def refund_query(out_refund_no: str) -> Response:
    if (bad := _check_auth()) is not None:
        return bad
    if emu().take_fault("refund_query") in ("5xx", "lost"):
        return _busy()
    with emu().lock:
        r = emu().refunds.get(out_refund_no)
        if r is None:
            return _error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return _signed(200, r.as_json())


def init_app(app: Flask) -> None:
    svc = app.extensions["cardbot"]
    app.extensions["emulator_pay"] = PayEmulator(svc.cfg, clock=svc.clock)
    app.register_blueprint(bp)
