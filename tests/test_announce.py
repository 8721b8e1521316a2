"""Announcements (issue 15): ``cardbot announce`` and the card system's maintenance add a line to balance and top-up
replies and to the top-up page."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest

from bot import announce
from bot.errors import UserError
from tests.support.factories import bind, make_cardholder
from tests.support.topup import Phone

OID = "oAnnounce000000000000001"
_times = itertools.count(int(time.time()) - 5000)


def _bound(live):
    with live.session() as db:
        bind(db, OID, make_cardholder(db, "20230001", "张三", "11010120000101123X", balance_fen=10000))
        db.commit()


def test_announcement_on_balance_topup_and_page_until_it_ends(live, wx):
    _bound(live)
    now = live.services.clock.now()
    announce.announce(live.services, "  今晚22:00–23:00 系统升级，期间暂停充值  ", now + timedelta(hours=1))
    line = "📢 今晚22:00–23:00 系统升级，期间暂停充值"
    assert line in wx.text(OID, "余额").content
    assert line in wx.click(OID, "TOPUP", create_time=next(_times)).articles[0]["Description"]
    page = Phone(live, OID).open_page()
    assert page.status_code == 200 and 'id="announcements"' in page.text and "今晚22:00–23:00 系统升级" in page.text
    live.services.clock.shift(timedelta(hours=2))
    assert "📢" not in wx.text(OID, "余额").content
    with pytest.raises(UserError, match="announce_in_past"):
        announce.announce(live.services, "late", now)
    announce.announce(live.services, "明天停水", live.services.clock.now() + timedelta(hours=1))
    assert announce.clear(live.services)
    assert "📢" not in wx.text(OID, "balance").content


def test_card_system_maintenance_is_announced(cs_live):
    wx = cs_live.pusher()
    wx.click(OID, "BIND", create_time=next(_times))
    wx.text(OID, "20230001")
    wx.text(OID, "张三")
    assert "绑定成功" in wx.text(OID, "151020").content  # the demo roster card in the emulated card system
    cs_live.app.extensions["emulator_cardsys"].faults["account"] = "maintenance"
    balance = wx.text(OID, "余额").content
    assert "📢 校园卡系统维护中，预计" in balance
    topup = wx.click(OID, "TOPUP", create_time=next(_times)).articles[0]["Description"]
    assert topup.startswith("📢 校园卡系统维护中，预计")
