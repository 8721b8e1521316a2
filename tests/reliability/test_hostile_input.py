"""Hostile input at every door, over real HTTP with real signatures: XML attacks on ``/wechat`` (XXE, entity
expansion, external DTDs, huge and oddly typed bodies), replayed and stale signatures, text that tries to break
the reply XML or the database, full-width digits, and amounts on the top-up API that are not what they seem.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from bot.emulator.push import cdata
from models import Cardholder, TopupOrder
from tests.support.reliability import PASSWORD, bindings_of, click, new_card, tally, timed
from tests.support.topup import emu_pay, logged_in, student

OPENID = "oHostileInput00000000001"
NASTY = [
    "]]>",
    "x]]><Content>injected</Content><![CDATA[",
    "😀💳🎓 emoji 𠀀",
    "\u202egnp.exe\u200b\ufeff",
    "'; DROP TABLE cardholders; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM ledger_entries;--",
    "<script>alert(1)</script>",
    "&lt;&amp;&#x0;",
    "%00%0d%0a",
    "{phone}{0}%s",
    "\t\n\r",
    "ＡＢＣ１２３",
]


def _post_raw(live: Any, wx: Any, body: bytes, content_type: str = "text/xml", query: dict[str, str] | None = None) -> requests.Response:
    q = query or wx.signed_query()
    return requests.post(f"{live.url}/wechat?{urlencode(q)}", data=body, headers={"Content-Type": content_type}, timeout=10)


def _text_xml(wx: Any, content: str, body: str | None = None) -> bytes:
    inner = body if body is not None else cdata(content)
    return (
        f"<xml><ToUserName>{cdata('gh_cardbot_demo')}</ToUserName><FromUserName>{cdata(OPENID)}</FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType>{cdata('text')}</MsgType>"
        f"<Content>{inner}</Content><MsgId>{time.time_ns() % 10**15}</MsgId></xml>"
    ).encode()


# --- XML attacks -------------------------------------------------------------------------------------
def test_xml_attacks_are_refused_fast_and_fetch_nothing(live, spy):
    wx = live.pusher()
    url, hits = spy
    head = f"<ToUserName>{cdata('gh_x')}</ToUserName><FromUserName>{cdata(OPENID)}</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>"
    lol = '<!ENTITY a "' + "A" * 50 + '">' + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    attacks = {
        "xxe file": f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml>{head}<Content>&xxe;</Content></xml>',
        "xxe http": f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "{url}/xxe">]><xml>{head}<Content>&xxe;</Content></xml>',
        "external dtd": f'<?xml version="1.0"?><!DOCTYPE xml SYSTEM "{url}/evil.dtd"><xml>{head}<Content>x</Content></xml>',
        "parameter entity": f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><xml>{head}<Content>x</Content></xml>',
        "billion laughs": f'<?xml version="1.0"?><!DOCTYPE xml [{lol}]><xml>{head}<Content>&j;</Content></xml>',
        "quadratic blowup": f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "{"B" * 20000}">]><xml>{head}<Content>{"&a;" * 2000}</Content></xml>',
        "xinclude": f'<xml xmlns:xi="http://www.w3.org/2001/XInclude">{head}<Content><xi:include href="file:///etc/passwd" parse="text"/></Content></xml>',
        "processing instruction": f'<?xml-stylesheet href="{url}/s.xsl"?><xml>{head}<Content>x</Content></xml>',
        "not xml": "this is not xml",
        "other root": f"<root>{head}</root>",
        "unclosed": f"<xml>{head}<Content>",
        "utf-16": "",
    }
    for name, body in attacks.items():
        raw = body.encode() if name != "utf-16" else f"<xml>{head}<Content>x</Content></xml>".encode("utf-16")
        for mode in ("plain", "aes"):
            if mode == "aes":
                try:
                    query, raw_aes = wx.envelope(body or "<xml/>", "aes")
                except Exception:
                    continue
                r, took = timed(_post_raw, live, wx, raw_aes, query=query)
            else:
                r, took = timed(_post_raw, live, wx, raw)
            tally("hostile inputs tried")
            assert r.status_code in (200, 400), (name, mode, r.status_code, r.text[:200])
            assert took < 2, (name, took)
            assert "root:" not in r.text and "pwned" not in r.text and "xi:include" not in r.text
    assert hits == []  # nothing was fetched from the attacker's server


@pytest.mark.parametrize("size", [64 * 1024 + 1, 300 * 1024, 5 * 1024 * 1024])
def test_huge_bodies_are_refused(live, size):
    wx = live.pusher()
    body = _text_xml(wx, "x" * size)
    r, took = timed(_post_raw, live, wx, body)
    tally("hostile inputs tried")
    assert r.status_code in (400, 413), r.status_code
    assert took < 3


def test_huge_body_without_content_length_is_refused(live):
    wx = live.pusher()

    def chunks() -> Any:
        for _ in range(200):
            yield b"<xml>" + b"A" * 4096

    r = requests.post(f"{live.url}/wechat?{urlencode(wx.signed_query())}", data=chunks(), headers={"Content-Type": "text/xml"}, timeout=10)
    tally("hostile inputs tried")
    assert r.status_code in (400, 413)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"ToUserName": "gh", "MsgType": "text"}'),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--xyz--\r\n'),
        ("application/x-www-form-urlencoded", b"ToUserName=gh&MsgType=text"),
        ("text/plain; charset=gbk", "<xml><Content>中文</Content></xml>".encode("gbk")),
        ("application/octet-stream", bytes(range(256))),
        ("", b""),
    ],
)
def test_wrong_content_types_are_400_not_500(live, content_type, body):
    wx = live.pusher()
    r = _post_raw(live, wx, body, content_type)
    tally("hostile inputs tried")
    assert r.status_code == 400, (r.status_code, r.text[:200])


def test_a_real_message_with_a_form_content_type_still_reads_or_is_refused(live):
    wx = live.pusher()
    r = _post_raw(live, wx, _text_xml(wx, "帮助"), "application/x-www-form-urlencoded")
    assert r.status_code in (200, 400)


# --- signatures -------------------------------------------------------------------------------------
def test_signatures_outside_the_time_window_are_refused(live):
    wx = live.pusher()
    skew = live.cfg.wechat.max_clock_skew_seconds
    for offset in (-skew - 5, skew + 5, -86400 * 365):
        ts = str(int(time.time()) + offset)
        for mode in ("plain", "aes"):
            query, body = wx.envelope(_text_xml(wx, "帮助").decode(), mode, timestamp=ts)
            r = _post_raw(live, wx, body, query=query)
            tally("hostile inputs tried")
            assert r.status_code == 403, (offset, mode, r.status_code)
    for ts in ("", "abc", "1e10", "-1", "99999999999999999999999"):
        q = wx.signed_query(timestamp=ts) if ts else {**wx.signed_query(), "timestamp": ""}
        assert _post_raw(live, wx, _text_xml(wx, "帮助"), query=q).status_code == 403
        tally("hostile inputs tried")


def test_tampered_or_missing_signatures_are_refused(live):
    wx = live.pusher()
    query, body = wx.envelope(_text_xml(wx, "帮助").decode(), "aes")
    cases = [
        {**query, "signature": query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")},
        {**query, "msg_signature": "0" * 40},
        {k: v for k, v in query.items() if k != "signature"},
        {k: v for k, v in query.items() if k != "msg_signature"},
        {**query, "nonce": query["nonce"] + "1"},
    ]
    for q in cases:
        r = _post_raw(live, wx, body, query=q)
        tally("hostile inputs tried")
        assert r.status_code == 403, (q, r.status_code)
    r = requests.get(f"{live.url}/wechat", params={"signature": "x", "timestamp": "1", "nonce": "1", "echostr": "hi"}, timeout=10)
    assert r.status_code == 403
    q = wx.signed_query()
    r = requests.get(f"{live.url}/wechat", params={**q, "echostr": "<script>alert(1)</script>"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")


def test_a_replayed_push_inside_the_window_acts_once(live):
    """A captured push sent again with its signature: answered like WeChat's retry, the step is not taken twice."""
    wx = live.pusher()
    new_card(live)
    click(wx, OPENID, "BIND")
    query, body = wx.envelope(_text_xml(wx, "20230001").decode(), "plain")
    first = _post_raw(live, wx, body, query=query)
    assert "姓名" in first.text
    for _ in range(3):
        again = _post_raw(live, wx, body, query=query)
        tally("hostile inputs tried")
        assert again.status_code == 200 and again.text == first.text
    assert live.services.dialogs.get(OPENID).state == "bind.name"


