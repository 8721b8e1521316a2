"""Card pushes posted together (bot.card_entries.post_batch, ledger.book_entries): in one transaction each entry is
still decided alone, in order, against its card's running balance; a key written meanwhile for another card is found
on a second reading; many threads pushing at once never take a card below zero nor post an entry twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import insert

from bot.card_entries import CardEntry, PostedEntry, post_batch, record_entry
from bot.errors import UserError
from models import LedgerEntry, TerminalEntry, book_entries
from tests.support.autodebit import at, attempts, balance, entries, signed, student
from tests.support.factories import make_cardholder

pytestmark = pytest.mark.usefixtures("ledger_checked")

NOW = datetime(2026, 11, 25, 4, 0)  # naive UTC: 12:00 at school


def spend(entry_id: str, no: str, fen: int) -> CardEntry:
    return CardEntry(entry_id, no, fen, "第一食堂 Canteen 1", NOW)


def code(outcome: PostedEntry | Exception) -> str:
    if isinstance(outcome, UserError):
        return outcome.code
    assert isinstance(outcome, PostedEntry), outcome
    return f"{'dup' if outcome.duplicate else 'ok'} {outcome.balance_after_fen}"


def test_each_entry_of_a_batch_is_decided_alone_in_order(live):
    a = student(live, "oBatch0001", student_no="20240001", balance_fen=1000)
    b = student(live, "oBatch0002", student_no="20240002", balance_fen=500)
    lost = student(live, "oBatch0003", student_no="20240003", balance_fen=5000, status="lost")
    assert code(post_batch(live.services, [spend("OLD", "20240001", -100)])[0]) == "ok 900"
    outcomes = post_batch(
        live.services,
        [
            spend("A1", "20240001", -300),  # 900 → 600
            spend("NOBODY", "20249999", -100),
            spend("B1", "20240002", -600),  # 500: refused, nothing moves
            spend("A2", "20240001", -500),  # 600 → 100: the running balance, not the row's
            spend("L1", "20240003", -100),  # a lost card may not spend
            spend("L2", "20240003", 200),  # a credit is always recorded
            spend("OLD", "20240001", -100),  # a replay of an earlier push
            spend("A1", "20240001", -300),  # the same entry twice in one batch
            spend("A3", "20240001", -200),  # 100: refused
            spend("A2", "20240002", -100),  # a key of card A on card B
            spend("B2", "20240002", -400),  # 500 → 100
        ],
    )
    assert [code(o) for o in outcomes] == [
        "ok 600",
        "unknown_card",
        "insufficient_balance",
        "ok 100",
        "card_blocked",
        "ok 5200",
        "dup 900",
        "dup 600",
        "insufficient_balance",
        "entry_id_reused",
        "ok 100",
    ]
    assert (balance(live, a), balance(live, b), balance(live, lost)) == (100, 100, 5200)
    assert sorted(e.ref for e in entries(live, a, "spend")) == ["A1", "A2", "OLD"]
    assert [e.balance_after_fen for e in sorted(entries(live, a, "spend"), key=lambda e: e.id)] == [900, 600, 100]


def test_a_key_written_meanwhile_for_another_card_is_found_on_a_second_reading(live):
    """The race ``book_entries`` reads again for: the key was not used when the batch looked, and another card's entry
    (whose card the batch does not lock) took it before the batch wrote. Played here by writing it from the ``check``."""
    if live.services.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's writers take turns, so no key can be written meanwhile")
    a = student(live, "oBatch0011", student_no="20240011", balance_fen=1000)
    b = student(live, "oBatch0012", student_no="20240012", balance_fen=1000)
    readings = []

    def check(card, entry):
        readings.append(entry.idempotency_key)
        if len(readings) == 1:
            with live.services.engine.begin() as other:
                other.execute(
                    insert(LedgerEntry).values(
                        cardholder_id=b, amount_fen=-50, balance_after_fen=950, kind="spend", idempotency_key="card:RACE", created_at=NOW
                    )
                )
                other.exec_driver_sql(f"UPDATE cardholders SET balance_fen = 950 WHERE id = {b}")
        return None

    batch = [
        TerminalEntry("20240011", -100, "spend", "card:RACE", "x", "RACE", NOW),
        TerminalEntry("20240011", -100, "spend", "card:OK", "x", "OK", NOW),
    ]
    outcomes = book_entries(live.services.engine, batch, check=check)
    assert type(outcomes[0]).__name__ == "KeyReused"
    assert outcomes[1].card.balance_fen == 900
    assert readings == ["card:RACE", "card:OK", "card:OK"]  # the second reading found the key used
    assert (balance(live, a), balance(live, b)) == (900, 950)


def test_many_threads_spending_at_once_never_go_below_zero_nor_post_twice(live):
    """Eight cards, 240 spends of 1 to 3 yuan from 16 threads (each sent twice, as a card system that retries), while
    the cards hold 100 yuan among them: the batches formed by the threads book exactly what each balance allows."""
    cards = {f"2024010{i}": student(live, f"oBatch01{i:02d}", student_no=f"2024010{i}", balance_fen=1250) for i in range(8)}
    pushes = [spend(f"S{n}", f"2024010{n % 8}", -(100 + 100 * (n % 3))) for n in range(240)]
    outcomes: dict[str, list[str]] = {}

    def push(e: CardEntry) -> None:
        try:
            r = record_entry(live.services, e)
            outcomes.setdefault(e.entry_id, []).append("dup" if r.duplicate else "ok")
        except UserError as err:
            outcomes.setdefault(e.entry_id, []).append(err.code)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(push, pushes + pushes))
    booked = {e.entry_id for e in pushes if "ok" in outcomes[e.entry_id]}
    for e in pushes:
        got = sorted(outcomes[e.entry_id])
        assert got in (["dup", "ok"], ["insufficient_balance", "insufficient_balance"]), (e.entry_id, got)
    for no, card_id in cards.items():
        mine = [e for e in pushes if e.student_no == no and e.entry_id in booked]
        assert balance(live, card_id) == 1250 - sum(-e.amount_fen for e in mine) >= 0
        assert sorted(e.ref for e in entries(live, card_id, "spend")) == sorted(e.entry_id for e in mine)
    assert 0 < len(booked) < len(pushes)


def test_a_spend_below_the_threshold_in_a_batch_opens_one_auto_top_up(live):
    live.services.clock.freeze(at(2026, 11, 25, 23, 0))  # outside bank hours: the attempt waits
    card_id = student(live, "oBatch0201", student_no="20240201", balance_fen=2500)
    signed(live, "oBatch0201")
    with live.session() as db, db.begin():
        make_cardholder(db, student_no="20240202", balance_fen=2500)
    outcomes = post_batch(
        live.services, [spend("T1", "20240201", -400), spend("T2", "20240202", -900), spend("T3", "20240201", -400), spend("T4", "20240201", -400)]
    )
    assert [code(o) for o in outcomes] == ["ok 2100", "ok 1600", "ok 1700", "ok 1300"]
    opened = [o.attempt_id for o in outcomes if isinstance(o, PostedEntry) and o.attempt_id]
    assert len(opened) == 1 and [a.id for a in attempts(live, card_id)] == opened
    assert [a.trigger_key for a in attempts(live, card_id)] == ["entry:T3"]
