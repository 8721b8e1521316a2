"""WeChat Pay API v3 for JSAPI top-ups and their refunds, over ``wechatpayv3`` in public-key mode (no platform
certificates).

The SDK signs every request with the merchant key and verifies every response and notify with WeChat Pay's
public key; this wrapper turns its ``(status, text)`` tuples into values, ``PayError`` (WeChat refused: nothing
happened) or ``PayUnavailable`` (no answer we can trust: WeChat may have acted), and keeps the gateway
configurable so the emulator can stand in for ``api.mch.weixin.qq.com``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from wechatpayv3 import WeChatPay, WeChatPayType

from bot.config import PayConfig

log = logging.getLogger(__name__)

TIMEOUT = (3, 8)
NOTIFY_MAX_SKEW_SECONDS = 300  # WeChat signs each notify (and each retry) afresh: an older one is a replay
REFUND_NOTIFY_PATH = "refund-notify"  # next to ``[pay] notify_url``; a refund notify must not reach the payment route


class PayError(Exception):
    """WeChat Pay refused: it did nothing. ``code`` is WeChat's error code. The subclass ``PayUnavailable``
    (NETWORK, BAD_RESPONSE, SYSTEM_ERROR, ...) means the outcome is unknown instead."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PayUnavailable(PayError):
    """No answer we can trust (network, timeout, 5xx, 429, an unverifiable or unreadable answer): WeChat may have
    acted. Ask again with the same reference (out_trade_no, out_refund_no) before deciding anything else."""


class NotifyError(Exception):
    """A notify that must be refused: bad signature, stale, undecryptable, or not something we can read."""


class RefundStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PROCESSING = "PROCESSING"
    ABNORMAL = "ABNORMAL"  # the money could not reach the payer (e.g. card cancelled): handled in the merchant platform
    CLOSED = "CLOSED"  # the refund was closed: the money stayed with the merchant


REFUND_EVENTS = {f"REFUND.{s}": s for s in (RefundStatus.SUCCESS, RefundStatus.ABNORMAL, RefundStatus.CLOSED)}


@dataclass(frozen=True)
class RefundResult:
    """One refund as WeChat Pay reports it (answer, query or notify); amounts in fen."""

    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    status: RefundStatus
    refund_fen: int
    total_fen: int
    payer_refund_fen: int
    success_time: datetime | None
    user_received_account: str = ""


def check_notify_time(headers: Any, now: float) -> None:
    """Refuse a notify whose signed ``Wechatpay-Timestamp`` is more than 5 minutes from ``now`` (the business clock)."""
    stamp = str(headers.get("Wechatpay-Timestamp", ""))
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise NotifyError("unreadable Wechatpay-Timestamp")
    if abs(int(now) - int(stamp)) > NOTIFY_MAX_SKEW_SECONDS:  # whole seconds, as WeChat stamps them
        raise NotifyError("Wechatpay-Timestamp more than 5 minutes off")


@dataclass(frozen=True)
class BillRow:
    """One line of the trade bill: amounts in fen."""

    out_trade_no: str
    transaction_id: str
    trade_state: str
    total_fen: int
    refund_fen: int
    trade_time: str
    out_refund_no: str = ""
    refund_status: str = ""  # refund rows: SUCCESS / PROCESSING / ABNORMAL


