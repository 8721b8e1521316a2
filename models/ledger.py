"""The ledger: the only place a card's balance changes.

``post_entry`` locks the card row, refuses a second entry with the same idempotency key, writes the
entry, moves the balance and queues the notices — all inside the caller's transaction, so either
everything lands or nothing does. ``book_entries`` is the same rule for the terminals' entries (bot.card_entries,
one per card push, gathered by bot.group_commit): a batch in three Core statements and no ORM objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    and_,
    any_,
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
    """A card row locked by ``book_entries``: what the entry rules read (bot.cards), without an ORM object.
    ``balance_fen`` is the balance right after the entry it is handed with."""

    id: int
    status: str
    left_on: date | None
    balance_fen: int


class Replayed(Exception):
    """``book_entries`` found the entry's key used, on the same card: nothing changed. Carries the first entry's
    card and balance."""

    def __init__(self, cardholder_id: int, balance_after_fen: int) -> None:
        super().__init__(cardholder_id, balance_after_fen)
        self.cardholder_id, self.balance_after_fen = cardholder_id, balance_after_fen


class NoSuchCard(Exception):
    """No card has the entry's student number."""


class KeyReused(Exception):
    """The entry's key was used for another card's entry."""


@dataclass(frozen=True)
class TerminalEntry:
    """One entry a card's terminal made, for ``book_entries``; ``at`` is naive UTC."""

    student_no: str
    amount_fen: int
    kind: str
    idempotency_key: str
    description: str
    ref: str | None
    at: datetime


@dataclass(frozen=True)
class Booked:
    """An entry written: its card (balance right after it) and the card's row with the caller's columns."""

    card: LockedCard
    row: Any


class _KeyRaced(Exception):
    """An entry's key was written by a transaction the batch's reading did not see (a key used for another card's
    entry, or one written after the reading's snapshot): the batch is rolled back and done again, reading the keys
    used on any card, which then finds it."""


