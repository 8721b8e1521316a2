"""Dorm electricity end to end over real HTTP: the room picker and kept rooms, paying for a room with WeChat Pay
(emulated), delivery to the emulator's electricity system by power/1 (signed) exactly once whatever it does
(maintenance, an answer lost after the recharge, a refusal and its refund), the low-power alert to every account that
keeps the room, and ``cardbot reconcile`` over a day with both products. Each test compares our rows with the
emulator's recharge log."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from bot import credits, outbox, power
from bot.adapters.electricity import ElectricityNoAnswer, ElectricityProtocolError, HttpElectricity
from bot.clock import SCHOOL_TZ
from bot.emulator.electricity import room_ids
from bot.topup import settle_stuck_orders
from models import PowerRoom, SavedRoom, TopupOrder
from models.enums import CreditChannel, CreditStatus, NoticeStatus, Product
from tests.support.credits import credit, credits_cli, reconcile_cli, refunds_at_wechat, topup
from tests.support.flaky import serving
from tests.support.power import (
    ROOM,
    answered,
    delivery,
    emu_power,
    notices_of,
    notify_paid,
    pay_power,
    power_phone,
    recharge_log,
)
from tests.support.topup import card, delivery_tried, notify, student, transaction, wait_for

pytestmark = pytest.mark.usefixtures("ledger_checked")

LIVE_CONFIG = {"electricity": {"timeout_seconds": 1.0}}
TRY_OUT_S = 4.0
OPENID = "oPowerStudent00000000001"
ROOMMATE = "oPowerRoommate0000000002"
NEIGHBOUR = "oPowerNeighbour000000003"
LABEL = "东区 · 3号楼 · 512"


def _frozen(live, hour: int | None = None) -> datetime:
    now = datetime.now(SCHOOL_TZ).replace(microsecond=0)
    if hour is not None:  # no payment at WeChat in such a test: its orders expire by the real clock
        now = now.replace(hour=hour, minute=0, second=0)
    live.services.clock.freeze(now)
    return now


def test_pick_a_room_pay_deliver_and_receipt_with_the_new_kwh(live):
    card_id = student(live, OPENID)
    emu_power(live).set_meter(ROOM, "12.00", rate="0")
    phone = power_phone(live, OPENID, room_id=None)
    assert [p["id"] for p in phone.get("/api/power/places").json()["places"]] == ["E", "W"]
    buildings = phone.get("/api/power/places?parent=E").json()["places"]
    assert len(buildings) == 25 and buildings[2] == {"id": "E03", "name": "3号楼 Building 3", "kind": "building"}
    floors = phone.get("/api/power/places?parent=E03").json()["places"]
    assert floors[4]["id"] == "E03-05"
    rooms = phone.get("/api/power/places?parent=E03-05").json()["places"]
    assert ROOM in [r["id"] for r in rooms] and {r["kind"] for r in rooms} == {"room"}
    kept = phone.keep(ROOM).json()
    assert (kept["label"], kept["remaining_kwh"], kept["price"], kept["live"]) == (LABEL, "12.00", "0.56", True)
    assert kept["read_at"] and kept["threshold_kwh"] == "10.00"
    assert ROOM in phone.open_power().text  # remembered for this account

    order_no = pay_power(live, phone, 2000)
    c = answered(live, order_no)
    assert (c.status, c.product, c.target, c.kwh_after) == (CreditStatus.DELIVERED, Product.POWER, ROOM, Decimal("47.71"))  # 20 / 0.56
    assert recharge_log(live) == [order_no]
    [receipt] = notices_of(live, "power_receipt")
    assert receipt.openid == OPENID and receipt.data["room"] == LABEL and "47.71" in receipt.data["kwh"] and "20.00" in receipt.data["amount"]
    assert receipt.url.endswith("/power")
    status = phone.power_status(order_no)
    assert (status["delivery"], status["kwh"]) == ("delivered", "47.71") and "47.71" in status["message"]
    with live.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one()
        assert (order.product, order.target, order.fee_fen) == (Product.POWER, ROOM, 0)
        assert db.get(PowerRoom, ROOM).remaining_kwh == Decimal("47.71")
    assert card(live, card_id).balance_fen == 10000  # the card is not touched
    assert notices_of(live, "topup_receipt") == []
    [shown] = power.kept(live.services, OPENID)
    assert shown.remaining_kwh == Decimal("47.71")


def test_amount_rules_limits_and_rooms_not_kept_are_refused(live):
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    assert phone.order_power(3000).json()["error"] == "not_quick_amount"  # quick: 20 / 50 / 100
    assert phone.order_power(2500, "custom").json()["error"] == "custom_step"
    assert phone.order_power(40000, "custom").json()["error"] == "over_single_limit"
    assert phone.order_power(2000, room_id="W01-0101").status_code == 404  # not kept by this account
    assert phone.keep("E99-0101").status_code == 404  # the electricity system has no such room
    for amount in (30000, 30000):  # the electricity day limit (600) counts open orders too; top-ups have their own
        assert phone.order_power(amount, "custom").status_code == 201
    assert phone.order_power(2000).json()["error"] == "daily_limit"


def test_a_duplicate_notify_recharges_once(live):
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    order_no = pay_power(live, phone, 5000, notify_now=False)
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: notify_paid(live, order_no), range(4)))
    assert codes == [204] * 4
    assert answered(live, order_no).status == CreditStatus.DELIVERED
    assert notify_paid(live, order_no) == 204
    assert recharge_log(live) == [order_no]
    assert len(notices_of(live, "power_receipt")) == 1


def test_the_notify_is_answered_before_the_recharge_and_a_duplicate_meanwhile_alike(make_live):
    """The answer follows the payment's commit, not the electricity system: with the recharge taking longer than the
    client's timeout, both copies of the notify are answered while the first try is still out (the credit paid,
    owed and claimed by that try), and the money reaches the room once. The timeout is 4 s here, so a loaded machine
    still reads the try while it is out."""
    live = make_live(electricity={"timeout_seconds": TRY_OUT_S})
    _frozen(live)
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    st = emu_power(live)
    st.set_meter(ROOM, "5.00", rate="0")
    st.faults["recharge"] = ["slow", "5xx"]  # made after 1.5 s, unheard; a second POST would fail
    order_no = pay_power(live, phone, 5000, notify_now=False)
    tx = transaction(live, order_no)
    started = time.monotonic()
    assert notify(live, tx).status_code == 204
    assert notify(live, tx).status_code == 204  # the duplicate, answered alike
    assert time.monotonic() - started < TRY_OUT_S  # neither waited for the electricity system
    c = delivery(live, order_no)
    assert (c.status, c.tries, c.claimed_at is not None) == (CreditStatus.PENDING, 1, True)  # the first try is out
    c = delivery_tried(live, order_no)
    assert (c.status, c.waiting_for) == (CreditStatus.PENDING, credits.Waiting.NO_ANSWER)
    wait_for(lambda: recharge_log(live) == [order_no])  # the electricity system recharged; we did not hear it
    live.services.clock.shift(timedelta(minutes=1))
    assert credits.deliver_due(live.services) == {CreditStatus.DELIVERED: 1}  # asked about the ref, not sent again
    assert recharge_log(live) == [order_no] and st.faults["recharge"] == ["5xx"]
    assert len(notices_of(live, "power_receipt")) == 1


def test_with_every_delivery_thread_busy_the_request_delivers_itself(live):
    """Handing over never piles up claims: when the delivery threads have no room, the caller delivers before it
    returns."""
    card_id = student(live, OPENID)
    now = live.services.clock.utcnow()
    owed = credits.Owed("P0000000000000001", CreditChannel.WECHAT_PAY, Product.POWER, ROOM, card_id, "20230001", OPENID, 2000, 0, now)
    with live.session() as db, db.begin():
        claimed = credits.owe(live.services, db, owed)
    after = credits.AfterAnswer(threads=1)
    try:
        while after.room.acquire(blocking=False):
            pass  # every place taken
        after.deliver(live.services, claimed)
        assert delivery(live, owed.ref).status == CreditStatus.DELIVERED  # delivered in this call
        assert recharge_log(live) == [owed.ref]
    finally:
        after.close()


def test_answers_of_many_deliveries_are_recorded_together_each_once(live):
    """The delivery threads only call the electricity system; one recorder writes the answers that came in meanwhile
    in one transaction: every credit delivered once, one receipt each, the rooms' new readings kept."""
    card_id = student(live, OPENID)
    now = live.services.clock.utcnow()
    rooms = room_ids()[:24]
    with live.session() as db, db.begin():
        claimed = [
            credits.owe(
                live.services,
                db,
                credits.Owed(f"P{i:016d}", CreditChannel.WECHAT_PAY, Product.POWER, room, card_id, "20230001", OPENID, 2000, 0, now),
            )
            for i, room in enumerate(rooms)
        ]
        db.execute(insert(PowerRoom), [{"room_id": r, "label": r, "threshold_kwh": Decimal(10)} for r in rooms])
    after = credits.AfterAnswer(threads=8)
    for c in claimed:
        after.deliver(live.services, c)
    after.close()
    refs = [f"P{i:016d}" for i in range(len(rooms))]
    assert sorted(recharge_log(live)) == refs
    assert {delivery(live, ref).status for ref in refs} == {CreditStatus.DELIVERED}
    assert sorted(n.dedup_key for n in notices_of(live, "power_receipt")) == [f"power:{ref}:receipt" for ref in refs]
    with live.session() as db:
        assert db.execute(select(PowerRoom.room_id).where(PowerRoom.remaining_kwh.is_(None))).all() == []


