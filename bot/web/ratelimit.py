"""A small fixed-window rate limit in Redis (INCR + EXPIRE), shared by every process that uses the same Redis.

Used by the H5 JSON APIs per signed-in openid, so a scripted client cannot hammer order creation or the
agreement endpoints. When Redis is unreachable the limit is not enforced: the database rules still hold, and
refusing every student because the limiter's store is down would be worse.
"""

from __future__ import annotations

import logging
import time

import redis

from bot.adapters.store import Store

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, store: Store) -> None:
        self.store = store

    def hit(self, bucket: str, subject: str, limit: int, window_seconds: int = 60) -> int:
        """Count one request; returns 0 when allowed, else the seconds until the window ends (for Retry-After)."""
        now = int(time.time())
        start = now - now % window_seconds
        key = self.store.key("rate", bucket, subject, start)
        try:
            pipe = self.store.r.pipeline()
            pipe.incr(key)
            pipe.expire(key, window_seconds + 1)
            count, _ = pipe.execute()
        except redis.RedisError:
            log.warning("rate limit not enforced: redis unavailable")
            return 0
        return 0 if int(count) <= limit else max(1, start + window_seconds - now)
