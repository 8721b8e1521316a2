"""The school's card system (一卡通), the system of record for balances, card status and passwords (docs/card-system.md).

``CardSystem`` is the one interface the bot uses; ``[cardsystem] adapter`` picks the class: ``http`` speaks
cardsys/1 to the school's integration middleware (or the emulator), ``ledger`` (bot/adapters/ledger_cardsystem.py)
answers the same calls from the bot's own ledger.

Three kinds of failure, kept apart because they call for different decisions:
``CardSystemUnavailable`` — closed for maintenance: nothing was done; try again after ``retry_after``.
``CardSystemNoAnswer`` — timeout, reset, 5xx other than 503: the outcome is unknown; ask ``credit_status(ref)``
or repeat the same ``ref``, never a new one.
``CardSystemProtocolError`` — an answer that breaks cardsys/1 (or a 401: wrong secret or clock). For a credit the
outcome is just as unknown: settle it by ``credit_status(ref)`` before any other decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

import requests

from bot.adapters import cardsys_signing
from bot.adapters.answers import StrictReader
from bot.adapters.keepalive import keepalive_session
from bot.adapters.target import TargetNoAnswer, TargetProtocolError, TargetUnavailable
from models.enums import CardStatus
from models.enums import CreditChannel as Channel  # a credit's channel, as stored and as cardsys/1 names it

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.clock import Clock
    from bot.config import Config


class HolderKind(StrEnum):
    STUDENT = "student"
    INTERNATIONAL = "international"
    STAFF = "staff"


class TerminalEntryKind(StrEnum):
    """ENTRY.kind as cardsys/1 names it (the card system's own kinds, not our ledger's)."""

    SPEND = "spend"
    TOPUP = "topup"
    REFUND = "refund"
    SUBSIDY = "subsidy"
    ADJUST = "adjust"


class VerifyResult(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    UNKNOWN_HOLDER = "unknown_holder"


class CreditResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"


class LossAction(StrEnum):
    REPORT = "report"
    CANCEL = "cancel"


class LossResult(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    REFUSED = "refused"


class Refusal(StrEnum):
    CARD_LOST = "card_lost"
    CARD_FROZEN = "card_frozen"
    GRADUATED = "graduated"
    UNKNOWN_HOLDER = "unknown_holder"
    OVER_LIMIT = "over_limit"


class CardSystemError(Exception):
    """Base of the card system's failures (see the module docstring)."""


class CardSystemUnavailable(CardSystemError, TargetUnavailable):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"card system closed for maintenance; retry after {retry_after} s")
        self.retry_after = retry_after


class CardSystemNoAnswer(CardSystemError, TargetNoAnswer):
    pass


class CardSystemReset(CardSystemNoAnswer):
    """The connection was closed or reset before any answer (a kept-alive one the server timed out as we reused it)."""


class CardSystemProtocolError(CardSystemError, TargetProtocolError):
    pass


@dataclass(frozen=True)
class Holder:
    student_no: str
    name: str
    kind: HolderKind
    status: CardStatus
    left_on: date | None


@dataclass(frozen=True)
class Verification:
    result: VerifyResult
    holder: Holder | None = None  # only when ``result`` is ok


@dataclass(frozen=True)
class Account:
    holder: Holder
    balance_fen: int
    as_of: datetime  # when the card system last settled the balance (terminals may be offline)


@dataclass(frozen=True)
class Entry:
    entry_id: str
    amount_fen: int  # negative = spend
    balance_after_fen: int
    kind: TerminalEntryKind
    merchant: str
    occurred_at: datetime


@dataclass(frozen=True)
class Credit:
    """The card system's answer to one ``ref`` (the same answer for ever)."""

    result: CreditResult
    entry_id: str = ""
    balance_fen: int = 0
    reason: Refusal | None = None


@dataclass(frozen=True)
class CreditRecord:
    ref: str
    student_no: str
    amount_fen: int
    entry_id: str
    at: datetime


@dataclass(frozen=True)
class LossOutcome:
    result: LossResult
    status: CardStatus | None = None  # when ok
    reason: Refusal | None = None  # when refused


