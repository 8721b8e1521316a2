"""Faults, injected for real: Redis and the database go away, hang, or drop every connection in the middle of a
conversation or a payment; WeChat's API answers 502 or nothing; a notify outruns its order's commit.

Each test checks what the student sees (a polite reply inside WeChat's 5 s, never a 500), that the conversation
resumes or restarts cleanly, and (conftest ``books_balance``) that no money was lost, doubled or half-written.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import OperationalError

from bot.credits import deliver_due
from bot.texts import t
from models import CardCredit, OutboxNotice, TopupOrder
from models.db import make_sessionmaker
from tests.support.delivery import NO, credit_log, cs_balance, notify_paid, paid_order
from tests.support.reliability import PASSWORD, REDIS_URL, bindings_of, click, new_card, on_postgres, tally, timed
from tests.support.topup import Phone, card, emu_pay, logged_in, notify, order_row, student, transaction, wait_for

OPENID = "oReliabilityFault0000001"
SORRY = t("zh", "service_unavailable")


# --- Redis -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["down", "blackhole"])
def test_redis_gone_mid_dialog_polite_then_resumes(redis_proxied, fault):
    live, proxy = redis_proxied
    wx = live.pusher()
    new_card(live)
    assert "学号" in click(wx, OPENID, "BIND").content
    assert "姓名" in wx.text(OPENID, "20230001").content

    getattr(proxy, fault)()
    tally("faults injected")
    reply, took = timed(wx.text, OPENID, "张三")
    assert reply.status == 200
    assert took < 5
    assert reply.content == SORRY, reply.raw

    proxy.up()
    assert "密码" in wx.text(OPENID, "张三").content  # the dialog was kept: same step again
    assert "绑定成功" in wx.text(OPENID, PASSWORD).content
    assert bindings_of(live, OPENID) == 1


def test_redis_lost_its_data_mid_dialog_restarts_cleanly(live):
    """A Redis restarted without persistence: the answer is not mistaken for a command; BIND starts over."""
    wx = live.pusher()
    new_card(live)
    click(wx, OPENID, "BIND")
    wx.text(OPENID, "20230001")
    store = live.services.store
    store.r.delete(*store.r.scan_iter(match=store.prefix + "*"))
    tally("faults injected")
    reply = wx.text(OPENID, "张三")
    assert reply.status == 200 and reply.content and "绑定成功" not in reply.content
    assert "学号" in click(wx, OPENID, "BIND").content
    wx.text(OPENID, "20230001")
    wx.text(OPENID, "张三")
    assert "绑定成功" in wx.text(OPENID, PASSWORD).content


def test_redis_connections_killed_mid_run(live, redis_client):
    """CLIENT KILL of exactly this app's connections (as a Redis restart does): the next pushes work."""
    wx = live.pusher()
    new_card(live)
    name = f"victim-{uuid.uuid4().hex[:8]}"
    pool = live.services.store.r.connection_pool
    pool.connection_kwargs["client_name"] = name
    pool.disconnect()
    pool.reset()  # new connection objects, named
    assert "学号" in click(wx, OPENID, "BIND").content
    victims = [c for c in redis_client.client_list() if c.get("name") == name]
    assert victims
    for c in victims:
        redis_client.client_kill_filter(_id=c["id"])
    tally("faults injected")
    reply = wx.text(OPENID, "20230001")
    assert reply.status == 200
    if reply.content == SORRY:  # allowed once; the retry must work
        reply = wx.text(OPENID, "20230001")
    assert "姓名" in reply.content
    wx.text(OPENID, "张三")
    assert "绑定成功" in wx.text(OPENID, PASSWORD).content


def test_redis_down_for_the_h5_api_is_503_not_500(redis_proxied):
    live, proxy = redis_proxied
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    proxy.down()
    tally("faults injected")
    r = phone.order(5000, "quick")
    assert r.status_code < 500 or r.status_code == 503, r.text
    proxy.up()
    assert phone.order(5000, "quick").status_code == 201


