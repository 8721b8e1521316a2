"""A line the school adds to balance and top-up replies and pages: an operator's announcement (``cardbot announce``)
until its end, and, on its own, a note while the card system is closed for maintenance.

Both live in Redis (every process shows the same line). A push reads them with its arrival (``bot.chat.arrival``:
the same round trip as its dedup claim and dialog); pages read them with one MGET.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import SCHOOL_TZ
from bot.errors import UserError

if TYPE_CHECKING:
    from bot.runtime import Runtime

MAX_CHARS = 200  # one line on a phone; the CLI refuses longer


@dataclass(frozen=True)
class Announcement:
    text: str
    until: datetime


Raw = tuple[str | None, str | None]  # the announcement and the maintenance note as stored


def keys(services: Runtime) -> tuple[str, str]:
    return services.store.key("announcement"), services.store.key("cardsystem", "maintenance")


def announce(services: Runtime, text: str, until: datetime) -> Announcement:
    """Show ``text`` until ``until`` (naive = school time), replacing the one before (the CLI and the console)."""
    text = " ".join(text.split())
    if not 0 < len(text) <= MAX_CHARS:
        raise UserError("announce_bad_text", 400, n=MAX_CHARS)
    until = until if until.tzinfo else until.replace(tzinfo=SCHOOL_TZ)
    ttl = int((until - services.clock.now()).total_seconds())
    if ttl <= 0:
        raise UserError("announce_in_past", 400)
    services.store.r.set(keys(services)[0], json.dumps({"text": text, "until": until.isoformat()}, ensure_ascii=False), ex=ttl)
    return Announcement(text, until)


def current(services: Runtime) -> Announcement | None:
    """The announcement shown now, if any (the console shows it)."""
    raw = services.store.r.get(keys(services)[0])
    if not raw:
        return None
    data = json.loads(raw)
    until = datetime.fromisoformat(data["until"])
    return Announcement(str(data["text"]), until) if until > services.clock.now() else None


def clear(services: Runtime) -> bool:
    return bool(services.store.r.delete(keys(services)[0]))


def note_maintenance(services: Runtime, retry_after: int) -> None:
    """The card system said it is closed for ``retry_after`` seconds: announce it until then."""
    until = services.clock.now() + timedelta(seconds=retry_after)
    services.store.r.set(keys(services)[1], until.isoformat(), ex=max(1, retry_after))


def lines(services: Runtime, tr: Callable[..., str], read: Raw | None = None) -> list[str]:
    """The lines to add now (``tr``: the reader's ``t``): the announcement, then the maintenance note (``read``: both
    as already read, else read now)."""
    raw, maintenance = read if read is not None else services.store.r.mget(keys(services))
    out = []
    now = services.clock.now()
    if raw is not None:
        data = json.loads(raw)
        if datetime.fromisoformat(data["until"]) > now:
            out.append(tr("announcement_line", text=data["text"]))
    if maintenance is not None:
        until = datetime.fromisoformat(str(maintenance))
        if until > now:
            out.append(tr("announcement_maintenance", until=f"{until.astimezone(SCHOOL_TZ):%H:%M}"))
    return out
