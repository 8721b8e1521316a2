"""The one debit path: what the card system's terminals report lands here (POST /integration/card-entries).

An entry is posted once (ledger key ``card:{entry_id}``) under the card's row lock, and a debit that leaves the card
below its auto top-up threshold opens the attempt in the same transaction, so no debit can forget it. Inside bank
hours the attempt is carried out before answering, otherwise it waits for the next window. Whether the terminal may
debit is ``can_transact``: a graduate may spend until the freeze day (the school asks graduates to spend or withdraw
the balance before it); a credit is always recorded, because the card system has already made it.

With a remote card system (``http``) the balance is the card system's, so an entry is a notification: nothing is
posted; its ``balance_after_fen`` is remembered (when no newer balance is known) and that balance decides the auto
top-up, exactly once per ``entry_id`` (``CardEntryPush`` keeps the entry; the attempt's ``trigger_key`` is unique).
Nothing is refused for the card's state or balance: the card system already let the terminal do it.

Either way a new spend is marked ``alerts_due`` in the same transaction (with the ledger, when an account of its card
chose alerts, asked with the card's row lock; a remote card system's spends, all of them); the worker queues the alerts
a batch at a time (bot.alerts.queue_due), so the entry itself costs no more than its posting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from bot import alerts
from bot.autodebit import next_window, open_attempt, process_attempt, threshold_of
from bot.cards import can_transact
from bot.credits import remember_balance
from bot.errors import UserError
from models import (
    AutodebitAttempt,
    Booked,
    CardEntryPush,
    Cardholder,
    InsufficientBalance,
    KeyReused,
    LockedCard,
    NoSuchCard,
    Replayed,
    TerminalEntry,
    book_entries,
    lock_card,
)
from models.enums import AttemptStatus, EntryKind

if TYPE_CHECKING:
    from bot.runtime import Runtime

TEXTS = "entry_err_"  # a refused entry's text is ``entry_err_{code}``


def refused(code: str, status: int = 409, **values: Any) -> UserError:
    return UserError(code, status, f"{TEXTS}{code}", **values)


@dataclass(frozen=True)
class CardEntry:
    """One terminal entry as the card system reported it (already parsed and checked for shape)."""

    entry_id: str
    student_no: str
    amount_fen: int  # negative: a spend
    merchant: str
    at: datetime  # naive UTC
    balance_after_fen: int | None = None  # the card system's balance right after it (required when it is remote)


@dataclass(frozen=True)
class Recorded:
    entry_id: str
    duplicate: bool
    balance_after_entry_fen: int
    balance_fen: int
    autodebit: dict[str, Any] | None


# What a spend asks next of its card, read with its row lock: the auto top-up threshold (NULL: none signed) and
# whether an account of it chose alerts; most entries then need no statement but the batch's own.
_NEXT = (threshold_of(Cardholder.id).label("autodebit_threshold"), alerts.chosen_by(Cardholder.id).label("alerted"))


@dataclass(frozen=True)
class PostedEntry:
    """What the batch did for one entry: booked (with the attempt it opened, if any) or replayed."""

    card_id: int
    duplicate: bool
    balance_after_fen: int
    attempt_id: int | None = None


def record_entry(services: Runtime, entry: CardEntry) -> Recorded:
    """Post the entry once and open the auto top-up it calls for; a replay changes nothing and reports the same attempt.

    The entries pushed at the same moment are posted together (``Runtime.terminal_entries``, bot.group_commit): a
    canteen's noon is thousands a minute, and one transaction for all that wait is what keeps up with it. The auto
    top-up the entry opened is carried out here, after the commit, by this request alone."""
    if services.card_system.remote:
        return _notified(services, entry)
    posted = services.terminal_entries.submit(entry)
    return _answer(services, entry.entry_id, posted.card_id, posted.duplicate, posted.balance_after_fen, posted.balance_after_fen, posted.attempt_id)


def post_batch(services: Runtime, batch: list[CardEntry]) -> list[PostedEntry | Exception]:
    """One transaction for entries pushed together (``ledger.book_entries``): each is decided alone — a refused one
    gets its own error — and a spend that leaves its card below the auto top-up threshold opens the attempt in the
    same transaction, so no debit can forget it."""
    today = services.clock.today()

    def check(card: LockedCard, entry: TerminalEntry) -> UserError | None:
        if entry.amount_fen < 0 and can_transact(card, today, services.cfg) is not None:
            return refused("card_blocked", state=card.status)
        return None

    attempts: dict[int, int | None] = {}

    def open_attempts(conn: Connection, outcomes: list[Booked | Exception]) -> None:
        for i, (entry, out) in enumerate(zip(batch, outcomes, strict=True)):
            if isinstance(out, Booked) and entry.amount_fen < 0:
                threshold = out.row.autodebit_threshold
                if threshold is not None and out.card.balance_fen < threshold:
                    attempts[i] = _open_attempt(services, conn, out.card, f"entry:{entry.entry_id}")

    outcomes = book_entries(
        services.engine,
        [
            TerminalEntry(
                e.student_no,
                e.amount_fen,
                EntryKind.SPEND if e.amount_fen < 0 else EntryKind.ADJUST,
                f"card:{e.entry_id}",
                e.merchant,
                e.entry_id,
                e.at,
            )
            for e in batch
        ],
        columns=_NEXT,
        params={"today": today},
        check=check,
        alerts_due=lambda row, e: e.amount_fen < 0 and bool(row.alerted),
        then=open_attempts,
    )
    return [_posted(out, attempts.get(i)) for i, out in enumerate(outcomes)]


def _posted(out: Booked | Exception, attempt_id: int | None) -> PostedEntry | Exception:
    if isinstance(out, Booked):
        return PostedEntry(out.card.id, False, out.card.balance_fen, attempt_id)
    if isinstance(out, Replayed):
        return PostedEntry(out.cardholder_id, True, out.balance_after_fen)
    if isinstance(out, NoSuchCard):
        return refused("unknown_card", 404)
    if isinstance(out, KeyReused):
        return refused("entry_id_reused")
    if isinstance(out, InsufficientBalance):
        return refused("insufficient_balance")
    return out


def _open_attempt(services: Runtime, conn: Connection, card: LockedCard, trigger_key: str) -> int | None:
    """``open_attempt`` in the entry's transaction, through a session on its connection (which leaves the
    transaction to its owner)."""
    with services.sessions(bind=conn) as db:
        attempt = open_attempt(services, db, card, trigger_key)
        return attempt.id if attempt is not None else None


def _notified(services: Runtime, entry: CardEntry) -> Recorded:
    """A remote card system's entry: remember its balance and open the auto top-up it calls for, once per entry_id."""
    if entry.balance_after_fen is None:
        raise refused("balance_after_missing", 400)
    with services.session() as db, db.begin():
        card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == entry.student_no)).scalar_one_or_none()
        if card_id is None:
            raise refused("unknown_card", 404)
        card = lock_card(db, card_id)  # pushes for one card are taken one at a time: the entry_id check below is safe
        seen = db.execute(select(CardEntryPush).where(CardEntryPush.entry_id == entry.entry_id)).scalar_one_or_none()
        if seen is not None:
            if seen.cardholder_id != card.id:
                raise refused("entry_id_reused")
            after, attempt_id = seen.balance_after_fen, None
        else:
            db.add(
                CardEntryPush(
                    entry_id=entry.entry_id,
                    cardholder_id=card.id,
                    amount_fen=entry.amount_fen,
                    balance_after_fen=entry.balance_after_fen,
                    merchant=entry.merchant,
                    occurred_at=entry.at,
                    received_at=services.clock.utcnow(),
                    alerts_due=True if entry.amount_fen < 0 else None,
                )
            )
            remember_balance(db, card.id, entry.balance_after_fen, entry.at)
            db.flush()
            db.refresh(card)  # the newest balance known, which an older entry arriving late does not replace
            attempt = open_attempt(services, db, card, f"entry:{entry.entry_id}") if entry.amount_fen < 0 else None
            after, attempt_id = entry.balance_after_fen, attempt.id if attempt else None
        balance = card.balance_fen
    return _answer(services, entry.entry_id, card_id, seen is not None, after, balance, attempt_id)


