"""``POST /integration/card-entries``: only the card system's signed (cardsys/1), fresh, never-replayed requests
count; a resent entry changes nothing; bad input is a 4xx, never a 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from bot.adapters import cardsys_signing
from tests.support.autodebit import (
    at,
    attempts,
    balance,
    entries,
    entry,
    signed,
    student,
)
from tests.support.factories import make_cardholder

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oAutodebitIntegration0001"
NO = "20231004"


def test_signed_entry_is_recorded_as_a_spend(live):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    r = entry(live, NO, -1250, entry_id="POS-1:2026", merchant="第二食堂 Canteen 2")
    assert r.status_code == 200, r.text
    assert r.json() == {"entry_id": "POS-1:2026", "duplicate": False, "balance_after_entry_fen": 8750, "balance_fen": 8750, "autodebit": None}
    [spend] = entries(live, card_id, "spend")
    assert (spend.amount_fen, spend.description, spend.ref) == (-1250, "第二食堂 Canteen 2", "POS-1:2026")


@pytest.mark.parametrize(
    "tamper",
    ["bad_secret", "stale", "future", "no_signature", "no_timestamp", "no_nonce", "short_nonce", "body_changed", "path_changed", "old_scheme"],
)
def test_unauthentic_requests_are_refused(live, tamper):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    body = {"entry_id": "E1", "student_no": NO, "amount_fen": -100, "merchant": "x", "occurred_at": "2026-11-25T12:00:00+08:00"}
    if tamper == "bad_secret":
        r = entry(live, NO, -100, body=body, secret="not-the-secret")
    elif tamper in ("stale", "future"):
        # well outside the 300 s window however slow the machine (the boundary itself: test_cardsystem's check)
        r = entry(live, NO, -100, body=body, ts=int(time.time()) + (-330 if tamper == "stale" else 330))
    else:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw)}
        if tamper == "no_signature":
            headers.pop("X-Cardsys-Signature")
        elif tamper == "no_timestamp":
            headers.pop("X-Cardsys-Timestamp")
        elif tamper == "no_nonce":
            headers.pop("X-Cardsys-Nonce")
        elif tamper == "short_nonce":
            headers.update(cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw, nonce="abc123"))
        elif tamper == "path_changed":
            headers.update(cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries?x=1", raw))
        elif tamper == "old_scheme":  # X-Cardbot-* with the old "{timestamp}\n{body}" message no longer counts
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Cardbot-Timestamp": ts,
                "X-Cardbot-Signature": hmac.new(live.cfg.cardsystem.secret.encode(), ts.encode() + b"\n" + raw, hashlib.sha256).hexdigest(),
            }
        else:
            raw = raw.replace(b"-100", b"-999")
        r = requests.post(live.url + "/integration/card-entries", data=raw, headers=headers, timeout=5)
    assert r.status_code == 401, r.text
    assert balance(live, card_id) == 10000


def test_replayed_nonce_is_refused_but_a_resent_entry_is_a_duplicate(live):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    raw = json.dumps(
        {"entry_id": "NONCE1", "student_no": NO, "amount_fen": -300, "merchant": "x", "occurred_at": "2026-11-25T12:00:00+08:00"}
    ).encode()
    headers = {"Content-Type": "application/json", **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw)}
    first = requests.post(live.url + "/integration/card-entries", data=raw, headers=headers, timeout=5)
    assert first.status_code == 200, first.text
    replay = requests.post(live.url + "/integration/card-entries", data=raw, headers=headers, timeout=5)
    assert replay.status_code == 401 and replay.json()["error"] == "unauthorized"
    resent = requests.post(
        live.url + "/integration/card-entries",
        data=raw,
        timeout=5,
        headers={"Content-Type": "application/json", **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw)},
    )
    assert resent.status_code == 200 and resent.json()["duplicate"] is True
    assert balance(live, card_id) == 9700


def test_replayed_entry_changes_nothing(live):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    first = entry(live, NO, -1000, entry_id="REPLAY1")
    again = entry(live, NO, -1000, entry_id="REPLAY1")
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["balance_after_entry_fen"] == 9000
    with ThreadPoolExecutor(8) as pool:  # the card system retrying from several threads at once
        results = list(pool.map(lambda _: entry(live, NO, -1000, entry_id="REPLAY2").status_code, range(8)))
    assert results == [200] * 8
    assert balance(live, card_id) == 8000
    assert len(entries(live, card_id, "spend")) == 2


def test_replay_inside_bank_hours_makes_one_auto_top_up(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    with ThreadPoolExecutor(6) as pool:
        bodies = [r.json() for r in pool.map(lambda _: entry(live, NO, -200, entry_id="LOW1"), range(6))]
    assert sum(1 for b in bodies if not b["duplicate"]) == 1
    assert len(attempts(live, card_id)) == 1
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000]
    assert balance(live, card_id) == 6900


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("not json", 400),
        ([], 400),
        ({"entry_id": "", "student_no": NO, "amount_fen": -1, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E<script>", "student_no": NO, "amount_fen": -1, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": "abc", "amount_fen": -1, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": 0, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": -1.5, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": True, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": -1, "occurred_at": "yesterday"}, 400),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": -1, "merchant": 5, "occurred_at": "2026-11-25T12:00:00"}, 400),
        ({"entry_id": "E2", "student_no": "20999999", "amount_fen": -1, "occurred_at": "2026-11-25T12:00:00"}, 404),
        ({"entry_id": "E2", "student_no": NO, "amount_fen": -20000, "occurred_at": "2026-11-25T12:00:00"}, 409),
    ],
)
def test_bad_entries_are_4xx(live, body, status):
    card_id = student(live, OPENID, student_no=NO, balance_fen=10000)
    if isinstance(body, str):
        raw = body.encode()
        r = requests.post(
            live.url + "/integration/card-entries",
            data=raw,
            timeout=5,
            headers={
                "Content-Type": "application/json",
                **cardsys_signing.sign(live.cfg.cardsystem.secret, "POST", "/integration/card-entries", raw),
            },
        )
    else:
        r = entry(live, NO, 0, body=body)
    assert r.status_code == status, r.text
    assert "error" in r.json()
    assert balance(live, card_id) == 10000


def test_blocked_card_spend_refused_and_entry_id_bound_to_its_card(live):
    student(live, OPENID, student_no=NO, balance_fen=10000, status="lost")
    assert entry(live, NO, -100).status_code == 409
    other = student(live, "oAutodebitIntegration0002", student_no="20231005", balance_fen=10000)
    assert entry(live, "20231005", -100, entry_id="SHARED").status_code == 200
    assert entry(live, NO, 100, entry_id="SHARED").status_code == 409
    assert balance(live, other) == 9900


def test_a_graduate_may_spend_until_the_freeze_day(live):
    """The school's guide: a graduate's balance is to be spent or withdrawn before the account freezes
    (``left_on`` + ``freeze_after_months``); from that day the terminal's debit is refused."""
    today = live.services.clock.today()
    with live.session() as db, db.begin():
        spending = make_cardholder(db, student_no="20231006", balance_fen=10000, status="graduated", left_on=today - timedelta(days=30))
        frozen = make_cardholder(db, student_no="20231007", balance_fen=10000, status="graduated", left_on=today - timedelta(days=120))
        spending_id, frozen_id = spending.id, frozen.id
    r = entry(live, "20231006", -1200)
    assert r.status_code == 200, r.text
    assert r.json()["balance_fen"] == 8800 and r.json()["autodebit"] is None
    r = entry(live, "20231007", -1200)
    assert r.status_code == 409 and r.json()["error"] == "card_blocked"
    assert (balance(live, spending_id), balance(live, frozen_id)) == (8800, 10000)
