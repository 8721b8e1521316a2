"""What a handler gets besides the message: who is asking, in which language, and the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.cards import card_for
from bot.chat.dialogs import Dialog
from bot.chat.understand import Meaning
from bot.money import yuan
from bot.texts import t as _t
from models import Cardholder, WechatUser

if TYPE_CHECKING:
    from bot.config import Config
    from bot.runtime import Runtime


@dataclass
class Context:
    openid: str
    db: Session
    services: Runtime
    user: WechatUser
    dialog: Dialog | None = None
    expired_dialog: str | None = None
    handler_name: str = ""
    meaning: Meaning | None = None
    """What ``bot.chat.understand`` read from a text no word matched (set by the router)."""
    _card: Cardholder | None = field(default=None, init=False, repr=False)
    _card_loaded: bool = field(default=False, init=False, repr=False)

    @property
    def cfg(self) -> Config:
        return self.services.cfg

    @property
    def lang(self) -> str:
        return self.user.lang or "zh"

    def now(self) -> datetime:
        return self.services.clock.now()

    def t(self, key: str, /, **values: object) -> str:
        return _t(self.lang, key, **values)

    @staticmethod
    def yuan(fen: int) -> str:
        return yuan(fen)

    # --- dialog helpers -------------------------------------------------
    def start_dialog(self, state: str, data: dict[str, Any] | None = None) -> Dialog:
        self.dialog = self.services.dialogs.set(self.openid, state, data)
        return self.dialog

    def end_dialog(self) -> bool:
        self.dialog = None
        return self.services.dialogs.clear(self.openid)

    # --- the bound card -------------------------------------------------
    def card(self) -> Cardholder | None:
        """Looked up once per message, with the user when the route needs a card (one transaction on the hot path).
        The read ends its transaction, so ``db`` holds nothing while the handler calls domain functions, which own
        theirs (on SQLite every transaction takes the write lock)."""
        if not self._card_loaded:
            self._card, self._card_loaded = card_for(self.db, self.openid), True
            self.db.commit()
        return self._card

    @property
    def bound_card(self) -> Cardholder:
        """The card of a ``needs_card`` route's handler: the router has checked that there is one."""
        card = self.card()
        if card is None:
            raise LookupError("bound_card used outside a needs_card route")
        return card
