"""The ledger: the only place a card's balance changes.

``post_entry`` locks the card row, refuses a second entry with the same idempotency key, writes the
entry, moves the balance and queues the notices — all inside the caller's transaction, so either
everything lands or nothing does. ``move_balance`` + ``book_entry`` are the same rule for the terminals'
entries (bot.card_entries, one per card push) in two Core statements and no ORM objects: the balance moved first
(which locks the card), then the entry written with ``INSERT … ON CONFLICT DO NOTHING``; a replay or a balance below
zero rolls the move back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Update,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow
from models.cardholder import Cardholder
from models.enums import EntryKind, NoticeStatus, check_in
from models.outbox import OutboxNotice

KINDS = frozenset(k.value for k in EntryKind)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_card_time", "cardholder_id", "created_at"),
        Index("ix_ledger_alerts_due", "id", postgresql_where=text("alerts_due"), sqlite_where=text("alerts_due")),
        CheckConstraint("amount_fen <> 0", name="nonzero"),
        check_in("kind", EntryKind, name="kind"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cardholder_id: Mapped[int] = mapped_column(ForeignKey("cardholders.id"))
    amount_fen: Mapped[int] = mapped_column(Integer)
    balance_after_fen: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(128), default="")
    ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    alerts_due: Mapped[bool | None] = mapped_column(Boolean)  # True: a spend whose alerts are yet to be queued (bot.alerts)


class InsufficientBalance(Exception):
    """A debit would take the card below zero."""


@dataclass
class Notice:
    """A notice to queue with a ledger entry; ``dedup_key`` defaults to the entry's key plus kind and openid."""

    openid: str
    kind: str
    data: dict[str, Any]
    url: str | None = None
    urgent: bool = True
    dedup_key: str | None = None


@dataclass
class Posted:
    entry: LedgerEntry
    created: bool
    notices: list[OutboxNotice] = field(default_factory=list)


def lock_card(session: Session, cardholder_id: int) -> Cardholder:
    """SELECT … FOR UPDATE on PostgreSQL (SQLite serialises writers by itself), refreshing a copy the session already
    holds: without ``populate_existing`` the ORM would hand back that copy's old balance and a credit made meanwhile
    by another transaction would be overwritten."""
    return session.execute(
        select(Cardholder).where(Cardholder.id == cardholder_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def queue_notice(session: Session, notice: Notice, default_key: str) -> OutboxNotice | None:
    """Add an outbox row unless one with the same dedup key exists."""
    key = notice.dedup_key or f"{default_key}:{notice.kind}:{notice.openid}"
    if session.execute(select(OutboxNotice.id).where(OutboxNotice.dedup_key == key)).first():
        return None
    row = OutboxNotice(
        dedup_key=key[:128],
        openid=notice.openid,
        kind=notice.kind,
        data=notice.data,
        url=notice.url,
        urgent=notice.urgent,
        status=NoticeStatus.PENDING,
        next_attempt_at=utcnow(),
    )
    session.add(row)
    return row


_NOTICES = cast(Table, OutboxNotice.__table__)
_QUEUE_ONCE = {
    d.__name__.rsplit(".", 1)[-1]: d.insert(_NOTICES).on_conflict_do_nothing(index_elements=[_NOTICES.c.dedup_key]) for d in (postgresql, sqlite)
}


def queue_notice_once(session: Session, notice: Notice, default_key: str) -> None:
    """``queue_notice`` in one statement (INSERT … ON CONFLICT (dedup_key) DO NOTHING), for callers that need no row."""
    queue_notices_once(session, [(notice, default_key)])


def queue_notices_once(session: Session, notices: list[tuple[Notice, str]]) -> None:
    """``queue_notice_once`` for several notices, executed together (one round trip with psycopg's pipeline)."""
    conn = session.connection()
    now = utcnow()
    values = [
        {
            "dedup_key": (notice.dedup_key or f"{default_key}:{notice.kind}:{notice.openid}")[:128],
            "openid": notice.openid,
            "kind": notice.kind,
            "data": notice.data,
            "url": notice.url,
            "urgent": notice.urgent,
            "status": NoticeStatus.PENDING,
            "next_attempt_at": now,
        }
        for notice, default_key in notices
    ]
    if values:
        conn.execute(_QUEUE_ONCE[conn.dialect.name], values)


def post_entry(
    session: Session,
    cardholder_id: int,
    amount_fen: int,
    kind: str,
    idempotency_key: str,
    *,
    description: str = "",
    ref: str | None = None,
    allow_negative: bool = False,
    notices: list[Notice] | None = None,
    build_notices: Any = None,
    at: datetime | None = None,
) -> Posted:
    """Apply one balance change exactly once.

    ``build_notices(card, entry)`` may compute notices from the new balance. ``at`` (naive UTC) stamps the
    entry with the caller's clock (the card system's time, or a frozen test clock); default now. Returns ``created=False``
    (and changes nothing) when the key was already used. The caller commits.
    """
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen == 0:
        raise ValueError("amount_fen must be a non-zero integer")
    if kind not in KINDS:
        raise ValueError(f"unknown entry kind {kind!r}")
    card = lock_card(session, cardholder_id)
    existing = session.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)).scalar_one_or_none()
    if existing is not None:
        return Posted(existing, created=False)
    new_balance = card.balance_fen + amount_fen
    if new_balance < 0 and not allow_negative:
        raise InsufficientBalance(f"balance {card.balance_fen} < {-amount_fen}")
    card.balance_fen = new_balance
    entry = LedgerEntry(
        cardholder_id=card.id,
        amount_fen=amount_fen,
        balance_after_fen=new_balance,
        kind=kind,
        idempotency_key=idempotency_key,
        description=description[:128],
        ref=ref,
        created_at=at or utcnow(),
    )
    session.add(entry)
    all_notices = list(notices or [])
    if build_notices is not None:
        all_notices.extend(build_notices(card, entry))
    queued = [r for n in all_notices if (r := queue_notice(session, n, idempotency_key)) is not None]
    session.flush()
    return Posted(entry, created=True, notices=queued)


