"""The ``ledger`` card system: the bot's own ledger plays the school's card system (``[cardsystem] adapter = "ledger"``).

For schools whose card system only pushes terminal entries, and for ``make run``: the roster's password hashes,
card statuses and the ledger answer the same calls, with the same rules, as a cardsys/1 middleware would. A credit
is a ledger entry keyed by its ``ref`` (``topup:{order no}``, or ``autodebit:{n}`` for ``AD{n}``: the keys the ledger
used before credits had refs), so it is idempotent for ever, like the protocol requires. Unlike a vendor system it
credits a lost, frozen or graduated card too (the bot's behaviour before the card system had its own say): the money
stays the student's and follows the card; only an unknown holder is refused.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.cardsystem import (
    Account,
    Channel,
    Credit,
    CreditRecord,
    CreditResult,
    Entry,
    Holder,
    HolderKind,
    LossAction,
    LossOutcome,
    LossResult,
    Refusal,
    TerminalEntryKind,
    Verification,
    VerifyResult,
)
from bot.calendar import day_start_utc
from bot.clock import Clock
from models import Cardholder, LedgerEntry, lock_card, post_credit
from models.enums import CardStatus, EntryKind
from models.passwords import hash_password, verify_password

REFUSED_WHEN = {CardStatus.LOST: Refusal.CARD_LOST, CardStatus.FROZEN: Refusal.CARD_FROZEN, CardStatus.GRADUATED: Refusal.GRADUATED}
KIND = {
    EntryKind.SPEND: TerminalEntryKind.SPEND,
    EntryKind.TOPUP: TerminalEntryKind.TOPUP,
    EntryKind.AUTODEBIT: TerminalEntryKind.TOPUP,
    EntryKind.REFUND: TerminalEntryKind.REFUND,
}
AUTODEBIT_REF = re.compile(r"^AD(\d+)$")
# what a student sees for an entry (ENTRY.merchant): the terminal's or the credit's text; the opening balance in
# both languages, as a vendor system names it; nothing for adjustments, whose descriptions are notes for staff
OPENING = "期初余额 Opening balance"
SHOWN = {EntryKind.SPEND, EntryKind.TOPUP, EntryKind.AUTODEBIT, EntryKind.REFUND}


def ledger_key(ref: str) -> str:
    """The ledger's idempotency key for a credit's ``ref``."""
    m = AUTODEBIT_REF.match(ref)
    return f"autodebit:{m.group(1)}" if m else f"topup:{ref}"


def _aware(naive_utc: datetime) -> datetime:
    return naive_utc.replace(tzinfo=UTC)


def account_of(card: Cardholder) -> Account:
    """The card's account as this card system answers it: the ledger is always settled, its balance as of the card's
    last change."""
    return Account(_holder(card), card.balance_fen, _aware(card.updated_at))


def entry_of(e: LedgerEntry) -> Entry:
    return entry_from(e.id, e.kind, e.description, e.amount_fen, e.balance_after_fen, e.created_at)


def entry_from(entry_id: int, kind: str, description: str | None, amount_fen: int, balance_after_fen: int, at: datetime) -> Entry:
    """A ledger entry as this card system reports it, from the row's columns (the balance click reads no ORM rows)."""
    k = EntryKind(kind)
    merchant = OPENING if k == EntryKind.OPENING else (description or "") if k in SHOWN else ""
    return Entry(str(entry_id), amount_fen, balance_after_fen, KIND.get(k, TerminalEntryKind.ADJUST), merchant, _aware(at))


def _holder(card: Cardholder) -> Holder:
    kind = HolderKind.STUDENT if card.id_number else HolderKind.INTERNATIONAL
    return Holder(card.student_no, card.name, kind, CardStatus(card.status), card.left_on)


def _same_name(a: str, b: str) -> bool:
    """Names compare after NFKC and squeezing spaces (as typed into WeChat); letters stay case-sensitive."""
    return " ".join(unicodedata.normalize("NFKC", a).split()) == " ".join(unicodedata.normalize("NFKC", b).split())


@cache
def _decoy_hash() -> str:
    """Checked when no card matches, so an unknown student number takes as long as a wrong password."""
    return hash_password("no-such-card")