class PayClient:
    """The merchant's view of WeChat Pay v3 (direct merchant, JSAPI)."""

    def __init__(self, cfg: PayConfig, appid: str) -> None:
        self.cfg = cfg
        self.appid = appid
        self.client = WeChatPay(
            wechatpay_type=WeChatPayType.JSAPI,
            mchid=cfg.mchid,
            private_key=Path(cfg.private_key_path).read_text(encoding="utf-8"),
            cert_serial_no=cfg.cert_serial_no,
            appid=appid,
            apiv3_key=cfg.apiv3_key,
            notify_url=cfg.notify_url,
            timeout=TIMEOUT,
            public_key=Path(cfg.public_key_path).read_text(encoding="utf-8"),
            public_key_id=cfg.public_key_id,
        )
        self.client._core._gate_way = cfg.api_base_url

    # --- calls -------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        try:
            status, body = fn(*args, **kwargs)
        except requests.RequestException as exc:
            raise PayUnavailable(0, "NETWORK", type(exc).__name__) from None
        except Exception as exc:  # the SDK raises bare Exception when a response signature does not verify
            raise PayUnavailable(0, "BAD_RESPONSE", str(exc)[:200]) from None
        if 200 <= status < 300:
            return status, body
        code, message = f"HTTP_{status}", ""
        try:
            err = json.loads(body)
            code, message = str(err.get("code", code)), str(err.get("message", ""))
        except (TypeError, ValueError, AttributeError):
            pass
        # 5xx (SYSTEM_ERROR: "do not change the out_refund_no, call again") and 429 FREQUENCY_LIMITED decide nothing.
        raise (PayUnavailable if status >= 500 or status == 429 else PayError)(status, code, message)

    @staticmethod
    def _json(body: Any) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            raise PayUnavailable(0, "BAD_RESPONSE", "not JSON") from None
        if not isinstance(data, dict):
            raise PayUnavailable(0, "BAD_RESPONSE", "not an object")
        return data

    def jsapi_order(self, out_trade_no: str, total_fen: int, openid: str, description: str, time_expire: datetime) -> str:
        """Create the JSAPI order; returns prepay_id. Same out_trade_no and parameters again → the same prepay_id."""
        _, body = self._call(
            self.client.pay,
            description=description[:127],
            out_trade_no=out_trade_no,
            amount={"total": total_fen, "currency": "CNY"},
            payer={"openid": openid},
            time_expire=time_expire.isoformat(timespec="seconds"),
        )
        prepay_id = self._json(body).get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise PayError(0, "BAD_RESPONSE", "no prepay_id")
        return prepay_id

    def query(self, out_trade_no: str) -> dict[str, Any]:
        """The transaction as WeChat Pay sees it (trade_state SUCCESS / NOTPAY / CLOSED / REFUND / ...)."""
        _, body = self._call(self.client.query, out_trade_no=out_trade_no)
        return self._json(body)

    def close(self, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid (raises PayError ORDERPAID if it was paid)."""
        self._call(self.client.close, out_trade_no=out_trade_no)

    # --- refunds -----------------------------------------------------------
    @property
    def refund_notify_url(self) -> str:
        """Where refunds ask WeChat to notify unless the caller names a URL; never the payment route."""
        return urljoin(self.cfg.notify_url, REFUND_NOTIFY_PATH)

    def refund(
        self, out_trade_no: str, out_refund_no: str, amount_fen: int, total_fen: int, reason: str, *, notify_url: str | None = None
    ) -> RefundResult:
        """Refund ``amount_fen`` of the paid order ``out_trade_no`` (``total_fen`` is what it was paid).

        WeChat keys refunds on ``out_refund_no``: asking again with it returns the same refund and never pays twice.
        ``PayUnavailable``: the outcome is unknown, ask again (or ``query_refund``) with the same out_refund_no,
        never a new one. ``PayError``: WeChat refused (INVALID_REQUEST, NOT_ENOUGH, ...) and refunded nothing.
        """
        _, body = self._call(
            self.client.refund,
            out_refund_no=out_refund_no,
            amount={"refund": amount_fen, "total": total_fen, "currency": "CNY"},
            out_trade_no=out_trade_no,
            reason=reason[:80] or None,
            notify_url=notify_url or self.refund_notify_url,
        )
        result = self._refund(body, "status")
        if (result.out_refund_no, result.out_trade_no, result.refund_fen) != (out_refund_no, out_trade_no, amount_fen):
            raise PayUnavailable(0, "BAD_RESPONSE", "the answer names another refund")
        return result

    def query_refund(self, out_refund_no: str) -> RefundResult:
        """The refund as WeChat sees it now; ``PayError`` RESOURCE_NOT_EXISTS means it was never made."""
        _, body = self._call(self.client.query_refund, out_refund_no)
        result = self._refund(body, "status")
        if result.out_refund_no != out_refund_no:
            raise PayUnavailable(0, "BAD_RESPONSE", "the answer names another refund")
        return result

    def _refund(self, body: Any, status_key: str) -> RefundResult:
        try:
            return _refund_result(self._json(body), status_key)
        except (KeyError, TypeError, ValueError) as exc:
            raise PayUnavailable(0, "BAD_RESPONSE", f"unreadable refund: {exc}"[:200]) from None

    def pay_params(self, prepay_id: str) -> dict[str, str]:
        """What the page passes to ``WeixinJSBridge.invoke('getBrandWCPayRequest', ...)``."""
        ts, nonce, package = str(int(time.time())), secrets.token_hex(16), f"prepay_id={prepay_id}"
        return {
            "appId": self.appid,
            "timeStamp": ts,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": self.client.sign([self.appid, ts, nonce, package]),
        }

    def trade_bill(self, bill_date: str, bill_type: str = "ALL") -> list[BillRow]:
        """Download and parse the day's trade bill (GZIP); checks the SHA1 WeChat announces. No bill → []."""
        try:
            _, body = self._call(self.client.trade_bill, bill_date=bill_date, bill_type=bill_type, tar_type="GZIP")
        except PayError as exc:
            if exc.code == "NO_STATEMENT_EXIST":
                return []
            raise
        meta = self._json(body)
        _, raw = self._call(self.client.download_bill, meta.get("download_url", ""))
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError):
            raise PayError(0, "BAD_RESPONSE", "bill is not gzip") from None
        if meta.get("hash_type") == "SHA1" and hashlib.sha1(text).hexdigest() != meta.get("hash_value"):  # noqa: S324 (WeChat's choice)
            raise PayError(0, "BAD_RESPONSE", "bill hash mismatch")
        return parse_trade_bill(text.decode("utf-8-sig"))

    # --- notifies ----------------------------------------------------------
    def parse_notify(self, headers: Any, body: bytes, now: float) -> dict[str, Any]:
        """Verify the signature and freshness (against ``now``, the business clock's epoch seconds) and decrypt the
        resource; returns the envelope with ``resource`` decrypted. Every notify (payment or refund) goes through here."""
        if headers.get("Wechatpay-Serial") != self.cfg.public_key_id:
            # Public-key mode: anything else would make the SDK fetch platform certificates for every forged notify.
            raise NotifyError("unknown Wechatpay-Serial")
        check_notify_time(headers, now)
        try:
            data = self.client.callback(headers, body)
        except Exception as exc:  # unsupported algorithm / malformed JSON surface as bare Exception or ValueError
            raise NotifyError(f"unreadable notify: {type(exc).__name__}") from None
        if not data or not isinstance(data.get("resource"), dict):
            raise NotifyError("signature or decryption failed")
        return data

    def parse_refund_notify(self, headers: Any, body: bytes, now: float) -> RefundResult:
        """A verified, fresh, decrypted REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED notify for this merchant."""
        data = self.parse_notify(headers, body, now)
        event, resource = data.get("event_type"), data["resource"]
        if event not in REFUND_EVENTS:
            raise NotifyError(f"not a refund notify: {str(event)[:40]}")
        if resource.get("mchid") != self.cfg.mchid:
            raise NotifyError("another merchant's refund")
        try:
            result = _refund_result(resource, "refund_status")
        except (KeyError, TypeError, ValueError):
            raise NotifyError("unreadable refund") from None
        if result.status != REFUND_EVENTS[event]:
            raise NotifyError("event_type does not match refund_status")
        return result


