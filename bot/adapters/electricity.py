"""The school's dorm electricity system (prepaid meters), the system of record for rooms and remaining kWh
(docs/electricity.md).

``Electricity`` is the one interface the bot uses; ``[electricity] adapter = "http"`` speaks power/1 to the school's
electricity middleware (or the emulator's). Requests are signed like cardsys/1 (``X-Power-*`` headers). Failures are
the delivery machinery's three (``bot.adapters.target``): maintenance (nothing done, retry after), no answer (unknown:
ask about the same ref) and a broken protocol (just as unknown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import urllib3

from bot.adapters.answers import StrictReader
from bot.adapters.cardsys_signing import POWER
from bot.adapters.keepalive import keepalive_pool
from bot.adapters.target import TargetNoAnswer, TargetProtocolError, TargetUnavailable

if TYPE_CHECKING:
    from bot.config import Config

MAX_READINGS = 500  # rooms per readings call


class PlaceKind(StrEnum):
    CAMPUS = "campus"
    BUILDING = "building"
    FLOOR = "floor"
    ROOM = "room"


class RechargeResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"


class RechargeRefusal(StrEnum):
    UNKNOWN_ROOM = "unknown_room"
    ROOM_CLOSED = "room_closed"  # the room is empty (moved out) or its meter is disconnected
    OVER_LIMIT = "over_limit"  # the meter cannot hold that much prepaid power


class ElectricityError(Exception):
    """Base of the electricity system's failures."""


class ElectricityUnavailable(ElectricityError, TargetUnavailable):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"electricity system closed for maintenance; retry after {retry_after} s")
        self.retry_after = retry_after


class ElectricityNoAnswer(ElectricityError, TargetNoAnswer):
    pass


class ElectricityReset(ElectricityNoAnswer):
    """The connection was closed or reset before any answer (a kept-alive one the server timed out as we reused it)."""


class ElectricityProtocolError(ElectricityError, TargetProtocolError):
    pass


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    kind: PlaceKind


@dataclass(frozen=True)
class Room:
    room_id: str
    label: str  # "东区 · 3号楼 · 512"
    remaining_kwh: Decimal
    price_fen_per_kwh: int
    read_at: datetime  # when the meter was last read (meters report every few minutes, some only hourly)
    open: bool  # False: moved out or meter disconnected (recharges are refused)


@dataclass(frozen=True)
class Reading:
    room_id: str
    remaining_kwh: Decimal
    read_at: datetime


@dataclass(frozen=True)
class Recharge:
    """The electricity system's answer to one ``ref`` (the same answer for ever)."""

    result: RechargeResult
    entry_id: str = ""
    kwh: Decimal = Decimal(0)  # bought by this recharge
    remaining_kwh: Decimal = Decimal(0)  # on the meter right after it
    reason: RechargeRefusal | None = None


@dataclass(frozen=True)
class RechargeRecord:
    ref: str
    room_id: str
    amount_fen: int
    entry_id: str
    at: datetime


class Electricity(Protocol):
    def places(self, parent: str = "") -> list[Place]: ...

    def room(self, room_id: str) -> Room | None: ...

    def readings(self, room_ids: list[str]) -> list[Reading]: ...

    def recharge(self, ref: str, room_id: str, amount_fen: int, paid_at: datetime) -> Recharge: ...

    def recharge_status(self, ref: str) -> Recharge | None: ...

    def recharges_on(self, day: date) -> list[RechargeRecord]: ...


# -- strict reading of answers -------------------------------------------------------------------------------


_read = StrictReader(ElectricityProtocolError)
_need, _text, _enum, _time = _read.need, _read.text, _read.enum, _read.time


def _kwh(data: Any, key: str) -> Decimal:
    """kWh travel as decimal strings ("12.34"), never as floats."""
    text = _need(data, key, str)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ElectricityProtocolError(f"{key!r} must be a decimal string, got {text!r}") from None
    if not value.is_finite() or abs(value) >= 10**8:
        raise ElectricityProtocolError(f"{key!r} out of range: {text!r}")
    return value.quantize(Decimal("0.01"))


def _list(data: Any, key: str) -> list[Any]:
    return list(_need(data, key, list))


def _recharge(data: Any) -> Recharge:
    result = _enum(RechargeResult, data, "result")
    if result is RechargeResult.OK:
        return Recharge(result, _text(data, "entry_id"), _kwh(data, "kwh"), _kwh(data, "remaining_kwh"))
    return Recharge(result, reason=_enum(RechargeRefusal, data, "reason"))


def _room(data: Any) -> Room:
    price = int(_need(data, "price_fen_per_kwh", int))
    if price <= 0:
        raise ElectricityProtocolError(f"price_fen_per_kwh must be positive, got {price}")
    is_open = data.get("open")
    if not isinstance(is_open, bool):
        raise ElectricityProtocolError(f"'open' must be true or false, got {is_open!r}")
    return Room(_text(data, "room_id"), _text(data, "label"), _kwh(data, "remaining_kwh"), price, _time(data, "read_at"), is_open)


# -- the http adapter ----------------------------------------------------------------------------------------


