"""Sending the notice outbox as WeChat template messages: never lost, never sent twice.

Rows are written by ``post_entry``/``queue_notice`` in the transaction of the change they report, so a notice
exists exactly when its change does. ``drain`` (the worker's; ``drain_once`` is one batch of it) then:

1. **claims** a batch (``pending``, due, not leased; non-urgent ones wait out ``quiet_hours``) by stamping a lease
   (``claimed_by``/``claimed_until``) in one UPDATE — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write
   lock elsewhere — so several workers never take the same row; the next batch is claimed while the last one's
   final rows are still being sent;
2. marks rows ``sending`` and **commits before calling WeChat** — a few at a time (``SENDING_GROUP``, one UPDATE),
   each thread taking its next rows as it finishes its last — then sends each, and marks the outcome: ``sent``,
   ``pending`` again with exponential backoff (network errors, 5xx, -1, 45009, token errors left after WeChatAPI's
   one refresh), ``undeliverable`` (43004 not following, 43101 template refused, 40003; an alert's pauses the
   account's alerts, bot.alerts) or ``failed`` (template or data refused, attempts used up). Several threads send at
   once (``SEND_THREADS``).

**The msgid is the only link between a notice and WeChat's delivery report** (TEMPLATESENDJOBFINISH). The moment a
send returns, one Redis script call keeps row→msgid and msgid→row (``remember_send``); the database records
``sent`` for up to ``MARK_EVERY`` sends at once, which halves the database work per notice. A report is applied to
the row with its msgid (``record_job_finish``); one that finds none is kept by msgid, and a send recorded later picks
it up. Both sides write their half and read the other's atomically (a Redis script, a MULTI/EXEC pipeline), so
whichever comes second sees the first: no report is lost, also when it arrives before the send is recorded.

A row left ``sending`` after its lease ran out (its worker died) is settled by ``recover_expired``: with a msgid in
Redis, WeChat accepted it and it is ``sent`` (with its report if one came). Without one its send got **no answer**
(or, marked with its group, was never made) — like a send that timed out, which waits ``unconfirmed`` for
``CONFIRM_WAIT`` first. WeChat may or may not have sent
it and has no idempotency key, and no report can be matched to a send without its msgid. The rule: WeChat reports
every send within seconds, so if no report for that user arrived since the send began that no other notice
explains (its msgid is not one of ours), WeChat did not send it and the row goes back to ``pending``; if such a
report did arrive, it is probably this notice, and the row becomes ``uncertain`` with the report's msgid in
``last_error`` for an operator (``cardbot notices``) — never sent twice blindly, never dropped. The one gap left: a
send WeChat accepted whose report never reached us (our endpoint down through all its retries) is sent again.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import secrets
import threading
import unicodedata
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import Connection, bindparam, func, or_, select, update

from bot import alerts
from bot.adapters.wechat_api import WeChatAPIError
from bot.errors import UserError
from models import OutboxNotice, utcnow
from models.enums import NoticeStatus

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
CONFIRM_WAIT = timedelta(seconds=30)  # WeChat's job-finish report normally follows a send within seconds
SEND_THREADS = 8
SENDING_GROUP = 5  # rows marked ``sending`` in one UPDATE before their sends; a dead worker leaves a group's unsent rows to recovery
RENEW_AFTER = timedelta(seconds=10)  # a group's rows still to send after slow sends get a fresh lease before theirs
MARK_EVERY = 10
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
VALUE_MAX = 20
UNDELIVERABLE = {43004, 43101, 40003}  # not following / refused this template / not an openid of this account
PERMANENT = {40037, 47001, 47003, 40008}  # the template or its data is wrong: retrying cannot help
REPORT_TTL = 86400  # how long a send's msgid and an unmatched delivery report are kept in Redis
_INVISIBLE = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}


def clean_value(value: Any) -> str:
    """WeChat's 2023 rules: one line, no emoji, at most 20 characters (a longer value ends in '…')."""
    text = "".join(ch for ch in str(value) if ch.isspace() or not _emoji(ch))
    text = " ".join(text.split())
    return text if len(text) <= VALUE_MAX else text[: VALUE_MAX - 1] + "…"


