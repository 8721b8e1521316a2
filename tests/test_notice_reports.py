"""WeChat's delivery reports (TEMPLATESENDJOBFINISH) through real HTTP: de-duplicated by their MsgID over the whole
signature window, matched to a notice by msgid only — also when the report comes before the send is recorded — and
a send that got no answer is resent only when no report it could be is waiting, else left for an operator."""

from __future__ import annotations

import time
from datetime import timedelta

from bot import outbox
from bot.emulator.wechat_api import job_finish_xml
from bot.outbox import drain_once
from tests.support.autodebit import drain, templates
from tests.test_outbox import OPENID, follow, queue, row


def test_two_reports_in_the_same_second_for_one_user_are_both_recorded(make_live):
    live = make_live(emulator={"auto_deliver_pushes": False})
    follow(live, OPENID)
    first, second = queue(live, key="first"), queue(live, key="second")
    assert drain(live) == 2
    wx = live.pusher()
    same_second = int(time.time())
    for rid, status in ((first, "success"), (second, "failed:user block")):
        reply = wx.send(OPENID, job_finish_xml(OPENID, row(live, rid).msgid, status, create_time=same_second))
        assert reply.status == 200
    assert (row(live, first).delivery_status, row(live, second).delivery_status) == ("success", "failed:user block")


def test_a_report_replayed_within_the_signature_window_is_not_run_again(make_live):
    live = make_live(emulator={"auto_deliver_pushes": False})
    follow(live, OPENID)
    rid = queue(live)
    drain(live)
    wx = live.pusher()
    signed = {"timestamp": str(int(time.time())), "nonce": "20261130"}
    xml = job_finish_xml(OPENID, row(live, rid).msgid, "success")
    assert wx.send(OPENID, xml, **signed).status == 200
    assert row(live, rid).delivery_status == "success"
    store = live.services.store
    # a replay 65 s later still carries a valid signature (max_clock_skew_seconds = 300): the claim must outlive it
    lives = [store.r.ttl(k) for k in store.r.scan_iter(match=store.key("dedup", "*"))]
    assert max(lives) >= live.cfg.wechat.max_clock_skew_seconds > 65, lives
    hits = live.services.metrics.dedup_hits._value.get()
    assert wx.send(OPENID, xml, **signed).status == 200  # the same signed push again
    assert live.services.metrics.dedup_hits._value.get() == hits + 1


def test_a_report_that_arrives_before_its_send_is_recorded_is_applied(live):
    follow(live, OPENID)
    rid = queue(live)
    live.emulator.faults["template_report_first"] = [1]
    assert drain(live) == 1
    r = row(live, rid)
    assert (r.status, r.delivery_status, r.msgid) == ("sent", "success", str(templates(live, OPENID)[0]["msgid"]))


def _unanswered(live) -> int:
    """A notice whose send WeChat never got, though the worker cannot know: the call timed out."""
    follow(live, OPENID)
    rid = queue(live)
    live.emulator.faults["template"] = ["timeout"]
    assert drain_once(live.services, "w") == 1
    assert row(live, rid).status == "unconfirmed"
    return rid


def test_an_unanswered_send_with_no_report_is_sent_again_once(make_live):
    live = make_live(wechat={"request_timeout_seconds": 1.0})
    rid = _unanswered(live)
    live.services.clock.shift(outbox.CONFIRM_WAIT + timedelta(seconds=1))
    drain(live)
    r = row(live, rid)
    assert (r.status, r.attempts) == ("sent", 2) and len(templates(live, OPENID)) == 1


def test_a_report_for_another_msgid_never_marks_a_notice_that_never_reached_wechat(make_live):
    live = make_live(wechat={"request_timeout_seconds": 1.0})
    rid = _unanswered(live)
    # WeChat reports a template message to the same user that is not this notice (another sender on the account)
    assert live.pusher().send(OPENID, job_finish_xml(OPENID, 990001, "success")).status == 200
    live.services.clock.shift(outbox.CONFIRM_WAIT + timedelta(seconds=1))
    drain(live)
    r = row(live, rid)
    assert r.status == "uncertain" and r.msgid is None and r.delivery_status is None, (r.status, r.msgid, r.last_error)
    assert "990001" in r.last_error
    assert templates(live, OPENID) == []  # not resent blindly either: an operator decides (`cardbot notices`)