class CardSystem(Protocol):
    # True when balances live outside the bot's database: the bot then keeps the last one it was told
    # (``Cardholder.balance_fen`` / ``balance_as_of``) to show when the card system does not answer.
    remote: bool

    def verify_holder(self, student_no: str, name: str, password: str) -> Verification: ...

    def account(self, student_no: str) -> Account | None: ...

    def entries(self, student_no: str, *, since: datetime | None = None, limit: int = 20) -> list[Entry]: ...

    def credit(self, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit: ...

    def credit_in(self, db: Session, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit | None:
        """``credit`` inside the caller's transaction, for a card system kept in the bot's own database (the payment,
        the credit and its receipt then commit together); None from one that is not (it is credited after the commit)."""
        ...

    def credit_status(self, ref: str) -> Credit | None: ...

    def credits_on(self, day: date) -> list[CreditRecord]: ...

    def loss(self, ref: str, student_no: str, action: LossAction, password: str = "") -> LossOutcome: ...


# -- strict reading of answers -------------------------------------------------------------------------------

MAX_ENTRIES = 200


_read = StrictReader(CardSystemProtocolError)
_need, _text, _enum, _time = _read.need, _read.text, _read.enum, _read.time


def _fen(data: dict[str, Any], key: str) -> int:
    return int(_need(data, key, int))


def _day(value: Any, key: str) -> date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise CardSystemProtocolError(f"{key!r} must be YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CardSystemProtocolError(f"{key!r} is not a date: {value!r}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CardSystemProtocolError(f"{what} must be a JSON object")
    return value


def _holder(data: dict[str, Any]) -> Holder:
    left_on = data.get("left_on")
    return Holder(
        student_no=_text(data, "student_no"),
        name=_text(data, "name"),
        kind=_enum(HolderKind, data, "kind"),
        status=_enum(CardStatus, data, "status"),
        left_on=None if left_on is None else _day(left_on, "left_on"),
    )


def _entry(data: dict[str, Any]) -> Entry:
    return Entry(
        entry_id=_text(data, "entry_id"),
        amount_fen=_fen(data, "amount_fen"),
        balance_after_fen=_fen(data, "balance_after_fen"),
        kind=_enum(TerminalEntryKind, data, "kind"),
        merchant=_text(data, "merchant", empty=True),
        occurred_at=_time(data, "occurred_at"),
    )


def _credit(data: dict[str, Any]) -> Credit:
    result = _enum(CreditResult, data, "result")
    if result is CreditResult.OK:
        return Credit(result, entry_id=_text(data, "entry_id"), balance_fen=_fen(data, "balance_fen"))
    return Credit(result, reason=_enum(Refusal, data, "reason"))


def _record(data: dict[str, Any]) -> CreditRecord:
    amount = _fen(data, "amount_fen")
    if amount <= 0:
        raise CardSystemProtocolError(f"a credit's amount_fen must be positive, got {amount}")
    return CreditRecord(_text(data, "ref"), _text(data, "student_no"), amount, _text(data, "entry_id"), _time(data, "at"))


def raise_for_maintenance(r: requests.Response) -> Any:
    """The answer's JSON (None if it is not JSON), after turning a 503 maintenance answer into its exception."""
    try:
        data = r.json()
    except ValueError:
        data = None
    if r.status_code == 503 and isinstance(data, dict) and data.get("error") == "unavailable":
        retry = data.get("retry_after")
        if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
            raise CardSystemProtocolError(f"503 unavailable without an integer retry_after: {retry!r}")
        raise CardSystemUnavailable(retry)
    return data


# -- the http adapter ----------------------------------------------------------------------------------------


class HttpCardSystem:
    """cardsys/1 over HTTPS: every request signed, every answer checked before the bot believes it."""

    remote = True

    def __init__(
        self, base_url: str, secret: str, timeout: float = 5.0, http: requests.Session | None = None, read_timeout: float | None = None
    ) -> None:
        self.base = base_url.rstrip("/") + "/cardsys/v1"
        self.secret = secret
        self.timeout = timeout
        # verify, account and entries answer a waiting student: never longer than the credit calls, often shorter
        self.read_timeout = min(timeout, read_timeout or timeout)
        self.http = http or keepalive_session(self.base)

    def prepare(self, method: str, path: str, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None) -> requests.PreparedRequest:
        """The request as it goes on the wire, signed over its exact target and bytes (the checker reuses it)."""
        url = self.base + path + ("?" + urlencode(query, quote_via=quote, safe="") if query else "")
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        prep = requests.PreparedRequest()  # not the session's prepare_request: no cookies, auth or hooks to merge
        prep.prepare(method=method, url=url, headers=headers, data=raw or None)
        prep.headers.update(cardsys_signing.sign(self.secret, method, prep.path_url, raw))
        return prep

    def send(self, prep: requests.PreparedRequest, timeout: float | None = None) -> requests.Response:
        wait = timeout or self.timeout
        try:
            return self.http.send(prep, timeout=(min(2.0, wait), wait), allow_redirects=False)
        except requests.Timeout as exc:
            raise CardSystemNoAnswer(type(exc).__name__) from None
        except requests.ConnectionError as exc:
            raise CardSystemReset(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise CardSystemNoAnswer(type(exc).__name__) from None

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        not_found: str = "",
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """The answer object; None for a 404 carrying the ``not_found`` error the page allows for this call.

        A read (GET) whose connection was closed or reset before any answer is sent once more (signed afresh); any
        other call raises ``CardSystemReset`` then, and a call that timed out is never sent again here."""
        try:
            r = self.send(self.prepare(method, path, query, body), timeout)
        except CardSystemReset:
            if method != "GET":
                raise
            r = self.send(self.prepare(method, path, query, body), timeout)
        data = raise_for_maintenance(r)
        if r.status_code >= 500:
            raise CardSystemNoAnswer(f"HTTP {r.status_code}")
        if r.status_code == 404 and not_found and isinstance(data, dict) and data.get("error") == not_found:
            return None
        if r.status_code == 401:
            raise CardSystemProtocolError("401: the card system refused our signature (check [cardsystem] secret and the clock)")
        if r.status_code != 200:
            raise CardSystemProtocolError(f"HTTP {r.status_code} {r.text[:200]!r}")
        return _object(data, "the answer")

    def verify_holder(self, student_no: str, name: str, password: str) -> Verification:
        data = self._call("POST", "/holders/verify", body={"student_no": student_no, "name": name, "password": password}, timeout=self.read_timeout)
        assert data is not None
        result = _enum(VerifyResult, data, "result")
        if result is not VerifyResult.OK:
            return Verification(result)
        holder = _holder(_object(data.get("holder"), "holder"))
        if holder.student_no != student_no:
            raise CardSystemProtocolError(f"verify answered for another holder {holder.student_no!r}")
        return Verification(result, holder)

    def account(self, student_no: str) -> Account | None:
        data = self._call("GET", f"/accounts/{quote(student_no, safe='')}", not_found="unknown_holder", timeout=self.read_timeout)
        if data is None:
            return None
        holder = _holder(data)
        if holder.student_no != student_no:
            raise CardSystemProtocolError(f"account answered for another holder {holder.student_no!r}")
        return Account(holder, _fen(data, "balance_fen"), _time(data, "as_of"))

    def entries(self, student_no: str, *, since: datetime | None = None, limit: int = 20) -> list[Entry]:
        if not 1 <= limit <= MAX_ENTRIES:
            raise ValueError(f"limit must be 1..{MAX_ENTRIES}")
        query: dict[str, Any] = {"since": since.isoformat()} if since is not None else {}
        query["limit"] = limit
        data = self._call("GET", f"/accounts/{quote(student_no, safe='')}/entries", query, timeout=self.read_timeout)
        assert data is not None
        raw = data.get("entries")
        if not isinstance(raw, list) or len(raw) > limit:
            raise CardSystemProtocolError(f"'entries' must be a list of at most {limit}")
        entries = [_entry(_object(e, "an entry")) for e in raw]
        if any(a.occurred_at < b.occurred_at for a, b in zip(entries, entries[1:], strict=False)):
            raise CardSystemProtocolError("entries must be newest first")
        return entries

    def credit(self, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit:
        if amount_fen <= 0 or paid_at.tzinfo is None:
            raise ValueError("a credit needs a positive amount and an aware paid_at")
        body = {"ref": ref, "student_no": student_no, "amount_fen": amount_fen, "channel": Channel(channel).value, "paid_at": paid_at.isoformat()}
        try:
            data = self._call("POST", "/credits", body=body)
        except CardSystemReset:  # unknown: asked at once, and sent once more (the same ref) only if it never arrived
            if (known := self.credit_status(ref)) is not None:
                return known
            data = self._call("POST", "/credits", body=body)
        assert data is not None
        return _credit(data)

    def credit_in(self, db: Session, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit | None:
        return None  # across the network: never inside the bot's transaction

    def credit_status(self, ref: str) -> Credit | None:
        data = self._call("GET", f"/credits/{quote(ref, safe='')}", not_found="unknown_ref")
        return None if data is None else _credit(data)

    def credits_on(self, day: date) -> list[CreditRecord]:
        data = self._call("GET", "/credits", {"date": day.isoformat()})
        assert data is not None
        raw = data.get("credits")
        if not isinstance(raw, list):
            raise CardSystemProtocolError("'credits' must be a list")
        return [_record(_object(c, "a credit")) for c in raw]

    def loss(self, ref: str, student_no: str, action: LossAction, password: str = "") -> LossOutcome:
        body: dict[str, Any] = {"ref": ref, "action": LossAction(action).value}
        if action is LossAction.CANCEL:
            body["password"] = password
        data = self._call("POST", f"/accounts/{quote(student_no, safe='')}/loss", body=body)
        assert data is not None
        result = _enum(LossResult, data, "result")
        if result is LossResult.OK:
            return LossOutcome(result, status=_enum(CardStatus, data, "status"))
        if result is LossResult.REFUSED:
            return LossOutcome(result, reason=_enum(Refusal, data, "reason"))
        return LossOutcome(result)


def http_card_system(cfg: Config) -> HttpCardSystem:
    """The cardsys/1 client for ``[cardsystem]``; an empty ``api_base_url`` is the emulator (demo and tests)."""
    base = cfg.cardsystem.api_base_url or cfg.wechat.api_base_url + "/emulator"
    c = cfg.cardsystem
    return HttpCardSystem(base, c.secret, c.timeout_seconds, read_timeout=c.read_timeout_seconds)


def make_card_system(cfg: Config, sessions: sessionmaker[Session], clock: Clock) -> CardSystem:
    """The configured adapter (``[cardsystem] adapter``); the ledger one works on the bot's own database."""
    if cfg.cardsystem.adapter == "http":
        return http_card_system(cfg)
    from bot.adapters.ledger_cardsystem import LedgerCardSystem

    return LedgerCardSystem(sessions, clock)
