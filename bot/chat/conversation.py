"""Runs one parsed push through the router inside its own DB session: the unit the webhook times."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bot.chat.context import Context
from bot.chat.replies import Reply, Text
from bot.chat.router import Router
from bot.logs import hash_openid, openid_hash, request_id
from bot.runtime import Runtime
from bot.texts import t
from models import WechatUser

log = logging.getLogger(__name__)
LAST_SEEN_RESOLUTION = timedelta(minutes=5)


def load_user(db: Any, openid: str, now: Any) -> WechatUser:
    """The user's row, created on first contact; two first messages at once must not collide."""
    user = db.get(WechatUser, openid)
    if user is None:
        try:
            with db.begin_nested():
                user = WechatUser(openid=openid, lang="zh", following=True, created_at=now)
                db.add(user)
        except IntegrityError:
            user = db.get(WechatUser, openid)
    if user.last_message_at is None or now - user.last_message_at >= LAST_SEEN_RESOLUTION:
        user.last_message_at = now  # coarse on purpose: an UPDATE per message would cost a write and a row lock
    return user


def run_message(services: Runtime, router: Router, msg: Any, info: dict[str, Any], rid: str = "-") -> Reply | None:
    """Dispatch ``msg`` through the app's ``router``; never raises.

    ``info['lang']`` is filled early so a late answer speaks the user's language.
    """
    request_id.set(rid)
    openid_hash.set(hash_openid(msg.source))
    handler = "-"
    try:
        with services.session() as db:
            user = load_user(db, msg.source, services.clock.utcnow())
            info["lang"] = user.lang or "zh"
            dialog = services.dialogs.get(msg.source)
            expired = services.dialogs.take_expired(msg.source) if dialog is None and msg.type == "text" else None
            ctx = Context(openid=msg.source, db=db, services=services, user=user, dialog=dialog, expired_dialog=expired)
            route = router.pick(msg, ctx)
            if route is not None and route.needs_card is not None:
                ctx.card()  # read with the user, in the same transaction
            db.commit()  # nothing held while the handler runs: the domain functions it calls own their transactions
            try:
                reply = router.run(route, msg, ctx)
                handler = ctx.handler_name
                db.commit()
            except Exception:
                db.rollback()
                handler = ctx.handler_name or "-"
                raise
            info["lang"] = user.lang or "zh"
            return reply
    except (redis.RedisError, SQLAlchemyError) as exc:
        log.warning("backend unavailable while handling push: %s", type(exc).__name__, extra={"handler": handler})
        services.metrics.handler_errors.labels(handler=handler).inc()
        return Text(t(info.get("lang", "zh"), "service_unavailable"))
    except Exception:
        log.exception("handler failed", extra={"handler": handler, "event": getattr(msg, "type", "?")})
        services.metrics.handler_errors.labels(handler=handler).inc()
        return Text(t(info.get("lang", "zh"), "error_apology", phone=services.cfg.school.service_phone))