def test_electricity_system_down_then_back_delivers_once(live):
    now = _frozen(live)
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    st = emu_power(live)
    st.faults["recharge"] = "maintenance"
    order_no = pay_power(live, phone, 2000, notify_now=False)
    assert notify_paid(live, order_no) == 204  # WeChat is told we have it: the money is owed, not lost
    c = delivery(live, order_no)
    assert (c.status, c.waiting_for) == (CreditStatus.PENDING, credits.Waiting.MAINTENANCE)
    assert c.next_try_at == now.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=600)
    [delayed] = notices_of(live, "power_delayed")
    assert "电费系统维护" in delayed.data["status"] and f"{now + timedelta(seconds=600):%H:%M}" in delayed.data["status"]
    status = phone.power_status(order_no)
    assert status["delivery"] == "pending" and "维护" in status["message"]
    live.services.clock.shift(timedelta(seconds=599))
    assert credits.deliver_due(live.services) == {}
    st.faults.clear()  # the window ends
    live.services.clock.shift(timedelta(seconds=1))
    assert credits.deliver_due(live.services) == {CreditStatus.DELIVERED: 1}
    assert credits.deliver_due(live.services) == {}
    assert recharge_log(live) == [order_no]
    assert len(notices_of(live, "power_receipt")) == 1 and len(notices_of(live, "power_delayed")) == 1


