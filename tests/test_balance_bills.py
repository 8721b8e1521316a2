"""Balance and bills through signed pushes, and the bill page through WeChat OAuth (the emulator's)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import update

from bot.calendar import add_months
from bot.clock import SCHOOL_TZ
from models import LedgerEntry, post_entry
from tests.support.factories import bind, make_cardholder

OID = "oBalance000000000000000001"
_event_times = itertools.count(int(time.time()))


def _click(wx, openid, key):
    return wx.click(openid, key, create_time=next(_event_times))


def _card(live, openid=OID, lang="zh", **kw):
    with live.session() as db:
        card = make_cardholder(db, **{"balance_fen": 10000, **kw})
        bind(db, openid, card, lang=lang)
        db.commit()
        return card.id


def _post(live, card_id, amount, kind, key, description="", at=None):
    """A ledger entry; ``at`` (aware) moves it in time as if it had been posted then."""
    with live.session() as db:
        posted = post_entry(db, card_id, amount, kind, key, description=description)
        if at is not None:
            naive = at.astimezone(UTC).replace(tzinfo=None)
            db.execute(update(LedgerEntry).where(LedgerEntry.id == posted.entry.id).values(created_at=naive))
        db.commit()


def test_not_bound_is_told_how_to_bind(wx):
    for reply in (wx.text(OID, "余额"), _click(wx, OID, "BILLS"), wx.text(OID, "balance")):
        assert "还没有绑定" in reply.content and "绑定" in reply.content


def test_balance_with_status_and_last_five_entries(live, wx):
    card_id = _card(live)
    for i in range(7):
        _post(live, card_id, -(100 + i), "spend", f"spend-{i}", description=f"食堂{i}号窗口")
    reply = _click(wx, OID, "BALANCE").content
    assert "余额：92.79 元" in reply  # 100.00 - (1.00 + ... + 1.06)
    assert "卡状态：正常" in reply
    assert "*三" in reply and "2023**01" in reply and "张三" not in reply
    for i in range(2, 7):
        assert f"食堂{i}号窗口 -1.0{i}" in reply
    assert "食堂1号窗口" not in reply and "食堂0号窗口" not in reply and "期初余额" not in reply
    assert reply.index("食堂6号窗口") < reply.index("食堂2号窗口")  # newest first
    assert wx.text(OID, "余额").content == reply


def test_the_opening_balance_is_an_entry(live, wx):
    _card(live)
    reply = wx.text(OID, "余额").content
    assert "期初余额 Opening balance +100.00" in reply  # entries come through the card-system port: its ENTRY names it


def test_frozen_and_lost_cards_are_explained(live, wx):
    _card(live, status="frozen")
    frozen = wx.text(OID, "余额").content
    assert "卡状态：已冻结" in frozen and "解冻" in frozen and live.cfg.school.service_center in frozen
    _card(live, openid="oBalanceLost0000000000001", student_no="20230002", status="lost")
    lost = wx.text("oBalanceLost0000000000001", "余额").content
    assert "卡状态：已挂失" in lost and "补办新卡" in lost


def test_graduate_before_the_freeze_date_is_told_days_left(live, wx):
    _card(live, status="graduated", left_on=date(2026, 9, 30))
    live.services.clock.freeze(datetime(2026, 11, 25, 9, 0, tzinfo=SCHOOL_TZ))
    reply = wx.text(OID, "余额").content
    assert "还剩35天" in reply and "2026-12-30" in reply and "取出余额" in reply
    assert live.cfg.school.service_center in reply and "卡状态：已毕业" in reply


def test_graduate_after_the_freeze_date_is_frozen(live, wx):
    _card(live, status="graduated", left_on=date(2026, 9, 30))
    live.services.clock.freeze(datetime(2026, 12, 30, 0, 5, tzinfo=SCHOOL_TZ))
    reply = wx.text(OID, "余额").content
    assert "已冻结（毕业离校）" in reply and "已于2026-12-30冻结" in reply and "100.00" in reply
    assert "还剩" not in reply


def test_graduate_freeze_follows_config(make_live):
    live = make_live(graduates={"freeze_after_months": 1})
    _card(live, status="graduated", left_on=date(2026, 9, 30))
    live.services.clock.freeze(datetime(2026, 10, 29, 12, 0, tzinfo=SCHOOL_TZ))
    assert "还剩1天" in live.pusher().text(OID, "余额").content


@pytest.mark.unit
def test_add_months_clamps_to_month_end():
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 9, 30), 3) == date(2026, 12, 30)
    assert add_months(date(2026, 1, 31), 0) == date(2026, 1, 31)


def test_balance_in_english(live, wx):
    _card(live, lang="en", status="lost")
    reply = wx.text(OID, "balance").content
    assert "Balance: 100.00 yuan" in reply and "reported lost" in reply and "Opening balance +100.00" in reply


def _month_entries(live, card_id):
    """Two entries this month, one last month (local time), relative to the real clock."""
    now = datetime.now(SCHOOL_TZ)
    first = now.replace(day=1, hour=0, minute=30, second=0, microsecond=0)
    last_month = first - timedelta(days=3)
    _post(live, card_id, -1250, "spend", "s1", "一食堂")
    _post(live, card_id, 5000, "topup", "t1", at=first)
    _post(live, card_id, -800, "spend", "s0", "超市", at=last_month)
    with live.session() as db:  # the opening entry of 100.00 belongs to last month too
        earlier = (last_month - timedelta(days=1)).astimezone(UTC).replace(tzinfo=None)
        db.execute(update(LedgerEntry).where(LedgerEntry.idempotency_key == "opening:20230001").values(created_at=earlier))
        db.commit()
    return now, last_month


def test_bills_in_chat_with_totals_and_a_link_without_openid(live, wx):
    card_id = _card(live)
    now, _ = _month_entries(live, card_id)
    reply = _click(wx, OID, "BILLS")
    assert reply.type == "news" and len(reply.articles) == 1
    art = reply.articles[0]
    assert f"{now.year}年{now.month}月" in art["Title"] and "*三" in art["Title"]
    assert "收入 50.00 元" in art["Description"] and "支出 12.50 元" in art["Description"] and "共2笔" in art["Description"]
    assert "一食堂 -12.50" in art["Description"] and "超市" not in art["Description"]
    assert art["Url"] == f"{live.url}/bills"
    assert wx.text(OID, "账单").articles[0]["Description"] == art["Description"]


def test_bills_chat_points_to_the_page_when_the_month_is_long(live, wx):
    card_id = _card(live)
    for i in range(9):
        _post(live, card_id, -100, "spend", f"many-{i}", "食堂")
    desc = wx.text(OID, "bills").articles[0]["Description"]
    assert "还有4笔" in desc  # 9 spends + the opening entry, six shown


def _login(live, openid=OID):
    """Open /bills the way the phone does: OAuth through the emulator, then the page."""
    live.http.cookies.set("sim_openid", openid)
    return live.http.get(live.url + "/bills", timeout=10)


def test_bill_page_via_oauth_with_month_navigation(live):
    card_id = _card(live)
    now, last_month = _month_entries(live, card_id)
    page = _login(live)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert urlsplit(page.url).path == "/bills" and "code=" not in page.url
    html = page.text
    assert f"{now.year}年{now.month}月" in html and 'id="income">50.00' in html and 'id="spent">12.50' in html
    assert "一食堂" in html and "超市" not in html and 'id="next"' not in html
    assert OID not in html
    prev = f"{last_month.year:04d}-{last_month.month:02d}"
    assert f'href="/bills?month={prev}"' in html
    older = live.http.get(f"{live.url}/bills?month={prev}", timeout=10)
    assert older.status_code == 200
    assert "超市" in older.text and "一食堂" not in older.text and 'id="spent">8.00' in older.text
    assert f'href="/bills?month={now.year:04d}-{now.month:02d}"' in older.text
    empty = live.http.get(f"{live.url}/bills?month=2001-02", timeout=10)
    assert empty.status_code == 200 and 'id="empty"' in empty.text


def test_bill_page_refuses_bad_and_future_months(live):
    _card(live)
    _login(live)
    nxt = datetime.now(SCHOOL_TZ).date().replace(day=28) + timedelta(days=7)
    for bad in ("2026-13", "26-11", "abc", f"{nxt.year:04d}-{nxt.month:02d}", "1999-12"):
        r = live.http.get(f"{live.url}/bills", params={"month": bad}, timeout=10)
        assert r.status_code == 400 and "月份" in r.text, bad


def test_bill_page_without_a_session_redirects_to_oauth(live):
    r = live.http.get(live.url + "/bills", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    target = urlsplit(r.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{live.url}/connect/oauth2/authorize"
    q = parse_qs(target.query)
    assert q["appid"] == [live.cfg.wechat.appid] and q["scope"] == ["snsapi_base"] and q["redirect_uri"] == [f"{live.url}/bills"]
    assert r.headers["Location"].endswith("#wechat_redirect")
    # an openid in the URL is not an identity
    r = live.http.get(live.url + "/bills", params={"openid": OID}, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "authorize" in r.headers["Location"]


def test_bill_page_with_session_set_directly_and_in_english(live):
    _card(live, lang="en")
    client = live.app.test_client()
    with client.session_transaction() as s:
        s.update(openid=OID, login_at=int(live.services.clock.now().timestamp()), gen=0)
    r = client.get("/bills")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Campus card bill" in html and "Opening balance" in html and 'lang="en"' in html


def test_bill_page_for_someone_not_bound(live):
    page = _login(live, "oNobody000000000000000001")
    assert page.status_code == 200 and "还没有绑定" in page.text
