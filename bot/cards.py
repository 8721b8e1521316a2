"""The campus card as the bot sees it: whose it is, how it is shown, and what it may do today.

"Can this card transact?" is decided here once, for chat, pages, the card system's pushes and the worker.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.calendar import add_months
from bot.errors import UserError
from models import Binding, Cardholder
from models.enums import CardStatus

if TYPE_CHECKING:
    from bot.config import Config


class CardState(Protocol):
    """What the rules read of a card: a ``Cardholder``, or a row locked without the ORM (``models.LockedCard``)."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def left_on(self) -> date | None: ...
    @property
    def balance_fen(self) -> int: ...


def card_for(db: Session, openid: str) -> Cardholder | None:
    """The card bound to this openid (an openid binds at most one card)."""
    query = select(Cardholder).select_from(Binding).join(Binding.cardholder).where(Binding.openid == openid)
    return db.execute(query).scalar_one_or_none()


def mask_student_no(no: str) -> str:
    """20230001 → 2023**01: recognisable for the family, useless to a passer-by reading the screen."""
    return no[:4] + "*" * (len(no) - 6) + no[-2:] if len(no) > 6 else no


def freeze_on(card: CardState, cfg: Config) -> date | None:
    """When a graduate's account freezes: ``left_on`` + ``[graduates] freeze_after_months``."""
    if card.status != CardStatus.GRADUATED or card.left_on is None:
        return None
    return add_months(card.left_on, cfg.graduates.freeze_after_months)


def can_transact(card: CardState, today: date, cfg: Config) -> UserError | None:
    """Whether the card may spend today: active cards may, graduates until their freeze day, lost and frozen cards not."""
    if card.status == CardStatus.ACTIVE:
        return None
    if card.status == CardStatus.GRADUATED:
        when = freeze_on(card, cfg)
        return None if when is not None and today < when else UserError("card_graduated", 403)
    return UserError(f"card_{card.status}", 403)


def can_add_money(card: Cardholder | None) -> UserError | None:
    """Whether money may be added (top-up, auto top-up): only to an active card; a graduate's balance is only withdrawn."""
    if card is None:
        return UserError("not_bound", 403)
    if card.status != CardStatus.ACTIVE:
        return UserError(f"card_{card.status}", 403)
    return None