# --- text that tries to break things ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["plain", "aes"])
def test_nasty_text_gets_a_well_formed_reply(live, mode):
    wx = live.pusher(mode)
    for text in NASTY:
        reply = wx.text(OPENID, text)
        tally("hostile inputs tried")
        assert reply.status == 200, (text, reply.raw)
        assert reply.content, text
        assert "injected" not in reply.raw
    with live.session() as db:
        assert db.execute(select(func.count()).select_from(Cardholder)).scalar_one() == 0  # nothing was dropped or added


def test_nasty_dialog_answers_and_full_width_digits(live):
    """Every binding step fed hostile text, then a real binding typed in full-width digits with spaces."""
    wx = live.pusher()
    new_card(live)
    for text in NASTY:
        click(wx, OPENID, "BIND")
        for step in range(2):
            reply = wx.text(OPENID, text if step == 0 else "20230001")
            tally("hostile inputs tried")
            assert reply.status == 200 and reply.content
        reply = wx.text(OPENID, text)  # as the name
        assert reply.status == 200 and reply.content
        wx.text(OPENID, "取消")
    assert bindings_of(live, OPENID) == 0
    assert "学号" in click(wx, OPENID, "BIND").content
    assert "姓名" in wx.text(OPENID, "２０２３ ０００１").content
    assert "密码" in wx.text(OPENID, "张三").content
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in PASSWORD)
    assert "绑定成功" in wx.text(OPENID, full_width).content


