"""WeChat Pay API v3 for JSAPI top-ups, over ``wechatpayv3`` in public-key mode (no platform certificates).

The SDK signs every request with the merchant key and verifies every response and notify with WeChat Pay's
public key; this wrapper turns its ``(status, text)`` tuples into values or ``PayError`` and keeps the
gateway configurable so the emulator can stand in for ``api.mch.weixin.qq.com``.
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
from pathlib import Path
from typing import Any

import requests
from wechatpayv3 import WeChatPay, WeChatPayType

from bot.config import PayConfig

log = logging.getLogger(__name__)

TIMEOUT = (3, 8)


class PayError(Exception):
    """WeChat Pay refused or could not be reached. ``code`` is WeChat's error code (or NETWORK / BAD_RESPONSE)."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


NOTIFY_MAX_SKEW_SECONDS = 300  # WeChat Pay signs each notify and each retry afresh: an older one is a replay


class NotifyError(Exception):
    """A notify that must be refused: bad signature, undecryptable, or not a transaction we can read."""


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
            raise PayError(0, "NETWORK", type(exc).__name__) from None
        except Exception as exc:  # the SDK raises bare Exception when a response signature does not verify
            raise PayError(0, "BAD_RESPONSE", str(exc)[:200]) from None
        if 200 <= status < 300:
            return status, body
        code, message = f"HTTP_{status}", ""
        try:
            err = json.loads(body)
            code, message = str(err.get("code", code)), str(err.get("message", ""))
        except (TypeError, ValueError, AttributeError):
            pass
        raise PayError(status, code, message)

    @staticmethod
    def _json(body: Any) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            raise PayError(0, "BAD_RESPONSE", "not JSON") from None
        if not isinstance(data, dict):
            raise PayError(0, "BAD_RESPONSE", "not an object")
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
    def parse_notify(self, headers: Any, body: bytes) -> dict[str, Any]:
        """Verify the signature and decrypt the resource; returns the envelope with ``resource`` decrypted."""
        if headers.get("Wechatpay-Serial") != self.cfg.public_key_id:
            # Public-key mode: anything else would make the SDK fetch platform certificates for every forged notify.
            raise NotifyError("unknown Wechatpay-Serial")
        try:
            data = self.client.callback(headers, body)
        except Exception as exc:  # unsupported algorithm / malformed JSON surface as bare Exception or ValueError
            raise NotifyError(f"unreadable notify: {type(exc).__name__}") from None
        if not data or not isinstance(data.get("resource"), dict):
            raise NotifyError("signature or decryption failed")
        return data


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
            )
        )
    return rows
