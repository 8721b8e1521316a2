"""H5 identity: the OAuth round trip keeps the page's query, and a forged state is refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.support.factories import bind, make_cardholder

OID = "oH5auth0000000000000000001"


def _bound(live):
    with live.session() as db:
        bind(db, OID, make_cardholder(db, student_no="20239901"))
        db.commit()


def test_oauth_round_trip_keeps_the_query(live):
    _bound(live)
    live.http.cookies.set("sim_openid", OID)
    page = live.http.get(live.url + "/bills", params={"month": "2026-10"}, timeout=10)
    assert page.status_code == 200
    parts = urlsplit(page.url)
    assert parts.path == "/bills" and parse_qs(parts.query) == {"month": ["2026-10"]}
    assert "2026年10月" in page.text


def test_forged_or_replayed_state_is_refused(live):
    _bound(live)
    r = live.http.get(live.url + "/bills", allow_redirects=False, timeout=10)
    assert r.status_code == 302
    forged = live.http.get(live.url + "/bills", params={"code": "whatever", "state": "not-mine"}, allow_redirects=False, timeout=10)
    assert forged.status_code == 403
