"""The H5 pages and their JSON APIs under attack, over real HTTP: identity only from WeChat OAuth into a signed,
HttpOnly, SameSite (and, in production, Secure) cookie; CSRF on every write; no openid or order number in a URL
grants anything; rate limits per openid; the card-system integration and operator endpoints authenticated.

Routes are discovered from the app's URL map, so a page or API added later is covered without editing this file.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from flask.sessions import SecureCookieSessionInterface

from bot.adapters import cardsys_signing
from tests.support.reliability import tally
from tests.support.topup import Phone, emu_pay, logged_in, student

ALICE = "oH5SecurityAlice00000001"
MALLORY = "oH5SecurityMallory000001"
OWN = ("/emulator", "/simulator", "/cgi-bin", "/sns", "/connect", "/v3", "/static")


def _routes(live: Any) -> list[tuple[str, str]]:
    """(method, path with sample arguments) for every route of the bot itself (not the emulator's)."""
    out = []
    for rule in live.app.url_map.iter_rules():
        if rule.rule.startswith(OWN) or rule.endpoint in ("static", "demo_home"):  # demo_home: the emulator's `/` → /simulator
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "T20261125000000AAAAAAAAAA").replace(f"<string:{arg}>", "T20261125000000AAAAAAAAAA")
            path = path.replace(f"<int:{arg}>", "1")
        out += [(m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def _api_routes(live: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in _routes(live) if p.startswith("/api/")]


def _pages(live: Any) -> list[str]:
    # the service center's console has its own sign-in and stricter headers (tests/test_admin_console.py)
    skip = ("/api/", "/wechat", "/pay/", "/integration/", "/healthz", "/metrics", "/admin")
    return [p for m, p in _routes(live) if m == "GET" and not p.startswith(skip)]


def test_the_surface_is_what_we_think(live):
    pages, apis = _pages(live), _api_routes(live)
    assert {"/topup", "/bills"} <= set(pages)
    assert ("POST", "/api/topup/orders") in apis
    tally("routes probed", len(pages) + len(apis))


# --- identity ------------------------------------------------------------------------------------
def test_no_page_opens_from_an_openid_or_order_number_in_the_url(live):
    student(live, ALICE)
    anonymous = requests.Session()
    for path in _pages(live):
        for query in ({"openid": ALICE}, {"order_no": "T20261125000000AAAAAAAAAA", "openid": ALICE}, {"sim_openid": ALICE}):
            r = anonymous.get(live.url + path, params=query, allow_redirects=False, timeout=10)
            tally("hostile inputs tried")
            assert r.status_code == 302, (path, query, r.status_code)
            assert "/connect/oauth2/authorize" in r.headers["Location"] and "snsapi_base" in r.headers["Location"]


def test_a_signed_in_user_sees_only_their_own_card_whatever_the_url_says(live):
    student(live, ALICE, balance_fen=77777)
    student(live, MALLORY, student_no="20230002", balance_fen=1234)
    mallory = Phone(live, MALLORY)
    for path in _pages(live):
        r = mallory.http.get(live.url + path, params={"openid": ALICE, "student_no": "20230001"}, timeout=10)
        tally("hostile inputs tried")
        assert r.status_code == 200, (path, r.status_code)
        assert "777.77" not in r.text, path


def test_no_api_answers_without_a_session_whatever_the_url_or_body_says(live):
    student(live, ALICE)
    for method, path in _api_routes(live):
        r = requests.request(
            method,
            live.url + path,
            params={"openid": ALICE},
            json={"openid": ALICE, "amount_fen": 5000, "mode": "quick"},
            headers={"X-CSRF-Token": "x"},
            timeout=10,
        )
        tally("hostile inputs tried")
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])


def test_an_order_number_of_someone_else_is_not_found(live):
    emu_pay(live).notify_enabled = False
    card = student(live, ALICE)
    student(live, MALLORY, card_id=None, student_no="20230002")
    alice = logged_in(live, ALICE)
    order_no = alice.order(5000, "quick").json()["order_no"]
    assert alice.status(order_no).status_code == 200
    mallory = logged_in(live, MALLORY)
    r = mallory.status(order_no)
    assert r.status_code == 404 and order_no not in r.text
    r = mallory.order(5000, "quick", body={"amount_fen": 5000, "mode": "quick", "openid": ALICE, "cardholder_id": card})
    assert r.status_code == 201
    assert mallory.status(r.json()["order_no"]).status_code == 200
    assert alice.status(r.json()["order_no"]).status_code == 404  # the body's openid was ignored
    tally("hostile inputs tried", 2)


