"""The sweep is set-based: thousands of cards with agreements are checked with one INSERT … SELECT, only the low
ones get an attempt, and a second sweep adds nothing."""

from __future__ import annotations

import time
from datetime import date

import pytest
from sqlalchemy import insert, select

from bot.autodebit import create_missed_attempts, sweep
from models import AutodebitAgreement, AutodebitAttempt, Cardholder, LedgerEntry
from tests.support.autodebit import at  # noqa: F401  (autouse)

pytestmark = pytest.mark.usefixtures("ledger_checked")

CARDS = 3000
LOW_EVERY = 100


def test_sweep_over_thousands_of_cards_touches_only_the_low_ones(live):
    live.services.clock.freeze(at(2026, 11, 25, 22, 0))  # outside bank hours: attempts are created, not processed
    with live.services.engine.begin() as conn:
        conn.execute(
            insert(Cardholder),
            [
                {
                    "id": i,
                    "student_no": str(2_100_000_000 + i),
                    "name": f"测试{i}",
                    "campus": "main",
                    "status": "active",
                    "password_hash": "x",
                    "balance_fen": 1000 if i % LOW_EVERY == 0 else 10000,
                }
                for i in range(1, CARDS + 1)
            ],
        )
        conn.execute(
            insert(LedgerEntry),
            [
                {
                    "cardholder_id": i,
                    "amount_fen": 1000 if i % LOW_EVERY == 0 else 10000,
                    "balance_after_fen": 0,
                    "kind": "opening",
                    "idempotency_key": f"bulk-opening:{i}",
                }
                for i in range(1, CARDS + 1)
            ],
        )
        conn.execute(
            insert(AutodebitAgreement),
            [
                {
                    "cardholder_id": i,
                    "openid": f"oBulk{i:08d}",
                    "bank_account": f"62220200{i:08d}",
                    "bank_last4": f"{i % 10000:04d}",
                    "threshold_fen": 2000,
                    "amount_fen": 5000,
                    "status": "active",
                    "expires_on": date(2027, 9, 1),
                }
                for i in range(1, CARDS + 1)
            ],
        )
    t0 = time.perf_counter()
    assert sweep(live.services) == {"created": CARDS // LOW_EVERY}
    assert time.perf_counter() - t0 < 2.0
    assert create_missed_attempts(live.services) == 0
    with live.session() as db:
        cards = db.execute(select(AutodebitAttempt.cardholder_id).order_by(AutodebitAttempt.cardholder_id)).scalars().all()
    assert cards == list(range(LOW_EVERY, CARDS + 1, LOW_EVERY))
