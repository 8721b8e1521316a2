"""The bank behind automatic top-up (自动圈存): one small interface, one adapter per bank.

``[bank] adapter``: ``sandbox`` is the emulator's sandbox bank (at ``{api_base_url or the WeChat API base}/emulator/bank``,
the emulator in the demo and the tests); ``http`` is a partner bank speaking the same JSON protocol at
``[bank] api_base_url``. Nothing else in the bot knows which bank it talks to.

The protocol (JSON over HTTPS; a 5xx, a timeout or a body without ``result`` means "no answer"):

- ``POST /accounts/check`` ``{account}`` → ``{result: "ok"}`` or ``{result: "fail", reason, message}``
- ``POST /debit`` ``{account, amount_fen, ref}`` → ``{result: "ok", bank_ref}`` or ``{result: "fail", reason, message}``
- ``POST /refund`` ``{account, amount_fen, ref, original_ref}`` → the same shape as a debit
- ``POST /query`` ``{ref}`` → the first answer the debit with that reference got, or ``{result: "fail", reason:
  "unknown_reference"}`` when the bank never received it
- ``GET /debits?date=YYYY-MM-DD`` → ``{debits: [{ref, bank_ref, account, amount_fen}]}``, the day's debits

Every money call carries our own reference (``ref``): the bank treats a repeated reference as the same request and
answers with the first outcome, so a call whose answer was lost is settled by asking again with the same reference.

Every request is signed with ``[bank] secret`` as cardsys/1's are (``bot.adapters.cardsys_signing``, scheme ``BANK``):
``X-Bank-Timestamp``, ``X-Bank-Nonce`` and ``X-Bank-Signature`` = hex HMAC-SHA256(secret, METHOD \\n PATH \\n TIMESTAMP
\\n NONCE \\n BODY), PATH being the request target as sent (``api_base_url``'s own path included, with the query
string) and BODY the raw bytes. The bank answers 401, and does nothing, to a missing or bad signature, a timestamp more
than 300 s off or a nonce seen in the last 600 s. A 401 is our configuration's fault (secret or clock), not a lost
answer: ``BankRejected``, logged as an error; repeating the call unchanged would only be refused again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import requests

from bot.adapters.cardsys_signing import BANK

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

# Why a debit or refund did not go through; the texts for students are keyed on these.
INSUFFICIENT_FUNDS = "insufficient_funds"
REFUSED = "refused"  # online payment disabled, over the bank's limit, blocked by the bank
NO_ACCOUNT = "no_account"
UNKNOWN_REFERENCE = "unknown_reference"  # a query: the bank never received this reference, so nothing was taken


class BankUnavailable(Exception):
    """No answer (network, timeout, 5xx): the outcome is unknown; repeat later with the same reference."""


class BankRejected(BankUnavailable):
    """The bank refused our signature (HTTP 401) and did nothing: ``[bank] secret`` or the clock is wrong. A kind of
    ``BankUnavailable`` so every caller keeps its operation open (a query refused leaves a debit's outcome unknown) until
    an operator fixes the configuration and the same reference is asked about again."""


@dataclass(frozen=True)
class BankResult:
    ok: bool
    bank_ref: str = ""
    reason: str = ""  # one of the constants above when not ok
    message: str = ""


@dataclass(frozen=True)
class BankDebit:
    """One debit on the bank's statement."""

    ref: str
    bank_ref: str
    account: str
    amount_fen: int


class BankGateway(Protocol):
    def check_account(self, account: str) -> BankResult: ...

    def debit(self, account: str, amount_fen: int, ref: str) -> BankResult: ...

    def refund(self, account: str, amount_fen: int, ref: str, original_ref: str) -> BankResult: ...

    def query(self, ref: str) -> BankResult: ...

    def debits(self, day: date) -> list[BankDebit]: ...


class HttpBank:
    """Client for the protocol above, at ``base_url``; every request signed with ``secret``."""

    def __init__(self, base_url: str, secret: str, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.http = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, object] | None = None, params: dict[str, str] | None = None) -> Any:
        raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        prep = self.http.prepare_request(requests.Request(method, self.base + path, params=params, data=raw or None, headers=headers))
        prep.headers.update(BANK.sign(self.secret, method, prep.path_url, raw))
        try:
            r = self.http.send(prep, timeout=(2.0, self.timeout), allow_redirects=False)
        except requests.RequestException as exc:
            raise BankUnavailable(type(exc).__name__) from None
        if r.status_code == 401:
            log.error("the bank refused our signature on %s %s (HTTP 401): check [bank] secret and the clock; nothing was done", method, path)
            raise BankRejected("HTTP 401: the bank refused our signature (check [bank] secret and the clock)")
        if r.status_code >= 500:
            raise BankUnavailable(f"HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise BankUnavailable("not JSON") from None
        if not isinstance(data, dict):
            raise BankUnavailable("not a JSON object")
        if r.status_code >= 400 and "result" not in data:
            raise BankUnavailable(f"HTTP {r.status_code}: {data.get('error', '')}")
        return data

    def _post(self, path: str, body: dict[str, object]) -> BankResult:
        data = self._call("POST", path, body)
        if "result" not in data:
            raise BankUnavailable("no result")
        ok = data.get("result") == "ok"
        return BankResult(ok, str(data.get("bank_ref", "")), "" if ok else str(data.get("reason", REFUSED)), str(data.get("message", "")))

    def check_account(self, account: str) -> BankResult:
        return self._post("/accounts/check", {"account": account})

    def debit(self, account: str, amount_fen: int, ref: str) -> BankResult:
        return self._post("/debit", {"account": account, "amount_fen": amount_fen, "ref": ref})

    def refund(self, account: str, amount_fen: int, ref: str, original_ref: str) -> BankResult:
        return self._post("/refund", {"account": account, "amount_fen": amount_fen, "ref": ref, "original_ref": original_ref})

    def query(self, ref: str) -> BankResult:
        return self._post("/query", {"ref": ref})

    def debits(self, day: date) -> list[BankDebit]:
        rows = self._call("GET", "/debits", params={"date": day.isoformat()}).get("debits")
        try:
            return [BankDebit(str(d["ref"]), str(d["bank_ref"]), str(d["account"]), int(d["amount_fen"])) for d in rows]
        except (TypeError, KeyError, ValueError):
            raise BankUnavailable("malformed statement") from None


def make_bank_gateway(cfg: Config) -> BankGateway:
    """The configured adapter (``[bank] adapter``)."""
    if cfg.bank.adapter == "http":
        return HttpBank(cfg.bank.api_base_url, cfg.bank.secret, cfg.bank.timeout_seconds)
    if cfg.bank.adapter == "sandbox":
        return HttpBank((cfg.bank.api_base_url or cfg.wechat.api_base_url) + "/emulator/bank", cfg.bank.secret, cfg.bank.timeout_seconds)
    raise ValueError(f"unknown bank adapter {cfg.bank.adapter!r}")