# --- the database ------------------------------------------------------------------------------------
@contextmanager
def database_down(live: Any, hung_port: int | None = None) -> Iterator[None]:
    """Point the app's sessions at a database that refuses connections (or, with ``hung_port``, never answers)."""
    port = hung_port or 1
    dead = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none", connect_args={"connect_timeout": 2}, pool_timeout=2)
    svc = live.services
    saved = svc.engine, svc.sessions
    svc.engine, svc.sessions = dead, make_sessionmaker(dead)
    tally("faults injected")
    try:
        yield
    finally:
        svc.engine, svc.sessions = saved
        dead.dispose()


@pytest.mark.parametrize("how", ["refused", "hung"])
def test_database_down_chat_replies_politely_within_5s(live, proxies, how):
    card_id = new_card(live)
    wx = live.pusher()
    student(live, OPENID, card_id=card_id)
    hung = proxies(REDIS_URL) if how == "hung" else None
    if hung:
        hung.blackhole()
    with database_down(live, hung.port if hung else None):
        for push in (lambda: wx.text(OPENID, "余额"), lambda: click(wx, OPENID, "BIND"), lambda: wx.event(OPENID, "subscribe")):
            reply, took = timed(push)
            assert reply.status == 200
            assert took < 5
            assert reply.content in (SORRY, t("zh", "processing")), reply.raw
        r = requests.get(live.url + "/healthz", timeout=10)
        assert r.status_code == 503 and r.json()["checks"]["database"].startswith("down")
    assert "100.50" in wx.text(OPENID, "余额").content


def test_database_down_for_api_and_notify_then_retry_credits_once(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=2000)
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    tx = transaction(live, body["order_no"])
    with database_down(live):
        assert phone.order(5000, "quick").status_code == 503
        assert phone.status(body["order_no"]).status_code == 503
        r = notify(live, tx)
        assert r.status_code >= 500 and r.status_code != 500, r.text  # WeChat Pay retries on 5xx
    assert order_row(live, body["order_no"]).status == "created"
    assert notify(live, tx).status_code in (200, 204)
    assert notify(live, tx).status_code in (200, 204)
    assert card(live, card_id).balance_fen == 7000


@contextmanager
def cut_at(live: Any, statement: str, proxy: Any = None) -> Iterator[dict[str, int]]:
    """Lose the database connection just before the first statement containing ``statement`` (mid-transaction).

    On PostgreSQL the proxy really drops the TCP connections; on SQLite the driver's failure is raised.
    """
    seen = {"cuts": 0}

    def before(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        if statement in sql and not seen["cuts"]:
            seen["cuts"] += 1
            tally("faults injected")
            if proxy is not None:
                proxy.reset()
            else:
                raise OperationalError(sql, params, Exception("disk I/O error"))

    engine = live.services.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_connection_lost_mid_payment_writes_nothing_then_retry_credits_once(db_live):
    live, proxy = db_live
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=2000)
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    tx = transaction(live, body["order_no"])
    with cut_at(live, "INSERT INTO card_credits", proxy) as seen:
        r = notify(live, tx)
    assert seen["cuts"] == 1
    assert r.status_code == 503, r.text
    assert order_row(live, body["order_no"]).status == "created"  # the order's UPDATE was rolled back with it
    with live.session() as db:
        assert db.execute(select(CardCredit)).first() is None
        assert db.execute(select(OutboxNotice)).first() is None
    assert card(live, card_id).balance_fen == 2000
    assert notify(live, tx).status_code in (200, 204)
    assert card(live, card_id).balance_fen == 7000


def test_connection_lost_mid_delivery_keeps_the_payment_and_delivers_once(make_live, proxies, database_url):
    """``http`` card system: the payment committed and the card system credited, then the database connection died
    while its answer was being recorded. WeChat is told OK (the payment is ours), the credit stays owed, and the
    worker's next try asks the card system about the ref and records it: credited exactly once. (With the ``ledger``
    card system the credit is part of the payment's own transaction: the test above.)"""
    proxy = proxies(database_url) if on_postgres(database_url) else None
    db = {"database": {"url": proxy.url_for(database_url)}} if proxy else {}
    live = make_live(cardsystem={"adapter": "http", "timeout_seconds": 2.0}, **db)
    student(live, OPENID, student_no=NO)
    phone, order_no = paid_order(live, OPENID)
    with cut_at(live, "UPDATE card_credits SET status", proxy) as seen:
        assert notify(live, transaction(live, order_no)).status_code in (200, 204)
        live.services.finish_deliveries()  # the delivery after the answer, cut while recording, is over
    assert seen["cuts"] == 1
    assert order_row(live, order_no).status == "paid"
    assert credit_log(live) == [order_no] and cs_balance(live) == 10000 + 5000  # the card system took it
    with live.session() as s:
        [owed] = s.execute(select(CardCredit)).scalars()
        assert (owed.status, owed.ref, owed.waiting_for) == ("pending", order_no, "no_answer")
    live.services.clock.shift(timedelta(minutes=11))
    assert deliver_due(live.services) == {"delivered": 1}  # asked about the ref, not sent again
    assert deliver_due(live.services) == {}
    assert notify_paid(live, order_no) in (200, 204)
    assert credit_log(live) == [order_no] and cs_balance(live) == 15000
    assert phone.status(order_no).json()["credit"] == "delivered"