def test_the_daily_maintenance_window_answers_503_until_its_end(live):
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    st = emu_power(live)
    local = datetime.fromtimestamp(st.now(), SCHOOL_TZ)
    st.window = ((local - timedelta(minutes=1)).time(), (local + timedelta(minutes=20)).time())
    order_no = pay_power(live, phone, 2000)
    c = wait_for(lambda: (x := delivery(live, order_no)).waiting_for and x)
    assert c.waiting_for == credits.Waiting.MAINTENANCE and recharge_log(live) == []
    assert timedelta(minutes=18) < c.next_try_at - c.paid_at < timedelta(minutes=21)
    assert power_phone(live, OPENID, room_id=None).keep("W01-0101").status_code == 503  # no room kept unasked
    [room] = power.kept(live.services, OPENID)
    assert not room.live and room.room_id == ROOM and room.remaining_kwh is not None  # the last reading meanwhile
    assert ROOM in power_phone(live, OPENID, room_id=None).open_power().text
    st.window = None
    live.services.clock.shift(timedelta(minutes=21))
    assert credits.deliver_due(live.services) == {CreditStatus.DELIVERED: 1}
    assert recharge_log(live) == [order_no]


@pytest.mark.parametrize("fault", ["lost", "slow"])
def test_an_answer_lost_after_the_recharge_is_asked_about_never_sent_again(live, fault):
    _frozen(live)
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    st = emu_power(live)
    st.set_meter(ROOM, "5.00", rate="0")
    # the answer lost (or too late), then a 5xx for any further POST: a retry that recharged again instead of asking
    # would stay pending
    st.faults["recharge"] = [fault, "5xx"]
    order_no = pay_power(live, phone, 5000)
    c = wait_for(lambda: (x := delivery(live, order_no)).waiting_for and x)
    assert (c.status, c.waiting_for) == (CreditStatus.PENDING, credits.Waiting.NO_ANSWER)
    wait_for(lambda: recharge_log(live) == [order_no])  # the electricity system recharged; we did not hear it
    live.services.clock.shift(timedelta(minutes=1))
    assert credits.deliver_due(live.services) == {CreditStatus.DELIVERED: 1}
    c = delivery(live, order_no)
    assert c.kwh_after == Decimal("94.28") and c.tries == 2  # 5 + 50 / 0.56, learnt by asking
    assert recharge_log(live) == [order_no] and st.faults["recharge"] == ["5xx"]
    assert len(notices_of(live, "power_receipt")) == 1


