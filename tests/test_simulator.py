"""The simulator's JSON API plays WeChat: real signed pushes to /wechat, a transcript the page polls, user switching
that drives the emulator's OAuth, the canteen terminal and the pay sheet's amount."""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.emulator.simulator import UNAVAILABLE, USERS
from models import TopupOrder
from tests.support.factories import bind, make_cardholder

OPENID = "oSimUser000000000000001"


def _send(live, **body):
    return live.http.post(live.url + "/simulator/api/send", json={"openid": OPENID, **body}, timeout=20)


def _messages(live, since: int = 0, openid: str = OPENID) -> dict:
    r = live.http.get(live.url + "/simulator/api/messages", params={"openid": openid, "since": since})
    assert r.status_code == 200
    return r.json()


def test_page_carries_menu_users_and_demo_cards(live):
    r = live.http.get(live.url + "/simulator")
    assert r.status_code == 200
    boot = json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>', r.text, re.S).group(1))
    assert [b["name"] for b in boot["menu"]["button"]] == ["缴费大厅", "我的", "帮助"]
    assert {s["key"] for s in boot["menu"]["button"][0]["sub_button"]} == {"BALANCE", "TOPUP", "AUTODEBIT", "BILLS", "POWER"}
    assert [u["openid"] for u in boot["users"]] == [u["openid"] for u in USERS]
    assert "20230001" in r.text and "151020" in r.text  # the ID ending in X: its initial password writes X as 0
    assert live.http.get(live.url + "/simulator/static/simulator.js").status_code == 200
    other = live.url.replace("127.0.0.1", "localhost")
    r = live.http.get(other + "/simulator", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == live.url + "/simulator"  # OAuth needs the public origin


def test_text_round_trip_in_every_encryption_mode(live):
    for mode in ("plain", "compat", "aes"):
        r = _send(live, type="text", content="帮助", mode=mode)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["status"] == 200 and data["type"] == "text" and "余额" in data["content"], mode
    items = _messages(live)["messages"]
    assert [m["kind"] for m in items] == ["user", "reply"] * 3
    assert items[0]["content"] == "帮助" and "余额" in items[1]["content"]
    since = items[-1]["id"]
    assert _messages(live, since)["messages"] == []
    assert live.emulator.last_user_message.get(OPENID)  # a message opened the customer-service window


def test_follow_click_unfollow(live):
    r = _send(live, type="event", event="subscribe").json()
    assert r["type"] == "text" and r["content"]
    assert OPENID in live.emulator.followers and _messages(live)["following"]
    r = _send(live, type="click", key="HELP").json()
    assert "余额" in r["content"]
    assert live.emulator.last_click.get(OPENID)
    _send(live, type="event", event="unsubscribe")
    assert OPENID not in live.emulator.followers


def test_bad_requests_are_400(live):
    url = live.url + "/simulator/api/send"
    assert live.http.post(url, json={"openid": "bad id!", "type": "text", "content": "x"}).status_code == 400
    assert live.http.post(url, json={"openid": OPENID, "type": "text", "content": "  "}).status_code == 400
    assert live.http.post(url, json={"openid": OPENID, "type": "text", "content": "x", "mode": "rot13"}).status_code == 400
    assert live.http.post(url, json={"openid": OPENID, "type": "fax"}).status_code == 400
    assert live.http.post(url, json={"openid": OPENID, "type": "event", "event": "SCAN"}).status_code == 400
    assert live.http.post(url, data="not json").status_code == 400
    assert live.http.get(live.url + "/simulator/api/messages", params={"openid": OPENID, "since": "x"}).status_code == 400
    assert live.http.post(live.url + "/simulator/api/mode", json={"mode": "nope"}).status_code == 400


def test_template_notice_and_cs_message_appear_in_the_transcript(live):
    _send(live, type="text", content="帮助")
    since = _messages(live)["messages"][-1]["id"]
    api = live.services.wechat
    api.send_text(OPENID, "稍后回复 later reply")
    api.send_template(
        OPENID,
        "TPL_TOPUP_RECEIPT",
        {"amount1": {"value": "50.00"}, "amount2": {"value": "0.15"}, "amount3": {"value": "150.00"}, "time4": {"value": "2026-11-25 12:00"}},
    )
    cs, tpl = _messages(live, since)["messages"]
    assert cs["kind"] == "customer_service" and cs["content"]["content"] == "稍后回复 later reply"
    assert tpl["kind"] == "template" and tpl["title"] == "充值成功通知"
    assert {"label": "金额", "value": "50.00"} in tpl["rows"] and {"label": "余额", "value": "150.00"} in tpl["rows"]


def test_switching_user_sets_the_phone_identity_for_oauth(live):
    r = live.http.post(live.url + "/simulator/api/user", json={"openid": USERS[3]["openid"]})
    assert r.status_code == 200 and r.json()["openid"] == USERS[3]["openid"]
    assert live.http.cookies.get("sim_openid") == USERS[3]["openid"]
    cookies = r.headers.get("Set-Cookie", "")
    assert re.search(r"cardbot_session=;[^,]*Expires=Thu, 01 Jan 1970", cookies), cookies  # the bot's page session was the previous user's
    w = live.cfg.wechat
    params = {"appid": w.appid, "redirect_uri": live.url + "/topup", "response_type": "code", "scope": "snsapi_base", "state": "s"}
    loc = live.http.get(live.url + "/connect/oauth2/authorize", params=params, allow_redirects=False).headers["Location"]
    assert live.services.wechat.oauth_openid(parse_qs(urlsplit(loc).query)["code"][0]) == USERS[3]["openid"]
    assert live.http.post(live.url + "/simulator/api/user", json={"openid": "x y"}).status_code == 400


def test_mode_switch_changes_platform_pushes(live):
    assert live.http.post(live.url + "/simulator/api/mode", json={"mode": "aes"}).json() == {"mode": "aes"}
    assert live.emulator.push_mode == "aes"
    assert _send(live, type="text", content="help").json()["type"] == "text"  # mode defaults to the chosen one


def test_bot_unreachable_shows_wechats_apology(make_live):
    live = make_live()
    live.cfg.server.public_base_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    r = _send(live, type="text", content="帮助").json()
    assert r["status"] == 0 and r["error"]
    last = _messages(live)["messages"][-1]
    assert last["kind"] == "system" and last["content"] == UNAVAILABLE


def test_swipe_needs_a_bound_card_and_valid_amount(live):
    url = live.url + "/simulator/api/swipe"
    assert live.http.post(url, json={"openid": OPENID, "amount": "12.50"}).status_code == 409
    for bad in ("0", "-5", "12.345", "abc", "1000.01", "NaN"):
        assert live.http.post(url, json={"openid": OPENID, "amount": bad}).status_code == 400, bad


def test_swipe_reports_to_the_card_system_with_its_signature(live):
    pytest.importorskip("bot.web.integration")
    with live.session() as db:
        card = make_cardholder(db, student_no="20239901", balance_fen=10000)
        bind(db, OPENID, card)
        db.commit()
    r = live.http.post(live.url + "/simulator/api/swipe", json={"openid": OPENID, "amount": "12.50", "merchant": "第一食堂 Canteen 1"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["status"] == 200, data
    assert data["entry"]["amount_fen"] == -1250 and data["response"]["balance_fen"] == 8750


def test_pay_sheet_amount_from_prepay_id(live):
    with live.session() as db:
        card = make_cardholder(db, student_no="20239902")
        db.add(
            TopupOrder(
                order_no="SIMTEST0001",
                cardholder_id=card.id,
                openid=OPENID,
                mode="quick",
                amount_fen=5000,
                fee_fen=15,
                business_day=date.today(),
                prepay_id="wx_prepay_sim_1",
                expires_at=datetime.utcnow() + timedelta(minutes=15),
            )
        )
        db.commit()
    r = live.http.get(live.url + "/simulator/api/prepay", params={"package": "prepay_id=wx_prepay_sim_1"})
    assert r.status_code == 200 and r.json()["total_fen"] == 5015
    assert live.http.get(live.url + "/simulator/api/prepay", params={"package": "prepay_id=nope"}).status_code == 404
    assert live.http.get(live.url + "/simulator/api/prepay", params={"package": "<script>"}).status_code == 400


def test_job_finish_push_does_not_touch_the_users_window(live):
    _send(live, type="event", event="subscribe")
    before = dict(live.emulator.last_user_message)
    live.services.wechat.send_template(
        OPENID, "TPL_REFUND", {"amount1": {"value": "5.00"}, "thing2": {"value": "已退款"}, "time3": {"value": "2026-11-25"}}
    )
    deadline = time.time() + 5
    while not live.emulator.pushes and time.time() < deadline:
        time.sleep(0.05)
    assert live.emulator.pushes and live.emulator.pushes[0]["status"] == 200
    assert live.emulator.last_user_message == before
