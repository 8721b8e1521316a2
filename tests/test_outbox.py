"""The notice outbox against the emulator's template-message API: mapped template keys and clean values, retries
with backoff (45009, 5xx, stale tokens), 43004 undeliverable, quiet hours, TEMPLATESENDJOBFINISH recorded, and never
a second send — not after a worker died between sending and marking, not with two workers draining at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot import outbox
from bot.outbox import clean_value, drain_once
from models import Notice
from models.ledger import queue_notice
from tests.support.autodebit import at, drain, notices, templates, wait_for

OPENID = "oOutboxUser0000000000001"
RECEIPT = {"amount": "50.00元", "fee": "0.15元", "balance": "123.45元", "time": "2026-11-25 12:00"}


def follow(live, *openids):
    with live.emulator.lock:
        live.emulator.followers.update(openids)


def queue(live, openid=OPENID, kind="topup_receipt", data=None, urgent=True, key=None):
    with live.session() as db, db.begin():
        row = queue_notice(db, Notice(openid, kind, dict(data or RECEIPT), url=live.url + "/bills", urgent=urgent), key or f"t:{openid}:{kind}")
        db.flush()
        return row.id


def row(live, row_id):
    return next(n for n in notices(live) if n.id == row_id)


def test_sent_with_the_accounts_template_keys_and_job_finish_recorded(live):
    follow(live, OPENID)
    rid = queue(live)
    assert drain(live) == 1
    [msg] = templates(live, OPENID)
    assert msg["template_id"] == "TPL_TOPUP_RECEIPT"
    assert msg["data"] == {"amount1": "50.00元", "amount2": "0.15元", "amount3": "123.45元", "time4": "2026-11-25 12:00"}
    assert "first" not in msg["data"] and "remark" not in msg["data"]
    sent = row(live, rid)
    assert sent.status == "sent" and sent.msgid == str(msg["msgid"]) and sent.attempts == 1
    assert wait_for(lambda: row(live, rid).delivery_status) == "success"  # the emulator's push back to /wechat


def test_values_are_one_line_without_emoji_and_at_most_20_characters(live):
    assert clean_value("余额\n充足 😀 ok") == "余额 充足 ok"
    assert clean_value("x" * 25) == "x" * 19 + "…"
    assert clean_value("☕️ coffee") == "coffee"
    follow(live, OPENID)
    queue(live, data={**RECEIPT, "balance": "一二三四五六七八九十一二三四五六七八九十一二", "time": "😀\r\n2026"})
    drain(live)
    [msg] = templates(live, OPENID)  # the emulator refuses (47003) anything longer than 20 or with line breaks
    assert len(msg["data"]["amount3"]) == 20 and msg["data"]["time4"] == "2026"


def test_43004_not_following_is_undeliverable_and_not_retried(live):
    rid = queue(live)
    assert drain(live) == 1
    r = row(live, rid)
    assert r.status == "undeliverable" and r.last_error.startswith("43004")
    live.services.clock.shift(timedelta(hours=3))
    assert drain(live) == 0 and templates(live, OPENID) == []


def test_45009_quota_retries_later_with_backoff(live):
    follow(live, OPENID)
    live.emulator.faults["template"] = [45009, 45009]
    rid = queue(live)
    assert drain(live) == 1
    r = row(live, rid)
    assert r.status == "pending" and r.last_error.startswith("45009") and r.attempts == 1
    first_wait = r.next_attempt_at - live.services.clock.utcnow()
    assert timedelta(seconds=29) < first_wait < timedelta(seconds=40)
    assert drain(live) == 0  # not due yet
    live.services.clock.shift(timedelta(seconds=40))
    assert drain(live) == 1
    r = row(live, rid)
    assert r.status == "pending" and r.attempts == 2
    assert r.next_attempt_at - live.services.clock.utcnow() > timedelta(seconds=59)  # doubled
    live.services.clock.shift(timedelta(seconds=75))
    assert drain(live) == 1
    assert row(live, rid).status == "sent" and len(templates(live, OPENID)) == 1


def test_5xx_and_network_errors_retry(live):
    follow(live, OPENID)
    live.emulator.faults["template"] = ["5xx", "5xx"]  # WeChatAPI retries a network error once itself
    rid = queue(live)
    drain(live)
    assert row(live, rid).status == "pending"
    live.services.clock.shift(timedelta(minutes=1))
    drain(live)
    assert row(live, rid).status == "sent"


def test_gives_up_after_max_attempts(make_live):
    live = make_live(notices={"max_attempts": 2})
    follow(live, OPENID)
    live.emulator.faults["template"] = 45009
    rid = queue(live)
    drain(live)
    live.services.clock.shift(timedelta(minutes=5))
    drain(live)
    assert row(live, rid).status == "failed"


def test_40001_stale_token_is_refreshed_once_and_sent(live):
    follow(live, OPENID)
    api = live.services.wechat
    api.client.session.set(api.client.access_token_key, "EMUstaletokenfromanotherprocess", 7200)
    fetched = live.emulator.token_fetches
    rid = queue(live)
    drain(live)
    assert row(live, rid).status == "sent"
    assert live.emulator.token_fetches == fetched + 1
    # a token WeChat keeps rejecting after the one refresh is retried later, not in a loop
    live.emulator.faults["template"] = [40001, 40001]
    rid2 = queue(live, key="second")
    drain(live)
    assert row(live, rid2).status == "pending" and row(live, rid2).last_error.startswith("40001")
    assert live.emulator.token_fetches == fetched + 2


def test_a_worker_reuses_the_shared_token_for_a_minute(live):
    """The token is read from Redis once a minute per process, not on every send (WeChat keeps a replaced token
    valid for 5 minutes); a rejection drops the held copy at once (the test above)."""
    follow(live, OPENID)
    api = live.services.wechat
    first = queue(live)
    drain(live)
    fetched = live.emulator.token_fetches
    api.client.session.delete(api.client.access_token_key)  # gone from Redis: a read per send would fetch anew
    second = queue(live, key="second")
    drain(live)
    assert row(live, first).status == row(live, second).status == "sent"
    assert live.emulator.token_fetches == fetched


def test_quiet_hours_hold_non_urgent_notices_only(live):
    follow(live, OPENID, "oOutboxUser0000000000002")
    live.services.clock.freeze(at(2027, 3, 1, 23, 30))
    urgent = queue(live)
    held = queue(
        live, "oOutboxUser0000000000002", "agreement_expiring", {"status": "即将到期", "date": "2027-09-01", "advice": "请重新签约"}, urgent=False
    )
    assert drain(live) == 1
    assert row(live, urgent).status == "sent" and row(live, held).status == "pending"
    live.services.clock.freeze(at(2027, 3, 2, 6, 59))
    assert drain(live) == 0
    live.services.clock.freeze(at(2027, 3, 2, 7, 0))
    assert drain(live) == 1 and row(live, held).status == "sent"


def test_unknown_kind_fails_for_an_operator(live):
    follow(live, OPENID)
    rid = queue(live, kind="no_such_kind")
    drain(live)
    assert row(live, rid).status == "failed" and "no template" in row(live, rid).last_error


class Killed(BaseException):
    """The worker process dying: not an error the drain could handle."""


def _kill_after_send(monkeypatch):
    """The worker dies right after WeChat accepted a send, before recording it."""
    real = outbox.mark_sent

    def dies(*args, **kwargs):
        monkeypatch.setattr(outbox, "mark_sent", real)
        raise Killed

    monkeypatch.setattr(outbox, "mark_sent", dies)


def test_worker_killed_between_send_and_mark_does_not_send_twice(live, monkeypatch):
    follow(live, OPENID)
    rid = queue(live)
    _kill_after_send(monkeypatch)
    with pytest.raises(Killed):
        drain_once(live.services, "doomed")
    assert len(templates(live, OPENID)) == 1
    assert row(live, rid).status == "sending"
    assert drain(live, "survivor") == 0  # its lease still runs: nobody touches it
    wait_for(lambda: any(p["openid"] == OPENID for p in live.emulator.pushes))  # WeChat's job-finish arrived
    live.services.clock.shift(timedelta(minutes=2))
    drain(live, "survivor")
    r = row(live, rid)
    assert r.status == "sent" and r.delivery_status == "success" and r.msgid == str(templates(live, OPENID)[0]["msgid"])
    assert len(templates(live, OPENID)) == 1


def test_killed_worker_whose_send_got_no_answer_but_a_report_came_leaves_it_uncertain_and_the_rest_go_out(live, monkeypatch):
    """WeChat sent it but the worker died before seeing the msgid: the report that came matches no notice, so the row
    is left for an operator rather than sent again."""
    others = [f"oOutboxRest{i:013d}" for i in range(3)]
    follow(live, OPENID, *others)
    first = queue(live)
    rest = [queue(live, o, key=o) for o in others]
    api = live.services.wechat
    real_send = api.send_template

    def send_then_die(*args, **kwargs):
        real_send(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(api, "send_template", send_then_die)
    monkeypatch.setattr(outbox, "SEND_THREADS", 1)
    monkeypatch.setattr(outbox, "SENDING_GROUP", 2)
    with pytest.raises(Killed):
        drain_once(live.services, "doomed")
    monkeypatch.setattr(api, "send_template", real_send)
    # claimed by the dead worker: the one marked with the first, and the others, never started
    assert [row(live, r).status for r in rest] == ["sending", "pending", "pending"]
    assert drain(live, "survivor") == 0  # the dead worker's lease still holds them
    wait_for(lambda: any(p["openid"] == OPENID for p in live.emulator.pushes))  # its report, with an unknown msgid
    live.services.clock.shift(timedelta(minutes=2))
    assert drain(live, "survivor") == 3
    r = row(live, first)
    assert r.status == "uncertain" and str(templates(live, OPENID)[0]["msgid"]) in r.last_error and r.msgid is None
    assert [row(live, r).status for r in rest] == ["sent"] * 3
    assert [len(templates(live, o)) for o in (OPENID, *others)] == [1, 1, 1, 1]  # nobody got one twice


def test_a_group_whose_lease_ran_out_during_slow_sends_leaves_the_rows_another_worker_took(live, monkeypatch):
    """Rows are marked ``sending`` a group at a time; when the first sends of a group are slow enough for the lease
    of the rest to run out and another worker to settle and send them, the slow worker must not send them again."""
    openids = [f"oOutboxSlow{i:013d}" for i in range(3)]
    follow(live, *openids)
    ids = [queue(live, o, key=o) for o in openids]
    real_remember = outbox.remember_send
    monkeypatch.setattr(outbox, "SEND_THREADS", 1)
    monkeypatch.setattr(outbox, "SENDING_GROUP", 3)

    def slow_after_first(services, row_id, openid, msgid):
        report = real_remember(services, row_id, openid, msgid)
        if openid == openids[0]:  # then the worker stalls past the lease: another worker recovers the group
            monkeypatch.setattr(outbox, "remember_send", real_remember)
            live.services.clock.shift(outbox.LEASE + timedelta(seconds=1))
            assert drain(live, "other") == 2
        return report

    monkeypatch.setattr(outbox, "remember_send", slow_after_first)
    assert drain_once(live.services, "slow") == 3
    assert [len(templates(live, o)) for o in openids] == [1, 1, 1]
    assert {row(live, i).status for i in ids} == {"sent"}


def test_a_claim_takes_at_most_a_batch(make_live):
    """The due rows are picked once (a materialized CTE): as a subquery PostgreSQL re-ran them per row of a
    nested-loop join, each run skipping the rows just claimed, and one claim took all 35 (the outbox is small or
    never analyzed, so that plan is the usual one)."""
    live = make_live(notices={"batch_size": 10})
    for i in range(35):
        queue(live, f"oOutboxClaim{i:012d}", key=str(i))
    assert len(outbox.claim(live.services, "first")) == 10
    assert len(outbox.claim(live.services, "second")) == 10
    assert sorted(n.claimed_by or "" for n in notices(live)).count("") == 15


def test_a_drain_claims_batch_after_batch_while_sending_up_to_its_bound(make_live):
    """``drain`` (what ``cardbot worker`` runs) claims the next batch while the last is still being sent, each batch
    under its own lease token, and stops after ``max_batches`` claims so the worker's jobs get their turn."""
    live = make_live(notices={"batch_size": 10})
    openids = [f"oOutboxBatch{i:012d}" for i in range(35)]
    follow(live, *openids)
    for o in openids:
        queue(live, o, key=o)
    assert outbox.drain(live.services, "w", max_batches=2) == 20
    assert sum(n.status == "sent" for n in notices(live)) == 20
    assert outbox.drain(live.services, "w") == 15
    assert [len(templates(live, o)) for o in openids] == [1] * 35
    assert {n.status for n in notices(live)} == {"sent"} and len({n.msgid for n in notices(live)}) == 35
    assert outbox.drain(live.services, "w") == 0


def test_two_workers_never_send_one_notice_twice(live):
    openids = [f"oOutboxMany{i:013d}" for i in range(60)]
    follow(live, *openids)
    for o in openids:
        queue(live, o)
    counts: dict[str, int] = {}

    def work(name):
        counts[name] = drain(live, name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts.values()) == 60
    assert all(len(templates(live, o)) == 1 for o in openids)
    msgids = [templates(live, o)[0]["msgid"] for o in openids]
    assert len(set(msgids)) == 60
    assert {n.status for n in notices(live)} == {"sent"}
    assert wait_for(lambda: all(n.delivery_status == "success" for n in notices(live)), timeout=30)  # every job-finish matched its row
