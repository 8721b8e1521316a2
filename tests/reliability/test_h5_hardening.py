"""H5 hardening over real HTTP: sessions die after 12 hours (even a replayed cookie) and on unbind; personal pages and
APIs are never cached, never framed by another site and leak no referrer; ``X-Request-Id`` is taken only when short
and plain; pay notifies more than 5 minutes off the business clock, or without a payer, credit nothing.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
import requests

from tests.reliability.test_h5_security import _api_routes, _pages
from tests.support.reliability import tally
from tests.support.topup import Phone, card, emu_pay, logged_in, notify, order_row, student, transaction, wait_credited

ALICE = "oH5HardeningAlice0000001"
NO_SUCH_ORDER = "/api/topup/orders/T20261125000000AAAAAAAAAA"


def _signed_in(phone: Any) -> bool:
    """An API read with the phone's cookie: 404 (signed in, no such order) or 401 (no session)."""
    status = phone.http.get(phone.live.url + NO_SUCH_ORDER, timeout=10).status_code
    assert status in (401, 404), status
    return status == 404


def _replay(live: Any, cookie: str) -> int:
    thief = requests.Session()
    thief.cookies.set("cardbot_session", cookie)
    return thief.get(live.url + NO_SUCH_ORDER, timeout=10).status_code


# --- sessions ------------------------------------------------------------------------------------------
def test_a_session_dies_12_hours_after_login_even_when_replayed(live):
    student(live, ALICE)
    alice = logged_in(live, ALICE)
    stolen = alice.http.cookies["cardbot_session"]
    live.services.clock.shift(timedelta(hours=11, minutes=59))
    assert _signed_in(alice) and _replay(live, stolen) == 404
    live.services.clock.shift(timedelta(minutes=2))
    assert _replay(live, stolen) == 401
    assert not _signed_in(alice)
    page = alice.http.get(live.url + "/topup", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and "/connect/oauth2/authorize" in page.headers["Location"]
    assert logged_in(live, ALICE).open_page().status_code == 200  # a fresh login works
    tally("hostile inputs tried", 2)


def test_unbinding_ends_every_h5_session_of_that_user(live):
    student(live, ALICE)
    phone, other_browser = logged_in(live, ALICE), logged_in(live, ALICE)
    stolen = phone.http.cookies["cardbot_session"]
    wx = live.pusher()
    assert "确认" in wx.text(ALICE, "解绑").content
    wx.text(ALICE, "确认")
    assert not _signed_in(phone) and not _signed_in(other_browser)
    assert _replay(live, stolen) == 401
    again = Phone(live, ALICE)  # a new login after the unbind is a new session (the page then offers binding)
    assert again.open_page().status_code == 200 and _signed_in(again)
    tally("hostile inputs tried", 3)


def test_a_binding_removed_in_manage_ends_that_accounts_h5_sessions(live):
    card_id = student(live, ALICE)
    parent = "oH5HardeningParent000001"
    student(live, parent, card_id=card_id)
    parents_phone = logged_in(live, parent)
    wx = live.pusher()
    wx.text(ALICE, "绑定管理")
    listing = wx.text(ALICE, "011230").content
    other = next(line for line in listing.splitlines() if line[:2] in ("1.", "2.") and "本微信" not in line)[0]
    assert "已移除" in wx.text(ALICE, other).content
    assert not _signed_in(parents_phone)


def test_the_session_lifetime_is_bounded_in_the_app(live):
    assert live.app.permanent_session_lifetime <= timedelta(hours=12)


# --- headers -----------------------------------------------------------------------------------------------
def _assert_hardened(resp: requests.Response, what: str) -> None:
    h = resp.headers
    assert "no-store" in h.get("Cache-Control", ""), (what, h.get("Cache-Control"))
    assert h.get("X-Frame-Options") == "SAMEORIGIN", (what, h.get("X-Frame-Options"))
    assert "frame-ancestors 'self'" in h.get("Content-Security-Policy", ""), (what, h.get("Content-Security-Policy"))
    assert h.get("Referrer-Policy") in ("no-referrer", "same-origin", "strict-origin"), (what, h.get("Referrer-Policy"))


def test_personal_pages_and_apis_are_not_cached_framed_or_referred(make_live):
    live = make_live(server={"h5_writes_per_minute": 1000, "h5_reads_per_minute": 1000})
    emu_pay(live).notify_enabled = False
    student(live, ALICE)
    alice = logged_in(live, ALICE)
    for path in _pages(live):
        _assert_hardened(alice.http.get(live.url + path, timeout=10), path)
        _assert_hardened(requests.get(live.url + path, allow_redirects=False, timeout=10), "anonymous " + path)
    for method, path in _api_routes(live):
        r = alice.http.request(method, live.url + path, json={}, headers={"X-CSRF-Token": alice.csrf}, timeout=10)
        _assert_hardened(r, f"{method} {path}")
    order = alice.order(5000, "quick")
    assert order.status_code == 201
    _assert_hardened(order, "new order")
    _assert_hardened(alice.status(order.json()["order_no"]), "order status")
    tally("routes probed", len(_pages(live)) + len(_api_routes(live)))


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "a b", 'id"},"level":"CRITICAL', "<script>alert(1)</script>", "../../etc/passwd", "id;rm -rf", "%0d%0aSet-Cookie:x=1"],
)
def test_a_request_id_is_taken_only_when_short_and_plain(live, sent):
    r = requests.get(live.url + "/healthz", headers={"X-Request-Id": sent}, timeout=10)
    tally("hostile inputs tried")
    assert r.headers["X-Request-Id"] != sent and re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])