def _emoji(ch: str) -> bool:
    return ord(ch) > 0xFFFF or ch in _INVISIBLE or unicodedata.category(ch) in ("So", "Cs", "Co", "Cc")


def template_payload(services: Runtime, kind: str, data: dict[str, Any]) -> tuple[str, dict[str, dict[str, str]]]:
    """(template_id, data) for a notice kind: logical keys mapped to the account's template keys; no first/remark."""
    tpl = services.cfg.notices.template(kind)
    out = {tkey: {"value": clean_value(data[key])} for key, tkey in tpl.fields.items() if data.get(key) not in (None, "")}
    return tpl.template_id, out


def _now(services: Runtime) -> datetime:
    """The business clock, but never behind real time: ``queue_notice`` stamps rows with real time, and a clock
    frozen in the past (tests, the simulator) must not hide them."""
    return max(services.clock.utcnow(), utcnow())


def drain_once(services: Runtime, worker_id: str) -> int:
    """Send one batch of due notices; returns how many rows were handled (0 = nothing due)."""
    return drain(services, worker_id, max_batches=1)


def drain(services: Runtime, worker_id: str, max_batches: int = 1000) -> int:
    """Send due notices until none is left (at most ``max_batches`` claims); returns how many rows were handled.

    The ``SEND_THREADS`` threads take groups of rows as they finish their last (``_Feed``); the next batch is claimed
    while the last groups of the one before are still being sent, so no thread waits on the slowest of a batch or
    on a claim while there is work."""
    feed = _Feed(services, worker_id, max_batches)
    if SEND_THREADS == 1:
        _send_groups(services, feed)
    else:
        with ThreadPoolExecutor(max_workers=SEND_THREADS, thread_name_prefix="outbox") as pool:
            list(pool.map(lambda _: _send_groups(services, feed), range(SEND_THREADS)))
    return feed.handled


class _Feed:
    """Claimed rows handed out ``SENDING_GROUP`` at a time, each group with its claim's token. The thread that finds
    no more than ``SEND_THREADS`` groups left claims the next batch (``recover_expired`` first, as every pass does);
    the others go on sending meanwhile, or wait for it when nothing is left. Ends when a claim finds nothing due or
    ``max_batches`` were claimed."""

    def __init__(self, services: Runtime, worker_id: str, max_batches: int) -> None:
        self.services, self.worker_id, self.batches_left = services, worker_id, max_batches
        self.handled = 0
        self._groups: deque[tuple[str, list[Any]]] = deque()
        self._cond = threading.Condition()
        self._claiming = False
        self._done = False

    def __iter__(self) -> Iterator[tuple[str, list[Any]]]:
        while True:
            with self._cond:
                while True:
                    claim_now = len(self._groups) <= SEND_THREADS and not self._done and not self._claiming
                    if claim_now or self._groups or self._done:
                        break
                    self._cond.wait()
                if claim_now:
                    self._claiming = True
                elif self._groups:
                    item = self._groups.popleft()
                else:
                    return
            if claim_now:
                self._claim()
            else:
                yield item

    def _claim(self) -> None:
        rows: list[Any] = []
        token = f"{self.worker_id[:48]}:{secrets.token_hex(4)}"
        try:
            recover_expired(self.services)
            rows = claim(self.services, token)
        finally:  # a failed claim (database down) ends the feed; the error reaches the caller
            with self._cond:
                self._claiming = False
                self._groups.extend((token, rows[i : i + SENDING_GROUP]) for i in range(0, len(rows), SENDING_GROUP))
                self.handled += len(rows)
                self.batches_left -= 1
                self._done = self._done or not rows or self.batches_left <= 0
                self._cond.notify_all()


