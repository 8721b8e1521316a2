"""The bank behind automatic top-up (自动圈存): one small interface, one adapter per bank.

The default adapter speaks to the emulator's sandbox bank over HTTP (``[bank] api_base_url``, or the WeChat API
base when empty, which in the demo and the tests is the emulator). A school's partner bank is another class with
the same three methods, chosen by ``[bank] adapter``; nothing else in the bot knows which bank it talks to.

Every money call carries our own reference (``ref``): the bank treats a repeated reference as the same request and
answers with the first outcome, so a call whose answer was lost can be repeated safely.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import requests

if TYPE_CHECKING:
    from bot.config import Config

log = logging.getLogger(__name__)

# Why a debit or refund did not go through; the texts for students are keyed on these.
INSUFFICIENT_FUNDS = "insufficient_funds"
REFUSED = "refused"  # online payment disabled, over the bank's limit, blocked by the bank
NO_ACCOUNT = "no_account"


class BankUnavailable(Exception):
    """No answer (network, timeout, 5xx): the outcome is unknown; repeat later with the same reference."""


@dataclass(frozen=True)
class BankResult:
    ok: bool
    bank_ref: str = ""
    reason: str = ""  # one of the constants above when not ok
    message: str = ""


class BankGateway(Protocol):
    def check_account(self, account: str) -> BankResult: ...

    def debit(self, account: str, amount_fen: int, ref: str) -> BankResult: ...

    def refund(self, account: str, amount_fen: int, ref: str, original_ref: str) -> BankResult: ...


class SandboxBank:
    """HTTP client for the emulator's sandbox bank (``bot/emulator/bank.py``)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/") + "/emulator/bank"
        self.timeout = timeout
        self.http = requests.Session()

    def _post(self, path: str, body: dict[str, object]) -> BankResult:
        try:
            r = self.http.post(self.base + path, json=body, timeout=(2.0, self.timeout))
        except requests.RequestException as exc:
            raise BankUnavailable(type(exc).__name__) from None
        if r.status_code >= 500:
            raise BankUnavailable(f"HTTP {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise BankUnavailable("not JSON") from None
        if r.status_code >= 400 and "result" not in data:
            raise BankUnavailable(f"HTTP {r.status_code}: {data.get('error', '')}")
        ok = data.get("result") == "ok"
        return BankResult(ok, str(data.get("bank_ref", "")), "" if ok else str(data.get("reason", REFUSED)), str(data.get("message", "")))

    def check_account(self, account: str) -> BankResult:
        return self._post("/accounts/check", {"account": account})

    def debit(self, account: str, amount_fen: int, ref: str) -> BankResult:
        return self._post("/debit", {"account": account, "amount_fen": amount_fen, "ref": ref})

    def refund(self, account: str, amount_fen: int, ref: str, original_ref: str) -> BankResult:
        return self._post("/refund", {"account": account, "amount_fen": amount_fen, "ref": ref, "original_ref": original_ref})


def make_bank_gateway(cfg: Config) -> BankGateway:
    """The configured adapter (``[bank] adapter``); only the sandbox ships with the bot."""
    if cfg.bank.adapter != "sandbox":
        raise ValueError(f"unknown bank adapter {cfg.bank.adapter!r}")
    return SandboxBank(cfg.bank.api_base_url or cfg.wechat.api_base_url, cfg.bank.timeout_seconds)
