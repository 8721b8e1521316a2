"""The /wechat endpoint: URL check, signatures, modes, hostile bodies, retries, the 5-second budget."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.chat.router import Routes
from bot.chat.wechat_xml import check_signature, sha1_signature


@pytest.mark.unit
def test_url_check_vector_from_wechat_facts():
    assert sha1_signature("AAAAA", "1714036504", "1514711492") == "f464b24fc39322e44b38aa78f5edd27bd1441696"
    assert check_signature("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441696", "1714036504", "1514711492")
    assert not check_signature("AAAAA", "f464b24fc39322e44b38aa78f5edd27bd1441697", "1714036504", "1514711492")


def test_url_check_over_http(make_live):
    live = make_live(wechat={"token": "AAAAA"})
    q = {"signature": "f464b24fc39322e44b38aa78f5edd27bd1441696", "timestamp": "1714036504", "nonce": "1514711492", "echostr": "hello123"}
    r = live.http.get(live.url + "/wechat", params=q)
    assert r.status_code == 200 and r.text == "hello123"
    r = live.http.get(live.url + "/wechat", params={**q, "signature": "0" * 40})
    assert r.status_code == 403


def test_plain_text_gets_help_reply(wx):
    reply = wx.text("oUser0000000000000000001", "帮助")
    assert reply.status == 200 and reply.type == "text"
    assert "余额" in reply.content and "500" in reply.content


def test_safe_mode_round_trip(wx_aes):
    reply = wx_aes.text("oUser0000000000000000002", "help")
    assert reply.type == "text" and "取消" in reply.content  # decrypted and MsgSignature verified in read_reply


def test_compat_mode(live):
    wx = live.pusher("compat")
    reply = wx.text("oUser0000000000000000003", "帮助")
    assert reply.type == "text" and "余额" in reply.content


def test_bad_signature_is_403(live, wx):
    query, body = wx.envelope(wx.xml("oUser0000000000000000004", "text", {"Content": "hi", "MsgId": "1"}))
    query["signature"] = "0" * 40
    r = live.http.post(live.url + "/wechat", params=query, data=body)
    assert r.status_code == 403


def test_bad_msg_signature_in_aes_mode_is_403(live, wx_aes):
    query, body = wx_aes.envelope(wx_aes.xml("oUser0000000000000000004", "text", {"Content": "hi", "MsgId": "1"}))
    query["msg_signature"] = "1" * 40
    r = live.http.post(live.url + "/wechat", params=query, data=body)
    assert r.status_code == 403


def test_stale_timestamp_is_403(live, wx):
    old = str(int(time.time()) - 3600)
    query, body = wx.envelope(wx.xml("oUser0000000000000000005", "text", {"Content": "hi", "MsgId": "2"}), timestamp=old)
    r = live.http.post(live.url + "/wechat", params=query, data=body)
    assert r.status_code == 403


def _post_signed(live, wx, body: bytes):
    query, _ = wx.envelope("<xml/>")
    return live.http.post(live.url + "/wechat", params=query, data=body)


def test_malformed_and_hostile_bodies_are_400(live, wx):
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><ToUserName>a</ToUserName><FromUserName>&e;</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>'
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><Content>&c;</Content></xml>'
    for body in (b"not xml at all", b"<xml><unclosed>", xxe, bomb, b"<root/>", b"<xml><MsgType>text</MsgType></xml>", b""):
        assert _post_signed(live, wx, body).status_code == 400, body[:40]
    huge = b"<xml><Content>" + b"a" * (live.cfg.server.max_body_bytes + 10) + b"</Content></xml>"
    assert _post_signed(live, wx, huge).status_code in (400, 413)


def test_unknown_message_type_gets_short_help(wx):
    reply = wx.image("oUser0000000000000000006")
    assert reply.type == "text" and "帮助" in reply.content


def test_cdata_terminator_in_user_text_is_safe(wx):
    reply = wx.text("oUser0000000000000000007", "]]><evil/>")
    assert reply.status == 200 and reply.type == "text"


_calls: list[str] = []
_slow = threading.Event()
test_routes = Routes()
ROUTES = [test_routes]  # conftest ``live`` adds this file's test handlers to the router


@test_routes.text("__test_count__")
def _count_handler(msg, ctx):
    _calls.append(msg.source)
    time.sleep(0.3)
    return f"counted {len(_calls)}"


@test_routes.text("__test_slow__")
@test_routes.calls_out()  # as a handler waiting for an outside system declares itself
def _slow_handler(msg, ctx):
    time.sleep(1.5)
    return "slow result ready"


def test_retried_push_runs_once_and_gets_same_reply(wx):
    _calls.clear()
    xml = wx.xml("oUser0000000000000000008", "text", {"Content": "__test_count__", "MsgId": "99887766"})
    first = wx.send("oUser0000000000000000008", xml)
    second = wx.send("oUser0000000000000000008", xml)
    third = wx.send("oUser0000000000000000008", xml)
    assert len(_calls) == 1
    assert first.content == second.content == third.content == "counted 1"


def test_concurrent_retries_run_once(wx):
    _calls.clear()
    xml = wx.xml("oUser0000000000000000009", "text", {"Content": "__test_count__", "MsgId": "55443322"})
    with ThreadPoolExecutor(3) as pool:
        replies = list(pool.map(lambda _: wx.send("oUser0000000000000000009", xml), range(3)))
    assert len(_calls) == 1
    assert {r.content for r in replies} == {"counted 1"}


def test_slow_handler_answers_in_time_and_delivers_later(make_live):
    live = make_live(routes=[test_routes], wechat={"reply_budget_seconds": 0.5})
    wx = live.pusher()
    t0 = time.monotonic()
    reply = wx.text("oUser0000000000000000010", "__test_slow__")
    assert time.monotonic() - t0 < 1.4
    assert "正在查询" in reply.content
    deadline = time.monotonic() + 5
    inbox: list = []
    while time.monotonic() < deadline:
        inbox = live.emulator.inbox.get("oUser0000000000000000010", [])
        if inbox:
            break
        time.sleep(0.05)
    assert inbox and inbox[0]["kind"] == "customer_service"
    assert inbox[0]["content"]["content"] == "slow result ready"