def test_a_refusal_is_told_listed_and_refunded_through_wechat_once(live):
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    emu_power(live).set_meter(ROOM, open=False)  # moved out: the meter is disconnected
    refusal = phone.order_power(2000)
    assert (refusal.status_code, refusal.json()["error"]) == (409, "room_closed")  # said before anyone pays
    emu_power(live).set_meter(ROOM, open=True)
    order_no = pay_power(live, phone, 2000, before_pay=lambda: emu_power(live).set_meter(ROOM, open=False))  # closed meanwhile
    c = answered(live, order_no)
    assert (c.status, c.reason) == (CreditStatus.REFUSED, "room_closed") and recharge_log(live) == []
    [told] = notices_of(live, "power_refused")
    assert told.data["status"] == "房间已停用或电表断开" and told.url.endswith("/power")
    status = phone.power_status(order_no)
    assert status["delivery"] == "refused" and "退款" in status["message"]
    listed = credits_cli(live, "list")
    [line] = [ln for ln in listed.output.splitlines() if order_no in ln]
    assert all(x in line for x in (f"power:{ROOM}", "20.00", "refused", "room_closed"))
    first = credits_cli(live, "refund", order_no)
    assert first.exit_code == 0, first.output
    wait_for(lambda: credit(live, order_no).status == CreditStatus.REFUNDED)
    again = credits_cli(live, "refund", order_no)
    assert again.exit_code == 0 and "before" in again.output
    [made] = refunds_at_wechat(live, order_no)
    assert (made.amount, made.out_refund_no) == (2000, f"RC{order_no}") and "电费" in made.reason
    assert len(notices_of(live, "refund_result")) == 1


def test_low_power_alerts_every_account_keeping_the_room_once_a_day_and_waits_out_quiet_hours(live):
    now = _frozen(live, hour=22)
    low, other = "W01-0101", "W01-0102"
    st = emu_power(live)
    st.set_meter(low, "30.00", rate="0")
    st.set_meter(other, "50.00", rate="0")
    student(live, OPENID, student_no="20230001")
    student(live, ROOMMATE, student_no="20230002")
    student(live, NEIGHBOUR, student_no="20230003")
    power_phone(live, OPENID, low)
    power_phone(live, ROOMMATE, low)
    neighbour = power_phone(live, NEIGHBOUR, other)
    assert power.sweep_low(live.services) == {"read": 2, "alerted": 0, "notices": 0}
    st.set_meter(low, "3.50")
    assert power.sweep_low(live.services) == {"read": 2, "alerted": 1, "notices": 2}
    alerts = notices_of(live, "power_low")
    assert {n.openid for n in alerts} == {OPENID, ROOMMATE}  # both roommates; not the neighbour
    assert all(n.data["room"] == "西区 · 1号楼 · 101" and "3.50" in n.data["kwh"] and "10.00" in n.data["advice"] for n in alerts)
    assert not any(n.urgent for n in alerts)
    assert power.sweep_low(live.services)["alerted"] == 0  # at most once a day per room
    # a room's threshold is the room's: the neighbour raises theirs above what is left
    assert neighbour.post(f"/api/power/rooms/{other}/threshold", {"kwh": "60"}).json()["threshold_kwh"] == "60.00"
    assert neighbour.post(f"/api/power/rooms/{low}/threshold", {"kwh": "60"}).status_code == 404  # not theirs
    assert power.sweep_low(live.services) == {"read": 2, "alerted": 1, "notices": 1}
    assert [n.openid for n in notices_of(live, "power_low")][-1] == NEIGHBOUR
    live.services.clock.freeze(now.replace(hour=23, minute=30))  # quiet hours: held
    outbox.drain_once(live.services, "test")
    assert {n.status for n in notices_of(live, "power_low")} == {NoticeStatus.PENDING}
    live.services.clock.freeze(now + timedelta(days=1))  # the next day: told again
    assert power.sweep_low(live.services) == {"read": 2, "alerted": 2, "notices": 3}


