"""A card's balance as the card system tells it now, or the last one it told, saying when and why (chat and pages alike).

One ``account()`` call per look (the balance click is the hot path). With a ``remote`` card system the answer is
remembered (``Cardholder.balance_fen`` / ``balance_as_of``) and the card's status and leaving date follow the
holder's, so a card reported lost at the kiosk is lost for the bot too; the row is written only when something
changed. When the card system is closed for maintenance, does not answer in time, or breaks the protocol, the last
known balance is shown with its time and the reason — never a blank, never an error, never a stale number as current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam, func, select, update

from bot import announce, credits
from bot.adapters.cardsystem import Account, CardSystemError, CardSystemUnavailable, Entry
from bot.adapters.ledger_cardsystem import account_of, entry_from
from bot.clock import SCHOOL_TZ
from bot.credits import remember_balance
from bot.money import yuan
from bot.texts import Localized
from models import Binding, CardCredit, Cardholder, LedgerEntry
from models.enums import CardStatus, CreditStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

Translate = Callable[..., str]


class Stale(StrEnum):
    """Why the balance shown is not the card system's answer of this moment."""

    MAINTENANCE = "maintenance"  # closed for maintenance (nightly settlement), until ``until``
    NO_ANSWER = "no_answer"  # timeout, 5xx or an answer we cannot read
    UNKNOWN = "unknown"  # the card system does not know this card


@dataclass(frozen=True)
class Shown:
    """What to show: ``balance_fen`` None when no balance was ever known; ``card`` with the card system's status."""

    card: Cardholder
    balance_fen: int | None
    as_of: datetime | None  # aware: when the card system settled this balance
    stale: Stale | None = None  # None: the card system's answer of this moment
    until: datetime | None = None  # aware: when maintenance should end

    @property
    def live(self) -> bool:
        return self.stale is None


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _status_of(card: Cardholder, status: CardStatus, left_on: date | None, balance_fen: int, as_of: datetime) -> Cardholder:
    """A detached copy of the card as the card system sees it (the caller's row stays untouched in its session)."""
    return Cardholder(
        id=card.id,
        student_no=card.student_no,
        name=card.name,
        id_number=card.id_number,
        passport_no=card.passport_no,
        campus=card.campus,
        status=status.value,
        left_on=left_on,
        password_hash=card.password_hash,
        balance_fen=balance_fen,
        balance_as_of=as_of,
    )


def _sync(services: Runtime, card: Cardholder, acc: Account) -> None:
    """Remember the remote answer and follow the holder's status; nothing is written when nothing changed."""
    as_of = _naive_utc(acc.as_of)
    h = acc.holder
    newer = card.balance_as_of is None or card.balance_as_of < as_of or (card.balance_as_of == as_of and card.balance_fen != acc.balance_fen)
    moved = card.status != h.status or card.left_on != h.left_on
    if not newer and not moved:
        return
    with services.session() as db, db.begin():
        if newer:
            remember_balance(db, card.id, acc.balance_fen, as_of)
        if moved:
            db.execute(update(Cardholder).where(Cardholder.id == card.id).values(status=h.status.value, left_on=h.left_on))


def _last_known(services: Runtime, card: Cardholder, stale: Stale, until: datetime | None = None) -> Shown:
    if card.balance_as_of is not None:
        return Shown(card, card.balance_fen, card.balance_as_of.replace(tzinfo=UTC), stale, until)
    if not services.card_system.remote:  # the ledger is the balance
        return Shown(card, card.balance_fen, card.updated_at.replace(tzinfo=UTC), stale, until)
    return Shown(card, None, None, stale, until)


def read(services: Runtime, card: Cardholder) -> Shown:
    """The card's balance now (one call to the card system), else the last known one with why."""
    cs = services.card_system
    try:
        acc = cs.account(card.student_no)
    except CardSystemUnavailable as exc:
        announce.note_maintenance(services, exc.retry_after)
        return _last_known(services, card, Stale.MAINTENANCE, services.clock.now() + timedelta(seconds=exc.retry_after))
    except CardSystemError:
        return _last_known(services, card, Stale.NO_ANSWER)
    if acc is None:
        return _last_known(services, card, Stale.UNKNOWN)
    if cs.remote:
        _sync(services, card, acc)
    return Shown(_status_of(card, acc.holder.status, acc.holder.left_on, acc.balance_fen, _naive_utc(acc.as_of)), acc.balance_fen, acc.as_of)


