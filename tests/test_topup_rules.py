"""Top-up rules through the real API: amounts at the edges, strict types, card states, fee rounding, and the
daily limit under concurrent requests (threads against the live server; PostgreSQL locks the card row)."""

from __future__ import annotations

import re
import threading
from datetime import UTC, timedelta

import pytest
from sqlalchemy import delete, func, select

from bot.money import fee_for
from bot.topup import ORDER_NO, new_order_no
from models import Binding, Cardholder, TopupOrder
from tests.support.topup import (
    assert_ledger_consistent,
    emu_pay,
    logged_in,
    student,
)

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oTopupRulesUser000000001"


# --- fee rounding --------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    ("amount_fen", "rate", "fee"),
    [
        (5000, 0.003, 15),  # 50 → 0.15 (pay 50.15)
        (10000, 0.003, 30),
        (20000, 0.003, 60),
        (500, 0.003, 2),  # 1.5 fen → 2 (half up)
        (2500, 0.001, 3),  # 2.5 fen → 3 (Python's round() would give 2)
        (1500, 0.003, 5),  # 4.5 → 5
        (4999, 0.003, 15),  # 14.997 → 15
        (1100, 0.003, 3),  # 3.3 → 3
        (1000, 0.0, 0),
    ],
)
def test_fee_rounds_half_up_to_the_fen(amount_fen, rate, fee):
    assert fee_for(amount_fen, rate) == fee


def test_quick_fee_rounding_through_the_api(make_live):
    live = make_live(topup={"quick_amounts": [5, 50, 105], "quick_fee_rate": 0.003})
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    page = phone.open_page().text
    assert "实付 5.02 元" in page and "实付 105.32 元" in page
    for amount, fee in ((500, 2), (5000, 15), (10500, 32)):
        r = phone.order(amount, "quick")
        assert r.status_code == 201, r.text
        assert r.json()["fee_fen"] == fee
        assert emu_pay(live).orders[r.json()["order_no"]].total == amount + fee


# --- amounts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "amount_fen", "status", "error"),
    [
        ("custom", 999, 400, "custom_range"),  # 9.99
        ("custom", 1000, 201, None),  # 10
        ("custom", 1500, 400, "custom_step"),  # 15
        ("custom", 1001, 400, "custom_step"),
        ("custom", 25000, 201, None),
        ("custom", 50000, 201, None),  # 500
        ("custom", 50001, 400, "over_single_limit"),  # 500.01
        ("custom", 51000, 400, "over_single_limit"),
        ("quick", 5000, 201, None),
        ("quick", 20000, 201, None),
        ("quick", 3000, 400, "not_quick_amount"),
        ("quick", 5001, 400, "not_quick_amount"),
        ("quick", 50000, 400, "not_quick_amount"),
    ],
)
def test_amount_edges(live, mode, amount_fen, status, error):
    student(live, OPENID)
    r = logged_in(live, OPENID).order(amount_fen, mode)
    assert r.status_code == status, r.text
    if error:
        assert r.json()["error"] == error
        assert r.json()["message"]
    else:
        assert r.json()["amount_fen"] == amount_fen


