"""H5 sessions of an account, as far as the domain cares: a generation in Redis that ends them all at once.

A signed session cookie cannot be recalled, so each session carries the account's generation at login; bumping it
(unbinding, a binding removed by 绑定管理) makes every earlier session of that openid invalid (bot/web/auth.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runtime import Runtime


def session_generation(services: Runtime, openid: str) -> int:
    return int(services.store.r.get(services.store.key("h5gen", openid)) or 0)


def end_sessions(services: Runtime, openid: str) -> None:
    """End every H5 session of ``openid``: their generation no longer matches."""
    services.store.r.incr(services.store.key("h5gen", openid))
