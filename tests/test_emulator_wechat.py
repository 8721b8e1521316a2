"""Contract tests of the emulated WeChat platform: tokens, menu, template and customer-service sends, OAuth.

The emulator must answer exactly like WeChat (errcodes, limits), so the bot's error handling is tested for real.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import menus
from bot.adapters.wechat_api import WeChatAPI, WeChatAPIError

OPENID = "oEmuUser000000000000001"


def _token(live, force: bool = False) -> str:
    w = live.cfg.wechat
    r = live.http.get(live.url + "/cgi-bin/token", params={"grant_type": "client_credential", "appid": w.appid, "secret": w.secret})
    data = r.json()
    assert "access_token" in data, data
    return data["access_token"]


def _menu_get(live, token: str) -> dict:
    return live.http.get(live.url + "/cgi-bin/menu/get", params={"access_token": token}).json()


def _post(live, path: str, token: str, body, raw: bytes | None = None) -> dict:
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    return live.http.post(live.url + path, params={"access_token": token}, data=data, timeout=10).json()


# --- access_token ---------------------------------------------------------------
def test_token_bad_credentials(live):
    w = live.cfg.wechat
    r = live.http.get(live.url + "/cgi-bin/token", params={"grant_type": "client_credential", "appid": w.appid, "secret": "nope"})
    assert r.json()["errcode"] == 40125
    r = live.http.get(live.url + "/cgi-bin/token", params={"grant_type": "client_credential", "appid": "wxother", "secret": w.secret})
    assert r.json()["errcode"] == 40013
    r = live.http.post(live.url + "/cgi-bin/stable_token", json={"grant_type": "client_credential", "appid": w.appid, "secret": "x"})
    assert r.json()["errcode"] == 40125


def test_token_grace_period_then_40001_and_expiry_42001(live):
    emu = live.emulator
    old = _token(live)
    new = _token(live)
    assert old != new
    assert _menu_get(live, old)["errcode"] == 46003  # still accepted inside the grace period
    emu.clock_offset += live.cfg.emulator.token_grace_seconds + 1
    assert _menu_get(live, old)["errcode"] == 40001
    assert _menu_get(live, new)["errcode"] == 46003
    assert _menu_get(live, "made-up")["errcode"] == 40001
    assert live.http.get(live.url + "/cgi-bin/menu/get").json()["errcode"] == 41001
    emu.clock_offset += live.cfg.emulator.token_ttl_seconds
    assert _menu_get(live, new)["errcode"] == 42001


def test_stable_token_returns_the_same_token_unless_forced(live):
    w = live.cfg.wechat
    body = {"grant_type": "client_credential", "appid": w.appid, "secret": w.secret}
    a = live.http.post(live.url + "/cgi-bin/stable_token", json=body).json()
    b = live.http.post(live.url + "/cgi-bin/stable_token", json=body).json()
    assert a["access_token"] == b["access_token"] and 0 < b["expires_in"] <= 7200
    c = live.http.post(live.url + "/cgi-bin/stable_token", json={**body, "force_refresh": True}).json()
    assert c["access_token"] != a["access_token"]
    assert _menu_get(live, a["access_token"])["errcode"] == 46003  # grace period


def test_daily_token_fetch_limit_45009_resets_next_day(make_live):
    live = make_live(emulator={"token_daily_limit": 3})
    for _ in range(3):
        _token(live)
    w = live.cfg.wechat
    params = {"grant_type": "client_credential", "appid": w.appid, "secret": w.secret}
    assert live.http.get(live.url + "/cgi-bin/token", params=params).json()["errcode"] == 45009
    assert live.emulator.calls_today("token") == 3
    live.emulator.clock_offset += 86400
    assert "access_token" in live.http.get(live.url + "/cgi-bin/token", params=params).json()


def test_bot_client_refreshes_once_after_token_invalidated(live):
    """The bot's WeChatAPI meets 40001 (its cached token was replaced long ago) and recovers with one refresh."""
    api = live.services.wechat
    api.get_menu()
    cached = api.client.session.get(api.client.access_token_key)
    _token(live)  # someone else refreshed: the cached token dies after the grace period
    live.emulator.clock_offset += live.cfg.emulator.token_grace_seconds + 1
    assert _menu_get(live, cached)["errcode"] == 40001
    assert api.get_menu() is None  # 46003 -> None in wechatpy: the call itself succeeded
    assert api.client.session.get(api.client.access_token_key) != cached