# --- amounts on the top-up API -------------------------------------------------------------------------
BAD_AMOUNTS: list[Any] = [
    -5000,
    -1,
    0,
    -0.0,
    0.5,
    5000.5,
    5000.0,
    4999,
    1,
    10**12,
    10**30,
    2**63,
    -(2**63),
    "5000",
    "5,000",
    "五十",
    "５０００",
    "1e3",
    None,
    True,
    False,
    [],
    [5000],
    {},
    {"amount": 5000},
    float("inf"),
    "NaN",
]


def test_bad_amounts_are_refused_and_create_nothing(make_live):
    live = make_live(server={"h5_writes_per_minute": 1000})
    emu_pay(live).notify_enabled = False
    card_id = student(live, OPENID)
    phone = logged_in(live, OPENID)
    for amount in BAD_AMOUNTS:
        for mode in ("quick", "custom"):
            body = json.dumps({"amount_fen": amount, "mode": mode}, allow_nan=True)
            r = phone.order(None, body=body)
            tally("hostile inputs tried")
            assert 400 <= r.status_code < 500, (amount, mode, r.status_code, r.text[:200])
            assert r.json()["error"] and r.json()["message"], (amount, r.text)
    raw_bodies = [
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b'{"amount_fen": NaN, "mode": "custom"}',
        b'{"amount_fen": 1e400, "mode": "custom"}',
        b"amount_fen=5000&mode=quick",
        b"",
        b"\xff\xfe\x00",
        b'{"amount_fen": 5000, "mode": "quick"',
        b"[" * 100000 + b"]" * 100000,
        json.dumps({"amount_fen": 5000, "mode": "quick" * 10000}).encode(),
        b'{"amount_fen": 00005000, "mode": "quick"}',
        b'{"amount_fen": 5000, "mode": ["quick"]}',
        b'{"amount_fen": 5000, "mode": null}',
    ]
    for raw in raw_bodies:
        r = phone.order(None, body=raw)
        tally("hostile inputs tried")
        assert 400 <= r.status_code < 500, (raw[:60], r.status_code, r.text[:200])
    with live.session() as db:
        assert db.execute(select(func.count()).select_from(TopupOrder).where(TopupOrder.cardholder_id == card_id)).scalar_one() == 0
    assert phone.order(5000, "quick").status_code == 201  # and the real thing still works


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    "",
    " ",
    "1",
    "-1",
    "abc",
    "]]>",
    "'; DROP TABLE agreements; --",
    "６２２２０２１２３４５６７８９０",
    "6222021234567890",
    "6222 0212 3456 7890 123",
    "x" * 5000,
    [],
    [1],
    {},
    {"$ne": None},
    "😀" * 10,
    "\x00",
]


def test_every_write_api_answers_odd_bodies_with_4xx_never_500(make_live):
    """Whatever JSON a scripted client posts to any H5 write API (top-up, auto-debit agreement, refunds ...)."""
    live = make_live(server={"h5_writes_per_minute": 100000})
    emu_pay(live).notify_enabled = False
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    writes = [rule.rule for rule in live.app.url_map.iter_rules() if rule.rule.startswith("/api/") and "POST" in rule.methods]
    keys = ("amount_fen", "mode", "bank_account", "attempt_id", "order_no", "openid", "cardholder_id")
    bodies: list[Any] = [None, [], "x", 1] + [{key: v} for key in keys for v in ODD_VALUES]
    for path in writes:
        for body in bodies:
            r = phone.http.post(
                live.url + path.replace("<order_no>", "T20261125000000AAAAAAAAAA"),
                data=json.dumps(body),
                headers={"Content-Type": "application/json", "X-CSRF-Token": phone.csrf},
                timeout=10,
            )
            tally("hostile inputs tried")
            assert r.status_code < 500, (path, body, r.status_code, r.text[:200])


def test_refund_request_with_a_huge_attempt_id_is_a_4xx(make_live):
    live = make_live()
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    r = phone.http.post(live.url + "/api/autodebit/refunds", json={"attempt_id": 10**30}, headers={"X-CSRF-Token": phone.csrf}, timeout=10)
    assert 400 <= r.status_code < 500, r.status_code