def test_connection_lost_mid_binding_binds_nothing_and_retry_works(db_live):
    live, proxy = db_live
    wx = live.pusher()
    new_card(live)
    click(wx, OPENID, "BIND")
    wx.text(OPENID, "20230001")
    wx.text(OPENID, "张三")
    with cut_at(live, "INSERT INTO bindings", proxy) as seen:
        reply, took = timed(wx.text, OPENID, PASSWORD)
    assert seen["cuts"] == 1
    assert reply.status == 200 and took < 5
    assert reply.content == SORRY, reply.raw
    assert bindings_of(live, OPENID) == 0
    click(wx, OPENID, "BIND")
    wx.text(OPENID, "20230001")
    wx.text(OPENID, "张三")
    assert "绑定成功" in wx.text(OPENID, PASSWORD).content
    assert bindings_of(live, OPENID) == 1


def test_postgres_backends_terminated_mid_run(make_live, database_url):
    """pg_terminate_backend on every connection of the app (a PostgreSQL restart): the next requests just work."""
    if not on_postgres(database_url):
        pytest.skip("PostgreSQL only")
    live = make_live()
    wx = live.pusher()
    card_id = new_card(live)
    student(live, OPENID, card_id=card_id)
    assert "100.50" in wx.text(OPENID, "余额").content
    phone = logged_in(live, OPENID)
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        others = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ended = list(conn.execute(text(others)).scalars())
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:ended AS int[])) AS pid"), {"ended": ended})
        # pg_terminate_backend only signals: as after a restart, the next request comes once those backends are gone
        # (the pool then finds each socket closed at checkout); a read in a dying backend's last milliseconds is
        # answered "busy", as test_balance_click_behind_a_table_lock_is_answered_in_time shows for a stuck read
        gone = text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = ANY(:ended)")
        assert wait_for(lambda: conn.execute(gone, {"ended": ended}).scalar_one(), timeout=5)
    n = len(ended)
    engine.dispose()
    assert n >= 1
    tally("faults injected", n)
    assert "100.50" in wx.text(OPENID, "余额").content
    assert phone.order(5000, "quick").status_code == 201


def test_balance_click_behind_a_table_lock_is_answered_in_time(make_live, database_url):
    """A balance click whose one read waits behind a lock (a migration holding ``cardholders``) is answered inline:
    the read's statement timeout ends the wait, so the reply says "busy" well inside WeChat's 5 s."""
    if not on_postgres(database_url):
        pytest.skip("PostgreSQL only")
    live = make_live()
    wx = live.pusher()
    student(live, OPENID, card_id=new_card(live))
    assert "100.50" in wx.text(OPENID, "余额").content
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE cardholders IN ACCESS EXCLUSIVE MODE"))
            t0 = time.monotonic()
            reply = wx.text(OPENID, "余额").content
            took = time.monotonic() - t0
            conn.rollback()
    finally:
        engine.dispose()
    assert reply == t("zh", "service_unavailable")
    assert 1.5 < took < 4.0, took
    assert "100.50" in wx.text(OPENID, "余额").content