def _among(column: Any, name: str, dialect: str) -> Any:
    """``column IN (the list bound as name)``: on PostgreSQL ``= ANY(array)``, one statement text whatever the list's
    length, so it is prepared once; SQLite expands the list."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


_DIALECTS = {"postgresql": postgresql, "sqlite": sqlite}


@functools.cache
def _statements(dialect: str, columns: tuple[Any, ...]) -> tuple[Any, Any, Any]:
    """``book_entries``'s statements, composed once per dialect and caller's columns: the cards locked with the
    batch's keys they already hold (one row per such key), the keys used on any card, the new entries (executed for
    many rows: prepared once, pipelined on PostgreSQL)."""
    held = and_(_ENTRIES.c.cardholder_id == _HOLDERS.c.id, _among(_ENTRIES.c.idempotency_key, "keys", dialect))
    lock = (
        select(
            _HOLDERS.c.id,
            _HOLDERS.c.student_no,
            _HOLDERS.c.status,
            _HOLDERS.c.left_on,
            _HOLDERS.c.balance_fen,
            *columns,
            _ENTRIES.c.idempotency_key.label("used_key"),
            _ENTRIES.c.balance_after_fen.label("used_balance_after_fen"),
        )
        .select_from(_HOLDERS.outerjoin(_ENTRIES, held))
        .where(_among(_HOLDERS.c.student_no, "nos", dialect))
        .order_by(_HOLDERS.c.id)
        .with_for_update(of=_HOLDERS)
    )
    used = select(_ENTRIES.c.idempotency_key, _ENTRIES.c.cardholder_id, _ENTRIES.c.balance_after_fen).where(
        _among(_ENTRIES.c.idempotency_key, "keys", dialect)
    )
    new = _DIALECTS[dialect].insert(LedgerEntry).on_conflict_do_nothing(index_elements=["idempotency_key"]).execution_options(preserve_rowcount=True)
    return lock, used, new


RACED_TRIES = 3


def book_entries(
    engine: Engine,
    entries: list[TerminalEntry],
    *,
    columns: tuple[Any, ...] = (),
    params: dict[str, Any] | None = None,
    check: Callable[[LockedCard, TerminalEntry], Exception | None] | None = None,
    alerts_due: Callable[[Any, TerminalEntry], bool] | None = None,
    then: Callable[[Connection, list[Booked | Exception]], None] | None = None,
) -> list[Booked | Exception]:
    """``post_entry`` for the terminals' entries, many in one transaction (bot.group_commit gathers them): one outcome
    per entry, in order — ``Booked``, or the exception that entry alone raises (``NoSuchCard``, ``Replayed``,
    ``KeyReused``, what ``check`` refused, ``InsufficientBalance``); a refused entry changes nothing and does not
    stop the others.

    Three statements for the whole batch: the cards locked in id order (two batches cannot deadlock; the other paths
    lock one card) with the batch's keys each already holds and ``columns`` (the caller's correlated subqueries on
    the card, ``params`` bind them); the new entries; the new balances. Each entry is decided in order against its
    card's running balance, so two spends of one card in one batch are booked one after the other. A key the batch
    did not see (used on another card, or written after the statement's snapshot) makes the entries' INSERT skip a
    row: the batch is rolled back and done again, reading the keys used on any card. ``check(card, entry)`` returns
    an exception refusing the entry, or None; ``alerts_due(row, entry)`` marks it for the alerts worker;
    ``then(conn, outcomes)`` runs in the same transaction after the writes (an auto top-up to open)."""
    for attempt in range(RACED_TRIES):
        try:
            with engine.begin() as conn:
                outcomes = _book(conn, entries, columns, params or {}, check, alerts_due, any_card=attempt > 0)
                if then is not None:
                    then(conn, outcomes)
                return outcomes
        except _KeyRaced:
            continue
    raise RuntimeError("entry keys kept being written meanwhile")


@dataclass(frozen=True)
class _Used:
    cardholder_id: int
    balance_after_fen: int


def _book(
    conn: Connection,
    entries: list[TerminalEntry],
    columns: tuple[Any, ...],
    params: dict[str, Any],
    check: Callable[[LockedCard, TerminalEntry], Exception | None] | None,
    alerts_due: Callable[[Any, TerminalEntry], bool] | None,
    *,
    any_card: bool,
) -> list[Booked | Exception]:
    lock, keys_used, insert_new = _statements(conn.dialect.name, columns)
    keys = sorted({e.idempotency_key for e in entries})
    cards: dict[str, Any] = {}
    used: dict[str, Any] = {}
    for found in conn.execute(lock, {"nos": sorted({e.student_no for e in entries}), "keys": keys, **params}):
        cards.setdefault(found.student_no, found)
        if found.used_key is not None:
            used[found.used_key] = _Used(found.id, found.used_balance_after_fen)
    if any_card:
        used.update({found.idempotency_key: found for found in conn.execute(keys_used, {"keys": keys})})
    balances: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    outcomes: list[Booked | Exception] = []
    for e in entries:
        if not isinstance(e.amount_fen, int) or isinstance(e.amount_fen, bool) or e.amount_fen == 0 or e.kind not in KINDS:
            outcomes.append(ValueError(f"bad entry: {e.amount_fen!r} {e.kind!r}"))
            continue
        row = cards.get(e.student_no)
        if row is None:
            outcomes.append(NoSuchCard(e.student_no))
            continue
        first = used.get(e.idempotency_key)
        if first is not None:
            outcomes.append(Replayed(first.cardholder_id, first.balance_after_fen) if first.cardholder_id == row.id else KeyReused(e.idempotency_key))
            continue
        before = balances.get(row.id, row.balance_fen)
        card = LockedCard(row.id, row.status, row.left_on, before + e.amount_fen)
        refused = check(card, e) if check is not None else None
        if refused is None and card.balance_fen < 0:
            refused = InsufficientBalance(f"balance {before} < {-e.amount_fen}")
        if refused is not None:
            outcomes.append(refused)
            continue
        balances[row.id] = card.balance_fen
        used[e.idempotency_key] = _Used(row.id, card.balance_fen)  # the same key again in this batch is its replay
        rows.append(
            {
                "cardholder_id": row.id,
                "amount_fen": e.amount_fen,
                "balance_after_fen": card.balance_fen,
                "kind": e.kind,
                "idempotency_key": e.idempotency_key,
                "description": e.description[:128],
                "ref": e.ref,
                "created_at": e.at,
                "alerts_due": True if alerts_due is not None and alerts_due(row, e) else None,
            }
        )
        outcomes.append(Booked(card, row))
    if rows:
        if conn.execute(insert_new, rows).rowcount != len(rows):
            raise _KeyRaced()
        conn.execute(_MOVE, [{"b_id": card_id, "b_balance": balance} for card_id, balance in balances.items()])
    return outcomes


def ledger_sum(session: Session, cardholder_id: int) -> int:
    """Sum of all entries: must always equal the card's balance."""
    return int(
        session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(LedgerEntry.cardholder_id == cardholder_id)).scalar_one()
    )