def test_reconcile_both_products_in_one_day(live):
    student(live, OPENID, balance_fen=0)
    phone = power_phone(live, OPENID)
    card_ref = topup(live, OPENID, 5000)
    power_ref = pay_power(live, phone, 5000)
    wait_for(lambda: credit(live, card_ref).status == CreditStatus.DELIVERED and credit(live, power_ref).status == CreditStatus.DELIVERED)
    today = live.services.clock.today()
    result = reconcile_cli(live, today)
    assert result.exit_code == 0, result.output
    assert "top-up orders and the WeChat Pay trade bill agree" in result.output  # both products' orders
    assert "our credits and the card system's agree" in result.output
    assert "our electricity recharges and the electricity system's agree" in result.output
    st = emu_power(live)
    with st.lock:  # the electricity system lost our recharge
        st.recharge_log.clear()
        st.recharges.clear()
    result = reconcile_cli(live, today)
    assert result.exit_code == 1
    assert "1 electricity recharge difference(s) or open item(s) with the electricity system" in result.output
    assert power_ref in result.output and card_ref not in result.output
    assert "our credits and the card system's agree" in result.output


def test_the_low_power_sweep_reads_all_20000_rooms_and_alerts_each_low_room_once(live):
    """Its speed (< 10 s) is the bench's sweep section; here, that all 20,000 rooms are read and alerted right."""
    ids = room_ids()
    assert len(ids) == 20_000
    with live.session() as db, db.begin():
        db.execute(insert(PowerRoom), [{"room_id": r, "label": r, "threshold_kwh": Decimal(10)} for r in ids])
        db.execute(
            insert(SavedRoom), [{"openid": f"oSweep{i % 5000:018d}", "room_id": r, "created_at": datetime(2026, 1, 1)} for i, r in enumerate(ids)]
        )
    done = power.sweep_low(live.services)
    assert done["read"] == 20_000 and done["alerted"] > 0 and done["notices"] == done["alerted"]
    assert power.sweep_low(live.services) == {"read": 20_000, "alerted": 0, "notices": 0}  # once a day
    with live.session() as db:
        assert db.execute(select(PowerRoom).where(PowerRoom.read_at.is_(None))).first() is None


def test_bills_show_electricity_beside_card_entries_marked(live, wx):
    student(live, OPENID)
    emu_power(live).set_meter(ROOM, "12.00", rate="0")
    phone = power_phone(live, OPENID)
    card_ref = topup(live, OPENID, 5000)
    power_ref = pay_power(live, phone, 2000)
    wait_for(lambda: credit(live, card_ref).status == CreditStatus.DELIVERED and credit(live, power_ref).status == CreditStatus.DELIVERED)
    html = phone.get("/bills").text
    assert '<span class="mark power">电费</span>东区 · 3号楼 · 512' in html and "-20.00" in html and "剩余电量 47.71 度" in html
    desc = wx.text(OPENID, "账单").articles[0]["Description"]
    assert "电费 东区 · 3号楼 · 512 -20.00元（微信支付）" in desc
    assert "收入 150.00 元 · 支出 0.00 元（共2笔）" in desc  # the card's totals count only the card's entries


def test_an_order_nobody_was_told_about_is_settled_by_the_stuck_order_job_and_delivered(live):
    student(live, OPENID)
    phone = power_phone(live, OPENID)
    order_no = pay_power(live, phone, 5000, notify_now=False)  # paid; WeChat's notify never came
    assert settle_stuck_orders(live.services) == 0  # not stuck yet
    live.services.clock.shift(timedelta(minutes=4))
    assert settle_stuck_orders(live.services) == 1
    assert delivery(live, order_no).status == CreditStatus.DELIVERED and recharge_log(live) == [order_no]
    assert notify_paid(live, order_no) == 204  # the late notify changes nothing
    assert recharge_log(live) == [order_no] and len(notices_of(live, "power_receipt")) == 1


def test_power1_is_signed_and_answers_are_checked(live):
    good = live.services.electricity
    assert good.room("E01-0101").label == "东区 · 1号楼 · 101"
    assert good.room("E26-0101") is None  # no 26th building
    forged = HttpElectricity(live.url + "/emulator", "not-the-secret", 1.0)
    with pytest.raises(ElectricityProtocolError, match="401"):
        forged.room("E01-0101")
    with pytest.raises(ElectricityProtocolError, match="401"):
        forged.recharge("TFORGED0001", "E01-0101", 100, datetime.now(UTC))
    assert recharge_log(live) == []
    assert len(good.readings(["E01-0101", "X", "W25-2020"])) == 2  # unknown rooms left out


