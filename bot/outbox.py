"""Sending the notice outbox as WeChat template messages: never lost, never sent twice.

Rows are written by ``post_entry``/``queue_notice`` in the transaction of the change they report, so a notice
exists exactly when its change does. ``drain_once`` then:

1. **claims** a batch (``pending``, due, not leased; non-urgent ones wait out ``quiet_hours``) by stamping a lease
   (``claimed_by``/``claimed_until``) in one UPDATE — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write
   lock elsewhere — so several workers never take the same row;
2. per row, marks it ``sending`` and **commits before calling WeChat**, sends, and marks the outcome: ``sent``
   (msgid kept for TEMPLATESENDJOBFINISH; recorded for up to ``MARK_EVERY`` sends at once, which halves the
   database work per notice), ``pending`` again with exponential backoff (network errors, 5xx, -1, 45009, token
   errors left after WeChatAPI's one refresh), ``undeliverable`` (43004 not following, 40003) or ``failed``
   (template or data refused, attempts used up). Several threads send at once (``SEND_THREADS``).

WeChat has no idempotency key for template sends, so we choose **at most once**: a row still ``sending`` after its
lease ran out (the worker died between sending and marking) is never sent again automatically. If WeChat's
TEMPLATESENDJOBFINISH for that user arrived after the send began and matched no row (``handlers/notices.py`` keeps
such events for a day), the notice was delivered and the row becomes ``sent``; otherwise it becomes ``uncertain``
for an operator to check. Only rows a dead worker had already marked ``sending`` can end up so (per sending thread
the one in flight and at most ``MARK_EVERY`` sent but not yet recorded, which WeChat's job-finish usually
confirms); the rest of its batch is still ``pending`` and is claimed again when the lease ends.

A send that got **no answer** (read timeout, dropped connection: WeChat may or may not have sent it) is not
retried at once: the row becomes ``unconfirmed`` for ``CONFIRM_WAIT``. If WeChat's job-finish report for that user
arrives meanwhile, the row is ``sent``; if none came, WeChat did not send it and the row goes back to ``pending``.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Connection, and_, bindparam, or_, select, update

from bot.adapters.wechat_api import WeChatAPIError
from models import OutboxNotice, utcnow

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
CONFIRM_WAIT = timedelta(seconds=30)  # WeChat's job-finish report normally follows a send within seconds
SEND_THREADS = 8
MARK_EVERY = 10
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
VALUE_MAX = 20
UNDELIVERABLE = {43004, 40003}  # not following / not an openid of this account
PERMANENT = {40037, 47001, 47003, 40008}  # the template or its data is wrong: retrying cannot help
JOB_FINISH_TTL = 86400
_INVISIBLE = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}


def clean_value(value: Any) -> str:
    """WeChat's 2023 rules: one line, no emoji, at most 20 characters (a longer value ends in '…')."""
    text = "".join(ch for ch in str(value) if ch.isspace() or not _emoji(ch))
    text = " ".join(text.split())
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def _emoji(ch: str) -> bool:
    return ord(ch) > 0xFFFF or ch in _INVISIBLE or unicodedata.category(ch) in ("So", "Cs", "Co", "Cc")


def template_payload(services: Services, kind: str, data: dict[str, Any]) -> tuple[str, dict[str, dict[str, str]]]:
    """(template_id, data) for a notice kind: logical keys mapped to the account's template keys; no first/remark."""
    tpl = services.cfg.notices.template(kind)
    out = {tkey: {"value": clean_value(data[key])} for key, tkey in tpl.fields.items() if data.get(key) not in (None, "")}
    return tpl.template_id, out


def job_finish_key(services: Services, openid: str) -> str:
    return services.store.key("outbox", "jobfinish", openid)


def remember_job_finish(services: Services, openid: str, msgid: str, status: str) -> None:
    """A TEMPLATESENDJOBFINISH that matched no row (its sender died before marking it sent)."""
    key = job_finish_key(services, openid)
    entry = json.dumps({"msgid": msgid, "status": status[:64], "at": _now(services).isoformat()})
    pipe = services.store.r.pipeline()
    pipe.rpush(key, entry)
    pipe.ltrim(key, -50, -1)
    pipe.expire(key, JOB_FINISH_TTL)
    pipe.execute()


def _now(services: Services) -> datetime:
    """The business clock, but never behind real time: ``queue_notice`` stamps rows with real time, and a clock
    frozen in the past (tests, the simulator) must not hide them."""
    return max(services.clock.utcnow(), utcnow())


