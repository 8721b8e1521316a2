"""Binding a card through signed pushes on /wechat, with real Redis and the database."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import datetime

import requests
from sqlalchemy import func, select

from bot.clock import SCHOOL_TZ
from bot.emulator.push import Pusher
from models import Binding
from tests.support.factories import bind, make_cardholder

STUDENT = "oBindStudent00000000000001"
PARENT = "oBindParent000000000000001"
OTHER = "oBindOther0000000000000001"
# 11010120000101123X → last six "01123X", X written as 0
PASSWORD = "011230"
_event_times = itertools.count(int(time.time()))


def _cards(live, **extra):
    with live.session() as db:
        a = make_cardholder(db, "20230001", "张三", "11010120000101123X", balance_fen=10050)
        b = make_cardholder(db, "20230002", "李四", "440305200402182115", balance_fen=2000)
        c = make_cardholder(db, "20230003", "Anna Schmidt", None, passport_no="C4K7N2P91", balance_fen=500)
        db.commit()
        return {"a": a.id, "b": b.id, "c": c.id}


def _bindings(live, card_id=None, openid=None):
    with live.session() as db:
        q = select(func.count()).select_from(Binding)
        if card_id is not None:
            q = q.where(Binding.cardholder_id == card_id)
        if openid is not None:
            q = q.where(Binding.openid == openid)
        return db.execute(q).scalar_one()


def _click(wx, openid, key):
    """A click with its own CreateTime: WeChat dedups events on sender + CreateTime + key, so two clicks in one
    second would otherwise count as one retried push."""
    return wx.click(openid, key, create_time=next(_event_times))


def _walk(wx, openid, student_no="20230001", name="张三"):
    """BIND → student number → name; returns the password prompt."""
    assert "学号" in _click(wx, openid, "BIND").content
    assert "姓名" in wx.text(openid, student_no).content
    return wx.text(openid, name).content


def _state(live, openid):
    d = live.services.dialogs.get(openid)
    return d.state if d else None


def _redis_values(live):
    store = live.services.store
    out = []
    for key in store.r.scan_iter(match=store.prefix + "*"):
        kind = store.r.type(key)
        if kind == "string":
            out.append(store.r.get(key) or "")
        elif kind == "hash":
            out.append(str(store.r.hgetall(key)))
    return out


def test_bind_with_id_number_ending_in_x(live, wx, caplog):
    ids = _cards(live)
    caplog.set_level(logging.DEBUG)
    prompt = _walk(wx, STUDENT)
    assert "X记作0" in prompt and "护照号后6位" in prompt
    assert _state(live, STUDENT) == "bind.password"
    assert "student_no" in live.services.dialogs.get(STUDENT).data
    reply = wx.text(STUDENT, PASSWORD).content
    assert "绑定成功" in reply and "*三" in reply and "100.50" in reply
    assert "张三" not in reply
    assert _bindings(live, ids["a"], STUDENT) == 1
    assert _state(live, STUDENT) is None
    # the password went nowhere: not in Redis (dialog, dedup), not in the logs
    assert not any(PASSWORD in v for v in _redis_values(live))
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)


def test_x_typed_instead_of_zero_is_a_mismatch(live, wx):
    _cards(live)
    _walk(wx, STUDENT)
    assert "信息不匹配" in wx.text(STUDENT, "01123X").content


def test_student_numbers_of_7_and_13_digits_are_refused(live, wx):
    _cards(live)
    _click(wx, STUDENT, "BIND")
    assert "7位" in wx.text(STUDENT, "2023001").content
    assert "13位" in wx.text(STUDENT, "2023000100001").content
    assert _state(live, STUDENT) == "bind.student_no"
    assert "看懂" in wx.text(STUDENT, "张三").content
    assert _state(live, STUDENT) == "bind.student_no"


def test_full_width_digits_and_spaces_are_normalised(live, wx):
    ids = _cards(live)
    _click(wx, STUDENT, "BIND")
    assert "姓名" in wx.text(STUDENT, "２０２３ ０００１").content
    assert live.services.dialogs.get(STUDENT).data["student_no"] == "20230001"
    wx.text(STUDENT, " 张三 ")
    assert "绑定成功" in wx.text(STUDENT, "０１１２３０").content
    assert _bindings(live, ids["a"], STUDENT) == 1


def test_mismatch_does_not_say_which_field_was_wrong(live, wx):
    _cards(live)
    _walk(wx, "oWrongName0000000001", name="张四")
    wrong_name = wx.text("oWrongName0000000001", PASSWORD).content
    _walk(wx, "oWrongPass0000000001", "20230002", "李四")
    wrong_password = wx.text("oWrongPass0000000001", "123456").content
    _walk(wx, "oWrongNo000000000001", student_no="20239999")
    unknown_no = wx.text("oWrongNo000000000001", PASSWORD).content
    assert wrong_name == wrong_password == unknown_no
    assert "信息不匹配" in wrong_name and live.cfg.school.service_center in wrong_name
    assert "4次" in wrong_name  # five tries by default: one used
    assert _bindings(live) == 0
    # after a mismatch the dialog starts over at the student number
    assert _state(live, "oWrongPass0000000001") == "bind.student_no"


def test_name_letters_are_case_sensitive_and_passport_binds(live, wx):
    ids = _cards(live)
    _click(wx, STUDENT, "BIND")
    assert "姓名" in wx.text(STUDENT, "c4k7n2p91").content  # passport, any case
    wx.text(STUDENT, "anna schmidt")
    assert "信息不匹配" in wx.text(STUDENT, "7N2P91").content  # right password, name in the wrong case
    wx.text(STUDENT, "C4K7N2P91")
    wx.text(STUDENT, "Anna Schmidt")
    assert "信息不匹配" in wx.text(STUDENT, "7n2p91").content
    wx.text(STUDENT, "C4K7N2P91")
    wx.text(STUDENT, "Anna  Schmidt")
    reply = wx.text(STUDENT, "7N2P91").content
    assert "绑定成功" in reply and "A*** *******" in reply
    assert _bindings(live, ids["c"], STUDENT) == 1


def test_unregistered_passport_is_sent_to_the_card_center(live, wx):
    _cards(live)
    _click(wx, STUDENT, "BIND")
    reply = wx.text(STUDENT, "E12345678").content
    assert "尚未登记" in reply and live.cfg.school.service_center in reply
    assert _state(live, STUDENT) is None


def test_lockout_after_max_failures_says_until_when(make_live):
    live = make_live(binding={"max_failures": 3, "lockout_minutes": 30})
    live.services.clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=SCHOOL_TZ))
    wx = live.pusher()
    ids = _cards(live)
    for left in (2, 1):
        _walk(wx, STUDENT)
        assert f"还可以再试{left}次" in wx.text(STUDENT, "000000").content
    _walk(wx, STUDENT)
    last = wx.text(STUDENT, "000000").content
    assert "信息不匹配" in last and "2026-11-25 10:30" in last
    assert _state(live, STUDENT) is None
    # the openid is locked: BIND answers at once
    assert "2026-11-25 10:30" in _click(wx, STUDENT, "BIND").content
    # but not the card: another account still binds it (the per-card limit is card_max_failures)
    _walk(wx, PARENT)
    assert "绑定成功" in wx.text(PARENT, PASSWORD).content
    assert _bindings(live, ids["a"]) == 1
    # the lock lasts lockout_minutes in Redis
    store = live.services.store
    assert 1700 < store.r.ttl(store.key("bindfail", f"openid:{STUDENT}")) <= 1800


def test_concurrent_wrong_attempts_cannot_exceed_card_max_failures(make_live):
    live = make_live(binding={"max_failures": 3, "card_max_failures": 3})
    ids = _cards(live)
    openids = [f"oConcWrong{i:016d}" for i in range(8)]
    wx = live.pusher()
    for oid in openids:
        _walk(wx, oid)

    def post(path, headers, body):
        r = requests.post(live.url + path, data=body, headers=headers, timeout=15)
        return r.status_code, r.text

    replies: dict[str, str] = {}
    barrier = threading.Barrier(len(openids))

    def attempt(oid):
        pusher = Pusher(live.cfg.wechat, post)
        barrier.wait()
        replies[oid] = pusher.text(oid, "999999").content

    threads = [threading.Thread(target=attempt, args=(oid,)) for oid in openids]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(replies) == len(openids)
    checked = [r for r in replies.values() if "信息不匹配" in r]
    assert len(checked) == 3, replies
    assert sum("还可以再试" in r for r in checked) == 2
    assert sum("绑定已暂停" in r for r in checked) == 1  # the last try checked also locks
    assert sum("绑定已暂停" in r and "信息不匹配" not in r for r in replies.values()) == 5  # refused unchecked
    _walk(wx, STUDENT)
    assert "绑定已暂停" in wx.text(STUDENT, PASSWORD).content
    assert _bindings(live, ids["a"]) == 0


def test_parent_and_student_share_a_card_up_to_the_maximum(make_live):
    live = make_live(binding={"max_bindings_per_card": 2})
    wx = live.pusher()
    ids = _cards(live)
    for oid in (STUDENT, PARENT):
        _walk(wx, oid)
        assert "绑定成功" in wx.text(oid, PASSWORD).content
    _walk(wx, OTHER)
    full = wx.text(OTHER, PASSWORD).content
    assert "已绑定2个微信" in full
    assert _bindings(live, ids["a"]) == 2 and _bindings(live, openid=OTHER) == 0
    # both see the same balance
    assert "100.50" in _click(wx, STUDENT, "BALANCE").content
    assert "100.50" in _click(wx, PARENT, "BALANCE").content


def test_concurrent_binders_cannot_exceed_the_maximum(make_live):
    live = make_live(binding={"max_bindings_per_card": 2})
    ids = _cards(live)
    openids = [f"oConcBind{i:017d}" for i in range(5)]
    wx = live.pusher()
    for oid in openids:
        _walk(wx, oid)

    def post(path, headers, body):
        r = requests.post(live.url + path, data=body, headers=headers, timeout=15)
        return r.status_code, r.text

    replies: dict[str, str] = {}
    barrier = threading.Barrier(len(openids))

    def attempt(oid):
        pusher = Pusher(live.cfg.wechat, post)
        barrier.wait()
        replies[oid] = pusher.text(oid, PASSWORD).content

    threads = [threading.Thread(target=attempt, args=(oid,)) for oid in openids]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sum("绑定成功" in r for r in replies.values()) == 2, replies
    assert sum("已绑定2个微信" in r for r in replies.values()) == 3
    assert _bindings(live, ids["a"]) == 2


def test_one_card_per_openid_rebind_after_unbind(live, wx):
    ids = _cards(live)
    _walk(wx, STUDENT)
    wx.text(STUDENT, PASSWORD)
    again = _click(wx, STUDENT, "BIND").content
    assert "解绑" in again and "*三" in again
    assert _state(live, STUDENT) is None
    # unbind asks first; anything but a yes keeps the card
    assert "确认" in _click(wx, STUDENT, "UNBIND").content
    assert "保留" in wx.text(STUDENT, "算了").content
    assert _bindings(live, ids["a"], STUDENT) == 1
    assert "确认" in wx.text(STUDENT, "解绑").content
    assert "已解除绑定" in wx.text(STUDENT, "确认").content
    assert _bindings(live, openid=STUDENT) == 0
    _walk(wx, STUDENT, "20230002", "李四")
    assert "绑定成功" in wx.text(STUDENT, "182115").content
    assert _bindings(live, ids["b"], STUDENT) == 1
    assert "20.00" in wx.text(STUDENT, "余额").content


def test_unbind_when_not_bound_and_cancel_mid_dialog(live, wx):
    _cards(live)
    assert "还没有绑定" in wx.text(STUDENT, "解绑").content
    _walk(wx, STUDENT)
    assert "已取消" in wx.text(STUDENT, "取消").content
    assert _state(live, STUDENT) is None


def test_unfollow_keeps_binding_and_refollow_greets_by_masked_name(live, wx):
    ids = _cards(live)
    _walk(wx, STUDENT)
    wx.text(STUDENT, PASSWORD)
    assert wx.event(STUDENT, "unsubscribe").empty
    assert _bindings(live, ids["a"], STUDENT) == 1
    greeting = wx.event(STUDENT, "subscribe").content
    assert "欢迎回来" in greeting and "*三" in greeting and "张三" not in greeting


def test_dialog_continues_across_a_server_restart(make_live):
    first = make_live()
    ids = _cards(first)
    wx = first.pusher()
    _walk(wx, STUDENT)
    first.server.shutdown()
    second = make_live(redis={"key_prefix": first.services.store.prefix})
    assert "绑定成功" in second.pusher().text(STUDENT, PASSWORD).content
    assert _bindings(second, ids["a"], STUDENT) == 1


def test_duplicated_push_does_not_advance_the_dialog_twice(live, wx):
    _cards(live)
    _click(wx, STUDENT, "BIND")
    xml = wx.xml(STUDENT, "text", {"Content": "20230001", "MsgId": "7000000000001"})
    first, retry = wx.send(STUDENT, xml), wx.send(STUDENT, xml)
    assert first.content == retry.content and "姓名" in first.content
    assert _state(live, STUDENT) == "bind.name"
    wx.text(STUDENT, "张三")
    wrong = wx.xml(STUDENT, "text", {"Content": "111111", "MsgId": "7000000000002"})
    first, retry = wx.send(STUDENT, wrong), wx.send(STUDENT, wrong)
    assert first.content == retry.content and "还可以再试4次" in first.content
    store = live.services.store
    assert store.r.hget(store.key("bindfail", "card:20230001"), "n") == "1"
    # the dialog is back at the student number once, not twice
    assert _state(live, STUDENT) == "bind.student_no"
    wx.text(STUDENT, "20230001")
    wx.text(STUDENT, "张三")
    assert "绑定成功" in wx.text(STUDENT, PASSWORD).content
    # the right password clears the account's counter; the card keeps the wrong try, not the right one
    assert store.r.exists(store.key("bindfail", f"openid:{STUDENT}")) == 0
    assert store.r.hget(store.key("bindfail", "card:20230001"), "n") == "1"


def test_binding_in_english(live, wx):
    _cards(live)
    wx.text(STUDENT, "English")
    assert "student/staff number" in wx.text(STUDENT, "bind").content
    assert "real name" in wx.text(STUDENT, "20230001").content
    assert "X written as 0" in wx.text(STUDENT, "张三").content
    assert "Card bound" in wx.text(STUDENT, PASSWORD).content


def test_existing_binding_from_factory_is_respected(live, wx):
    with live.session() as db:
        card = make_cardholder(db, "20230009", "王五", "110101200001011234")
        bind(db, PARENT, card)
        db.commit()
    assert "*五" in _click(wx, PARENT, "BIND").content


def test_binding_in_safe_mode(live, wx_aes):
    ids = _cards(live)
    assert "X记作0" in _walk(wx_aes, STUDENT)
    assert "绑定成功" in wx_aes.text(STUDENT, PASSWORD).content
    assert _bindings(live, ids["a"], STUDENT) == 1
