"""What a push needs from Redis before its handler, in one round trip: its dedup claim, the user's dialog (and
whether one expired since), and the user's profile."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat.dedup import Dedup
from bot.chat.dialogs import Dialog, Dialogs
from bot.chat.profiles import Profile, Profiles


@dataclass(frozen=True)
class Arrival:
    claimed: bool  # False: a retry or replay of a push another request has (or had)
    dialog: Dialog | None
    dialog_seen: str | None  # the state of the last dialog started; with no dialog, the one that expired
    profile: Profile | None  # None: not cached, rebuilt from the database


def arrive(dedup: Dedup, dialogs: Dialogs, profiles: Profiles, dedup_key: str, openid: str) -> Arrival:
    """Claim the push and read the user's state in one pipeline (raises ``redis.RedisError`` when Redis is away)."""
    pipe = dedup.store.r.pipeline(transaction=False)
    dedup.claim_on(pipe, dedup_key)
    dialogs.read_on(pipe, openid)
    pipe.get(profiles.key(openid))
    claimed, raw_dialog, seen, raw_profile = pipe.execute()
    return Arrival(bool(claimed), Dialogs.parse(raw_dialog), seen, Profiles.parse(raw_profile))