class LedgerCardSystem:
    """The ``CardSystem`` port over the bot's own tables; each call owns its transaction."""

    remote = False

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def _card(self, db: Session, student_no: str) -> Cardholder | None:
        return db.execute(select(Cardholder).where(Cardholder.student_no == student_no)).scalar_one_or_none()

    def verify_holder(self, student_no: str, name: str, password: str) -> Verification:
        with self.sessions() as db:
            card = self._card(db, student_no)
            if card is None:
                verify_password(_decoy_hash(), password)  # same cost as a real check
                return Verification(VerifyResult.UNKNOWN_HOLDER)
            if not verify_password(card.password_hash, password) or not _same_name(card.name, name):
                return Verification(VerifyResult.MISMATCH)
            return Verification(VerifyResult.OK, _holder(card))

    def account(self, student_no: str) -> Account | None:
        with self.sessions() as db:
            card = self._card(db, student_no)
            if card is None:
                return None
            return account_of(card)

    def entries(self, student_no: str, *, since: datetime | None = None, limit: int = 20) -> list[Entry]:
        with self.sessions() as db:
            card = self._card(db, student_no)
            if card is None:
                return []
            query = select(LedgerEntry).where(LedgerEntry.cardholder_id == card.id)
            if since is not None:
                query = query.where(LedgerEntry.created_at >= since.astimezone(UTC).replace(tzinfo=None))
            rows = db.execute(query.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit)).scalars()
            return [entry_of(e) for e in rows]

    def credit(self, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit:
        with self.sessions() as db, db.begin():
            return self.credit_in(db, ref, student_no, amount_fen, channel, paid_at)

    def credit_in(self, db: Session, ref: str, student_no: str, amount_fen: int, channel: Channel, paid_at: datetime) -> Credit:
        if amount_fen <= 0 or paid_at.tzinfo is None:
            raise ValueError("a credit needs a positive amount and an aware paid_at")
        kind = EntryKind.TOPUP if channel is Channel.WECHAT_PAY else EntryKind.AUTODEBIT
        what = "微信充值 WeChat Pay top-up" if channel is Channel.WECHAT_PAY else "自动圈存 Auto top-up"
        # under the card's row lock, a ref made before is found by its key and answered as first (``created`` False)
        posted = post_credit(db, student_no, amount_fen, kind, ledger_key(ref), description=what, ref=ref, at=self.clock.utcnow())
        if posted is None:
            return self._answer(db, ref) or Credit(CreditResult.REFUSED, reason=Refusal.UNKNOWN_HOLDER)
        return Credit(CreditResult.OK, entry_id=str(posted.entry_id), balance_fen=posted.balance_after_fen)

    def _answer(self, db: Session, ref: str) -> Credit | None:
        entry = db.execute(select(LedgerEntry).where(LedgerEntry.idempotency_key == ledger_key(ref))).scalar_one_or_none()
        return None if entry is None else Credit(CreditResult.OK, entry_id=str(entry.id), balance_fen=entry.balance_after_fen)

    def credit_status(self, ref: str) -> Credit | None:
        """A refusal moved nothing and left no trace here, so only credits made are known (a repeat decides again)."""
        with self.sessions() as db:
            return self._answer(db, ref)

    def credits_on(self, day: date) -> list[CreditRecord]:
        start, end = day_start_utc(day), day_start_utc(day + timedelta(days=1))
        with self.sessions() as db:
            rows = db.execute(
                select(LedgerEntry, Cardholder.student_no)
                .join(Cardholder, Cardholder.id == LedgerEntry.cardholder_id)
                .where(
                    LedgerEntry.kind.in_((EntryKind.TOPUP, EntryKind.AUTODEBIT)),
                    LedgerEntry.created_at >= start,
                    LedgerEntry.created_at < end,
                )
                .order_by(LedgerEntry.id)
            ).all()
            out = []
            for e, student_no in rows:
                ref = e.ref if e.kind == EntryKind.TOPUP else "AD" + e.idempotency_key.removeprefix("autodebit:")
                out.append(CreditRecord(ref or e.idempotency_key, student_no, e.amount_fen, str(e.id), _aware(e.created_at)))
            return out

    def loss(self, ref: str, student_no: str, action: LossAction, password: str = "") -> LossOutcome:
        with self.sessions() as db, db.begin():
            card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == student_no)).scalar_one_or_none()
            if card_id is None:
                return LossOutcome(LossResult.REFUSED, reason=Refusal.UNKNOWN_HOLDER)
            card = lock_card(db, card_id)
            if action is LossAction.REPORT:
                if card.status in (CardStatus.ACTIVE, CardStatus.LOST):
                    card.status = CardStatus.LOST
                    return LossOutcome(LossResult.OK, status=CardStatus.LOST)
            else:
                if not verify_password(card.password_hash, password):
                    return LossOutcome(LossResult.MISMATCH)
                if card.status in (CardStatus.ACTIVE, CardStatus.LOST):
                    card.status = CardStatus.ACTIVE
                    return LossOutcome(LossResult.OK, status=CardStatus.ACTIVE)
            return LossOutcome(LossResult.REFUSED, reason=REFUSED_WHEN.get(CardStatus(card.status), Refusal.CARD_FROZEN))