# --- menu ------------------------------------------------------------------------
def test_menu_create_get_delete_through_the_bot_client(live):
    menu = menus.load()
    api = live.services.wechat
    api.create_menu(menu)
    got = api.get_menu()
    assert [b["name"] for b in got["menu"]["button"]] == [b["name"] for b in menu["button"]]
    tok = _token(live)
    assert live.http.get(live.url + "/cgi-bin/menu/delete", params={"access_token": tok}).json()["errcode"] == 0
    assert _menu_get(live, tok)["errcode"] == 46003


def _menu(**top) -> dict:
    sub = {"type": "click", "name": "余额", "key": "BALANCE"}
    return {"button": [{"name": "缴费大厅", "sub_button": [sub]}, top or {"type": "click", "name": "帮助", "key": "HELP"}]}


MENU_ERRORS = [
    ({"button": []}, 40016),
    ({"button": [{"type": "click", "name": f"b{i}", "key": "K"} for i in range(4)]}, 40016),
    (_menu(type="click", name="一二三四五六", key="K"), 40018),  # 18 bytes > 16
    (_menu(type="teleport", name="x", key="K"), 40017),
    (_menu(type="click", name="x", key="K" * 129), 40019),
    (_menu(type="click", name="x"), 40019),
    (_menu(type="view", name="x", url="ftp://example.com/"), 40055),
    (_menu(type="view", name="x", url="https://example.com/" + "a" * 240), 40020),
    (_menu(name="x", sub_button=[{"type": "click", "name": "s", "key": f"K{i}"} for i in range(6)]), 40023),
    (_menu(name="x", sub_button=[{"type": "click", "name": "长" * 14, "key": "K"}]), 40025),  # 42 bytes > 40
    (_menu(name="x", sub_button=[{"type": "nope", "name": "s", "key": "K"}]), 40024),
    (_menu(name="x", sub_button=[{"type": "click", "name": "s", "key": ""}]), 40026),
    (_menu(name="x", sub_button=[{"type": "view", "name": "s", "url": "notaurl"}]), 40054),
]


def test_menu_create_validation_errors(live):
    tok = _token(live)
    for menu, code in MENU_ERRORS:
        assert _post(live, "/cgi-bin/menu/create", tok, menu)["errcode"] == code, menu
    assert _menu_get(live, tok)["errcode"] == 46003


def test_menu_escaped_unicode_is_40033_and_bad_json_47001(live):
    tok = _token(live)
    raw = json.dumps(menus.load(), ensure_ascii=True).encode()
    assert _post(live, "/cgi-bin/menu/create", tok, None, raw=raw)["errcode"] == 40033
    assert _post(live, "/cgi-bin/menu/create", tok, None, raw=b"{not json")["errcode"] == 47001
    assert _post(live, "/cgi-bin/menu/create", tok, None, raw=menus.to_json(menus.load()).encode())["errcode"] == 0


def test_menu_create_daily_limit(make_live):
    live = make_live(emulator={"menu_daily_limit": 2})
    tok = _token(live)
    raw = menus.to_json(menus.load()).encode()
    assert [_post(live, "/cgi-bin/menu/create", tok, None, raw=raw)["errcode"] for _ in range(3)] == [0, 0, 45009]


# --- template messages ---------------------------------------------------------------
def _receipt(openid: str = OPENID, **values) -> dict:
    data = {"amount1": "50.00", "amount2": "0.15", "amount3": "150.00", "time4": "2026-11-25 12:00"}
    data.update(values)
    return {"touser": openid, "template_id": "TPL_TOPUP_RECEIPT", "url": "http://127.0.0.1/bills", "data": {k: {"value": v} for k, v in data.items()}}