# --- WeChat's API ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["502", "silent"])
def test_oauth_exchange_failing_is_refused_politely(make_live, bad_wechat, fault):
    """The page's OAuth code exchange against a WeChat API that fails: 4xx/503 in bounded time, no session."""
    live = make_live(wechat={"api_base_url": bad_wechat[fault], "request_timeout_seconds": 1.0})
    student(live, OPENID)
    phone = Phone(live, OPENID)
    tally("faults injected")
    t0 = time.monotonic()
    r = phone.http.get(live.url + "/topup", timeout=15)
    assert time.monotonic() - t0 < 5
    assert r.status_code in (403, 502, 503), (r.status_code, r.text[:200])
    assert phone.order(5000, "quick").status_code == 401


# --- a notify that outruns the order's commit ------------------------------------------------------
def test_notify_before_the_order_is_committed_is_credited_once_by_the_retry(live):
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID, balance_fen=2000)
    phone = logged_in(live, OPENID)
    body = phone.order(5000, "quick").json()
    phone.pay(body["pay_params"])
    order_no = body["order_no"]
    tx = transaction(live, order_no)
    with live.session() as db:  # take the committed row out, to put it back in a transaction that has not committed
        row = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one()
        snapshot = {c.key: getattr(row, c.key) for c in TopupOrder.__mapper__.column_attrs}
        db.delete(row)
        db.commit()
    tally("faults injected")
    writer = live.session()
    writer.begin()
    writer.add(TopupOrder(**snapshot))
    writer.flush()
    first: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: first.update(r=notify(live, tx)))
    sender.start()
    time.sleep(0.5)
    writer.commit()
    writer.close()
    sender.join(15)
    assert first["r"].status_code != 500
    assert first["r"].status_code in (200, 204, 400), first["r"].text  # 400: unknown order yet, WeChat retries
    assert notify(live, tx).status_code in (200, 204)
    assert order_row(live, order_no).status == "paid"
    assert card(live, card_id).balance_fen == 7000


def test_template_sends_through_wechat_5xx_and_timeouts_arrive_once(make_live):
    """WeChat answers 502 twice, then times out twice: the notice waits, retries with backoff and arrives once."""
    from datetime import timedelta

    from bot import outbox
    from models import Notice
    from models.ledger import queue_notice

    live = make_live(wechat={"request_timeout_seconds": 1.0})
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    data = {"amount": "50.00元", "fee": "0.15元", "balance": "70.00元", "time": "2026-11-25 10:00:00"}
    with live.session() as db, db.begin():
        queue_notice(db, Notice(OPENID, "topup_receipt", data, url=live.url + "/topup"), "fault:receipt")
    live.emulator.faults["template"] = ["5xx", "5xx", "timeout", "timeout"]
    tally("faults injected", 4)
    for _ in range(4):  # 502 (retried once inside the client), then two unanswered sends, then delivery
        outbox.drain_once(live.services, "faulty")
        live.services.clock.shift(timedelta(seconds=outbox.BACKOFF_MAX_SECONDS))
    outbox.drain_once(live.services, "faulty")  # the last unanswered send: no delivery report, so back to pending
    outbox.drain_once(live.services, "faulty")
    with live.session() as db:
        row = db.execute(select(OutboxNotice)).scalar_one()
    # 1: two 502s (the client retries a refused request once); 2 and 3: unanswered, not resent blindly; 4: delivered
    assert row.status == "sent" and row.attempts == 4, (row.status, row.attempts, row.last_error)
    with live.emulator.lock:
        assert len([m for m in live.emulator.inbox.get(OPENID, []) if m["kind"] == "template"]) == 1


def test_template_sent_but_unanswered_is_not_sent_again(make_live):
    """WeChat sends the notice but its answer times out: its report comes with a msgid we never saw, which cannot be
    matched to the row — so the row is left 'uncertain' for an operator, naming that msgid; no second send."""
    from datetime import timedelta

    from bot import outbox
    from models import Notice
    from models.ledger import queue_notice

    live = make_live(wechat={"request_timeout_seconds": 1.0}, emulator={"push_delay_seconds": 0.0})
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    data = {"amount": "50.00元", "fee": "0.15元", "balance": "70.00元", "time": "2026-11-25 10:00:00"}
    with live.session() as db, db.begin():
        queue_notice(db, Notice(OPENID, "topup_receipt", data, url=live.url + "/topup"), "fault:slow-receipt")
    live.emulator.faults["template_slow"] = [1]
    tally("faults injected", 1)
    outbox.drain_once(live.services, "slow")
    with live.session() as db:
        assert db.execute(select(OutboxNotice.status)).scalar_one() == "unconfirmed"
    wait_until(lambda: [p for p in list(live.emulator.pushes) if p.get("status") == 200], 10)  # its report was taken
    live.services.clock.shift(outbox.CONFIRM_WAIT + timedelta(seconds=1))
    for _ in range(3):
        outbox.drain_once(live.services, "slow")
    with live.session() as db:
        row = db.execute(select(OutboxNotice)).scalar_one()
    with live.emulator.lock:
        sent = [m for m in live.emulator.inbox.get(OPENID, []) if m["kind"] == "template"]
    assert len(sent) == 1
    assert row.status == "uncertain" and row.attempts == 1 and row.msgid is None, (row.status, row.attempts, row.last_error)
    assert str(sent[0]["msgid"]) in row.last_error