def drain_once(services: Services, worker_id: str) -> int:
    """Send one batch of due notices; returns how many rows were handled (0 = nothing due)."""
    recover_expired(services)
    token = f"{worker_id[:48]}:{secrets.token_hex(4)}"
    rows = claim(services, token)
    if not rows:
        return 0
    n = min(SEND_THREADS, len(rows))
    if n == 1:
        _send_slice(services, token, rows)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="outbox") as pool:
            list(pool.map(lambda part: _send_slice(services, token, part), [rows[i::n] for i in range(n)]))
    return len(rows)


def claim(services: Services, token: str) -> list[Any]:
    cfg = services.cfg.notices
    now = _now(services)
    quiet = cfg.quiet_hours.contains(services.clock.now().time().replace(tzinfo=None))
    o = OutboxNotice
    due = (
        select(o.id)
        .where(
            o.status == "pending",
            o.next_attempt_at <= now,
            or_(o.claimed_until.is_(None), o.claimed_until < now),
            *([o.urgent.is_(True)] if quiet else []),
        )
        .order_by(o.next_attempt_at, o.id)
        .limit(cfg.batch_size)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(o)
        .where(o.id.in_(due.scalar_subquery()), o.status == "pending")
        .values(claimed_by=token, claimed_until=now + LEASE)
        .returning(o.id, o.openid, o.kind, o.data, o.url, o.attempts)
    )
    with services.engine.begin() as conn:
        return list(conn.execute(stmt).all())


_O = OutboxNotice
_SENDING = (
    update(_O)
    .where(_O.id == bindparam("rid"), _O.status == "pending", _O.claimed_by == bindparam("tok"))
    .values(status="sending", attempts=_O.attempts + 1, claimed_until=bindparam("until"))
)
_SENT = (
    update(_O)
    .where(_O.id == bindparam("rid"), _O.status == "sending", _O.claimed_by == bindparam("tok"))
    .values(status="sent", msgid=bindparam("m"), sent_at=bindparam("at"), claimed_until=None, last_error=None)
)


def _set(conn: Connection, row_id: int, token: str, expect: str, **values: Any) -> bool:
    """Move a row we hold from ``expect`` to new values in its own transaction; False if we no longer hold it."""
    with conn.begin():
        res = conn.execute(update(_O).where(_O.id == row_id, _O.status == expect, _O.claimed_by == token).values(**values))
        return bool(res.rowcount)


def mark_sent(services: Services, conn: Connection, token: str, sent: list[tuple[int, str]]) -> None:
    """Record sends (row id, msgid) in one transaction."""
    at = _now(services)
    with conn.begin():
        conn.execute(_SENT, [{"rid": rid, "m": msgid[:32] or None, "tok": token, "at": at} for rid, msgid in sent])


def _send_slice(services: Services, token: str, rows: list[Any]) -> None:
    """Send rows one by one, each marked ``sending`` (committed) first; successes are recorded every
    ``MARK_EVERY`` sends, so a dead worker leaves at most that many delivered rows to ``recover_expired``."""
    sent: list[tuple[int, str]] = []
    with services.engine.connect() as conn:  # one connection for the slice; no transaction is open while sending
        if conn.dialect.name != "sqlite":  # each mark is one statement: autocommit saves BEGIN/COMMIT round trips
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for row in rows:
            try:
                msgid = _send_one(services, conn, token, row)
            except Exception:
                log.exception("notice %s: unexpected error while sending; its lease will run out and it is checked then", row.id)
                continue
            if msgid is not None:
                sent.append((row.id, msgid))
                services.metrics.notices.labels(kind=row.kind, outcome="sent").inc()
            if len(sent) >= MARK_EVERY:
                mark_sent(services, conn, token, sent)
                sent = []
        if sent:
            mark_sent(services, conn, token, sent)


def _send_one(services: Services, conn: Connection, token: str, row: Any) -> str | None:
    """The msgid when WeChat accepted it; None when the row was handled otherwise (or is no longer ours)."""
    with conn.begin():
        if not conn.execute(_SENDING, {"rid": row.id, "tok": token, "until": _now(services) + LEASE}).rowcount:
            return None
    try:
        template_id, data = template_payload(services, row.kind, row.data or {})
    except KeyError:
        _finish(services, conn, row, token, "failed", f"no template configured for kind {row.kind!r}")
        return None
    try:
        return services.wechat.send_template(row.openid, template_id, data, row.url or None)
    except WeChatAPIError as exc:
        _failed_send(services, conn, row, token, exc)
    except redis.RedisError as exc:  # the shared token lives in Redis: nothing reached WeChat, so retrying is safe
        _failed_send(services, conn, row, token, WeChatAPIError(None, f"redis: {type(exc).__name__}"))
    return None


