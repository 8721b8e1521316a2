"""The service center's announcement (e.g. "card system maintenance tonight 23:00-01:00"): one at a time, in Redis
under ``cardbot:announcement`` (the ``[redis] key_prefix`` + ``announcement``) as JSON ``{"text": ..., "until": ISO
time}``, gone after ``until``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bot.clock import SCHOOL_TZ
from bot.errors import UserError

if TYPE_CHECKING:
    from bot.runtime import Runtime

MAX_TEXT = 200


@dataclass(frozen=True)
class Announcement:
    text: str
    until: datetime  # aware, school time


def announce(services: Runtime, text: str, until: datetime) -> Announcement:
    """Publish ``text`` until ``until`` (naive = school time), replacing any earlier announcement."""
    text = text.strip()
    if not 0 < len(text) <= MAX_TEXT:
        raise UserError("announce_bad_text", 400, n=MAX_TEXT)
    until = until if until.tzinfo else until.replace(tzinfo=SCHOOL_TZ)
    ttl = int((until - services.clock.now()).total_seconds())
    if ttl <= 0:
        raise UserError("announce_in_past", 400)
    services.store.r.set(services.store.key("announcement"), json.dumps({"text": text, "until": until.isoformat()}, ensure_ascii=False), ex=ttl)
    return Announcement(text, until)


def current(services: Runtime) -> Announcement | None:
    raw = services.store.r.get(services.store.key("announcement"))
    if not raw:
        return None
    data = json.loads(raw)
    until = datetime.fromisoformat(data["until"])
    return Announcement(str(data["text"]), until) if until > services.clock.now() else None
