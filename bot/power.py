"""Dorm electricity: the rooms a WeChat account keeps, paying for a room, the receipt, and the low-power alert.

A room is picked from the electricity system (campus → building → floor → room) and kept per WeChat account (several
per account; roommates each keep the same room). Paying is an order like a card top-up (``bot.topup.create_order``
with product ``power`` and the room as target): the same notify, stuck-order job, refunds and reconciliation, and the
same exactly-once delivery (``bot.credits``) to the electricity system. The receipt tells the room's new kWh.

The low-power sweep (``sweep_low``, a worker job) reads every kept room in batches of ``MAX_READINGS`` and alerts every
account that keeps a room whose remaining kWh fell below the room's threshold, at most once per school day per room
(``PowerRoom.alerted_on``), through the outbox: a non-urgent notice, so it waits out the quiet hours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot import notices
from bot.adapters.electricity import MAX_READINGS, ElectricityError, Room
from bot.clock import to_local
from bot.errors import UserError
from bot.notices import Said
from bot.topup import CreatedOrder, create_order
from models import PowerRoom, SavedRoom, WechatUser
from models.enums import Product
from models.ledger import queue_notices_once

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

TEXTS = "power_err_"  # a refusal's text is ``power_err_{code}``
MAX_THRESHOLD = Decimal(1000)
ALERT_SLICE = 1000  # rooms alerted per transaction
_ROOMS = cast(Table, PowerRoom.__table__)
_STORE_READING = (  # one statement, executed for a whole batch of readings
    update(_ROOMS).where(_ROOMS.c.room_id == bindparam("b_id")).values(remaining_kwh=bindparam("b_kwh"), read_at=bindparam("b_at"))
)


def refused(code: str, status: int = 400, **values: Any) -> UserError:
    return UserError(code, status, f"{TEXTS}{code}", **values)


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RoomView:
    """A kept room as the page shows it: live from the electricity system, or the last known reading (``live`` False)."""

    room_id: str
    label: str
    remaining_kwh: Decimal | None
    read_at: datetime | None  # UTC
    price_fen_per_kwh: int | None
    threshold_kwh: Decimal
    live: bool
    open: bool = True


# --- rooms ------------------------------------------------------------------------------------------------
def kept(services: Runtime, openid: str) -> list[RoomView]:
    """The account's rooms, oldest first, each asked of the electricity system (the last reading if it does not answer)."""
    with services.session() as db:
        rows = list(
            db.execute(
                select(PowerRoom).join(SavedRoom, SavedRoom.room_id == PowerRoom.room_id).where(SavedRoom.openid == openid).order_by(SavedRoom.id)
            )
            .scalars()
            .all()
        )
    out = []
    answering = True  # after one room went unanswered the others are not asked: the student is waiting
    for row in rows:
        room = None
        if answering:
            try:
                room = services.electricity.room(row.room_id)
            except ElectricityError as exc:
                log.info("room %s: electricity system did not answer (%s); showing the last readings", row.room_id, type(exc).__name__)
                answering = False
        if room is None:
            out.append(RoomView(row.room_id, row.label, row.remaining_kwh, row.read_at, None, row.threshold_kwh, live=False))
            continue
        _remember(services, room)
        out.append(
            RoomView(room.room_id, room.label, room.remaining_kwh, _naive(room.read_at), room.price_fen_per_kwh, row.threshold_kwh, True, room.open)
        )
    return out


def _remember(services: Runtime, room: Room) -> None:
    with services.session() as db, db.begin():
        db.execute(
            update(PowerRoom)
            .where(PowerRoom.room_id == room.room_id)
            .values(label=room.label[:64], remaining_kwh=room.remaining_kwh, read_at=_naive(room.read_at))
        )


