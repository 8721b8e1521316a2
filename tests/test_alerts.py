"""Issue 14.3: the alerts a student chooses on /alerts, triggered by signed /integration/card-entries pushes and sent
through the outbox against the emulator's template API: merge, quiet hours, daily cap, 43101 and 43004, never twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from typing import Any

import requests
from sqlalchemy import select

from bot.alerts import LARGE, LOW, SPEND, queue_due
from bot.clock import SCHOOL_TZ
from models import AlertSettings, Cardholder, LedgerEntry, OutboxNotice, ledger_sum
from models.enums import NoticeStatus
from tests.support import autodebit as ad
from tests.support.autodebit import drain, notices, templates
from tests.support.factories import bind, make_cardholder
from tests.support.topup import logged_in, student

OPENID = "oAlertsStudent0000000001"
PARENT = "oAlertsParent00000000001"
NO = "20230001"


def at_local(hour: int, minute: int = 0) -> datetime:
    """Tomorrow at this school time: ahead of real time, so the business clock (not the real one) decides when the
    outbox may send (it never sends before real time) and a shift releases held alerts."""
    return datetime.combine(date.today() + timedelta(days=2), time(hour, minute), tzinfo=SCHOOL_TZ)


def setup(live: Any, *, balance_fen: int = 10000, lang: str = "zh", **choice: Any) -> Any:
    card_id = student(live, OPENID, balance_fen=balance_fen, lang=lang)
    with live.emulator.lock:
        live.emulator.followers.add(OPENID)
    phone = logged_in(live, OPENID)
    body = {"spend": True, "large_spend": True, "large_threshold": "50", "low_balance": True, "low_threshold": "20"} | choice
    r = phone.http.post(live.url + "/api/alerts", json=body, headers={"X-CSRF-Token": phone.csrf}, timeout=10)
    assert r.status_code == 200, r.text
    return card_id, phone


def spend(live: Any, amount_fen: int, entry_id: str | None = None) -> None:
    r = ad.entry(live, NO, -amount_fen, entry_id=entry_id)
    assert r.status_code == 200, r.text


def rows(live: Any, kind: str) -> list[OutboxNotice]:
    return notices(live, kind)


def sent(live: Any, template_id: str) -> list[dict[str, Any]]:
    return [m for m in templates(live, OPENID) if m["template_id"] == template_id]


def test_settings_page_and_api(live: Any) -> None:
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    page = phone.http.get(live.url + "/alerts", timeout=10)
    assert page.status_code == 200 and "提醒设置" in page.text and 'id="low_balance"' in page.text
    state = phone.http.get(live.url + "/api/alerts", timeout=10).json()
    assert state["low_threshold"] == 20 and not state["spend"]  # nothing until the student chooses
    bad = phone.http.post(live.url + "/api/alerts", json={"spend": True, "low_threshold": "0"}, headers={"X-CSRF-Token": phone.csrf}, timeout=10)
    assert bad.status_code == 400 and "整数" in bad.json()["message"]
    ok = phone.http.post(
        live.url + "/api/alerts", json={"spend": True, "low_balance": True, "low_threshold": "30"}, headers={"X-CSRF-Token": phone.csrf}, timeout=10
    )
    assert ok.status_code == 200 and ok.json()["spend"] and ok.json()["low_threshold"] == 30
    no_csrf = phone.http.post(live.url + "/api/alerts", json={"spend": False}, timeout=10)
    assert no_csrf.status_code == 403

    # with auto top-up signed the low-balance alert is not offered: the card is topped up instead
    ad.bank(live).open(ad.GOOD_ACCOUNT, 100_000)
    assert ad.logged_in(live, OPENID).sign().status_code == 201
    page = phone.http.get(live.url + "/alerts", timeout=10)
    assert 'id="low_balance"' not in page.text and 'id="low-autodebit"' in page.text


def test_spends_merge_and_replays_add_nothing(live: Any) -> None:
    live.services.clock.freeze(at_local(12, 0))
    setup(live, large_threshold="500")
    spend(live, 1200, entry_id="E1")
    spend(live, 800, entry_id="E2")
    spend(live, 800, entry_id="E2")  # the card system's retry of the same entry
    spend(live, 500, entry_id="E3")
    [row] = rows(live, SPEND)
    assert row.data["_count"] == 3 and row.data["_fen"] == 2500
    drain(live)
    assert sent(live, "TPL_SPEND_ALERT") == []  # held for the merge window
    live.services.clock.shift(timedelta(minutes=live.cfg.alerts.merge_minutes, seconds=1))
    drain(live)
    [alert] = sent(live, "TPL_SPEND_ALERT")
    assert alert["data"]["amount1"] == "25.00元" and alert["data"]["thing2"].endswith("等3笔") and alert["data"]["amount3"] == "75.00元"
    spend(live, 100, entry_id="E4")  # after the window: a new alert
    assert len(rows(live, SPEND)) == 2


def test_concurrent_pushes_for_one_card_post_and_alert_each_entry_once(make_live: Any) -> None:
    """Ten spends of one card pushed at once, each twice (the card system's retry racing the first copy), more than
    the balance covers: every entry posted at most once under the card's lock, the balance never below zero and equal
    to the ledger, one large-spend alert per posted entry and one spend alert holding them all (the merge under
    concurrency)."""
    live = make_live(alerts={"daily_cap": 50})
    live.services.clock.freeze(at_local(12, 0))
    card_id, _ = setup(live, balance_fen=5000, low_balance=False, large_threshold="1")
    gate = threading.Barrier(20)

    def push(i: int) -> requests.Response:
        gate.wait()
        return ad.entry(live, NO, -600, entry_id=f"C{i // 2}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(push, range(20)))
    posted = {a.json()["entry_id"] for a in answers if a.status_code == 200}
    refused = [a for a in answers if a.status_code != 200]
    assert len(posted) == 8 and all(a.status_code == 409 and a.json()["error"] == "insufficient_balance" for a in refused)
    assert sorted(a.json()["duplicate"] for a in answers if a.status_code == 200).count(False) == 8
    with live.services.session() as db:
        assert db.get(Cardholder, card_id).balance_fen == 5000 - 8 * 600 == ledger_sum(db, card_id)
        spends = db.execute(select(LedgerEntry.ref).where(LedgerEntry.cardholder_id == card_id, LedgerEntry.kind == "spend")).scalars().all()
    assert sorted(spends) == sorted(posted)
    assert sorted(r.dedup_key for r in rows(live, LARGE)) == sorted(f"large:{e}:{OPENID}" for e in posted)
    [merged] = rows(live, SPEND)
    assert merged.data["_count"] == 8 and merged.data["_fen"] == 8 * 600


def test_quiet_hours_hold_spends_not_large_ones(live: Any) -> None:
    live.services.clock.freeze(at_local(23, 30))
    setup(live)
    spend(live, 6000)  # large (≥ 50) and a spend
    spend(live, 300)
    live.services.clock.shift(timedelta(minutes=10))  # past the merge window, still quiet
    drain(live)
    assert len(sent(live, "TPL_SPEND_ALERT")) == 1  # the large-spend alert, urgent
    assert rows(live, LARGE)[0].status == NoticeStatus.SENT
    [held] = rows(live, SPEND)
    assert held.status == NoticeStatus.PENDING and held.data["_count"] == 2  # quiet hours kept merging
    live.services.clock.freeze(at_local(23, 30) + timedelta(hours=8))  # 07:30: quiet hours over
    drain(live)
    assert len(sent(live, "TPL_SPEND_ALERT")) == 2


def test_low_balance_once_when_crossing(live: Any) -> None:
    live.services.clock.freeze(at_local(12, 0))
    setup(live, balance_fen=3000, spend=False, large_spend=False)
    spend(live, 500)  # 25.00: above 20
    spend(live, 600)  # 19.00: crossed
    spend(live, 100)  # 18.00: still below, no second alert
    [low] = rows(live, LOW)
    drain(live)
    [alert] = sent(live, "TPL_LOW_BALANCE")
    assert alert["data"]["amount1"] == "19.00元" and alert["data"]["amount2"] == "20.00元"
    assert low.openid == OPENID


def test_daily_cap(make_live: Any) -> None:
    live = make_live(alerts={"daily_cap": 3})
    live.services.clock.freeze(at_local(12, 0))
    setup(live, spend=False, low_balance=False, large_threshold="1")
    for _ in range(5):
        spend(live, 100)
    assert len(rows(live, LARGE)) == 3
    live.services.clock.shift(timedelta(days=1))
    spend(live, 100)
    assert len(rows(live, LARGE)) == 4  # a new day


def test_refused_template_and_unfollow_pause_alerts(live: Any) -> None:
    live.services.clock.freeze(at_local(12, 0))
    _, phone = setup(live, spend=False, low_balance=False, large_threshold="1")
    with live.emulator.lock:
        live.emulator.refused_templates.add((OPENID, "TPL_SPEND_ALERT"))
    spend(live, 200)
    drain(live)
    [row] = rows(live, LARGE)
    assert row.status == NoticeStatus.UNDELIVERABLE and row.last_error.startswith("43101") and row.attempts == 1
    spend(live, 200)  # paused: nothing more is queued for a user who refused it
    assert len(rows(live, LARGE)) == 1
    with live.session() as db:
        assert db.get(AlertSettings, OPENID).paused_by == 43101
    assert 'id="paused"' in phone.http.get(live.url + "/alerts", timeout=10).text

    # the student allows it again and saves: alerts resume; then unfollows: 43004, paused again, not retried
    with live.emulator.lock:
        live.emulator.refused_templates.clear()
    r = phone.http.post(
        live.url + "/api/alerts", json={"large_spend": True, "large_threshold": "1"}, headers={"X-CSRF-Token": phone.csrf}, timeout=10
    )
    assert r.status_code == 200 and not r.json()["paused"]
    with live.emulator.lock:
        live.emulator.followers.discard(OPENID)
    spend(live, 200)
    drain(live)
    last = rows(live, LARGE)[-1]
    assert last.status == NoticeStatus.UNDELIVERABLE and last.last_error.startswith("43004")
    live.services.clock.shift(timedelta(hours=2))
    drain(live)
    assert rows(live, LARGE)[-1].attempts == 1


def test_english_alerts_have_no_yuan_sign(live: Any) -> None:
    live.services.clock.freeze(at_local(12, 0))
    setup(live, lang="en", spend=False, low_balance=False)
    spend(live, 6000)
    drain(live)
    [alert] = sent(live, "TPL_SPEND_ALERT")
    assert alert["data"]["amount1"] == "60.00 yuan" and "元" not in str(alert["data"]), alert


def test_http_card_system_pushes_trigger_alerts(cs_live: Any) -> None:
    live = cs_live
    live.app.extensions["emulator_cardsys"].open(NO, "张三", "011230", 10000)
    with live.session() as db:
        card = make_cardholder(db, NO)
        bind(db, OPENID, card)
        db.add(AlertSettings(openid=OPENID, spend=False, low_balance=False, low_threshold_fen=2000, large_spend=True, large_threshold_fen=100))
        db.commit()
    r = requests.post(live.url + "/emulator/cardsys/terminals/swipe", json={"student_no": NO, "amount_fen": 1500}, timeout=15)
    assert r.status_code == 200 and r.json()["push"]["status"] == 200, r.text
    [row] = rows(live, LARGE)
    assert row.data["amount"] == "15.00元" and row.data["balance"] == "85.00元"
    with live.session() as db:
        assert db.execute(select(OutboxNotice.id).where(OutboxNotice.kind == SPEND)).first() is None


def _marked(live: Any) -> int:
    with live.session() as db:
        return len(db.execute(select(LedgerEntry.id).where(LedgerEntry.alerts_due.is_(True))).all())


def test_a_spend_is_marked_in_its_transaction_and_its_alerts_queued_once_by_one_worker(make_live: Any) -> None:
    """The entry itself queues nothing: it is marked ``alerts_due`` with its posting; the worker's pass queues the
    alerts of the marked spends in batches and clears each mark with them. Two workers at once: one holds the
    alerts' lock, the other moves on; a pass after that finds nothing; the batches' merges add up."""
    live = make_live(alerts={"daily_cap": 50})
    live.services.clock.freeze(at_local(12, 0))
    setup(live, low_balance=False, large_threshold="5")
    unchosen = "20230002"
    student(live, "oAlertsNoChoice000000001", student_no=unchosen)
    for i in range(7):
        spend(live, 100 + 100 * i, entry_id=f"B{i}")
    assert ad.entry(live, unchosen, -100, entry_id="N1").status_code == 200
    with live.session() as db:  # nothing queued by the pushes; the spends of the card with alerts are marked
        assert db.execute(select(OutboxNotice.id)).first() is None
    assert _marked(live) == 7

    gate = threading.Barrier(2)

    def worker(batch: int) -> int:
        gate.wait()
        return queue_due(live.services, batch)

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(worker, [3, 3]))
    assert sorted(done) == [0, 7] and _marked(live) == 0  # one worker took the lock and did three batches
    assert queue_due(live.services) == 0
    large = rows(live, LARGE)
    assert sorted(r.dedup_key for r in large) == [f"large:B{i}:{OPENID}" for i in (4, 5, 6)]  # 5.00 and more
    [merged] = rows(live, SPEND)
    assert merged.data["_count"] == 7 and merged.data["_fen"] == sum(100 + 100 * i for i in range(7))
    assert merged.dedup_key == f"spend:B0:{OPENID}"


def test_a_held_alert_taken_by_a_worker_meanwhile_leaves_the_next_spends_a_row_of_their_own(live: Any) -> None:
    live.services.clock.freeze(at_local(12, 0))
    setup(live, low_balance=False, large_spend=False)
    spend(live, 300, entry_id="H1")
    [held] = rows(live, SPEND)
    with live.session() as db:  # a worker claims the held row (the merge window over for it) before the next batch
        db.get(OutboxNotice, held.id).claimed_by = "w1:abcd"
        db.commit()
    spend(live, 200, entry_id="H2")
    spend(live, 100, entry_id="H3")
    first, second = rows(live, SPEND)
    assert first.data["_count"] == 1 and first.data["_fen"] == 300
    assert second.dedup_key == f"spend:H2:{OPENID}" and second.data["_count"] == 2 and second.data["_fen"] == 300