def test_oauth_state_must_match_the_session_and_codes_are_single_use(live):
    student(live, ALICE)
    phone = Phone(live, ALICE)
    first = phone.http.get(live.url + "/topup", allow_redirects=False, timeout=10)
    authorize = phone.http.get(first.headers["Location"].split("#")[0], allow_redirects=False, timeout=10)
    back = authorize.headers["Location"]
    forged = back.replace("state=", "state=forged")
    assert phone.http.get(forged, allow_redirects=False, timeout=10).status_code == 403
    other = Phone(live, MALLORY)  # a stolen callback URL in another browser: no matching state in its session
    assert other.http.get(back, allow_redirects=False, timeout=10).status_code == 403
    tally("hostile inputs tried", 2)


# --- the cookie ----------------------------------------------------------------------------------
def _set_cookie(live: Any, openid: str) -> tuple[Phone, str]:
    phone = Phone(live, openid)
    first = phone.http.get(live.url + "/topup", allow_redirects=False, timeout=10)
    return phone, first.headers["Set-Cookie"]


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(make_live, secure):
    live = make_live(server={"secure_cookies": secure})
    student(live, ALICE)
    _, header = _set_cookie(live, ALICE)
    lowered = header.lower()
    assert header.startswith("cardbot_session=")
    assert "httponly" in lowered
    assert "samesite=lax" in lowered or "samesite=strict" in lowered
    assert ("; secure" in lowered) is secure


def test_session_cookie_is_signed_and_forgeries_are_ignored(live):
    student(live, ALICE)
    alice = logged_in(live, ALICE)
    forger = SecureCookieSessionInterface().get_signing_serializer(_flask_with_key("not-the-real-secret-key"))
    for cookie in (forger.dumps({"openid": ALICE, "csrf": "x"}), alice.http.cookies["cardbot_session"][:-3] + "AAA", "eyJvcGVuaWQiOiJ4In0"):
        thief = requests.Session()
        thief.cookies.set("cardbot_session", cookie)
        r = thief.post(live.url + "/api/topup/orders", json={"amount_fen": 5000, "mode": "quick"}, headers={"X-CSRF-Token": "x"}, timeout=10)
        tally("hostile inputs tried")
        assert r.status_code == 401, r.text


def _flask_with_key(key: str) -> Any:
    from flask import Flask

    app = Flask("forger")
    app.secret_key = key
    return app