@dataclass(frozen=True)
class Glance:
    """What the balance reply shows: the balance, the card's last entries (None with a remote card system: they
    are left to 账单, so the click costs one call) and how many payments are still on their way to the card."""

    shown: Shown
    recent: list[Entry] | None
    pending: int


_CARD = (
    Cardholder.id,
    Cardholder.student_no,
    Cardholder.name,
    Cardholder.id_number,
    Cardholder.status,
    Cardholder.left_on,
    Cardholder.balance_fen,
    Cardholder.balance_as_of,
    Cardholder.updated_at,
)
_ENTRY = (LedgerEntry.id, LedgerEntry.kind, LedgerEntry.description, LedgerEntry.amount_fen, LedgerEntry.balance_after_fen, LedgerEntry.created_at)


@cache
def _glance_query(remote: bool, recent: int) -> Select[Any]:
    """Built once per kind (the hot path pays for executing it, not for composing it); ``openid`` is bound per call.
    Columns, not ORM rows: the reply needs a dozen values, not an identity map."""
    pending = (
        select(func.count(CardCredit.id))
        .where(CardCredit.cardholder_id == Cardholder.id, CardCredit.status == CreditStatus.PENDING)
        .correlate(Cardholder)
        .scalar_subquery()
    )
    query = select(*_CARD, pending).join(Binding, Binding.cardholder_id == Cardholder.id).where(Binding.openid == bindparam("openid"))
    if remote:
        return query
    # one card per openid: its entries, newest first, are the rows
    return (
        query.add_columns(*_ENTRY)
        .outerjoin(LedgerEntry, LedgerEntry.cardholder_id == Cardholder.id)
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(recent)
    )


def glance(services: Runtime, openid: str, recent: int) -> Glance | None:
    """The card bound to ``openid`` and its balance — for the bot's own ledger in one statement with the last
    ``recent`` entries and the count of credits pending; for a remote card system that statement and its one
    ``account()`` call. None when no card is bound."""
    cs = services.card_system
    with services.read_rows() as conn:
        rows = conn.execute(_glance_query(cs.remote, recent), {"openid": openid}).all()
    if not rows:
        return None
    n = len(_CARD)
    first = rows[0]
    card = Cardholder(**{c.key: v for c, v in zip(_CARD, first[:n], strict=True)})  # transient: for reading only
    waiting = first[n]
    if cs.remote:
        return Glance(read(services, card), None, waiting)
    acc = account_of(card)
    entries = [entry_from(*r[n + 1 :]) for r in rows if r[n + 1] is not None]
    return Glance(Shown(card, acc.balance_fen, acc.as_of), entries, waiting)


def waiting_lines(services: Runtime, card_id: int, lang: str, center: Localized) -> list[str]:
    """Money paid but not on the card yet: "已支付 50.00 元，待入账：…", one line per credit."""
    with services.session() as db:
        return [credits.told(c, lang, center) for c in credits.waiting(db, card_id)]


def as_of_text(at: datetime) -> str:
    """``11-30 14:05`` in school time."""
    return f"{at.astimezone(SCHOOL_TZ):%m-%d %H:%M}"


def amount_line(tr: Translate, shown: Shown) -> str:
    """``余额：92.79 元（截至 11-30 14:05）``; a stale balance says it is the last known one; none says so."""
    if shown.balance_fen is None or shown.as_of is None:
        return tr("balance_amount_unknown")
    key = "balance_amount" if shown.live else "balance_amount_last"
    return tr(key, balance=yuan(shown.balance_fen), as_of=as_of_text(shown.as_of))


def stale_line(tr: Translate, shown: Shown, center: Localized) -> str:
    """Why the balance is not this moment's ('' when it is)."""
    if shown.stale is None:
        return ""
    if shown.stale is Stale.MAINTENANCE and shown.until is not None:
        return tr("balance_stale_maintenance", until=f"{shown.until.astimezone(SCHOOL_TZ):%H:%M}")
    if shown.stale is Stale.UNKNOWN:
        return tr("balance_stale_unknown", center=center)
    return tr("balance_stale_no_answer")
