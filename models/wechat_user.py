"""A WeChat follower of the official account, known by openid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow


class WechatUser(Base):
    __tablename__ = "wechat_users"

    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    lang: Mapped[str] = mapped_column(String(2), default="zh")
    following: Mapped[bool] = mapped_column(Boolean, default=True)
    subscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def lang_of(db: Session, openid: str) -> str:
    """The user's chosen language; Chinese for someone we have not met."""
    user = db.get(WechatUser, openid)
    return (user.lang if user else None) or "zh"
