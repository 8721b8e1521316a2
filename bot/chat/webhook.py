"""``/wechat``: the endpoint WeChat calls. Verify, decode, claim the dedup key, dispatch within 5 s, answer.

A handler that misses the budget is answered with "processing"; its real reply follows as a
customer-service message when it finishes. A retry of the same push gets the first answer.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, request

from bot.chat.arrival import arrive
from bot.chat.conversation import Turn
from bot.chat.dedup import Dedup
from bot.chat.replies import Article, Reply, Text, Transfer
from bot.chat.router import Router
from bot.chat.wechat_xml import (
    BadMessage,
    BadSignature,
    check_freshness,
    check_signature,
    decode_push,
    dedup_key,
    encrypt_reply,
    render_reply,
)
from bot.logs import request_id
from bot.runtime import Runtime
from bot.texts import t

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__)


def services() -> Runtime:
    return current_app.extensions["cardbot"]


def router() -> Router:
    return current_app.extensions["router"]


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def _signed(svc: Runtime) -> bool:
    a = request.args
    return check_signature(svc.cfg.wechat.token, a.get("signature", ""), a.get("timestamp", ""), a.get("nonce", ""))


@bp.get("/wechat")
def verify_url() -> Response:
    svc = services()
    if not _signed(svc):
        return _text("forbidden", 403)
    return _text(request.args.get("echostr", ""))


@bp.post("/wechat")
def push() -> Response:
    svc = services()
    cfg = svc.cfg.wechat
    if not _signed(svc) or not check_freshness(request.args.get("timestamp", ""), cfg.max_clock_skew_seconds):
        return _text("forbidden", 403)
    length = request.content_length
    if length is not None and length > svc.cfg.server.max_body_bytes:
        return _text("body too large", 400)
    body = request.get_data(cache=False)
    if len(body) > svc.cfg.server.max_body_bytes:
        return _text("body too large", 400)
    try:
        msg, encrypted = decode_push(body, request.args.to_dict(), cfg)
    except BadSignature:
        return _text("forbidden", 403)
    except BadMessage as exc:
        log.info("rejected push: %s", exc)
        return _text("bad request", 400)

    g.push_kind = msg.type if msg.type != "event" else f"event:{(getattr(msg, 'event', '') or '').lower()}"
    svc.metrics.messages.labels(kind=g.push_kind).inc()
    plain = _answer(svc, router(), msg)
    if encrypted:
        return Response(encrypt_reply(plain, cfg, request.args.get("nonce", "")), mimetype="application/xml")
    return Response(plain, mimetype="application/xml" if plain != "success" else "text/plain")


def _answer(svc: Runtime, router: Router, msg: Any) -> str:
    dedup = Dedup(svc.store, svc.cfg.wechat.max_clock_skew_seconds)
    key = dedup_key(msg)
    budget = svc.cfg.wechat.reply_budget_seconds
    try:
        arrival = arrive(svc, dedup, key, msg.source)
    except redis.RedisError:
        log.warning("redis unavailable: push answered without running a handler (no dedup, no dialog)")
        svc.metrics.handler_errors.labels(handler="-").inc()
        return render_reply(Text(t("zh", "service_unavailable")), msg)
    if not arrival.claimed:
        svc.metrics.dedup_hits.inc()
        earlier = dedup.wait(key, budget)
        return earlier if earlier is not None else "success"
    plain = _run(svc, Turn(svc, router, msg, arrival), budget)
    try:
        dedup.finish(key, plain)
    except redis.RedisError:
        log.warning("redis unavailable: could not store reply for retries")
    return plain


def _run(svc: Runtime, turn: Turn, budget: float) -> str:
    """The handler's reply: in this thread when it only touches the database and Redis (their timeouts keep it in
    the budget); else on the pool, and "processing" at ``budget`` seconds with the reply sent later."""
    if turn.inline:
        return render_reply(turn.run(request_id.get()), turn.msg)
    future: Future[Reply | None] = svc.executor.submit(turn.run, request_id.get())
    try:
        reply = future.result(timeout=budget)
    except FutureTimeout:
        reply = Text(t(turn.lang, "processing"))
        future.add_done_callback(lambda f: _deliver_late(svc, turn.msg.source, f))
    return render_reply(reply, turn.msg)


def _deliver_late(svc: Runtime, openid: str, future: Future[Reply | None]) -> None:
    """The handler finished after we answered: send its reply as a customer-service message."""
    try:
        reply = future.result()
        if reply is None or isinstance(reply, Transfer):
            return  # a hand-off only works as the message's own reply; the customer service has nothing to read late
        content = reply.content if isinstance(reply, Text) else _article_text(reply)
        svc.wechat.send_text(openid, content)
        svc.metrics.late_replies.inc()
    except Exception:
        log.exception("late reply could not be delivered")


def _article_text(a: Article) -> str:
    return f"{a.title}\n{a.description}\n{a.url}"
