"""A line the school adds to balance and top-up replies and pages: an operator's announcement (``cardbot announce``)
until its end, and, on its own, a note while the card system is closed for maintenance.

Both live in Redis (every process shows the same line); reading them is one MGET on the balance and top-up paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import SCHOOL_TZ

if TYPE_CHECKING:
    from bot.runtime import Runtime

MAX_CHARS = 200  # one line on a phone; the CLI refuses longer


@dataclass(frozen=True)
class Announcement:
    text: str
    until: datetime


def _keys(services: Runtime) -> tuple[str, str]:
    return services.store.key("announcement"), services.store.key("cardsystem", "maintenance")


def announce(services: Runtime, text: str, until: datetime) -> Announcement:
    """Show ``text`` until ``until`` (aware); a new announcement replaces the one before."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_CHARS:
        raise ValueError(f"an announcement is 1 to {MAX_CHARS} characters")
    if until <= services.clock.now():
        raise ValueError("--until is in the past")
    services.store.r.set(_keys(services)[0], json.dumps({"text": text, "until": until.isoformat()}, ensure_ascii=False))
    return Announcement(text, until)


def clear(services: Runtime) -> bool:
    return bool(services.store.r.delete(_keys(services)[0]))


def note_maintenance(services: Runtime, retry_after: int) -> None:
    """The card system said it is closed for ``retry_after`` seconds: announce it until then."""
    until = services.clock.now() + timedelta(seconds=retry_after)
    services.store.r.set(_keys(services)[1], until.isoformat(), ex=max(1, retry_after))


def lines(services: Runtime, tr: Callable[..., str]) -> list[str]:
    """The lines to add now (``tr``: the reader's ``t``): the announcement, then the maintenance note."""
    raw, maintenance = services.store.r.mget(_keys(services))
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