def test_redis_down_while_the_outbox_sends_loses_no_notice(redis_proxied):
    """The access token lives in Redis: with Redis gone nothing can reach WeChat, so the notice must be retried
    later, not left 'sending' and then written off as 'uncertain' though it was never sent."""
    from datetime import timedelta

    from bot import outbox
    from models import Notice
    from models.ledger import queue_notice

    live, proxy = redis_proxied
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    data = {"amount": "50.00元", "fee": "0.15元", "balance": "70.00元", "time": "2026-11-25 10:00:00"}
    with live.session() as db, db.begin():
        queue_notice(db, Notice(OPENID, "topup_receipt", data, url=live.url + "/topup"), "fault:redis-outbox")
    proxy.down()
    tally("faults injected")
    with contextlib.suppress(Exception):  # the worker loop survives this; what matters is the row
        outbox.drain_once(live.services, "no-redis")
    proxy.up()
    for _ in range(3):
        live.services.clock.shift(outbox.LEASE + timedelta(seconds=outbox.BACKOFF_MAX_SECONDS))
        outbox.drain_once(live.services, "redis-back")
    with live.session() as db:
        row = db.execute(select(OutboxNotice)).scalar_one()
    with live.emulator.lock:
        got = len([m for m in live.emulator.inbox.get(OPENID, []) if m["kind"] == "template"])
    assert (row.status, got) == ("sent", 1), (row.status, row.last_error, got)


@pytest.mark.parametrize("wechat", ["up", "5xx"])
def test_slow_card_system_answers_processing_then_the_late_reply_or_nothing(make_live, wechat):
    """A card system slower than the reply budget (the balance handler calls out to it, so it runs on the pool):
    WeChat gets "processing" in time; the real answer follows as a customer-service message, and a WeChat 5xx on
    that send is survived (logged, next pushes served). A hung database is the other case: handlers that only
    touch the database answer within its timeouts (test_database_down_chat_replies_politely_within_5s)."""
    live = make_live(
        wechat={"reply_budget_seconds": 0.5, "request_timeout_seconds": 1.0},
        cardsystem={"adapter": "http", "timeout_seconds": 4.0, "read_timeout_seconds": 4.0},
    )
    wx = live.pusher()
    click(wx, OPENID, "BIND")
    wx.text(OPENID, "20230001")
    wx.text(OPENID, "张三")
    assert "绑定成功" in wx.text(OPENID, "151020").content  # the demo roster's card in the emulator's card system
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    if wechat == "5xx":
        live.emulator.faults["custom"] = "5xx"
    cardsys = live.app.extensions["emulator_cardsys"]
    cardsys.latency = 2.5
    tally("faults injected")
    reply, took = timed(click, wx, OPENID, "BALANCE")
    assert reply.status == 200 and took < 2
    assert reply.content == t("zh", "processing")

    def late() -> list[Any]:
        with live.emulator.lock:
            return [m for m in live.emulator.inbox.get(OPENID, []) if m["kind"] == "customer_service"]

    if wechat == "up":
        got = wait_until(late, 8)
        assert "余额：100.00 元" in got[0]["content"]["content"]
    else:
        time.sleep(3)
        assert late() == []
    cardsys.latency = 0
    live.emulator.faults.pop("custom", None)
    assert "余额：100.00 元" in click(wx, OPENID, "BALANCE").content


def wait_until(cond: Any, timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := cond():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
