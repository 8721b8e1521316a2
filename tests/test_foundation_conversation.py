"""Conversation basics through signed pushes: welcome, unfollow, language, help texts, cancel, expired dialogs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.chat.router import Routes
from bot.texts import en, zh
from models import WechatUser

OID = "oConv000000000000000000001"
test_routes = Routes()
ROUTES = [test_routes]  # conftest ``live`` adds this file's test handlers to the router


@test_routes.text("__test_dialog__")
def _start(msg, ctx):
    ctx.start_dialog("test.ask")
    return "question?"


@test_routes.state("test.ask")
def _answer(msg, ctx):
    ctx.end_dialog()
    return f"answer was {msg.content}"


@pytest.mark.unit
def test_texts_have_the_same_keys_in_both_languages():
    assert set(zh.TEXTS) == set(en.TEXTS)
    for key in zh.TEXTS:
        assert zh.TEXTS[key].count("{") == en.TEXTS[key].count("{"), key


def test_subscribe_welcomes_and_unsubscribe_is_recorded(live, wx):
    reply = wx.event(OID, "subscribe")
    assert "绑定" in reply.content and live.cfg.school.name in reply.content
    with live.session() as db:
        assert db.get(WechatUser, OID).following is True
    assert wx.event(OID, "unsubscribe").empty
    with live.session() as db:
        user = db.get(WechatUser, OID)
        assert user.following is False and user.unsubscribed_at is not None


def test_subscribe_from_parameter_qr_code(wx):
    reply = wx.event(OID, "subscribe", key="qrscene_123")
    assert "绑定" in reply.content


def test_language_switch_is_remembered(live, wx):
    assert "English" in wx.text(OID, "English").content
    assert "What I can do" in wx.text(OID, "help").content
    assert "What I can do" in wx.text(OID, "帮助").content
    with live.session() as db:
        assert db.execute(select(WechatUser.lang).where(WechatUser.openid == OID)).scalar_one() == "en"
    assert "中文" in wx.text(OID, "中文").content
    assert "校园卡服务可以帮您" in wx.text(OID, "help").content
    assert "English" in wx.click(OID, "LANG").content


def test_help_faq_and_rules_carry_the_school_guidance(wx):
    rules = wx.text(OID, "规则").content
    for fragment in ("500", "2000", "现场办理退款", "重新验证", "护照", "3个月", "代充优惠"):
        assert fragment in rules, fragment
    faq = wx.click(OID, "FAQ").content
    for fragment in ("5分钟", "重新登录", "维护", "网上支付", "单笔限额", "银行"):
        assert fragment in faq, fragment
    wx.text(OID, "english")
    rules_en = wx.click(OID, "RULES").content
    assert "in person" in rules_en and "passport" in rules_en and "代充优惠" in rules_en


def test_unknown_text_gets_help_pointer(wx):
    assert "帮助" in wx.text(OID, "🤖 what?").content


def test_cancel_leaves_a_dialog(wx):
    assert wx.text(OID, "__test_dialog__").content == "question?"
    assert "已取消" in wx.text(OID, "取消").content
    assert "没有进行中" in wx.text(OID, "cancel").content


def test_dialog_answer_goes_to_the_state_handler(wx):
    wx.text(OID, "__test_dialog__")
    assert wx.text(OID, "帮助").content == "answer was 帮助"


def test_expired_dialog_is_explained(make_live):
    live = make_live(routes=[test_routes], binding={"dialog_ttl_seconds": 30})
    wx = live.pusher()
    wx.text(OID, "__test_dialog__")
    live.services.store.r.delete(live.services.store.key("dialog", OID))  # the TTL ran out
    reply = wx.text(OID, "张三")
    assert "超时" in reply.content
    assert "超时" not in wx.text(OID, "张三").content  # said once


def test_menu_click_leaves_a_dialog(live, wx):
    wx.text(OID, "__test_dialog__")
    wx.click(OID, "HELP")
    assert live.services.dialogs.get(OID) is None


@test_routes.text("__test_boom__")
def _boom(msg, ctx):
    raise RuntimeError("kaboom")


def test_unhandled_exception_gets_an_apology(wx):
    reply = wx.text(OID, "__test_boom__")
    assert reply.status == 200 and "抱歉" in reply.content


def test_events_without_answer_reply_success(wx):
    assert wx.event(OID, "VIEW", key="http://x").empty
    assert wx.event(OID, "LOCATION").empty


def test_user_rows_track_last_message_coarsely(live, wx):
    """Seen-at is kept to within five minutes: a busy user does not cost a row update per message."""
    from datetime import timedelta

    wx.text(OID, "help")
    with live.session() as db:
        first = db.get(WechatUser, OID).last_message_at
    assert first is not None
    wx.text(OID, "faq")
    with live.session() as db:
        assert db.get(WechatUser, OID).last_message_at == first
    live.services.clock.shift(timedelta(minutes=6))
    wx.text(OID, "rules")
    with live.session() as db:
        assert db.get(WechatUser, OID).last_message_at >= first + timedelta(minutes=5)
