"""The school's dorm electricity system as power/1 serves it (docs/electricity.md), under ``/emulator/power/v1``.

Two campuses (东区 E, 西区 W) of 25 buildings, 20 floors and 20 rooms each: 20,000 rooms, ids like ``E03-0512``.
Every meter uses power over time (its own rate, 0.05–0.40 kWh an hour) and reports a reading every 15 minutes; a
recharge buys ``amount / price`` kWh at 0.56 yuan a kWh. Meters are made on first use from the room id, so the 20,000
rooms cost nothing until asked. Recharges are idempotent by ``ref`` for ever; requests are checked like cardsys/1's
(signature, 300 s window, nonces, 401).

Emulator-only, unsigned: ``POST /emulator/power/meters/<room_id>`` sets a meter (``kwh``, ``open``, ``rate``) — the
simulator's "use power" button and the tests.

Tests reach the state through ``app.extensions["emulator_power"]``: ``set_meter``, ``offset`` (seconds the meters'
clock runs ahead: power used meanwhile), ``window`` (a daily maintenance window ``(start, end)`` in school time:
every call answers 503 with ``retry_after`` until its end) and ``faults[call]`` (call = ``places``, ``room``,
``readings``, ``recharge``, ``recharge_status``, ``recharges`` or ``all``; a value or a list consumed one per call):
``"maintenance"`` → 503; ``"5xx"`` → 500, nothing done; ``"slow"`` → answers after the client's timeout (the work is
done); ``"lost"`` → the work is done, then 502.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_DOWN, Decimal
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, current_app, request
from werkzeug.datastructures import EnvironHeaders
from werkzeug.wsgi import get_input_stream

from bot.adapters import cardsys_signing
from bot.adapters.cardsys_signing import POWER
from bot.clock import SCHOOL_TZ
from bot.emulator.state import pop_fault

bp = Blueprint("emulator_power", __name__, url_prefix="/emulator/power")
RECHARGES = f"{bp.url_prefix}/v1/recharges"

CAMPUSES = {"E": "东区 East", "W": "西区 West"}
BUILDINGS, FLOORS, ROOMS = 25, 20, 20
ROOM_ID = re.compile(r"^([EW])(\d{2})-(\d{2})(\d{2})$")
REF = re.compile(r"^[A-Za-z0-9_.:|*-]{1,64}$")
PRICE_FEN_PER_KWH = 56
MAX_KWH = Decimal(2000)  # a meter holds at most this much prepaid power
READ_EVERY = 900  # seconds between a meter's readings
CENT = Decimal("0.01")


def room_ids() -> list[str]:
    """Every room id, in order (the bench's 20,000)."""
    return [
        f"{c}{b:02d}-{f:02d}{r:02d}" for c in CAMPUSES for b in range(1, BUILDINGS + 1) for f in range(1, FLOORS + 1) for r in range(1, ROOMS + 1)
    ]


def _valid(room_id: str) -> bool:
    m = ROOM_ID.match(room_id)
    return m is not None and 1 <= int(m.group(2)) <= BUILDINGS and 1 <= int(m.group(3)) <= FLOORS and 1 <= int(m.group(4)) <= ROOMS


def label(room_id: str) -> str:
    m = ROOM_ID.match(room_id)
    assert m
    return f"{CAMPUSES[m.group(1)].split()[0]} · {int(m.group(2))}号楼 · {int(m.group(3))}{m.group(4)}"


@dataclass
class Meter:
    kwh: Decimal  # at ``at``
    at: float  # epoch seconds
    rate: Decimal  # kWh an hour
    open: bool = True

    def remaining(self, now: float) -> Decimal:
        used = self.rate * Decimal(max(0.0, now - self.at) / 3600)
        return max(Decimal(0), self.kwh - used).quantize(CENT, ROUND_DOWN)


@dataclass
class PowerState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    meters: dict[str, Meter] = field(default_factory=dict)
    recharges: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref -> the first answer, for ever
    recharge_log: list[dict[str, Any]] = field(default_factory=list)  # recharges made, for GET /recharges?date=
    faults: dict[str, Any] = field(default_factory=dict)
    window: tuple[clock_time, clock_time] | None = None
    offset: float = 0.0
    born: float = field(default_factory=time.time)
    _serial: Any = field(default_factory=lambda: itertools.count(1))

    def now(self) -> float:
        return time.time() + self.offset

    def meter(self, room_id: str) -> Meter:
        """The room's meter, made on first use from its id: 5–120 kWh when the emulator started, its own rate."""
        with self.lock:
            m = self.meters.get(room_id)
            if m is None:
                h = int.from_bytes(hashlib.sha256(room_id.encode()).digest()[:4], "big")
                m = self.meters[room_id] = Meter(Decimal(5 + h % 116), self.born, Decimal(5 + (h >> 8) % 36) / 100)
            return m

    def set_meter(self, room_id: str, kwh: Decimal | str | None = None, *, open: bool | None = None, rate: Decimal | str | None = None) -> None:
        with self.lock:
            m = self.meter(room_id)
            now = self.now()
            if kwh is not None:
                m.kwh, m.at = Decimal(kwh), now
            else:
                m.kwh, m.at = m.remaining(now), now
            if rate is not None:
                m.rate = Decimal(rate)
            if open is not None:
                m.open = open

    def reading(self, room_id: str) -> dict[str, Any]:
        """The last reading: taken at the last quarter hour (or when the meter was last set, if later)."""
        with self.lock:
            m = self.meter(room_id)
            now = self.now()
            at = max(m.at, now - now % READ_EVERY)
            return {"room_id": room_id, "remaining_kwh": str(m.remaining(at)), "read_at": _iso(at)}

    def take_fault(self, name: str) -> Any:
        with self.lock:
            return pop_fault(self.faults, name) or pop_fault(self.faults, "all")

    def in_window(self) -> int:
        """Seconds until the maintenance window ends (0 outside it)."""
        if self.window is None:
            return 0
        start, end = self.window
        local = datetime.fromtimestamp(self.now(), SCHOOL_TZ)
        t = local.time()
        inside = start <= t < end if start < end else (t >= start or t < end)
        if not inside:
            return 0
        ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if ends <= local:
            ends += timedelta(days=1)
        return max(1, int((ends - local).total_seconds()))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), SCHOOL_TZ).isoformat()