def test_the_emulators_recharge_call_checks_signature_nonce_and_body_before_it_recharges(live):
    """``POST /power/v1/recharges`` is answered in front of Flask (``Recharges``); it keeps power/1's checks."""
    import requests

    from bot.adapters.cardsys_signing import POWER

    path, secret = "/emulator/power/v1/recharges", live.services.cfg.electricity.secret

    def post(body: bytes, headers: dict[str, str] | None = None, ctype: str = "application/json") -> requests.Response:
        signed = headers or POWER.sign(secret, "POST", path, body)
        return requests.post(live.url + path, data=body, headers={**signed, "Content-Type": ctype}, timeout=5)

    good = json.dumps({"ref": "TWSGI0001", "room_id": "E01-0101", "amount_fen": 560}).encode()
    headers = POWER.sign(secret, "POST", path, good)
    first = post(good, headers)
    assert first.status_code == 200 and first.json()["result"] == "ok" and first.json()["kwh"] == "10.00"
    replayed = post(good, headers)  # the same nonce again
    assert replayed.status_code == 401 and replayed.json()["error"] == "unauthorized"
    assert post(good, POWER.sign("not-the-secret", "POST", path, good)).status_code == 401
    again = post(good)  # signed afresh: the first answer, nothing recharged twice
    assert again.status_code == 200 and again.json() == first.json()
    assert post(b"{not json").json() == {"error": "invalid_request", "message": "a JSON object is required"}
    assert post(good.replace(b"TWSGI0001", b"TWSGI0002"), ctype="text/plain").status_code == 400
    assert post(json.dumps({"ref": "bad ref!", "room_id": "E01-0101", "amount_fen": 1}).encode()).status_code == 400
    assert recharge_log(live) == ["TWSGI0001"]


def _power1(server, method: str, path: str, body, act: bool) -> tuple[int, dict[str, object]]:
    """What a power/1 server answers (``tests.support.flaky``): a recharge is made once per ref."""
    if method == "POST" and act:
        return 200, server.made.setdefault(body["ref"], {"result": "ok", "entry_id": "PW1", "kwh": "35.71", "remaining_kwh": "47.71"})
    if path.startswith("/power/v1/recharges/") and (made := server.made.get(path.rsplit("/", 1)[1])):
        return 200, made
    if path.startswith("/power/v1/rooms/"):
        return 200, {
            "room_id": ROOM,
            "label": LABEL,
            "remaining_kwh": "1.00",
            "price_fen_per_kwh": 56,
            "read_at": "2026-12-01T08:00:00+08:00",
            "open": True,
        }
    return 404, {"error": "unknown_ref"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("plan", "seen", "outcome"),
    [
        (["reset"], ["POST /recharges", "GET /recharges/BP0001", "POST /recharges"], "ok"),  # never arrived: sent again
        (["lost"], ["POST /recharges", "GET /recharges/BP0001"], "ok"),  # made, answer lost: asked, not sent again
        (["reset", "answer", "reset"], ["POST /recharges", "GET /recharges/BP0001", "POST /recharges"], "no answer"),
        (["silent"], ["POST /recharges"], "no answer"),  # timed out: the server may still be at it, left to the next try
    ],
)
def test_a_recharge_reset_before_its_answer_is_asked_about_at_once(plan, seen, outcome):
    """A recharge whose connection was reset before any answer (a kept-alive connection the server timed out as we
    reused it) is asked about by its ref at once, and sent again, with the same ref, only when it never arrived."""
    with serving(plan, _power1, "/power/v1") as server:
        client = HttpElectricity(server.url, "s" * 32, 0.5)
        try:
            answer = client.recharge("BP0001", ROOM, 2000, datetime.now(UTC))
        except ElectricityNoAnswer:
            answer = None
        assert ("ok" if answer and answer.remaining_kwh == Decimal("47.71") else "no answer") == outcome
        assert server.seen == seen and len(server.made) == (outcome == "ok")
        server.plan[:] = ["reset"]
        assert client.room(ROOM).label == LABEL  # a read is simply sent again
        assert server.seen[-2:] == [f"GET /rooms/{ROOM}"] * 2
