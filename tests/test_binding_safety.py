"""Issue 11.7: strangers can neither lock an owner out nor bind silently.

Through signed pushes on /wechat, the outbox against the emulator's template API and the real ``cardbot`` CLI.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import cli
from bot.clock import SCHOOL_TZ
from bot.config import ConfigError, load_config
from models import Binding
from tests.conftest import REDIS_URL
from tests.support.autodebit import drain, notices, templates
from tests.support.factories import bind, make_cardholder

OWNER = "oSafeOwner0000000000000001"
PARENT = "oSafeParent000000000000001"
NEWCOMER = "oSafeNewcomer0000000000001"
STRANGER = "oSafeStranger0000000000001"
PASSWORD = "011230"  # 11010120000101123X
_event_times = itertools.count(int(time.time()))


def _click(wx, openid, key):
    return wx.click(openid, key, create_time=next(_event_times))


def _walk(wx, openid, student_no="20230001", name="张三"):
    assert "学号" in _click(wx, openid, "BIND").content
    wx.text(openid, student_no)
    return wx.text(openid, name).content


def _card(live, *bound):
    with live.session() as db:
        card = make_cardholder(db, "20230001", "张三", "11010120000101123X", balance_fen=10050)
        for openid in bound:
            bind(db, openid, card)
        db.commit()
    with live.emulator.lock:
        live.emulator.followers.update(bound)
        return card.id


def _bound(live, openid):
    with live.session() as db:
        return db.execute(select(func.count()).select_from(Binding).where(Binding.openid == openid)).scalar_one() == 1


def _unlock(live, student_no):
    env = {
        "CARDBOT_DATABASE__URL": live.cfg.database.url,
        "CARDBOT_REDIS__URL": REDIS_URL,
        "CARDBOT_REDIS__KEY_PREFIX": live.services.store.prefix,
    }
    return CliRunner().invoke(cli, ["binding", "unlock", student_no], env=env, catch_exceptions=False)


def test_a_strangers_wrong_passwords_lock_the_stranger_not_the_owner(live, wx):
    _card(live)
    for _ in range(live.cfg.binding.max_failures):
        _walk(wx, STRANGER)
        wx.text(STRANGER, "000000")
    assert "尝试次数过多" in _click(wx, STRANGER, "BIND").content
    _walk(wx, OWNER)
    assert "绑定成功" in wx.text(OWNER, PASSWORD).content


def test_guessing_from_many_accounts_locks_the_card_tells_its_owners_and_unlock_lifts_it(make_live):
    live = make_live(binding={"max_failures": 5, "card_max_failures": 6, "card_lockout_minutes": 60})
    live.services.clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=SCHOOL_TZ))
    wx = live.pusher()
    _card(live, OWNER, PARENT)
    for i in range(3):
        guesser = f"oSafeGuesser{i:014d}"
        for _ in range(2):
            _walk(wx, guesser)
            wx.text(guesser, "000000")
    # the card is now locked for everyone, the owner's family included, and the text says what to do
    _walk(wx, NEWCOMER)
    locked = wx.text(NEWCOMER, PASSWORD).content
    assert "2026-11-25 11:00" in locked and live.cfg.school.service_center in locked and "这张校园卡" in locked
    assert not _bound(live, NEWCOMER)
    # the card's bound accounts are told once, the guessers nothing
    assert {n.openid for n in notices(live, "binding_guessed")} == {OWNER, PARENT}
    assert drain(live) == 2
    [alert] = templates(live, OWNER)
    assert alert["template_id"] == live.cfg.notices.template("binding_guessed").template_id
    values = "".join(alert["data"].values())
    assert "2023**01" in values and "张三" not in values and "oSafe" not in values
    assert all(len(v) <= 20 for v in alert["data"].values())
    assert templates(live, "oSafeGuesser00000000000000") == []
    # the service center lifts it
    result = _unlock(live, "20230001")
    assert result.exit_code == 0, result.output
    assert "20230001" in result.output and "6" in result.output
    _walk(wx, NEWCOMER)
    assert "绑定成功" in wx.text(NEWCOMER, PASSWORD).content
    assert "not locked" in _unlock(live, "20230001").output


def test_a_new_binding_is_announced_to_the_other_bound_accounts_only(live, wx):
    _card(live, OWNER, PARENT)
    _walk(wx, NEWCOMER)
    assert "绑定成功" in wx.text(NEWCOMER, PASSWORD).content
    assert {n.openid for n in notices(live, "binding_added")} == {OWNER, PARENT}
    drain(live)
    for openid in (OWNER, PARENT):
        [msg] = templates(live, openid)
        assert msg["template_id"] == live.cfg.notices.template("binding_added").template_id
        values = "".join(msg["data"].values())
        assert "2023**01" in values and "绑定管理" in values
        assert "张三" not in values and NEWCOMER not in values
    assert templates(live, NEWCOMER) == []


def test_manage_lists_and_removes_another_binding_only_after_the_right_password(live, wx):
    _card(live, OWNER, STRANGER)
    assert "密码" in _click(wx, OWNER, "BINDINGS").content
    wrong = wx.text(OWNER, "000000").content
    assert "密码不正确" in wrong and "4次" in wrong
    assert _bound(live, STRANGER)
    listing = wx.text(OWNER, PASSWORD).content
    assert "1." in listing and "2." in listing and "本微信" in listing
    assert OWNER not in listing and STRANGER not in listing and "张三" not in listing
    lines = [line for line in listing.splitlines() if line[:2] in ("1.", "2.")]
    other = next(line for line in lines if "本微信" not in line)[0]
    assert "已移除" in wx.text(OWNER, other).content
    assert not _bound(live, STRANGER) and _bound(live, OWNER)
    assert "还没有绑定" in _click(wx, STRANGER, "BALANCE").content


def test_wrong_passwords_in_manage_count_toward_the_lockout(make_live):
    live = make_live(binding={"max_failures": 2})
    wx = live.pusher()
    _card(live, OWNER)
    assert "密码" in wx.text(OWNER, "绑定管理").content
    assert "1次" in wx.text(OWNER, "000000").content
    assert "尝试次数过多" in wx.text(OWNER, "000000").content
    assert "尝试次数过多" in _click(wx, OWNER, "BINDINGS").content


def test_manage_in_english(live, wx):
    _card(live, OWNER)
    wx.text(OWNER, "English")
    assert "card password" in wx.text(OWNER, "manage bindings").content
    assert "this WeChat" in wx.text(OWNER, PASSWORD).content


def test_manage_refuses_a_bad_number_and_a_binding_removed_meanwhile(live, wx):
    _card(live, OWNER, PARENT, STRANGER)
    _click(wx, OWNER, "BINDINGS")
    assert "3." in wx.text(OWNER, PASSWORD).content and "1–3" in wx.text(OWNER, "9").content
    stranger_no = "3"  # listed in the order bound
    # meanwhile the parent removes the same binding
    _click(wx, PARENT, "BINDINGS")
    wx.text(PARENT, PASSWORD)
    assert "已移除" in wx.text(PARENT, stranger_no).content
    assert "不存在" in wx.text(OWNER, stranger_no).content
    assert _bound(live, OWNER) and _bound(live, PARENT) and not _bound(live, STRANGER)


@pytest.mark.unit
def test_card_limit_below_the_account_limit_is_refused():
    with pytest.raises(ConfigError, match="binding"):
        load_config(None, binding={"max_failures": 5, "card_max_failures": 3})
