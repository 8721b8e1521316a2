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
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import ROUND_DOWN, Decimal
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from bot.adapters import cardsys_signing
from bot.adapters.cardsys_signing import POWER
from bot.clock import SCHOOL_TZ
from bot.emulator.state import pop_fault

bp = Blueprint("emulator_power", __name__, url_prefix="/emulator/power")

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


def _bad(message: str) -> tuple[Response, int]:
    return jsonify(error="invalid_request", message=message), 400


@bp.before_request
def _authenticate() -> Any:
    if not request.path.startswith(f"{bp.url_prefix}/v1/"):
        return None
    svc = current_app.extensions["cardbot"]
    problem = POWER.verify(
        svc.cfg.electricity.secret,
        request.method,
        cardsys_signing.request_target(request.environ),
        request.headers,
        request.get_data(),
        POWER.nonce_claimer(svc.store, "emulator"),
    )
    if problem:
        return jsonify(error="unauthorized", message=problem), 401
    return None


def _call(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The maintenance window and the fault set for ``name`` around one protocol call."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            st = _state()
            fault = st.take_fault(name)
            wait = st.in_window()
            if wait or fault == "maintenance":
                return jsonify(error="unavailable", retry_after=wait or 600), 503
            if fault == "5xx":
                return jsonify(error="internal"), 500
            if fault == "slow":
                time.sleep(current_app.extensions["cardbot"].cfg.electricity.timeout_seconds + 0.5)
            answer = view(*args, **kwargs)
            if fault == "lost":
                return jsonify(error="bad_gateway"), 502
            return answer

        return run

    return wrap


@bp.get("/v1/places")
@_call("places")
def places() -> Any:
    parent = request.args.get("parent", "")
    if parent == "":
        return jsonify(places=[{"id": c, "name": n, "kind": "campus"} for c, n in CAMPUSES.items()])
    if parent in CAMPUSES:
        return jsonify(places=[{"id": f"{parent}{b:02d}", "name": f"{b}号楼 Building {b}", "kind": "building"} for b in range(1, BUILDINGS + 1)])
    if re.fullmatch(r"[EW]\d{2}", parent) and 1 <= int(parent[1:]) <= BUILDINGS:
        return jsonify(places=[{"id": f"{parent}-{f:02d}", "name": f"{f}层 Floor {f}", "kind": "floor"} for f in range(1, FLOORS + 1)])
    if re.fullmatch(r"[EW]\d{2}-\d{2}", parent) and 1 <= int(parent[1:3]) <= BUILDINGS and 1 <= int(parent[4:]) <= FLOORS:
        floor = int(parent[4:])
        return jsonify(places=[{"id": f"{parent}{r:02d}", "name": f"{floor}{r:02d}", "kind": "room"} for r in range(1, ROOMS + 1)])
    return jsonify(error="unknown_place"), 404


@bp.get("/v1/rooms/<room_id>")
@_call("room")
def room(room_id: str) -> Any:
    if not _valid(room_id):
        return jsonify(error="unknown_room"), 404
    st = _state()
    with st.lock:
        reading = st.reading(room_id)
        return jsonify(reading | {"label": label(room_id), "price_fen_per_kwh": PRICE_FEN_PER_KWH, "open": st.meter(room_id).open})


@bp.post("/v1/readings")
@_call("readings")
def readings() -> Any:
    body = request.get_json(silent=True)
    rooms = body.get("rooms") if isinstance(body, dict) else None
    if not isinstance(rooms, list) or len(rooms) > 500 or not all(isinstance(r, str) for r in rooms):
        return _bad("rooms must be a list of at most 500 room ids")
    st = _state()
    with st.lock:
        return jsonify(readings=[st.reading(r) for r in rooms if _valid(r)])


@bp.post("/v1/recharges")
@_call("recharge")
def recharge() -> Any:
    body, st = request.get_json(silent=True), _state()
    if not isinstance(body, dict):
        return _bad("a JSON object is required")
    ref, room_id, amount = body.get("ref"), body.get("room_id"), body.get("amount_fen")
    if not isinstance(ref, str) or not REF.match(ref):
        return _bad(f"ref must match {REF.pattern}")
    with st.lock:
        if ref in st.recharges:
            return jsonify(st.recharges[ref])
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
        return jsonify(answer)


@bp.get("/v1/recharges/<ref>")
@_call("recharge_status")
def recharge_status(ref: str) -> Any:
    st = _state()
    with st.lock:
        answer = st.recharges.get(ref)
    return jsonify(answer) if answer is not None else (jsonify(error="unknown_ref"), 404)


@bp.get("/v1/recharges")
@_call("recharges")
def recharges_on() -> Any:
    try:
        day = date.fromisoformat(request.args.get("date", ""))
    except ValueError:
        return _bad("date must be YYYY-MM-DD")
    st = _state()
    with st.lock:
        rows = [r for r in st.recharge_log if datetime.fromtimestamp(r["at"], SCHOOL_TZ).date() == day]
        return jsonify(recharges=[{**r, "at": _iso(r["at"])} for r in rows])


@bp.post("/meters/<room_id>")
def meter(room_id: str) -> Any:
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
    return jsonify(st.reading(room_id))


def init_app(app: Flask) -> None:
    app.extensions["emulator_power"] = PowerState()
    app.register_blueprint(bp)