def _wait(predicate, timeout: float = 5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_template_send_delivers_and_pushes_job_finish_to_the_bot(live, wx):
    api = live.services.wechat
    with pytest.raises(WeChatAPIError) as exc:
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", _receipt()["data"])
    assert exc.value.errcode == 43004  # not a follower yet
    wx.event(OPENID, "subscribe")
    msgid = api.send_template(OPENID, "TPL_TOPUP_RECEIPT", _receipt()["data"], "http://127.0.0.1/bills")
    assert msgid
    [item] = [m for m in live.emulator.inbox[OPENID] if m["kind"] == "template"]
    assert item["msgid"] == int(msgid) and item["data"]["amount1"] == "50.00"
    pushes = _wait(lambda: [p for p in live.emulator.pushes if f"<MsgID>{msgid}</MsgID>" in p["xml"]])
    assert pushes and pushes[0]["status"] == 200 and pushes[0]["reply"] in ("", "success")
    assert "TEMPLATESENDJOBFINISH" in pushes[0]["xml"]
    metric = live.services.metrics.messages.labels(kind="event:templatesendjobfinish")._value.get()
    assert metric >= 1  # the bot parsed the signed push


def test_template_job_finish_in_safe_mode_and_failed_status(live, wx):
    wx.event(OPENID, "subscribe")
    live.emulator.push_mode = "aes"
    live.emulator.faults["template_status"] = ["failed:user block"]
    tok = _token(live)
    res = _post(live, "/cgi-bin/message/template/send", tok, _receipt())
    assert res["errcode"] == 0
    push = _wait(lambda: live.emulator.pushes)
    assert push[0]["status"] == 200 and "failed:user block" in push[0]["xml"]


def test_template_send_errors(live, wx):
    tok = _token(live)
    wx.event(OPENID, "subscribe")
    send = lambda body: _post(live, "/cgi-bin/message/template/send", tok, body)["errcode"]  # noqa: E731
    assert send({**_receipt(), "template_id": "TPL_UNKNOWN"}) == 40037
    assert send(_receipt("bad openid!")) == 40003
    assert send(_receipt("oNeverFollowed000000001")) == 43004
    assert send(_receipt(amount1="1" * 21)) == 47003
    assert send(_receipt(amount1="50.00\n")) == 47003
    assert send(_receipt(first="您好")) == 47003  # no first/remark since 2023
    assert send({"touser": OPENID, "template_id": "TPL_TOPUP_RECEIPT"}) == 47001
    assert send({**_receipt(), "url": "javascript:alert(1)"}) == 47003
    assert live.emulator.inbox.get(OPENID, []) == []
    assert send(_receipt(amount1="1" * 20)) == 0


def test_unsubscribe_push_makes_template_43004(live, wx, wx_aes):
    tok = _token(live)
    wx.event(OPENID, "subscribe")
    assert _post(live, "/cgi-bin/message/template/send", tok, _receipt())["errcode"] == 0
    wx.event(OPENID, "unsubscribe")
    assert _post(live, "/cgi-bin/message/template/send", tok, _receipt())["errcode"] == 43004
    wx_aes.event(OPENID, "subscribe")
    assert OPENID in live.emulator.followers
    wx_aes.event(OPENID, "unsubscribe")  # seen through the encryption too
    assert _post(live, "/cgi-bin/message/template/send", tok, _receipt())["errcode"] == 43004


def test_template_daily_quota_45009(make_live):
    live = make_live(emulator={"template_daily_quota": 2, "auto_deliver_pushes": False})
    live.emulator.user_pushed(OPENID, "message")
    tok = _token(live)
    codes = [_post(live, "/cgi-bin/message/template/send", tok, _receipt())["errcode"] for _ in range(3)]
    assert codes == [0, 0, 45009]
    assert not live.emulator.pushes


def test_template_fault_injection(make_live):
    live = make_live(wechat={"request_timeout_seconds": 0.5}, emulator={"auto_deliver_pushes": False})
    live.emulator.user_pushed(OPENID, "message")
    api = live.services.wechat
    data = _receipt()["data"]
    live.emulator.faults["template"] = [45009]
    with pytest.raises(WeChatAPIError) as exc:
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", data)
    assert exc.value.errcode == 45009
    live.emulator.faults["template"] = ["5xx", "5xx"]
    with pytest.raises(WeChatAPIError) as exc:
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", data)
    assert exc.value.errcode is None
    live.emulator.faults["template"] = ["timeout"]
    with pytest.raises(WeChatAPIError) as exc:  # unanswered: not retried, since WeChat may have sent it
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", data)
    assert exc.value.maybe_sent is True
    sent = live.emulator.calls_today("template")
    live.emulator.faults["template"] = ["garbage", 0]
    with pytest.raises(WeChatAPIError) as exc:  # answered, but not with WeChat's JSON: it may have sent it
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", data)
    assert exc.value.maybe_sent is True and exc.value.errcode is None
    assert live.emulator.faults["template"] == [0]  # asked once: a call that may have been sent is not repeated
    live.emulator.faults.pop("template")
    assert api.send_template(OPENID, "TPL_TOPUP_RECEIPT", data)  # faults consumed: normal again
    assert live.emulator.calls_today("template") == sent + 1


def test_template_send_that_cannot_connect_was_surely_not_sent(live):
    """The template message's own HTTP path (urllib3's pool, not wechatpy's requests): a refused connection never
    reached WeChat, so it is tried once more and then reported as not sent (the outbox retries it later)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = WeChatAPI(live.cfg.wechat.model_copy(update={"api_base_url": f"http://127.0.0.1:{port}"}), live.services.store)
    api.client.session.set(api.client.access_token_key, "EMUtokenheldinredis", 7200)
    with pytest.raises(WeChatAPIError) as exc:
        api.send_template(OPENID, "TPL_TOPUP_RECEIPT", _receipt()["data"])
    assert exc.value.errcode is None and exc.value.maybe_sent is False and "ConnectionError" in exc.value.errmsg


# --- customer-service messages -----------------------------------------------------------
def _cs(live, tok: str, openid: str = OPENID, text: str = "hi") -> int:
    return _post(live, "/cgi-bin/message/custom/send", tok, {"touser": openid, "msgtype": "text", "text": {"content": text}})["errcode"]


def test_cs_window_48h_and_count(live, wx):
    tok = _token(live)
    assert _cs(live, tok) == 45015
    wx.text(OPENID, "帮助")
    assert [_cs(live, tok, text=str(i)) for i in range(6)] == [0, 0, 0, 0, 0, 45047]
    assert [m["content"]["content"] for m in live.emulator.inbox[OPENID]] == ["0", "1", "2", "3", "4"]
    wx.text(OPENID, "帮助")  # a new message opens a new window
    assert _cs(live, tok) == 0
    live.emulator.clock_offset += 48 * 3600 + 1
    assert _cs(live, _token(live)) == 45015


def test_cs_limits_are_configurable_and_menu_click_rule(make_live):
    live = make_live(emulator={"cs_max_in_window": 2, "cs_click_max": 3, "cs_click_window_seconds": 60})
    tok = _token(live)
    live.emulator.user_pushed(OPENID, "click")
    assert [_cs(live, tok) for _ in range(4)] == [0, 0, 0, 45047]
    live.emulator.clock_offset += 61
    assert _cs(live, tok) == 45015  # a click opens only a one-minute window
    live.emulator.user_pushed(OPENID, "message")
    assert [_cs(live, tok) for _ in range(3)] == [0, 0, 45047]
    assert _post(live, "/cgi-bin/message/custom/send", tok, {"touser": OPENID, "msgtype": "fax"})["errcode"] == 40008


# --- OAuth ------------------------------------------------------------------------------------
def _authorize(live, openid: str | None = OPENID, **over):
    w = live.cfg.wechat
    params = {"appid": w.appid, "redirect_uri": live.url + "/topup?x=1", "response_type": "code", "scope": "snsapi_base", "state": "st4te"}
    params.update(over)
    if openid:
        params["sim_openid"] = openid
    return live.http.get(live.url + "/connect/oauth2/authorize", params=params, allow_redirects=False)


def _exchange(live, code: str, secret: str | None = None) -> dict:
    w = live.cfg.wechat
    params = {"appid": w.appid, "secret": secret or w.secret, "code": code, "grant_type": "authorization_code"}
    return live.http.get(live.url + "/sns/oauth2/access_token", params=params).json()


def test_oauth_code_is_single_use(live):
    r = _authorize(live)
    assert r.status_code == 302
    loc = urlsplit(r.headers["Location"])
    q = parse_qs(loc.query)
    assert loc.path == "/topup" and q["state"] == ["st4te"] and q["x"] == ["1"]
    code = q["code"][0]
    assert _exchange(live, code, secret="wrong")["errcode"] == 40125
    data = _exchange(live, code)
    assert data["openid"] == OPENID and data["scope"] == "snsapi_base" and data["access_token"]
    assert _exchange(live, code)["errcode"] == 40163
    assert _exchange(live, "unknown")["errcode"] == 40029
    assert live.services.wechat.oauth_openid(parse_qs(urlsplit(_authorize(live).headers["Location"]).query)["code"][0]) == OPENID


def test_oauth_code_expires_after_5_minutes(live):
    code = parse_qs(urlsplit(_authorize(live).headers["Location"]).query)["code"][0]
    live.emulator.clock_offset += 301
    assert _exchange(live, code)["errcode"] == 42003
    with pytest.raises(WeChatAPIError):
        live.services.wechat.oauth_openid(code)


def test_oauth_identity_comes_from_the_simulator_cookie(live):
    live.http.cookies.set("sim_openid", "oCookieUser0000000001")
    r = _authorize(live, openid=None)
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    assert _exchange(live, code)["openid"] == "oCookieUser0000000001"


def test_oauth_authorize_errors(live):
    assert _authorize(live, openid=None).status_code == 403  # not inside "WeChat"
    assert _authorize(live, appid="wxother").status_code == 400
    assert _authorize(live, redirect_uri="https://evil.example/steal").status_code == 400
    assert _authorize(live, scope="snsapi_everything").status_code == 400
    assert _authorize(live, response_type="token").status_code == 400