def keep(services: Runtime, openid: str, room_id: str) -> RoomView:
    """Keep a room for this account (asked of the electricity system first: only a real room is kept)."""
    if not isinstance(room_id, str) or not 1 <= len(room_id) <= 32:
        raise refused("unknown_room", 404)
    try:
        room = services.electricity.room(room_id)
    except ElectricityError:
        raise refused("unavailable", 503) from None
    if room is None:
        raise refused("unknown_room", 404)
    limit = services.cfg.electricity.max_rooms
    with services.session() as db, db.begin():
        if db.get(PowerRoom, room_id) is None:
            db.add(PowerRoom(room_id=room_id, label=room.label[:64], threshold_kwh=Decimal(str(services.cfg.electricity.low_kwh))))
            db.flush()
        already = db.execute(select(SavedRoom.id).where(SavedRoom.openid == openid, SavedRoom.room_id == room_id)).first()
        if already is None:
            if db.execute(select(func.count()).select_from(SavedRoom).where(SavedRoom.openid == openid)).scalar_one() >= limit:
                raise refused("too_many_rooms", 409, limit=limit)
            db.add(SavedRoom(openid=openid, room_id=room_id, created_at=services.clock.utcnow()))
        threshold = db.execute(select(PowerRoom.threshold_kwh).where(PowerRoom.room_id == room_id)).scalar_one()
    _remember(services, room)
    return RoomView(room.room_id, room.label, room.remaining_kwh, _naive(room.read_at), room.price_fen_per_kwh, threshold, True, room.open)


def forget(services: Runtime, openid: str, room_id: str) -> None:
    with services.session() as db, db.begin():
        db.execute(delete(SavedRoom).where(SavedRoom.openid == openid, SavedRoom.room_id == room_id))