def claim(services: Runtime, token: str) -> list[Any]:
    cfg = services.cfg.notices
    now = _now(services)
    quiet = cfg.quiet_hours.contains(services.clock.now().time().replace(tzinfo=None))
    o = OutboxNotice
    due = (
        select(o.id)
        .where(
            o.status == NoticeStatus.PENDING,
            o.next_attempt_at <= now,
            or_(o.claimed_until.is_(None), o.claimed_until < now),
            *([o.urgent.is_(True)] if quiet else []),
        )
        .order_by(o.next_attempt_at, o.id)
        .limit(cfg.batch_size)
        .with_for_update(skip_locked=True)
        # computed once: planned as a subquery, a nested-loop join re-ran it for each row, each run skipping the rows
        # the UPDATE had just claimed, so one claim took every due row instead of ``batch_size``
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    stmt = (
        update(o)
        .where(o.id.in_(select(due.c.id)), o.status == NoticeStatus.PENDING)
        .values(claimed_by=token, claimed_until=now + LEASE)
        .returning(o.id, o.openid, o.kind, o.data, o.url, o.attempts)
    )
    with services.engine.begin() as conn:
        return list(conn.execute(stmt).all())


_O = OutboxNotice
_SENDING = (
    update(_O)
    .where(_O.id.in_(bindparam("rids", expanding=True)), _O.status == NoticeStatus.PENDING, _O.claimed_by == bindparam("tok"))
    .values(status=NoticeStatus.SENDING, attempts=_O.attempts + 1, claimed_until=bindparam("until"))
    .returning(_O.id)
)
_RENEW = (
    update(_O)
    .where(_O.id.in_(bindparam("rids", expanding=True)), _O.status == NoticeStatus.SENDING, _O.claimed_by == bindparam("tok"))
    .values(claimed_until=bindparam("until"))
    .returning(_O.id)
)
_SENT = (
    update(_O)
    .where(_O.id == bindparam("rid"), _O.status == NoticeStatus.SENDING, _O.claimed_by == bindparam("tok"))
    .values(
        status=NoticeStatus.SENT,
        msgid=bindparam("m"),
        sent_at=bindparam("at"),
        claimed_until=None,
        last_error=None,
        delivery_status=func.coalesce(bindparam("ds"), _O.delivery_status),
    )
)


def _set(conn: Connection, row_id: int, token: str, expect: NoticeStatus, **values: Any) -> bool:
    """Move a row we hold from ``expect`` to new values in its own transaction; False if we no longer hold it."""
    with conn.begin():
        res = conn.execute(update(_O).where(_O.id == row_id, _O.status == expect, _O.claimed_by == token).values(**values))
        return bool(res.rowcount)


def mark_sent(services: Runtime, conn: Connection, token: str, sent: list[tuple[int, str, str | None]]) -> None:
    """Record sends (row id, msgid, the delivery report already in) in one transaction."""
    at = _now(services)
    with conn.begin():
        conn.execute(_SENT, [{"rid": rid, "m": msgid[:32] or None, "tok": token, "at": at, "ds": ds} for rid, msgid, ds in sent])


def _send_groups(services: Runtime, feed: _Feed) -> None:
    """Send the rows of each group in turn, the group marked ``sending`` (committed) first; each success is kept in
    Redis at once and recorded in the database every ``MARK_EVERY`` sends of one claim (``recover_expired`` settles a
    dead worker's by msgid)."""
    sent: list[tuple[int, str, str | None]] = []
    held = ""  # the claim token the rows in ``sent`` were sent under
    with services.engine.connect() as conn:  # one connection for the thread; no transaction is open while sending
        if conn.dialect.name != "sqlite":  # each mark is one statement: autocommit saves BEGIN/COMMIT round trips
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for token, group in feed:
            if sent and token != held:
                mark_sent(services, conn, held, sent)
                sent = []
            held = token
            for row in _in_sending(services, conn, token, group):
                try:
                    msgid = _send_one(services, conn, token, row)
                except Exception:
                    log.exception("notice %s: unexpected error while sending; its lease will run out and it is checked then", row.id)
                    continue
                if msgid is not None:
                    sent.append((row.id, msgid, remember_send(services, row.id, row.openid, msgid)))
                    services.metrics.notices.labels(kind=row.kind, outcome=NoticeStatus.SENT).inc()
                if len(sent) >= MARK_EVERY:
                    mark_sent(services, conn, token, sent)
                    sent = []
        if sent:
            mark_sent(services, conn, held, sent)


def _in_sending(services: Runtime, conn: Connection, token: str, group: list[Any]) -> Iterator[Any]:
    """The rows of ``group`` we hold, one by one, marked ``sending`` (committed) together before the first is sent.
    When earlier sends were slow (``RENEW_AFTER``), the rest get a fresh lease first, so that every send starts with
    most of a lease, as when each row was marked alone; a row no longer ours (its lease ran out and another worker
    settled it) is left out."""
    rows, until = _mark(services, conn, _SENDING, token, group)
    while rows:
        if _now(services) > until - LEASE + RENEW_AFTER:
            rows, until = _mark(services, conn, _RENEW, token, rows)
            continue
        yield rows.pop(0)


def _mark(services: Runtime, conn: Connection, stmt: Any, token: str, rows: list[Any]) -> tuple[list[Any], datetime]:
    until = _now(services) + LEASE
    with conn.begin():
        held = set(conn.execute(stmt, {"rids": [row.id for row in rows], "tok": token, "until": until}).scalars())
    return [row for row in rows if row.id in held], until


def _send_one(services: Runtime, conn: Connection, token: str, row: Any) -> str | None:
    """The msgid when WeChat accepted it; None when the row was handled otherwise. The row is ``sending`` (ours)."""
    try:
        template_id, data = template_payload(services, row.kind, row.data or {})
    except KeyError:
        _finish(services, conn, row, token, NoticeStatus.FAILED, f"no template configured for kind {row.kind!r}")
        return None
    try:
        return services.wechat.send_template(row.openid, template_id, data, row.url or None)
    except WeChatAPIError as exc:
        _failed_send(services, conn, row, token, exc)
    except redis.RedisError as exc:  # the shared token lives in Redis: nothing reached WeChat, so retrying is safe
        _failed_send(services, conn, row, token, WeChatAPIError(None, f"redis: {type(exc).__name__}"))
    return None


def _failed_send(services: Runtime, conn: Connection, row: Any, token: str, exc: WeChatAPIError) -> None:
    code = exc.errcode
    error = f"{code}: {exc.errmsg}"[:500]
    if exc.maybe_sent:
        # No answer, but WeChat may have sent it: give its report time to arrive before deciding (module docstring).
        _set(
            conn, row.id, token, NoticeStatus.SENDING, status=NoticeStatus.UNCONFIRMED, last_error=error, claimed_until=_now(services) + CONFIRM_WAIT
        )
        services.metrics.notices.labels(kind=row.kind, outcome=NoticeStatus.UNCONFIRMED).inc()
        log.warning("notice %s: no answer from WeChat (%s); waiting for its delivery report", row.id, error)
        return
    if code in UNDELIVERABLE:
        _finish(services, conn, row, token, NoticeStatus.UNDELIVERABLE, error)
        if code in alerts.REFUSED_FOR_GOOD and row.kind in alerts.KINDS:
            with conn.begin():
                alerts.pause(conn, row.openid, code)
        return
    attempts = row.attempts + 1
    if code in PERMANENT or attempts >= services.cfg.notices.max_attempts:
        _finish(services, conn, row, token, NoticeStatus.FAILED, error)
        return
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1)) * random.uniform(1.0, 1.2)
    _set(
        conn,
        row.id,
        token,
        NoticeStatus.SENDING,
        status=NoticeStatus.PENDING,
        last_error=error,
        claimed_by=None,
        claimed_until=None,
        next_attempt_at=_now(services) + timedelta(seconds=delay),
    )
    services.metrics.notices.labels(kind=row.kind, outcome="retry").inc()
    log.info("notice %s: %s, retry in %.0f s", row.id, error, delay)


