"""Terminal pushes with a remote card system (``http``): a notification, not a debit. Nothing is posted to the ledger;
the entry's ``balance_after_fen`` is remembered (when newer) and drives the auto top-up, exactly once per entry_id,
whose credit goes to the card system's account."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from bot.autodebit import process_attempt
from models import CardCredit, CardEntryPush, Cardholder, LedgerEntry
from models.enums import AttemptStatus, CreditStatus, EntryKind
from tests.support.autodebit import at, attempts, balance, entry, signed, student

OPENID = "oCardsysPushes0000000001"
NO = "20231104"


def _account(live, balance_fen: int):
    """The card as the card system holds it (the bot's own row comes from ``student``)."""
    return live.app.extensions["emulator_cardsys"].open(NO, "张三", "123456", balance_fen)


def _ledger_rows(live, card_id: int) -> int:
    """Ledger entries other than the test card's opening balance."""
    with live.session() as db:
        where = (LedgerEntry.cardholder_id == card_id, LedgerEntry.kind != EntryKind.OPENING)
        return db.execute(select(func.count()).select_from(LedgerEntry).where(*where)).scalar_one()


def test_a_push_posts_nothing_remembers_the_balance_and_a_replay_changes_nothing(cs_live):
    card_id = student(cs_live, OPENID, student_no=NO, balance_fen=0)
    r = entry(cs_live, NO, -1250, entry_id="POS-9:1", balance_after=8750)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first == {"entry_id": "POS-9:1", "duplicate": False, "balance_after_entry_fen": 8750, "balance_fen": 8750, "autodebit": None}
    with ThreadPoolExecutor(6) as pool:  # the card system retrying from several threads at once
        again = [x.json() for x in pool.map(lambda _: entry(cs_live, NO, -1250, entry_id="POS-9:1", balance_after=1), range(6))]
    assert again == [{**first, "duplicate": True}] * 6
    with cs_live.session() as db:
        assert db.execute(select(func.count()).select_from(CardEntryPush)).scalar_one() == 1
    assert balance(cs_live, card_id) == 8750 and _ledger_rows(cs_live, card_id) == 0


def test_an_older_entry_arriving_late_does_not_replace_a_newer_balance(cs_live):
    card_id = student(cs_live, OPENID, student_no=NO)
    assert entry(cs_live, NO, -500, entry_id="NEW", balance_after=4000).status_code == 200
    cs_live.services.clock.shift(timedelta(minutes=-30))  # the terminal was offline: its entry is older
    late = entry(cs_live, NO, -300, entry_id="OLD", balance_after=4800)
    assert late.json()["balance_after_entry_fen"] == 4800 and late.json()["balance_fen"] == 4000
    assert balance(cs_live, card_id) == 4000


def test_the_card_systems_word_stands_for_a_blocked_card_and_bad_pushes_are_4xx(cs_live):
    student(cs_live, OPENID, student_no=NO, status="lost")
    assert entry(cs_live, NO, -99_000, entry_id="LOST-1", balance_after=-500).status_code == 200  # it already happened
    assert entry(cs_live, NO, -100, entry_id="NO-AFTER").status_code == 400
    assert entry(cs_live, "20999999", -100, entry_id="WHO", balance_after=0).status_code == 404
    other = "20231105"
    student(cs_live, "oCardsysPushes0000000002", student_no=other)
    assert entry(cs_live, other, -100, entry_id="LOST-1", balance_after=0).status_code == 409


def test_a_low_balance_push_makes_one_auto_top_up_credited_to_the_card_system(cs_live):
    cs_live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    acc = _account(cs_live, 2100)
    card_id = student(cs_live, OPENID, student_no=NO, balance_fen=2100)
    signed(cs_live, OPENID)  # threshold 20 yuan, amount 50 yuan (defaults)
    with ThreadPoolExecutor(6) as pool:
        bodies = [r.json() for r in pool.map(lambda _: entry(cs_live, NO, -200, entry_id="LOW1", balance_after=1900), range(6))]
    assert sum(1 for b in bodies if not b["duplicate"]) == 1
    [made] = [b for b in bodies if not b["duplicate"]]
    assert made["autodebit"]["status"] == AttemptStatus.SUCCEEDED
    [attempt] = attempts(cs_live, card_id)
    assert attempt.trigger_key == "entry:LOW1"
    with cs_live.session() as db:
        credit = db.execute(select(CardCredit).where(CardCredit.ref == f"AD{attempt.id}")).scalar_one()
    assert (credit.status, credit.balance_fen) == (CreditStatus.DELIVERED, 7100)
    assert acc.balance_fen == 7100  # the emulator's account: 21.00 + 50.00 (the push itself moved nothing there)
    assert balance(cs_live, card_id) == 7100 and _ledger_rows(cs_live, card_id) == 0


def test_a_waiting_auto_top_up_reads_the_card_systems_balance_when_its_window_opens(cs_live):
    """Opened at night by a spend; a kiosk top-up pushed before the bank opens makes it unnecessary."""
    clock = cs_live.services.clock
    clock.freeze(at(2026, 11, 25, 22, 0))
    _account(cs_live, 2100)
    card_id = student(cs_live, OPENID, student_no=NO)
    clock.freeze(at(2026, 11, 25, 12, 0))
    signed(cs_live, OPENID)
    clock.freeze(at(2026, 11, 25, 22, 0))
    assert entry(cs_live, NO, -200, entry_id="NIGHT", balance_after=1900).json()["autodebit"]["status"] == AttemptStatus.WAITING
    clock.freeze(at(2026, 11, 25, 23, 0))
    assert entry(cs_live, NO, 10000, entry_id="KIOSK", balance_after=11900).json()["autodebit"] is None
    clock.freeze(at(2026, 11, 26, 8, 0))
    [attempt] = attempts(cs_live, card_id)
    assert process_attempt(cs_live.services, attempt.id) == AttemptStatus.CANCELLED
    assert attempts(cs_live, card_id)[0].reason == "not_needed"
    with cs_live.session() as db:
        assert db.get(Cardholder, card_id).balance_fen == 11900