@pytest.mark.parametrize(
    "body",
    [
        {"amount_fen": "5000", "mode": "quick"},
        {"amount_fen": 5000.0, "mode": "quick"},
        {"amount_fen": 1000.5, "mode": "custom"},
        {"amount_fen": -5000, "mode": "quick"},
        {"amount_fen": -1000, "mode": "custom"},
        {"amount_fen": 0, "mode": "custom"},
        {"amount_fen": True, "mode": "custom"},
        {"amount_fen": None, "mode": "custom"},
        {"amount_fen": 10**30, "mode": "custom"},
        {"amount_fen": [5000], "mode": "quick"},
        {"amount_fen": {"v": 5000}, "mode": "quick"},
        {"amount_fen": 5000, "mode": "QUICK"},
        {"amount_fen": 5000},
        {"mode": "quick"},
        [5000, "quick"],
        "5000",
        "{not json",
        "",
    ],
)
def test_bad_input_is_400_and_creates_nothing(live, body):
    student(live, OPENID)
    r = logged_in(live, OPENID).order(None, body=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("invalid_amount", "invalid_mode")
    assert r.json()["message"]
    with live.session() as db:
        assert db.execute(select(func.count()).select_from(TopupOrder)).scalar_one() == 0


def test_refusal_texts_follow_the_users_language(live):
    student(live, OPENID, lang="en")
    r = logged_in(live, OPENID).order(1500, "custom")
    assert "multiple of 10" in r.json()["message"]


@pytest.mark.parametrize("status", ["frozen", "lost", "graduated"])
def test_blocked_cards_cannot_order(live, status):
    """The card changes state after the page was opened: the API checks again."""
    card_id = student(live, OPENID)
    phone = logged_in(live, OPENID)
    with live.session() as db, db.begin():
        db.get(Cardholder, card_id).status = status
    r = phone.order(5000, "quick")
    assert r.status_code == 403
    assert r.json()["error"] == f"card_{status}"
    assert r.json()["message"]


def test_unbound_user_cannot_order(live):
    student(live, OPENID)
    phone = logged_in(live, OPENID)
    with live.session() as db, db.begin():
        db.execute(delete(Binding))
    assert "绑定" in phone.open_page().text  # the page explains
    r = phone.order(5000, "quick")
    assert r.status_code == 403 and r.json()["error"] == "not_bound"


@pytest.mark.unit
def test_order_numbers_are_unique_and_valid():
    from bot.clock import Clock

    now = Clock().now()
    numbers = {new_order_no(now) for _ in range(2000)}
    assert len(numbers) == 2000
    assert all(ORDER_NO.match(n) and 6 <= len(n) <= 32 for n in numbers)


def test_time_expire_is_rfc3339_beijing(live):
    student(live, OPENID)
    body = logged_in(live, OPENID).order(5000, "quick").json()
    emu_order = emu_pay(live).orders[body["order_no"]]
    with live.session() as db:
        row = db.execute(select(TopupOrder).where(TopupOrder.order_no == body["order_no"])).scalar_one()
    delta = row.expires_at - row.created_at
    assert (
        timedelta(minutes=live.cfg.pay.order_expire_minutes) - timedelta(seconds=2) <= delta <= timedelta(minutes=live.cfg.pay.order_expire_minutes)
    )
    assert abs(emu_order.time_expire - row.expires_at.replace(tzinfo=UTC).timestamp()) < 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", emu_order.time_expire_text)


# --- the daily limit ---------------------------------------------------------------------
def _race(live, phones, amount_fen, n):
    """n requests released together from several sessions (and openids) of the same card."""
    barrier = threading.Barrier(n)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def go(i):
        phone = phones[i % len(phones)]
        barrier.wait()
        r = phone.order(amount_fen, "custom")
        with lock:
            results.append((r.status_code, r.json()))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_daily_limit_never_exceeded_by_concurrent_requests(live):
    card_id = student(live, OPENID)
    second = "oTopupRulesUser000000002"
    student(live, second, card_id=card_id)
    phones = [logged_in(live, OPENID), logged_in(live, second), logged_in(live, OPENID)]
    results = _race(live, phones, 50000, 10)  # 10 × 500 against a 2000 limit
    ok = [b for s, b in results if s == 201]
    refused = [b for s, b in results if s != 201]
    assert len(ok) == 4, results
    assert all(b["error"] == "daily_limit" for b in refused)
    assert "0.00" in refused[0]["message"]
    with live.session() as db:
        total = db.execute(select(func.sum(TopupOrder.amount_fen)).where(TopupOrder.cardholder_id == card_id)).scalar_one()
    assert total == 200000
    # a small amount is refused too, with what is left
    r = phones[0].order(1000, "custom")
    assert r.status_code == 409 and r.json()["error"] == "daily_limit"


def test_daily_limit_counts_paid_and_open_but_not_closed(live):
    card_id = student(live, OPENID)
    phone = logged_in(live, OPENID)
    paid = phone.order(50000, "custom").json()
    assert phone.pay(paid["pay_params"]).json()["err_msg"].endswith(":ok")
    for _ in range(3):
        assert phone.order(50000, "custom").status_code == 201
    assert phone.order(1000, "custom").status_code == 409
    with live.session() as db, db.begin():
        row = db.execute(select(TopupOrder).where(TopupOrder.status == "created").limit(1)).scalar_one()
        row.status = "closed"
    assert "今日还可充值 500.00 元" in phone.open_page().text
    assert phone.order(50000, "custom").status_code == 201
    assert phone.order(1000, "custom").status_code == 409
    assert card_id
    assert_ledger_consistent(live)