def test_a_plain_request_id_is_kept(live):
    for sent in ("a1B2-c3_d4.e5", "req-" + "0" * 60):
        assert requests.get(live.url + "/healthz", headers={"X-Request-Id": sent}, timeout=10).headers["X-Request-Id"] == sent


# --- pay notifies ----------------------------------------------------------------------------------------
def _paid_without_notify(live: Any) -> tuple[int, str]:
    """An order WeChat Pay holds as paid whose notify has not come yet."""
    emu_pay(live).notify_enabled = False
    card_id = student(live, ALICE, balance_fen=1000)
    phone = logged_in(live, ALICE)
    body = phone.order(5000, "custom").json()
    assert phone.pay(body["pay_params"]).json()["err_msg"].endswith(":ok")
    return card_id, body["order_no"]


def test_a_notify_more_than_5_minutes_off_credits_nothing(live):
    live.services.clock.freeze(live.services.clock.now())  # the boundary to the second, however slow the machine
    card_id, order_no = _paid_without_notify(live)
    tx = transaction(live, order_no)
    now = live.services.clock.now().timestamp()
    for at in (now - 301, now + 301, now - 86400, 0):
        r = notify(live, tx, at=at)
        tally("hostile inputs tried")
        assert 400 <= r.status_code < 500, (at - now, r.status_code, r.text)
    for stamp in ("", "abc", "1e9", str(int(now)) + "0"):
        r = notify(live, tx, headers_edit={"Wechatpay-Timestamp": stamp})
        assert 400 <= r.status_code < 500, (stamp, r.status_code)
    assert order_row(live, order_no).status == "created" and card(live, card_id).balance_fen == 1000
    assert notify(live, tx, at=now + 300).status_code in (200, 204)  # within 5 minutes: credited once
    assert notify(live, tx, at=now - 300).status_code in (200, 204)
    assert card(live, card_id).balance_fen == 6000


def test_notify_freshness_follows_the_business_clock(live):
    """The bot's clock runs a day ahead (as tests and the simulator move it): the emulator signs with the same clock,
    so its notify is fresh, while one signed with the wall clock is a day off and refused."""
    live.services.clock.shift(timedelta(days=1))
    card_id, order_no = _paid_without_notify(live)
    tx = transaction(live, order_no)
    assert 400 <= notify(live, tx, at=time.time()).status_code < 500
    assert order_row(live, order_no).status == "created"
    emu_pay(live).notify_enabled = True
    emu_pay(live).schedule_notify(emu_pay(live).orders[order_no])
    wait_credited(live, order_no)
    assert card(live, card_id).balance_fen == 6000


@pytest.mark.parametrize("payer", [None, {}, {"openid": ""}, {"openid": None}, "oSomeone", [ALICE]])
def test_a_notify_without_a_payer_credits_nothing(live, payer):
    card_id, order_no = _paid_without_notify(live)
    tx = transaction(live, order_no)
    if payer is None:
        del tx["payer"]
    else:
        tx["payer"] = payer
    r = notify(live, tx)
    tally("hostile inputs tried")
    assert 400 <= r.status_code < 500, (payer, r.status_code, r.text)
    assert order_row(live, order_no).status == "created" and card(live, card_id).balance_fen == 1000