def _fen(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("amount is not a count of fen")
    return value


def _refund_result(data: dict[str, Any], status_key: str) -> RefundResult:
    """A refund from an answer or query (``status``) or a notify resource (``refund_status``); ValueError if unreadable."""
    amount = data["amount"]
    texts = {k: data[k] for k in ("out_refund_no", "refund_id", "out_trade_no", "transaction_id")}
    if not all(isinstance(v, str) and v for v in texts.values()):
        raise ValueError("missing refund identifiers")
    status = RefundStatus(data[status_key])
    success = data.get("success_time") if status is RefundStatus.SUCCESS else None
    return RefundResult(
        **texts,
        status=status,
        refund_fen=_fen(amount["refund"]),
        total_fen=_fen(amount["total"]),
        payer_refund_fen=_fen(amount.get("payer_refund", amount["refund"])),
        success_time=datetime.fromisoformat(success) if success else None,
        user_received_account=str(data.get("user_received_account", "")),
    )


def _yuan_to_fen(text: str) -> int:
    whole, _, frac = text.strip().lstrip("`").partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole or "0")) * 100 + int((frac + "00")[:2]))


def parse_trade_bill(text: str) -> list[BillRow]:
    """WeChat's trade bill: a header line, rows with every field prefixed by a backtick, then two summary lines."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return []
    header = [h.strip() for h in lines[0].split(",")]
    col = {name: i for i, name in enumerate(header)}
    rows: list[BillRow] = []
    for line in lines[1:]:
        if not line.startswith("`"):
            break  # the summary block
        f = [v.strip().lstrip("`") for v in line.split(",")]
        rows.append(
            BillRow(
                out_trade_no=f[col["商户订单号"]],
                transaction_id=f[col["微信订单号"]],
                trade_state=f[col["交易状态"]],
                total_fen=_yuan_to_fen(f[col["应结订单金额"]]),
                refund_fen=_yuan_to_fen(f[col["退款金额"]]),
                trade_time=f[col["交易时间"]],
                out_refund_no=f[col["商户退款单号"]] if f[col["商户退款单号"]] != "0" else "",
                refund_status=f[col["退款状态"]],
            )
        )
    return rows