def _state() -> PowerState:
    return current_app.extensions["emulator_power"]


Answer = tuple[dict[str, Any], int]  # the JSON object and the status of one power/1 answer


def _bad(message: str) -> Answer:
    return {"error": "invalid_request", "message": message}, 400


def _unauthorized(svc: Any, environ: dict[str, Any], headers: Any, raw: bytes) -> Answer | None:
    problem = POWER.verify(
        svc.cfg.electricity.secret,
        environ.get("REQUEST_METHOD", ""),
        cardsys_signing.request_target(environ),
        headers,
        raw,
        POWER.nonce_claimer(svc.store, "emulator"),
    )
    return ({"error": "unauthorized", "message": problem}, 401) if problem else None


@bp.before_request
def _authenticate() -> Any:
    if not request.path.startswith(f"{bp.url_prefix}/v1/"):
        return None
    return _unauthorized(current_app.extensions["cardbot"], request.environ, request.headers, request.get_data())


def _guarded(st: PowerState, name: str, timeout_s: float, work: Callable[[], Answer]) -> Answer:
    """The maintenance window and the fault set for ``name`` around one protocol call."""
    fault = st.take_fault(name)
    wait = st.in_window()
    if wait or fault == "maintenance":
        return {"error": "unavailable", "retry_after": wait or 600}, 503
    if fault == "5xx":
        return {"error": "internal"}, 500
    if fault == "slow":
        time.sleep(timeout_s + 0.5)
    answer = work()
    if fault == "lost":
        return {"error": "bad_gateway"}, 502
    return answer


def _call(name: str) -> Callable[[Callable[..., Answer]], Callable[..., Answer]]:
    def wrap(view: Callable[..., Answer]) -> Callable[..., Answer]:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Answer:
            timeout_s = current_app.extensions["cardbot"].cfg.electricity.timeout_seconds
            return _guarded(_state(), name, timeout_s, lambda: view(*args, **kwargs))

        return run

    return wrap


@bp.get("/v1/places")
@_call("places")
def places() -> Answer:
    parent = request.args.get("parent", "")
    if parent == "":
        return {"places": [{"id": c, "name": n, "kind": "campus"} for c, n in CAMPUSES.items()]}, 200
    if parent in CAMPUSES:
        return {"places": [{"id": f"{parent}{b:02d}", "name": f"{b}号楼 Building {b}", "kind": "building"} for b in range(1, BUILDINGS + 1)]}, 200
    if re.fullmatch(r"[EW]\d{2}", parent) and 1 <= int(parent[1:]) <= BUILDINGS:
        return {"places": [{"id": f"{parent}-{f:02d}", "name": f"{f}层 Floor {f}", "kind": "floor"} for f in range(1, FLOORS + 1)]}, 200
    if re.fullmatch(r"[EW]\d{2}-\d{2}", parent) and 1 <= int(parent[1:3]) <= BUILDINGS and 1 <= int(parent[4:]) <= FLOORS:
        floor = int(parent[4:])
        return {"places": [{"id": f"{parent}{r:02d}", "name": f"{floor}{r:02d}", "kind": "room"} for r in range(1, ROOMS + 1)]}, 200
    return {"error": "unknown_place"}, 404


@bp.get("/v1/rooms/<room_id>")
@_call("room")
def room(room_id: str) -> Answer:
    if not _valid(room_id):
        return {"error": "unknown_room"}, 404
    st = _state()
    with st.lock:
        reading = st.reading(room_id)
        return reading | {"label": label(room_id), "price_fen_per_kwh": PRICE_FEN_PER_KWH, "open": st.meter(room_id).open}, 200