@dataclass(frozen=True)
class Credited:
    """A credit's ledger entry: made now (``created``) or found by its key, made before."""

    entry_id: int
    balance_after_fen: int
    created: bool


_HOLDERS = cast(Table, Cardholder.__table__)
_ENTRIES = cast(Table, LedgerEntry.__table__)
# Composed once (Core, bound per call): post_credit's four statements.
_LOCK_BY_NO = select(_HOLDERS.c.id, _HOLDERS.c.balance_fen).where(_HOLDERS.c.student_no == bindparam("b_no")).with_for_update()
_ENTRY_BY_KEY = select(_ENTRIES.c.id, _ENTRIES.c.balance_after_fen).where(_ENTRIES.c.idempotency_key == bindparam("b_key"))
_MOVE = update(_HOLDERS).where(_HOLDERS.c.id == bindparam("b_id")).values(balance_fen=bindparam("b_balance"))
_ENTER = insert(_ENTRIES).returning(_ENTRIES.c.id)


def post_credit(
    session: Session, student_no: str, amount_fen: int, kind: str, idempotency_key: str, *, description: str, ref: str, at: datetime
) -> Credited | None:
    """``post_entry`` for money coming onto a card found by its student number, with no notices (the ``ledger`` card
    system's credits, on every paid top-up): the same rules — the card row locked, one entry per key, the entry and
    the balance moved together in the caller's transaction — in four Core statements, without loading ORM rows.
    None when no card has that number. Rows of the card the session already holds are not refreshed."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise ValueError("a credit's amount_fen must be a positive integer")
    if kind not in KINDS:
        raise ValueError(f"unknown entry kind {kind!r}")
    conn = session.connection()
    card = conn.execute(_LOCK_BY_NO, {"b_no": student_no}).one_or_none()
    if card is None:
        return None
    found = conn.execute(_ENTRY_BY_KEY, {"b_key": idempotency_key}).one_or_none()
    if found is not None:
        return Credited(found.id, found.balance_after_fen, created=False)
    balance = card.balance_fen + amount_fen
    conn.execute(_MOVE, {"b_id": card.id, "b_balance": balance})
    entry = {
        "cardholder_id": card.id,
        "amount_fen": amount_fen,
        "balance_after_fen": balance,
        "kind": kind,
        "idempotency_key": idempotency_key,
        "description": description[:128],
        "ref": ref,
        "created_at": at,
    }
    return Credited(conn.execute(_ENTER, entry).scalar_one(), balance, created=True)


@dataclass(frozen=True)
class LockedCard:
    """A card row locked by ``move_balance``: what the entry rules read (bot.cards), without an ORM object."""

    id: int
    status: str
    left_on: date | None
    balance_fen: int
    row: Any = None  # the whole row ``move_balance``'s statement returned: with a caller's own columns beside the card's


class Replayed(Exception):
    """``book_entry`` found its key used: nothing may change, so the caller's transaction must roll back the balance
    ``move_balance`` moved (raising this out of it does). Carries the first entry's card and balance."""

    def __init__(self, cardholder_id: int, balance_after_fen: int) -> None:
        super().__init__(cardholder_id, balance_after_fen)
        self.cardholder_id, self.balance_after_fen = cardholder_id, balance_after_fen