# --- CSRF ------------------------------------------------------------------------------------------
def test_every_write_api_needs_the_sessions_csrf_token(make_live):
    live = make_live(server={"h5_writes_per_minute": 1000})
    student(live, ALICE)
    student(live, MALLORY, student_no="20230002")
    alice = logged_in(live, ALICE)
    mallory = logged_in(live, MALLORY)
    writes = [p for m, p in _api_routes(live) if m == "POST"]
    assert "/api/topup/orders" in writes
    for path in writes:
        for token in (None, "", "wrong", mallory.csrf, alice.csrf.upper() if alice.csrf != alice.csrf.upper() else alice.csrf + "x"):
            headers = {"Content-Type": "application/json"} | ({"X-CSRF-Token": token} if token is not None else {})
            r = alice.http.post(live.url + path, data=json.dumps({"amount_fen": 5000, "mode": "quick"}), headers=headers, timeout=10)
            tally("hostile inputs tried")
            assert r.status_code == 403 and r.json()["error"] == "csrf", (path, token, r.status_code)
        r = alice.http.post(live.url + path, data="amount_fen=5000", headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
        assert r.status_code == 403  # a cross-site form post carries no header
    assert alice.order(5000, "quick").status_code == 201


# --- rate limits -----------------------------------------------------------------------------------
def test_h5_writes_are_rate_limited_per_openid(make_live):
    live = make_live(server={"h5_writes_per_minute": 5, "h5_reads_per_minute": 8})
    emu_pay(live).notify_enabled = False
    student(live, ALICE)
    student(live, MALLORY, student_no="20230002")
    alice, mallory = logged_in(live, ALICE), logged_in(live, MALLORY)
    if int(time.time()) % 60 > 55:  # keep the burst inside one window
        time.sleep(61 - int(time.time()) % 60)
    codes = [alice.order(1000, "custom").status_code for _ in range(8)]
    tally("hostile inputs tried", 8)
    assert codes[:5] == [201] * 5 and codes[5:] == [429] * 3, codes
    r = alice.order(1000, "custom")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.json()["error"] == "rate_limited"
    assert mallory.order(1000, "custom").status_code == 201  # per openid
    reads = [alice.http.get(live.url + "/api/topup/orders/T20261125000000AAAAAAAAAA", timeout=10).status_code for _ in range(10)]
    assert reads[:8] == [404] * 8 and reads[8:] == [429] * 2, reads


# --- machine-to-machine and operator endpoints -------------------------------------------------------
def _entry(student_no: str = "20230001", amount: int = -500, entry_id: str = "E-sec-1") -> bytes:
    return json.dumps(
        {"entry_id": entry_id, "student_no": student_no, "amount_fen": amount, "merchant": "canteen", "occurred_at": "2026-11-25T12:00:00+08:00"}
    ).encode()


def test_integration_endpoint_refuses_unsigned_forged_and_stale_requests(live):
    from tests.support.reliability import new_card

    new_card(live, balance_fen=10000)
    url = live.url + "/integration/card-entries"
    secret = live.cfg.cardsystem.secret
    body = _entry()
    now = int(time.time())
    path = "/integration/card-entries"

    def signed(**kw):
        return cardsys_signing.sign(kw.pop("secret", secret), "POST", kw.pop("path", path), kw.pop("body", body), **kw)

    cases = {
        "unsigned": {},
        "no timestamp": {k: v for k, v in signed().items() if k != "X-Cardsys-Timestamp"},
        "no nonce": {k: v for k, v in signed().items() if k != "X-Cardsys-Nonce"},
        "wrong secret": signed(secret="guess"),
        "other body": signed(body=_entry(amount=-1)),
        "other path": signed(path="/integration/card-entries/"),
        "stale": signed(timestamp=now - 301),
        "future": signed(timestamp=now + 360),
        "garbage": {"X-Cardsys-Timestamp": "1e9", "X-Cardsys-Nonce": "!" * 16, "X-Cardsys-Signature": "zz"},
    }
    for name, headers in cases.items():
        r = requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)
        tally("hostile inputs tried")
        assert r.status_code in (401, 403), (name, r.status_code, r.text)
    good = {"Content-Type": "application/json", **signed()}
    first = requests.post(url, data=body, headers=good, timeout=10)
    assert first.status_code == 200 and first.json()["balance_fen"] == 9500
    replay = requests.post(url, data=body, headers=good, timeout=10)
    assert replay.status_code == 401  # the same nonce again
    resent = requests.post(url, data=body, headers={"Content-Type": "application/json", **signed()}, timeout=10)
    assert resent.status_code == 200 and resent.json()["duplicate"] is True and resent.json()["balance_fen"] == 9500


def test_emulator_is_absent_in_production(make_live):
    from tests.reliability.test_production_config import PRODUCTION_READY

    live = make_live(emulator={"enabled": False}, **PRODUCTION_READY)
    for path in ("/simulator/", "/emulator/pay/confirm", "/cgi-bin/token", "/connect/oauth2/authorize"):
        assert requests.get(live.url + path, timeout=10).status_code in (404, 405), path


def test_metrics_need_the_admin_token_when_one_is_set(make_live):
    live = make_live(server={"admin_token": "s3cret-admin-token"})
    assert requests.get(live.url + "/metrics", timeout=10).status_code in (401, 403)
    ok = requests.get(live.url + "/metrics", headers={"Authorization": "Bearer s3cret-admin-token"}, timeout=10)
    assert ok.status_code == 200