class HttpElectricity:
    """power/1 over HTTPS: every request signed, every answer checked before the bot believes it."""

    def __init__(self, base_url: str, secret: str, timeout: float = 5.0, read_timeout: float | None = None) -> None:
        self.base = base_url.rstrip("/") + "/power/v1"
        self.base_path = urlsplit(self.base).path  # what the signature covers: the request target as sent
        self.secret = secret
        self.timeout = timeout
        self.read_timeout = min(timeout, read_timeout or timeout)  # a student is waiting on the page
        self.http = keepalive_pool(self.base)

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        *,
        not_found: str = "",
        timeout: float | None = None,
        again: bool = True,
    ) -> dict[str, Any] | None:
        """The answer object; None for a 404 carrying the ``not_found`` error this call allows.

        A call whose connection was closed or reset before any answer is sent once more on a new connection when it
        changes nothing (``again``: every call but a recharge), else raises ``ElectricityReset``. A call that timed out
        is never sent again here: the server may still be at it."""
        target = path + ("?" + urlencode(query, quote_via=quote, safe="") if query else "")
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() if body is not None else b""
        wait = timeout or self.timeout
        for last in (False, True) if again else (True,):
            headers = POWER.sign(self.secret, method, self.base_path + target, raw)
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                r = self.http.request(
                    method,
                    self.base + target,
                    body=raw or None,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=min(2.0, wait), read=wait),
                    redirect=False,
                )
                break
            except urllib3.exceptions.ProtocolError as exc:
                if last:
                    raise ElectricityReset(f"{type(exc).__name__}: {exc}") from None
            except urllib3.exceptions.HTTPError as exc:
                raise ElectricityNoAnswer(type(exc).__name__) from None
        try:
            data = json.loads(r.data)
        except ValueError:
            data = None
        if r.status == 503 and isinstance(data, dict) and data.get("error") == "unavailable":
            retry = data.get("retry_after")
            if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
                raise ElectricityProtocolError(f"503 unavailable without an integer retry_after: {retry!r}")
            raise ElectricityUnavailable(retry)
        if r.status >= 500:
            raise ElectricityNoAnswer(f"HTTP {r.status}")
        if r.status == 404 and not_found and isinstance(data, dict) and data.get("error") == not_found:
            return None
        if r.status == 401:
            raise ElectricityProtocolError("401: the electricity system refused our signature (check [electricity] secret and the clock)")
        if r.status != 200 or not isinstance(data, dict):
            raise ElectricityProtocolError(f"HTTP {r.status} {r.data[:200].decode(errors='replace')!r}")
        return data

    def places(self, parent: str = "") -> list[Place]:
        data = self._call("GET", "/places", {"parent": parent} if parent else None, timeout=self.read_timeout)
        return [Place(_text(p, "id"), _text(p, "name"), _enum(PlaceKind, p, "kind")) for p in _list(data, "places")]

    def room(self, room_id: str) -> Room | None:
        data = self._call("GET", f"/rooms/{quote(room_id, safe='')}", not_found="unknown_room", timeout=self.read_timeout)
        if data is None:
            return None
        room = _room(data)
        if room.room_id != room_id:
            raise ElectricityProtocolError(f"asked for room {room_id!r}, answered for {room.room_id!r}")
        return room

    def readings(self, room_ids: list[str]) -> list[Reading]:
        if len(room_ids) > MAX_READINGS:
            raise ValueError(f"at most {MAX_READINGS} rooms per call")
        data = self._call("POST", "/readings", body={"rooms": room_ids})
        return [Reading(_text(r, "room_id"), _kwh(r, "remaining_kwh"), _time(r, "read_at")) for r in _list(data, "readings")]

    def recharge(self, ref: str, room_id: str, amount_fen: int, paid_at: datetime) -> Recharge:
        if amount_fen <= 0 or paid_at.tzinfo is None:
            raise ValueError("a recharge needs a positive amount and an aware paid_at")
        body = {"ref": ref, "room_id": room_id, "amount_fen": amount_fen, "paid_at": paid_at.isoformat()}
        try:
            return _recharge(self._call("POST", "/recharges", body=body, again=False))
        except ElectricityReset:  # unknown: asked at once, and sent once more (the same ref) only if it never arrived
            return self.recharge_status(ref) or _recharge(self._call("POST", "/recharges", body=body, again=False))

    def recharge_status(self, ref: str) -> Recharge | None:
        data = self._call("GET", f"/recharges/{quote(ref, safe='')}", not_found="unknown_ref")
        return None if data is None else _recharge(data)

    def recharges_on(self, day: date) -> list[RechargeRecord]:
        data = self._call("GET", "/recharges", {"date": day.isoformat()})
        out = []
        for r in _list(data, "recharges"):
            amount = int(_need(r, "amount_fen", int))
            if amount <= 0:
                raise ElectricityProtocolError(f"a recharge's amount_fen must be positive, got {amount}")
            out.append(RechargeRecord(_text(r, "ref"), _text(r, "room_id"), amount, _text(r, "entry_id"), _time(r, "at")))
        return out


def make_electricity(cfg: Config) -> Electricity:
    """The power/1 client for ``[electricity]``; an empty ``api_base_url`` is the emulator (demo and tests)."""
    c = cfg.electricity
    base = c.api_base_url or cfg.wechat.api_base_url + "/emulator"
    return HttpElectricity(base, c.secret, c.timeout_seconds, c.read_timeout_seconds)