MOVE_BY_NO = (
    update(Cardholder)
    .where(Cardholder.student_no == bindparam("no"))
    .values(balance_fen=Cardholder.balance_fen + bindparam("amount"))
    .returning(Cardholder.id, Cardholder.status, Cardholder.left_on, Cardholder.balance_fen)
)
_NEW_ENTRY = {
    name: dialect.insert(LedgerEntry).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(LedgerEntry.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_USED_KEY = select(LedgerEntry.cardholder_id, LedgerEntry.balance_after_fen).where(LedgerEntry.idempotency_key == bindparam("key"))


def move_balance(conn: Connection, student_no: str, amount_fen: int, stmt: Update = MOVE_BY_NO, **params: Any) -> LockedCard | None:
    """The first half of ``book_entry``: one ``UPDATE … RETURNING`` locks the card with this number and moves its
    balance (the new one is returned); None: no such card. Only ``book_entry`` may follow in the same transaction.
    ``stmt`` is ``MOVE_BY_NO`` with more columns returned (``params`` bind theirs): what the caller asks of the card
    next comes back in the same round trip (``LockedCard.row``)."""
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen == 0:
        raise ValueError("amount_fen must be a non-zero integer")
    row = conn.execute(stmt, {"no": student_no, "amount": amount_fen, **params}).first()
    return LockedCard(row.id, row.status, row.left_on, row.balance_fen, row) if row is not None else None


def book_entry(
    conn: Connection,
    card: LockedCard,
    amount_fen: int,
    kind: str,
    idempotency_key: str,
    *,
    description: str,
    ref: str | None,
    at: datetime,
    alerts_due: bool = False,
) -> None:
    """``post_entry`` for the terminals' entries, after ``move_balance`` in the same transaction: the entry for that
    move, written with ``INSERT … ON CONFLICT DO NOTHING`` on its key. A key used before raises ``Replayed``, a
    balance below zero ``InsufficientBalance`` (a replay is told first, as ``post_entry`` does): raised out of the
    transaction, both roll the move back. Two statements for a new entry, against ``post_entry``'s five.
    ``alerts_due`` marks the entry for the alerts worker (``bot.alerts.queue_due``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown entry kind {kind!r}")
    if card.balance_fen >= 0:
        values = {
            "cardholder_id": card.id,
            "amount_fen": amount_fen,
            "balance_after_fen": card.balance_fen,
            "kind": kind,
            "idempotency_key": idempotency_key,
            "description": description[:128],
            "ref": ref,
            "created_at": at,
            "alerts_due": True if alerts_due else None,
        }
        if conn.execute(_NEW_ENTRY[conn.dialect.name], values).first() is not None:
            return
    used = conn.execute(_USED_KEY, {"key": idempotency_key}).first()
    if used is not None:
        raise Replayed(used.cardholder_id, used.balance_after_fen)
    raise InsufficientBalance(f"balance {card.balance_fen - amount_fen} < {-amount_fen}")


def ledger_sum(session: Session, cardholder_id: int) -> int:
    """Sum of all entries: must always equal the card's balance."""
    return int(
        session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(LedgerEntry.cardholder_id == cardholder_id)).scalar_one()
    )
