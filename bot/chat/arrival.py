"""What a push needs from Redis before its handler, in one round trip: its dedup claim, the user's dialog (and
whether one expired since), the user's profile, and the school's announcement lines (``bot.announce``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import announce
from bot.chat.dedup import Dedup
from bot.chat.dialogs import Dialog, Dialogs
from bot.chat.profiles import Profile, Profiles

if TYPE_CHECKING:
    from bot.runtime import Runtime


@dataclass(frozen=True)
class Arrival:
    claimed: bool  # False: a retry or replay of a push another request has (or had)
    dialog: Dialog | None
    dialog_seen: str | None  # the state of the last dialog started; with no dialog, the one that expired
    profile: Profile | None  # None: not cached, rebuilt from the database
    announced: announce.Raw  # as stored: shown by the replies that show announcements


def arrive(services: Runtime, dedup: Dedup, dedup_key: str, openid: str) -> Arrival:
    """Claim the push and read the user's state in one pipeline (raises ``redis.RedisError`` when Redis is away)."""
    pipe = services.store.r.pipeline(transaction=False)
    dedup.claim_on(pipe, dedup_key)
    services.dialogs.read_on(pipe, openid)
    pipe.get(services.profiles.key(openid))
    pipe.mget(announce.keys(services))
    claimed, raw_dialog, seen, raw_profile, announced = pipe.execute()
    return Arrival(bool(claimed), Dialogs.parse(raw_dialog), seen, Profiles.parse(raw_profile), (announced[0], announced[1]))