def set_threshold(services: Runtime, openid: str, room_id: str, kwh: Any) -> Decimal:
    """The room's alert threshold (one per room: a roommate's change holds for everyone who keeps it)."""
    try:
        value = Decimal(str(kwh)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise refused("threshold_range", max=MAX_THRESHOLD) from None
    if isinstance(kwh, bool) or not value.is_finite() or not 0 <= value <= MAX_THRESHOLD:
        raise refused("threshold_range", max=MAX_THRESHOLD)
    with services.session() as db, db.begin():
        _kept_by(db, openid, room_id)
        db.execute(update(PowerRoom).where(PowerRoom.room_id == room_id).values(threshold_kwh=value))
    return value


def _kept_by(db: Session, openid: str, room_id: str) -> None:
    if db.execute(select(SavedRoom.id).where(SavedRoom.openid == openid, SavedRoom.room_id == room_id)).first() is None:
        raise refused("not_kept", 404)


# --- paying -----------------------------------------------------------------------------------------------
def order(services: Runtime, openid: str, room_id: Any, amount_fen: Any, mode: Any) -> CreatedOrder:
    """An order for a room this account keeps (the rules and limits are ``[electricity]``'s).

    A room the electricity system says is closed is refused before anyone pays; when it does not answer the order
    goes ahead (the payment is delivered once it is back, or refused and refunded)."""
    if not isinstance(room_id, str):
        raise refused("not_kept", 404)
    with services.session() as db:
        _kept_by(db, openid, room_id)
    try:
        room = services.electricity.room(room_id)
    except ElectricityError:
        room = None
    else:
        if room is None:
            raise refused("unknown_room", 404)
    if room is not None and not room.open:
        raise refused("room_closed", 409)
    return create_order(services, openid, amount_fen, mode, Product.POWER, room_id)


def receipt(services: Runtime, db: Session, c: Any) -> None:
    """The electricity system took the recharge: remember the room's new kWh and tell the payer (in ``c.lang``)."""
    receipts(services, db, [c])


def receipts(services: Runtime, db: Session, delivered: list[Any]) -> None:
    """``receipt`` for several recharges at once (the delivery recorder's batch): the new readings in one executed
    statement, the rooms' labels in one query, the notices in one executed INSERT."""
    conn = db.connection()
    at = services.clock.utcnow()
    read = sorted((c for c in delivered if c.kwh_after is not None), key=lambda c: c.target)  # rows locked in one order
    if read:
        conn.execute(_STORE_READING, [{"b_id": c.target, "b_kwh": c.kwh_after, "b_at": at} for c in read])
    labels = dict(conn.execute(select(_ROOMS.c.room_id, _ROOMS.c.label).where(_ROOMS.c.room_id.in_({c.target for c in delivered}))).tuples().all())
    queue_notices_once(
        db,
        [
            (
                notices.build(
                    db,
                    services.cfg,
                    "power_receipt",
                    c.openid,
                    f"power:{c.ref}:receipt",
                    getattr(c, "lang", None),
                    room=labels.get(c.target) or c.target,
                    amount=c.amount_fen,
                    kwh=Said("power_kwh", {"kwh": str(c.kwh_after if c.kwh_after is not None else "—")}),
                    time=f"{to_local(c.paid_at):%Y-%m-%d %H:%M}",
                ),
                f"power:{c.ref}:receipt",
            )
            for c in delivered
        ],
    )


# --- the low-power sweep ------------------------------------------------------------------------------------
def sweep_low(services: Runtime) -> dict[str, int]:
    """Read every kept room, then alert each room below its threshold once today (to every account keeping it).

    Returns counts: rooms read, rooms alerted, notices queued; rooms the electricity system did not answer for are
    left as they were (the next sweep reads them). Set-based: one UPDATE executed per batch of readings, one per batch of
    alerted rooms, the recipients' languages in one query."""
    with services.session() as db:
        ids = list(db.execute(select(PowerRoom.room_id).where(PowerRoom.room_id.in_(select(SavedRoom.room_id)))).scalars())
    read = 0
    for i in range(0, len(ids), MAX_READINGS):
        batch = ids[i : i + MAX_READINGS]
        try:
            readings = services.electricity.readings(batch)
        except ElectricityError as exc:
            log.warning("low-power sweep: %d rooms not read (%s)", len(batch), exc)
            continue
        if readings:
            with services.session() as db, db.begin():
                db.connection().execute(_STORE_READING, [{"b_id": r.room_id, "b_kwh": r.remaining_kwh, "b_at": _naive(r.read_at)} for r in readings])
        read += len(readings)
    alerted = queued = 0
    while True:  # in slices, so no statement carries more than ALERT_SLICE rooms
        rooms, told = _alert(services)
        alerted, queued = alerted + rooms, queued + told
        if rooms < ALERT_SLICE:
            return {"read": read, "alerted": alerted, "notices": queued}


def _alert(services: Runtime) -> tuple[int, int]:
    """One slice of the rooms to alert today: marked alerted and their notices queued in one transaction."""
    today = services.clock.today()
    now = to_local(services.clock.utcnow())
    with services.session() as db, db.begin():
        low = db.execute(
            select(PowerRoom.room_id, PowerRoom.label, PowerRoom.remaining_kwh, PowerRoom.threshold_kwh)
            .where(
                PowerRoom.room_id.in_(select(SavedRoom.room_id)),  # a room nobody keeps any more is nobody's to tell
                PowerRoom.remaining_kwh.is_not(None),
                PowerRoom.remaining_kwh < PowerRoom.threshold_kwh,
                or_(PowerRoom.alerted_on.is_(None), PowerRoom.alerted_on < today),
            )
            .order_by(PowerRoom.room_id)
            .limit(ALERT_SLICE)
            .with_for_update(skip_locked=True)
        ).all()
        if not low:
            return 0, 0
        by_room = {r.room_id: r for r in low}
        db.execute(
            update(PowerRoom).where(PowerRoom.room_id.in_(list(by_room))).values(alerted_on=today).execution_options(synchronize_session=False)
        )
        keepers = db.execute(select(SavedRoom.room_id, SavedRoom.openid).where(SavedRoom.room_id.in_(list(by_room))).order_by(SavedRoom.id)).all()
        openids = {openid for _, openid in keepers}
        langs = dict(db.execute(select(WechatUser.openid, WechatUser.lang).where(WechatUser.openid.in_(openids))).tuples().all())
        with db.no_autoflush:  # the notices are inserted together at commit (each has its own dedup key)
            for room_id, openid in keepers:
                room = by_room[room_id]
                notices.send(
                    db,
                    services.cfg,
                    "power_low",
                    openid,
                    f"power:{room_id}:low:{today}:{openid}",
                    lang=langs.get(openid) or "zh",
                    room=room.label,
                    kwh=Said("power_kwh", {"kwh": str(room.remaining_kwh)}),
                    advice=Said("power_low_advice", {"threshold": str(room.threshold_kwh)}),
                    time=f"{now:%Y-%m-%d %H:%M}",
                )
        return len(low), len(keepers)
