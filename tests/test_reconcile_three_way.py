"""``cardbot reconcile DATE`` with the card system as the third side, through the real CLI and real HTTP: a clean day
exits 0 on both adapters (a refund of refused money included); every kind of difference is printed and exits 1; so
does a card system that does not answer."""

from __future__ import annotations

from sqlalchemy import update

from bot.adapters.cardsystem import Channel
from models import CardCredit, post_entry
from models.enums import CreditStatus
from tests.support.credits import cardsys, credit, credits_cli, reconcile_cli, refused_topup, topup
from tests.support.topup import student, wait_for

OPENID = "oReconcile3User0000000001"
NO = "20239002"


def _delivered(live, openid, amount_fen=5000):
    ref = topup(live, openid, amount_fen)
    wait_for(lambda: credit(live, ref).status == CreditStatus.DELIVERED)
    return ref


def test_clean_day_exits_zero_on_the_ledger(live):
    student(live, OPENID, balance_fen=0)
    _delivered(live, OPENID)
    _delivered(live, OPENID, 10000)
    result = reconcile_cli(live, live.services.clock.today())
    assert result.exit_code == 0, result.output
    assert "our credits and the card system's agree" in result.output


def test_clean_day_exits_zero_on_the_card_system_with_a_refund_of_refused_money(cs_live):
    refused = refused_topup(cs_live, OPENID, NO)
    cardsys(cs_live).accounts[NO].status = "active"
    _delivered(cs_live, OPENID)
    assert credits_cli(cs_live, "refund", refused).exit_code == 0
    wait_for(lambda: credit(cs_live, refused).status == CreditStatus.REFUNDED)
    result = reconcile_cli(cs_live, cs_live.services.clock.today())
    assert result.exit_code == 0, result.output
    assert "top-up orders and the WeChat Pay trade bill agree" in result.output  # its REFUND row is expected
    assert "our credits and the card system's agree" in result.output


def test_every_kind_of_difference_is_printed_and_exits_one(cs_live):
    st = cardsys(cs_live)
    refused = refused_topup(cs_live, OPENID, NO)  # paid, refused, not refunded: open
    st.accounts[NO].status = "active"
    forgotten = _delivered(cs_live, OPENID)  # delivered here; the card system lost it
    with st.lock:
        st.credit_log = [c for c in st.credit_log if c["ref"] != forgotten]
        del st.credits[forgotten]
    wrong = _delivered(cs_live, OPENID)  # another amount here than there
    with cs_live.session() as db, db.begin():
        db.execute(update(CardCredit).where(CardCredit.ref == wrong).values(amount_fen=4900))
    st.faults["credit"] = ["lost"]  # credited there, the answer lost: pending here
    unsettled = topup(cs_live, OPENID)
    wait_for(lambda: credit(cs_live, unsettled).waiting_for == "no_answer")
    st.faults["credit"] = ["maintenance"]  # paid, waiting for the card system: open
    waiting = topup(cs_live, OPENID)
    wait_for(lambda: credit(cs_live, waiting).waiting_for == "maintenance")
    cs_live.services.card_system.credit("XUNKNOWN000001", NO, 700, Channel.WECHAT_PAY, cs_live.services.clock.now())

    result = reconcile_cli(cs_live, cs_live.services.clock.today())
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    found = {(ln.split()[0], ln.split()[1]) for ln in lines if ln and not ln[0].isdigit()}
    assert found == {
        ("not_at_card_system", forgotten),
        ("amount_mismatch", wrong),
        ("not_delivered_here", unsettled),
        ("open_pending", waiting),
        ("open_refused", refused),
        ("unknown_ref", "XUNKNOWN000001"),
    }, result.output
    assert "6 credit difference(s) or open item(s) with the card system" in result.output
    assert any("open_refused" in ln and "card_lost" in ln for ln in lines)
    assert any("amount_mismatch" in ln and "49.00" in ln and "50.00" in ln for ln in lines)


def test_a_card_system_that_does_not_answer_fails_the_day(cs_live):
    cardsys(cs_live).faults["credits"] = ["5xx"]
    result = reconcile_cli(cs_live, cs_live.services.clock.today())
    assert result.exit_code == 1 and "the card system did not answer" in result.output
    cardsys(cs_live).faults["credits"] = ["maintenance"]
    result = reconcile_cli(cs_live, cs_live.services.clock.today())
    assert result.exit_code == 1 and "maintenance" in result.output


def test_a_ledger_credit_we_never_owed_is_a_difference(live):
    card_id = student(live, OPENID, balance_fen=0)
    with live.session() as db, db.begin():
        post_entry(db, card_id, 3000, "topup", "topup:TNEVEROWED00000001", ref="TNEVEROWED00000001", at=live.services.clock.utcnow())
    result = reconcile_cli(live, live.services.clock.today())
    assert result.exit_code == 1
    assert any(ln.startswith("unknown_ref") and "TNEVEROWED00000001" in ln and "30.00" in ln for ln in result.output.splitlines())