@bp.post("/v1/readings")
@_call("readings")
def readings() -> Answer:
    body = request.get_json(silent=True)
    rooms = body.get("rooms") if isinstance(body, dict) else None
    if not isinstance(rooms, list) or len(rooms) > 500 or not all(isinstance(r, str) for r in rooms):
        return _bad("rooms must be a list of at most 500 room ids")
    st = _state()
    with st.lock:
        return {"readings": [st.reading(r) for r in rooms if _valid(r)]}, 200


class Recharges:
    """``POST /emulator/power/v1/recharges`` answered here, every other request passed on to ``app`` (Flask).

    The payment hall's delivery threads send recharges on the same cores as the bot (bench row 2, electricity), so
    this call is plain WSGI in front of Flask, as WeChat's template send is (``wechat_api.TemplateSend``): the same
    signature, window and fault checks, in the same order, without Flask's request context, routing or response."""

    def __init__(self, app: Any, svc: Any, st: PowerState) -> None:
        self.app, self.svc, self.st = app, svc, st

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != RECHARGES or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        raw = get_input_stream(environ).read()
        answer, status = _unauthorized(self.svc, environ, EnvironHeaders(environ), raw) or _guarded(
            self.st, "recharge", self.svc.cfg.electricity.timeout_seconds, lambda: recharge(self.st, environ, raw)
        )
        body = json.dumps(answer).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def recharge(st: PowerState, environ: dict[str, Any], raw: bytes) -> Answer:
    """One recharge, idempotent by ``ref`` for ever: the first answer is the answer to every later try."""
    try:
        body = json.loads(raw) if str(environ.get("CONTENT_TYPE", "")).startswith("application/json") else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _bad("a JSON object is required")
    ref, room_id, amount = body.get("ref"), body.get("room_id"), body.get("amount_fen")
    if not isinstance(ref, str) or not REF.match(ref):
        return _bad(f"ref must match {REF.pattern}")
    with st.lock:
        if ref in st.recharges:
            return st.recharges[ref], 200
        if not isinstance(room_id, str) or not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return _bad("room_id and a positive integer amount_fen are required")
        kwh = (Decimal(amount) / PRICE_FEN_PER_KWH).quantize(CENT, ROUND_DOWN)
        if not _valid(room_id):
            answer: dict[str, Any] = {"result": "refused", "reason": "unknown_room"}
        elif not st.meter(room_id).open:
            answer = {"result": "refused", "reason": "room_closed"}
        elif st.meter(room_id).remaining(st.now()) + kwh > MAX_KWH:
            answer = {"result": "refused", "reason": "over_limit"}
        else:
            m = st.meter(room_id)
            now = st.now()
            m.kwh, m.at = m.remaining(now) + kwh, now
            entry_id = f"PW{int(now)}{next(st._serial):06d}"
            answer = {"result": "ok", "entry_id": entry_id, "kwh": str(kwh), "remaining_kwh": str(m.kwh)}
            st.recharge_log.append({"ref": ref, "room_id": room_id, "amount_fen": amount, "entry_id": entry_id, "at": now})
        st.recharges[ref] = answer
        return answer, 200


@bp.get("/v1/recharges/<ref>")
@_call("recharge_status")
def recharge_status(ref: str) -> Answer:
    st = _state()
    with st.lock:
        answer = st.recharges.get(ref)
    return (answer, 200) if answer is not None else ({"error": "unknown_ref"}, 404)


@bp.get("/v1/recharges")
@_call("recharges")
def recharges_on() -> Answer:
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return _bad("date must be YYYY-MM-DD")
    st = _state()
    with st.lock:
        rows = [r for r in st.recharge_log if datetime.fromtimestamp(r["at"], SCHOOL_TZ).date() == day]
        return {"recharges": [{**r, "at": _iso(r["at"])} for r in rows]}, 200


@bp.post("/meters/<room_id>")
def meter(room_id: str) -> Answer:
    """Emulator only: set a meter (the simulator's "use power" button, tests)."""
    body = request.get_json(silent=True)
    if not _valid(room_id) or not isinstance(body, dict):
        return _bad("a known room and a JSON object are required")
    kwh, is_open = body.get("kwh"), body.get("open")
    if kwh is not None and not (isinstance(kwh, str) and re.fullmatch(r"\d{1,6}(\.\d{1,2})?", kwh)):
        return _bad("kwh must be a decimal string")
    if is_open is not None and not isinstance(is_open, bool):
        return _bad("open must be true or false")
    st = _state()
    st.set_meter(room_id, kwh, open=is_open)
    return st.reading(room_id), 200


def init_app(app: Flask) -> None:
    st = app.extensions["emulator_power"] = PowerState()
    app.register_blueprint(bp)
    app.wsgi_app = Recharges(app.wsgi_app, app.extensions["cardbot"], st)  # type: ignore[method-assign]
