"""``/wechat``: the endpoint WeChat calls. Verify, decode, claim the dedup key, dispatch within 5 s, answer.

A handler that misses the budget is answered with "processing"; its real reply follows as a
customer-service message when it finishes. A retry of the same push gets the first answer.

It is the bot's hottest path, so it is a plain WSGI callable in front of Flask (``app.wsgi_app``, Flask's own
middleware pattern): no request context, routing or response objects; the request id, metrics and hardening
headers every Flask answer gets come from the same helpers (bot.web.instrument). Whoever must see every decoded
push (the emulator's follower list) registers with ``observe``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import redis
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wsgi import get_input_stream

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
from bot.web.instrument import HARDENING, begin, observe

log = logging.getLogger(__name__)

PATH = "/wechat"
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = tuple[int, str, bytes]  # status, content type, body
_PLAIN, _XML = "text/plain; charset=utf-8", "application/xml; charset=utf-8"
_HARDENING = list(HARDENING.items())


def _plain(body: str, status: int = 200) -> Answer:
    return status, _PLAIN, body.encode()


class WeChatEndpoint:
    """``GET``/``POST /wechat`` answered here; every other request goes on to ``app`` (the Flask application)."""

    def __init__(self, app: WSGIApp, services: Runtime, router: Router) -> None:
        self.app, self.services, self.router = app, services, router
        self.observers: list[Callable[[Any], None]] = []

    def observe(self, observer: Callable[[Any], None]) -> None:
        """Call ``observer`` with every correctly signed, decoded push before it is answered."""
        self.observers.append(observer)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        t0 = begin(environ.get("HTTP_X_REQUEST_ID", ""))
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            status, ctype, body = self._serve(method, environ)
        except (SQLAlchemyError, redis.RedisError) as exc:
            log.warning("backend unavailable on /wechat: %s", type(exc).__name__)
            status, ctype, body = _plain("service busy", 503)
        except Exception:
            log.exception("unhandled error on /wechat")
            status, ctype, body = _plain("internal error", 500)
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), ("X-Request-Id", request_id.get()), *_HARDENING]
        if status == 405:
            headers.append(("Allow", "GET, HEAD, POST"))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        observe(self.services, PATH, method, status, t0)
        return [b"" if method == "HEAD" else body]

    def _serve(self, method: str, environ: dict[str, Any]) -> Answer:
        args: dict[str, str] = {}
        for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
            args.setdefault(name, value)  # the first of repeated names, as Flask's ``args.to_dict()``
        if method in ("GET", "HEAD"):
            return self._verify_url(args)
        if method == "POST":
            return self._push(args, environ)
        return _plain("method not allowed", 405)

    def _signed(self, args: dict[str, str]) -> bool:
        return check_signature(self.services.cfg.wechat.token, args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", ""))

    def _verify_url(self, args: dict[str, str]) -> Answer:
        if not self._signed(args):
            return _plain("forbidden", 403)
        return _plain(args.get("echostr", ""))

    def _push(self, args: dict[str, str], environ: dict[str, Any]) -> Answer:
        svc = self.services
        cfg = svc.cfg.wechat
        if not self._signed(args) or not check_freshness(args.get("timestamp", ""), cfg.max_clock_skew_seconds):
            return _plain("forbidden", 403)
        limit = svc.cfg.server.max_body_bytes
        length = environ.get("CONTENT_LENGTH")
        if length and (not length.isdigit() or int(length) > limit):
            return _plain("body too large", 400)
        body = get_input_stream(environ, max_content_length=limit).read(limit + 1)
        if len(body) > limit:
            return _plain("body too large", 400)
        try:
            msg, encrypted = decode_push(body, args, cfg)
        except BadSignature:
            return _plain("forbidden", 403)
        except BadMessage as exc:
            log.info("rejected push: %s", exc)
            return _plain("bad request", 400)
        for observer in self.observers:
            observer(msg)
        kind = msg.type if msg.type != "event" else f"event:{(getattr(msg, 'event', '') or '').lower()}"
        svc.metrics.messages.labels(kind=kind).inc()
        plain = _answer(svc, self.router, msg)
        if encrypted:
            return 200, _XML, encrypt_reply(plain, cfg, args.get("nonce", "")).encode()
        return (200, _XML, plain.encode()) if plain != "success" else _plain(plain)


def mount(app: Any, services: Runtime, router: Router) -> WeChatEndpoint:
    """Put the endpoint in front of the Flask application ``app``; also kept as ``app.extensions["wechat"]``."""
    endpoint = WeChatEndpoint(app.wsgi_app, services, router)
    app.wsgi_app = endpoint
    app.extensions["wechat"] = endpoint
    return endpoint


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