def _answer(services: Runtime, entry_id: str, card_id: int, duplicate: bool, after: int, balance: int, attempt_id: int | None) -> Recorded:
    """Carry out a new attempt (inside bank hours); a replay reports the attempt the first delivery opened, if any.
    ``balance`` is the card's when the entry committed; it is read again when it may have moved since: a replay, or
    a top-up carried out."""
    if duplicate:
        attempt_id = _attempt_for(services, entry_id)
    autodebit = None
    if attempt_id is not None:
        status = None if duplicate else process_attempt(services, attempt_id)
        autodebit = _describe(services, attempt_id, status)
    if duplicate or autodebit is not None:
        with services.session() as db:
            balance = db.execute(select(Cardholder.balance_fen).where(Cardholder.id == card_id)).scalar_one()
    return Recorded(entry_id, duplicate, after, balance, autodebit)


def _attempt_for(services: Runtime, entry_id: str) -> int | None:
    with services.session() as db:
        return db.execute(select(AutodebitAttempt.id).where(AutodebitAttempt.trigger_key == f"entry:{entry_id}")).scalar_one_or_none()


def _describe(services: Runtime, attempt_id: int, status: str | None) -> dict[str, Any]:
    with services.session() as db:
        a = db.get(AutodebitAttempt, attempt_id)
        assert a is not None
        out: dict[str, Any] = {"attempt_id": a.id, "status": a.status, "amount_fen": a.amount_fen}
        if a.reason:
            out["reason"] = a.reason
        if a.status == AttemptStatus.WAITING and status == AttemptStatus.WAITING:
            out["next_window"] = next_window(services).isoformat(timespec="minutes")
        return out
