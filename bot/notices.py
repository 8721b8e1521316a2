"""Every template notice the bot queues is built here, so all of them follow the same rules.

The template's ``urgent`` comes from ``[notices.<kind>]`` (a non-urgent notice waits out the quiet hours), money is
written in the recipient's language ("50.00元" / "50.00 yuan"), texts are told in that language, and the notice links
the page where the student can act on it. Callers say what happened: the kind, the recipient, the dedup key (one
notice per event however often its cause is replayed) and the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.money import yuan
from bot.texts import t
from models import Notice, lang_of
from models.ledger import queue_notice_once

if TYPE_CHECKING:
    from bot.config import Config

# The page a notice opens; the binding alerts open none (what to do is said in the chat: 绑定管理).
PAGES = {
    "topup_receipt": "/topup",
    "autodebit_success": "/autodebit",
    "autodebit_failure": "/autodebit",
    "agreement_expiring": "/autodebit",
    "agreement_expired": "/autodebit",
    "refund_result": "/autodebit",
    "credit_delayed": "/topup",
    "credit_refused": "/topup",
    "power_receipt": "/power",
    "power_delayed": "/power",
    "power_refused": "/power",
    "power_low": "/power",
}


@dataclass(frozen=True)
class Said:
    """A value told in the recipient's language: the text ``key`` filled with ``values``."""

    key: str
    values: dict[str, str] = field(default_factory=dict)


Value = int | str | Said  # an int is money in fen


def build(db: Session, cfg: Config, kind: str, openid: str, dedup_key: str, lang: str | None = None, **values: Value) -> Notice:
    """The notice ``kind`` for ``openid``; ``lang`` when the caller already knows it, else the user's own."""
    return compose(cfg, kind, openid, dedup_key, lang or lang_of(db, openid), **values)


def compose(cfg: Config, kind: str, openid: str, dedup_key: str, lang: str, **values: Value) -> Notice:
    """``build`` for a caller that knows the recipient's language (no database read)."""
    path = PAGES.get(kind)
    return Notice(
        openid=openid,
        kind=kind,
        data=told(lang, **values),
        url=f"{cfg.server.public_base_url}{path}" if path else None,
        urgent=cfg.notices.template(kind).urgent,
        dedup_key=dedup_key,
    )


def send(db: Session, cfg: Config, kind: str, openid: str, dedup_key: str, lang: str | None = None, **values: Value) -> None:
    """Queue the notice in the caller's transaction (at most once per ``dedup_key``)."""
    queue_notice_once(db, build(db, cfg, kind, openid, dedup_key, lang, **values), dedup_key)


def told(lang: str, **values: Value) -> dict[str, str]:
    """A notice's values as the recipient reads them (its ``data``)."""
    return {name: _told(lang, value) for name, value in values.items()}


def _told(lang: str, value: Value) -> str:
    if isinstance(value, Said):
        return t(lang, value.key, **value.values)
    if isinstance(value, int):
        return t(lang, "notice_yuan", amount=yuan(value))
    return value