def _finish(services: Runtime, conn: Connection, row: Any, token: str, status: NoticeStatus, error: str) -> None:
    _set(conn, row.id, token, NoticeStatus.SENDING, status=status, last_error=error, claimed_until=None)
    services.metrics.notices.labels(kind=row.kind, outcome=status).inc()
    log.warning("notice %s (%s) %s: %s", row.id, row.kind, status, error)


def remember_send(services: Runtime, row_id: int, openid: str, msgid: str) -> str | None:
    """Keep row→msgid and msgid→row in Redis as soon as WeChat accepted a send; returns the status of this msgid's
    report if it came before (None otherwise, or when Redis is down: the database mark still follows)."""
    if not msgid:
        return None
    keys = [_key(services, "sent", msgid), _key(services, "row", row_id), _key(services, "report", msgid)]
    try:
        report = _remember_script(services.store.r)(keys=keys, args=[row_id, msgid, REPORT_TTL])
    except redis.RedisError as exc:
        log.warning("notice %s: msgid not kept in Redis (%s); a worker death before the mark would leave it uncertain", row_id, type(exc).__name__)
        return None
    return _report_status(report, openid)


# remember_send's two writes and its read as one script: atomic like a MULTI/EXEC pipeline, one command instead of five
_REMEMBER = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return redis.call('GET', KEYS[3])
"""


@functools.lru_cache(maxsize=16)
def _remember_script(r: redis.Redis) -> Any:
    return r.register_script(_REMEMBER)


def recorded_send(services: Runtime, msgid: str) -> int | None:
    """The row a msgid belongs to, as kept by ``remember_send`` (None: not one of our recent sends)."""
    row_id = services.store.r.get(_key(services, "sent", msgid))
    return int(row_id) if row_id else None


def record_job_finish(services: Runtime, db: Any, openid: str, msgid: str, status: str) -> bool:
    """TEMPLATESENDJOBFINISH: store WeChat's delivery status on the row with this msgid. A report that finds no row
    is kept by msgid for the send that will record it (False: not one of ours yet)."""
    status = status[:64]
    if _set_delivery(db, OutboxNotice.msgid == msgid, openid, status):
        return True
    now = _now(services).replace(tzinfo=UTC).timestamp()
    reports = _key(services, "reports", openid)
    pipe = services.store.r.pipeline()
    pipe.set(_key(services, "report", msgid), json.dumps({"openid": openid, "status": status}), ex=REPORT_TTL)
    pipe.zadd(reports, {msgid: now})
    pipe.zremrangebyscore(reports, "-inf", now - REPORT_TTL)
    pipe.expire(reports, REPORT_TTL)
    pipe.get(_key(services, "sent", msgid))
    row_id = pipe.execute()[-1]
    return bool(row_id) and _set_delivery(db, OutboxNotice.id == int(row_id), openid, status)


def _set_delivery(db: Any, which: Any, openid: str, status: str) -> bool:
    o = OutboxNotice
    stmt = update(o).where(which, o.openid == openid).values(delivery_status=status)
    return bool(db.execute(stmt.execution_options(synchronize_session=False)).rowcount)


def _key(services: Runtime, *parts: object) -> str:
    return services.store.key("outbox", *parts)


def _report_status(raw: str | None, openid: str) -> str | None:
    report = json.loads(raw) if raw else None
    return report["status"] if report and report.get("openid") == openid else None


def recover_expired(services: Runtime, limit: int = 100) -> int:
    """Rows whose lease ran out while ``sending`` (worker died) or ``unconfirmed`` (no answer): see the docstring."""
    try:
        return _recover(services, limit)
    except redis.RedisError as exc:  # cannot check WeChat's reports now: leave the rows for the next pass
        log.warning("recovering expired notices postponed: %s", type(exc).__name__)
        return 0


def _recover(services: Runtime, limit: int) -> int:
    now = _now(services)
    o = OutboxNotice
    r = services.store.r
    with services.session() as db, db.begin():
        rows = list(
            db.execute(
                select(o)
                .where(o.status.in_((NoticeStatus.SENDING, NoticeStatus.UNCONFIRMED)), o.claimed_until < now)
                .order_by(o.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if not rows:
            return 0
        msgids = r.mget([_key(services, "row", row.id) for row in rows])
        for row, msgid in zip(rows, msgids, strict=True):
            began = (row.claimed_until or now) - LEASE - (CONFIRM_WAIT if row.status == NoticeStatus.UNCONFIRMED else timedelta())
            if msgid:
                report = r.get(_key(services, "report", str(msgid)))
                row.status, row.msgid, row.sent_at = NoticeStatus.SENT, str(msgid)[:32], began
                row.delivery_status = row.delivery_status or _report_status(str(report) if report is not None else None, row.openid)
                row.last_error = "its worker stopped before recording it; WeChat had accepted it (msgid kept)"
            elif unexplained := _unexplained_reports(services, db, row.openid, began):
                row.status = NoticeStatus.UNCERTAIN
                row.last_error = (
                    f"no answer from WeChat; a delivery report to this user matching no notice (msgid "
                    f"{', '.join(unexplained[:3])}) came since: probably this one. Check, then mark-sent or requeue"
                )[:500]
                log.error("notice %s (%s) is uncertain: no answer, and an unmatched delivery report", row.id, row.kind)
            else:
                row.status, row.next_attempt_at, row.claimed_by = NoticeStatus.PENDING, now, None
                row.last_error = "no answer from WeChat and no delivery report: it did not send it"
            row.claimed_until = None
    return len(rows)


def _unexplained_reports(services: Runtime, db: Any, openid: str, since: datetime) -> list[str]:
    """Msgids of this user's reports since ``since`` (less a few seconds of clock skew) that belong to none of our
    sends: neither kept by ``remember_send`` nor on a row."""
    start = since.replace(tzinfo=UTC).timestamp() - 5
    msgids = services.store.r.zrangebyscore(_key(services, "reports", openid), start, "+inf")
    if not msgids:
        return []
    known = services.store.r.mget([_key(services, "sent", m) for m in msgids])
    left = [str(m) for m, row_id in zip(msgids, known, strict=True) if row_id is None]
    if left:
        left = sorted(set(left) - set(db.execute(select(OutboxNotice.msgid).where(OutboxNotice.msgid.in_(left))).scalars()))
    return left


# --- the operator's decisions (``cardbot notices``, the console) ------------------------------------------------
NEEDS_AN_OPERATOR = (NoticeStatus.UNCERTAIN, NoticeStatus.FAILED, NoticeStatus.UNDELIVERABLE)


def needing_operator(services: Runtime, statuses: tuple[NoticeStatus, ...] = NEEDS_AN_OPERATOR) -> list[OutboxNotice]:
    """Notices the outbox leaves to an operator, oldest first."""
    with services.session() as db:
        return list(db.execute(select(OutboxNotice).where(OutboxNotice.status.in_(statuses)).order_by(OutboxNotice.id)).scalars())


def notices_to(services: Runtime, openids: list[str], limit: int = 30) -> list[OutboxNotice]:
    """The newest notices to these accounts (a student's page in the console)."""
    if not openids:
        return []
    with services.session() as db:
        query = select(OutboxNotice).where(OutboxNotice.openid.in_(openids)).order_by(OutboxNotice.id.desc()).limit(limit)
        return list(db.execute(query).scalars())


def settle_by_operator(services: Runtime, notice_id: int, status: NoticeStatus, note: str) -> OutboxNotice:
    """An operator's decision on a notice that needs one: ``pending`` sends it again, ``sent`` closes it unsent."""
    if status not in (NoticeStatus.PENDING, NoticeStatus.SENT):
        raise ValueError(status)
    with services.session() as db, db.begin():
        row = db.execute(select(OutboxNotice).where(OutboxNotice.id == notice_id).with_for_update()).scalar_one_or_none()
        if row is None:
            raise UserError("notice_not_found", 404, id=notice_id)
        if row.status not in NEEDS_AN_OPERATOR:
            raise UserError("notice_nothing_to_decide", 409, id=notice_id, state=row.status)
        now = services.clock.utcnow()
        row.status, row.last_error, row.claimed_by, row.claimed_until = status, note, None, None
        if status == NoticeStatus.PENDING:
            row.next_attempt_at = now
        else:
            row.sent_at = row.sent_at or now
        return row
