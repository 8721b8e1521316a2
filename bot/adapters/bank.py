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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

import requests

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
    """Client for the protocol above, at ``base_url``."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.http.request(method, self.base + path, timeout=(2.0, self.timeout), **kwargs)
        except requests.RequestException as exc:
            raise BankUnavailable(type(exc).__name__) from None
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
        data = self._call("POST", path, json=body)
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
        return HttpBank(cfg.bank.api_base_url, cfg.bank.timeout_seconds)
    if cfg.bank.adapter == "sandbox":
        return HttpBank((cfg.bank.api_base_url or cfg.wechat.api_base_url) + "/emulator/bank", cfg.bank.timeout_seconds)
    raise ValueError(f"unknown bank adapter {cfg.bank.adapter!r}")
