"""One parsed push through the router: the route picked from what Redis told on arrival, then run with its own
DB session — in the request's thread, or on the pool when the route may wait for an outside system."""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy.exc import SQLAlchemyError

from bot.chat.arrival import Arrival
from bot.chat.context import Context
from bot.chat.profiles import Profile, rebuild, seen_now
from bot.chat.replies import Reply, Text
from bot.chat.router import Route, Router
from bot.logs import hash_openid, openid_hash, request_id
from bot.runtime import Runtime
from bot.texts import t

log = logging.getLogger(__name__)


class Turn:
    """A push's route, picked without touching the database (``pick`` reads only the dialog)."""

    def __init__(self, services: Runtime, router: Router, msg: Any, arrival: Arrival) -> None:
        self.services, self.router, self.msg, self.arrival = services, router, msg, arrival
        self.lang = arrival.profile.lang if arrival.profile is not None else "zh"
        self.route: Route | None = None
        self.ctx: Context | None = None
        self._error: Reply | None = None
        try:
            expired = None
            if arrival.dialog is None and msg.type == "text":
                expired = services.dialogs.take_expired(msg.source, arrival.dialog_seen)
            profile = arrival.profile or Profile("zh", 0)
            self.ctx = Context(
                openid=msg.source,
                services=services,
                profile=profile,
                dialog=arrival.dialog,
                expired_dialog=expired,
                announced=arrival.announced,
            )
            self.route = router.pick(msg, self.ctx)
        except redis.RedisError as exc:
            self._error = self._unavailable(exc, "-")
        except Exception:
            self._error = self._failed("-")

    @property
    def inline(self) -> bool:
        return self.route is None or self.route.inline(self.services)

    def run(self, rid: str = "-") -> Reply | None:
        """The handler's reply; never raises (a failure is answered politely and counted)."""
        request_id.set(rid)
        openid_hash.set(hash_openid(self.msg.source))
        if self._error is not None or self.ctx is None:
            return self._error
        ctx, services, handler = self.ctx, self.services, "-"
        try:
            ctx.profile = self._profile(ctx)
            self.lang = ctx.lang
            try:
                reply = self.router.run(self.route, self.msg, ctx)
                handler = ctx.handler_name
                if ctx.db_opened is not None:
                    ctx.db_opened.commit()
            except Exception:
                if ctx.db_opened is not None:
                    ctx.db_opened.rollback()
                handler = ctx.handler_name or "-"
                raise
            user = ctx.user_loaded
            if user is not None and (user.lang or "zh") != ctx.profile.lang:  # written through
                ctx.profile = Profile(user.lang or "zh", ctx.profile.seen)
                services.profiles.put(ctx.openid, ctx.profile)
            self.lang = ctx.lang
            return reply
        except (redis.RedisError, SQLAlchemyError) as exc:
            return self._unavailable(exc, handler)
        except Exception:
            return self._failed(handler)
        finally:
            if ctx.db_opened is not None:
                ctx.db_opened.close()

    def _profile(self, ctx: Context) -> Profile:
        """The cached profile, or one rebuilt from the user's row (created on first contact); ``last_message_at``
        written when it is older than its resolution. Nothing is read or written otherwise (no session opened)."""
        now = self.services.clock.utcnow()
        cached = ctx.profile
        if self.arrival.profile is None:
            profile = rebuild(ctx.db, self.msg.source, now)
        elif cached.due(now):
            profile = seen_now(ctx.db, self.msg.source, cached, now)
        else:
            return cached
        ctx.db.commit()
        self.services.profiles.put(self.msg.source, profile)
        return profile

    def _failed(self, handler: str) -> Reply:
        log.exception("handler failed", extra={"handler": handler, "event": getattr(self.msg, "type", "?")})
        self.services.metrics.handler_errors.labels(handler=handler).inc()
        return Text(t(self.lang, "error_apology", phone=self.services.cfg.school.service_phone))

    def _unavailable(self, exc: Exception, handler: str) -> Reply:
        log.warning("backend unavailable while handling push: %s", type(exc).__name__, extra={"handler": handler})
        self.services.metrics.handler_errors.labels(handler=handler).inc()
        return Text(t(self.lang, "service_unavailable"))