def _failed_send(services: Services, conn: Connection, row: Any, token: str, exc: WeChatAPIError) -> None:
    code = exc.errcode
    error = f"{code}: {exc.errmsg}"[:500]
    if exc.maybe_sent:
        # No answer, but WeChat may have sent it: wait for its TEMPLATESENDJOBFINISH instead of resending now.
        _set(conn, row.id, token, "sending", status="unconfirmed", last_error=error,
             claimed_until=_now(services) + CONFIRM_WAIT)
        services.metrics.notices.labels(kind=row.kind, outcome="unconfirmed").inc()
        log.warning("notice %s: no answer from WeChat (%s); waiting for its delivery report", row.id, error)
        return
    if code in UNDELIVERABLE:
        _finish(services, conn, row, token, "undeliverable", error)
        return
    attempts = row.attempts + 1
    if code in PERMANENT or attempts >= services.cfg.notices.max_attempts:
        _finish(services, conn, row, token, "failed", error)
        return
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1)) * random.uniform(1.0, 1.2)
    _set(conn, row.id, token, "sending", status="pending", last_error=error, claimed_by=None, claimed_until=None,
         next_attempt_at=_now(services) + timedelta(seconds=delay))
    services.metrics.notices.labels(kind=row.kind, outcome="retry").inc()
    log.info("notice %s: %s, retry in %.0f s", row.id, error, delay)


def _finish(services: Services, conn: Connection, row: Any, token: str, status: str, error: str) -> None:
    _set(conn, row.id, token, "sending", status=status, last_error=error, claimed_until=None)
    services.metrics.notices.labels(kind=row.kind, outcome=status).inc()
    log.warning("notice %s (%s) %s: %s", row.id, row.kind, status, error)


def recover_expired(services: Services, limit: int = 100) -> int:
    """Rows left ``sending`` by a worker that died: ``sent`` if WeChat reported delivering them, else ``uncertain``."""
    try:
        return _recover(services, limit)
    except redis.RedisError as exc:  # cannot check WeChat's reports now: leave the rows for the next pass
        log.warning("recovering expired notices postponed: %s", type(exc).__name__)
        return 0


def _recover(services: Services, limit: int) -> int:
    now = _now(services)
    o = OutboxNotice
    with services.session() as db, db.begin():
        rows = list(
            db.execute(
                select(o)
                .where(o.status.in_(("sending", "unconfirmed")), o.claimed_until < now)
                .order_by(o.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        for row in rows:
            started = (row.claimed_until or now) - LEASE
            finish = _unmatched_finish(services, row.openid, started)
            if finish is not None:
                row.status, row.msgid, row.delivery_status, row.sent_at = "sent", finish["msgid"][:32], finish["status"], started
                row.last_error = "no answer at the time; WeChat reported the delivery"
            elif row.status == "unconfirmed":
                # The send timed out and WeChat reported no delivery since: it did not send it, so try again.
                row.status, row.next_attempt_at, row.claimed_by = "pending", now, None
            else:
                row.status = "uncertain"
                row.last_error = "worker stopped while sending; not resent (no idempotency at WeChat): check by hand"
                log.error("notice %s to %s is uncertain: its worker stopped while sending", row.id, row.kind)
            row.claimed_until = None
    return len(rows)


def _unmatched_finish(services: Services, openid: str, since: datetime) -> dict[str, str] | None:
    """Take the first job-finish event for ``openid`` at or after ``since`` that matched no row."""
    key = job_finish_key(services, openid)
    for raw in services.store.r.lrange(key, 0, -1):
        item = json.loads(raw)
        if datetime.fromisoformat(item["at"]) >= since - timedelta(seconds=5):
            services.store.r.lrem(key, 1, raw)
            return item
    return None


def record_job_finish(services: Services, db: Any, openid: str, msgid: str, status: str) -> bool:
    """TEMPLATESENDJOBFINISH: store WeChat's delivery status on the row with this msgid (False: no such row yet)."""
    o = OutboxNotice
    res = db.execute(
        update(o).where(and_(o.msgid == msgid, o.openid == openid)).values(delivery_status=status[:64]).execution_options(synchronize_session=False)
    )
    if res.rowcount:
        return True
    remember_job_finish(services, openid, msgid, status)
    return False
