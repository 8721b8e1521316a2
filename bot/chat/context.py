"""What a handler gets besides the message: who is asking, in which language, and the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.announce import Raw
from bot.cards import card_for
from bot.chat.dialogs import Dialog
from bot.chat.profiles import Profile, load_user
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
    services: Runtime
    profile: Profile
    dialog: Dialog | None = None
    expired_dialog: str | None = None
    handler_name: str = ""
    announced: Raw | None = None
    """The announcement lines as read on arrival (``bot.announce.lines``); None: read them when shown."""
    meaning: Meaning | None = None
    """What ``bot.chat.understand`` read from a text no word matched (set by the router)."""
    _card: Cardholder | None = field(default=None, init=False, repr=False)
    _card_loaded: bool = field(default=False, init=False, repr=False)
    _user: WechatUser | None = field(default=None, init=False, repr=False)
    _db: Session | None = field(default=None, init=False, repr=False)

    @property
    def db(self) -> Session:
        """The message's session, opened on first use: the balance click needs none (its one read has its own)."""
        if self._db is None:
            self._db = self.services.session()
        return self._db

    @property
    def db_opened(self) -> Session | None:
        return self._db

    @property
    def cfg(self) -> Config:
        return self.services.cfg

    @property
    def user(self) -> WechatUser:
        """The user's row, read only by a handler that changes it (the profile answers everything else)."""
        if self._user is None:
            self._user = load_user(self.db, self.openid, self.services.clock.utcnow())
        return self._user

    @property
    def user_loaded(self) -> WechatUser | None:
        return self._user

    @property
    def lang(self) -> str:
        return (self._user.lang if self._user is not None else self.profile.lang) or "zh"

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
        """Looked up once per message, when the route needs a card: one statement outside any transaction, so
        nothing is held while the handler calls domain functions, which own theirs."""
        if not self._card_loaded:
            with self.services.reads() as db:
                self._card, self._card_loaded = card_for(db, self.openid), True
        return self._card

    def know_card(self, card: Cardholder | None) -> None:
        """A handler that read the card with more (the balance's one statement) saves the lookup."""
        self._card, self._card_loaded = card, True

    @property
    def bound_card(self) -> Cardholder:
        """The card of a ``needs_card`` route's handler: the router has checked that there is one."""
        card = self.card()
        if card is None:
            raise LookupError("bound_card used outside a needs_card route")
        return card
