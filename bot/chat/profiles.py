"""A user's small profile in Redis (language, when last seen), so a push reads its user without the database.

Written through whenever the user's row changes from a push (the conversation compares the row after the handler)
and rebuilt from ``wechat_users`` when missing; it expires after a week, so a change made elsewhere (a command, the
console) is picked up by then at the latest — and at once if that code calls ``forget``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.adapters.store import Store
from models import WechatUser

PROFILE_TTL_SECONDS = 7 * 24 * 3600
SEEN_RESOLUTION = timedelta(minutes=5)  # last_message_at is coarse on purpose: not a row write per message


@dataclass(frozen=True)
class Profile:
    lang: str
    seen: int  # epoch seconds of the ``last_message_at`` the database holds

    def due(self, now: datetime) -> bool:
        """Whether ``last_message_at`` is older than the resolution and should be written."""
        return now.replace(tzinfo=UTC).timestamp() - self.seen >= SEEN_RESOLUTION.total_seconds()


class Profiles:
    def __init__(self, store: Store) -> None:
        self.store = store

    def key(self, openid: str) -> str:
        return self.store.key("profile", openid)

    @staticmethod
    def parse(raw: Any) -> Profile | None:
        if raw is None:
            return None
        try:
            obj = json.loads(raw)
            return Profile(str(obj["lang"]), int(obj["seen"]))
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable profile is rebuilt like a missing one

    @staticmethod
    def encode(profile: Profile) -> str:
        return json.dumps({"lang": profile.lang, "seen": profile.seen})

    def put(self, openid: str, profile: Profile) -> None:
        self.store.r.set(self.key(openid), self.encode(profile), ex=PROFILE_TTL_SECONDS)

    def forget(self, openid: str) -> None:
        self.store.r.delete(self.key(openid))


def _epoch(at: datetime | None) -> int:
    return int(at.replace(tzinfo=UTC).timestamp()) if at is not None else 0


def load_user(db: Session, openid: str, now: datetime) -> WechatUser:
    """The user's row, created on first contact; two first messages at once must not collide."""
    user = db.get(WechatUser, openid)
    if user is None:
        try:
            with db.begin_nested():
                user = WechatUser(openid=openid, lang="zh", following=True, created_at=now)
                db.add(user)
        except IntegrityError:
            user = db.get(WechatUser, openid)
    assert user is not None
    if user.last_message_at is None or now - user.last_message_at >= SEEN_RESOLUTION:
        user.last_message_at = now
    return user


def rebuild(db: Session, openid: str, now: datetime) -> Profile:
    """The profile from the user's row (created on first contact), in the caller's transaction."""
    user = load_user(db, openid, now)
    return Profile(user.lang or "zh", _epoch(user.last_message_at))


def seen_now(db: Session, openid: str, profile: Profile, now: datetime) -> Profile:
    """Record the user's message time (coarse), in the caller's transaction."""
    db.execute(update(WechatUser).where(WechatUser.openid == openid).values(last_message_at=now))
    return Profile(profile.lang, _epoch(now))
