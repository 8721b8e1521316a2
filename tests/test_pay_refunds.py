"""WeChat Pay v3 refunds through the real PayClient (wechatpayv3) and the emulated WeChat Pay over real HTTP:
merchant-signed requests, platform-signed answers, AES-GCM refund notifies delivered to a small merchant server.

Only the plumbing is here (client, emulator, notify parsing); the credits feature decides when to refund."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from bot.adapters.pay import NotifyError, PayClient, PayError, PayUnavailable, RefundResult, RefundStatus
from bot.clock import SCHOOL_TZ
from bot.config import PayConfig
from bot.emulator.pay import signed_notify
from tests.conftest import free_port
from tests.support.refunds import Receiver
from tests.support.topup import emu_pay, merchant_private_key, platform_key, wait_for

OPENID = "oRefundUser000000000000001"


def client(live: Any, **changes: Any) -> PayClient:
    return PayClient(PayConfig(**{**live.cfg.pay.model_dump(), **changes}), live.cfg.wechat.appid)


def paid_order(live: Any, pay: PayClient, out_trade_no: str, total: int) -> None:
    """An order the student paid through the emulated pay sheet."""
    prepay = pay.jsapi_order(out_trade_no, total, OPENID, "校园卡充值", datetime.now(SCHOOL_TZ) + timedelta(minutes=15))
    r = requests.post(live.url + "/emulator/pay/confirm", json={**pay.pay_params(prepay), "openid": OPENID, "outcome": "success"}, timeout=10)
    assert r.json()["err_msg"].endswith(":ok")


def refunds_at_wechat(live: Any, out_trade_no: str) -> list[Any]:
    e = emu_pay(live)
    with e.lock:
        return [r for r in e.refunds.values() if r.out_trade_no == out_trade_no]


def test_refund_is_processing_then_success_by_query_and_by_verified_notify(live):
    rx = Receiver(failures=1)  # the first notify is answered 500: WeChat sends it again on its schedule
    try:
        pay = client(live, notify_url=rx.url)
        paid_order(live, pay, "RFD0000000000000000001", 5000)
        first = pay.refund("RFD0000000000000000001", "RF00000000000000000001", 1200, 5000, "卡已挂失，充值退回")
        assert isinstance(first, RefundResult)
        assert first.status is RefundStatus.PROCESSING and first.success_time is None
        assert (first.out_trade_no, first.out_refund_no, first.refund_fen, first.total_fen) == (
            "RFD0000000000000000001",
            "RF00000000000000000001",
            1200,
            5000,
        )
        assert first.refund_id and first.transaction_id.startswith("4200")
        assert pay.query("RFD0000000000000000001")["trade_state"] == "REFUND"

        done = wait_for(lambda: (r := pay.query_refund("RF00000000000000000001")).status is RefundStatus.SUCCESS and r)
        assert done.refund_id == first.refund_id and done.refund_fen == 1200 and done.success_time is not None

        wait_for(lambda: len(rx.events("REFUND.SUCCESS")) >= 2)
        headers, body = rx.events("REFUND.SUCCESS")[-1]
        note = pay.parse_refund_notify(headers, body, time.time())
        assert note == done
        log = wait_for(
            lambda: (
                (got := [x for x in emu_pay(live).notify_log if x.get("out_refund_no") == "RF00000000000000000001"])
                and got[-1]["status"] == 204
                and got
            )
        )
        assert [x["status"] for x in log] == [500, 204]
        assert {p for p, event in rx.paths if event.startswith("REFUND.")} == {"/pay/refund-notify"}
        assert {p for p, event in rx.paths if event.startswith("TRANSACTION.")} == {"/pay/notify"}
        with pytest.raises(NotifyError):  # a payment notify is not a refund notify
            pay.parse_refund_notify(*rx.events("TRANSACTION.SUCCESS")[0], time.time())
    finally:
        rx.server.shutdown()


def test_the_same_out_refund_no_twice_is_one_refund(live, rx):
    pay = client(live, notify_url=rx.url)
    paid_order(live, pay, "RFD0000000000000000002", 3000)
    a = pay.refund("RFD0000000000000000002", "RF00000000000000000002", 1000, 3000, "卡片冻结")
    b = pay.refund("RFD0000000000000000002", "RF00000000000000000002", 1000, 3000, "卡片冻结")
    assert a.refund_id == b.refund_id
    assert [r.amount for r in refunds_at_wechat(live, "RFD0000000000000000002")] == [1000]
    with pytest.raises(PayError) as exc:  # the same number for another amount is refused, never a second refund
        pay.refund("RFD0000000000000000002", "RF00000000000000000002", 2000, 3000, "卡片冻结")
    assert exc.value.code == "INVALID_REQUEST" and not isinstance(exc.value, PayUnavailable)
    wait_for(lambda: pay.query_refund("RF00000000000000000002").status is RefundStatus.SUCCESS)
    again = pay.refund("RFD0000000000000000002", "RF00000000000000000002", 1000, 3000, "卡片冻结")
    assert again.refund_id == a.refund_id and again.status is RefundStatus.SUCCESS
    assert [r.amount for r in refunds_at_wechat(live, "RFD0000000000000000002")] == [1000]


def test_refunds_never_exceed_the_paid_total(live, rx):
    pay = client(live, notify_url=rx.url)
    paid_order(live, pay, "RFD0000000000000000003", 3000)
    with pytest.raises(PayError) as exc:
        pay.refund("RFD0000000000000000003", "RF00000000000000000003", 3001, 3000, "x")
    assert exc.value.status == 400 and exc.value.code == "INVALID_REQUEST" and not isinstance(exc.value, PayUnavailable)
    pay.refund("RFD0000000000000000003", "RF00000000000000000004", 2000, 3000, "x")
    with pytest.raises(PayError) as exc:  # 1000 left
        pay.refund("RFD0000000000000000003", "RF00000000000000000005", 1001, 3000, "x")
    assert exc.value.code == "INVALID_REQUEST"
    pay.refund("RFD0000000000000000003", "RF00000000000000000006", 1000, 3000, "x")
    with pytest.raises(PayError) as exc:  # fully refunded
        pay.refund("RFD0000000000000000003", "RF00000000000000000007", 1, 3000, "x")
    assert exc.value.code == "INVALID_REQUEST"
    with pytest.raises(PayError) as exc:  # the total must be the order's
        pay.refund("RFD0000000000000000003", "RF00000000000000000008", 1, 2999, "x")
    assert exc.value.code == "PARAM_ERROR"
    assert sum(r.amount for r in refunds_at_wechat(live, "RFD0000000000000000003")) == 3000
    emu_pay(live).faults["refund"] = "not_enough"  # the merchant's available balance cannot cover a refund
    with pytest.raises(PayError) as exc:
        pay.refund("RFD0000000000000000003", "RF00000000000000000009", 1, 3000, "x")
    assert exc.value.status == 403 and exc.value.code == "NOT_ENOUGH" and not isinstance(exc.value, PayUnavailable)


def test_only_a_paid_order_can_be_refunded(live, rx):
    pay = client(live, notify_url=rx.url)
    pay.jsapi_order("RFD0000000000000000004", 800, OPENID, "x", datetime.now(SCHOOL_TZ) + timedelta(minutes=15))
    with pytest.raises(PayError) as exc:
        pay.refund("RFD0000000000000000004", "RF00000000000000000010", 800, 800, "x")
    assert exc.value.status == 400 and exc.value.code == "INVALID_REQUEST" and not isinstance(exc.value, PayUnavailable)
    pay.close("RFD0000000000000000004")
    with pytest.raises(PayError) as exc:
        pay.refund("RFD0000000000000000004", "RF00000000000000000010", 800, 800, "x")
    assert exc.value.code == "INVALID_REQUEST"
    with pytest.raises(PayError) as exc:
        pay.refund("RFD0000000000000000099", "RF00000000000000000011", 800, 800, "x")
    assert exc.value.status == 404 and exc.value.code == "RESOURCE_NOT_EXISTS"
    with pytest.raises(PayError) as exc:  # never asked for: WeChat says so (a refund that does not exist was not made)
        pay.query_refund("RF00000000000000000010")
    assert exc.value.status == 404 and exc.value.code == "RESOURCE_NOT_EXISTS" and not isinstance(exc.value, PayUnavailable)
    assert refunds_at_wechat(live, "RFD0000000000000000004") == []


def test_lost_answer_is_found_by_asking_again_with_the_same_out_refund_no(live, rx):
    pay = client(live, notify_url=rx.url)
    paid_order(live, pay, "RFD0000000000000000005", 2000)
    emu_pay(live).faults["refund"] = ["lost"]  # WeChat refunds, then the answer is lost
    with pytest.raises(PayUnavailable) as exc:
        pay.refund("RFD0000000000000000005", "RF00000000000000000012", 2000, 2000, "x")
    assert exc.value.status == 500
    found = pay.query_refund("RF00000000000000000012")
    assert found.status in (RefundStatus.PROCESSING, RefundStatus.SUCCESS) and found.refund_fen == 2000
    assert pay.refund("RFD0000000000000000005", "RF00000000000000000012", 2000, 2000, "x").refund_id == found.refund_id
    assert len(refunds_at_wechat(live, "RFD0000000000000000005")) == 1

    emu_pay(live).faults["refund"] = ["5xx"]  # refused to act: nothing happened, the same number goes through later
    paid_order(live, pay, "RFD0000000000000000006", 2000)
    with pytest.raises(PayUnavailable):
        pay.refund("RFD0000000000000000006", "RF00000000000000000013", 500, 2000, "x")
    assert refunds_at_wechat(live, "RFD0000000000000000006") == []
    assert pay.refund("RFD0000000000000000006", "RF00000000000000000013", 500, 2000, "x").status is RefundStatus.PROCESSING

    emu_pay(live).faults["refund_query"] = ["5xx"]
    with pytest.raises(PayUnavailable):
        pay.query_refund("RF00000000000000000013")
    nobody = client(live, api_base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PayUnavailable) as exc:
        nobody.refund("RFD0000000000000000006", "RF00000000000000000013", 500, 2000, "x")
    assert exc.value.code == "NETWORK"


def test_abnormal_refund_is_reported_by_query_and_notify(live, rx):
    pay = client(live, notify_url=rx.url)
    paid_order(live, pay, "RFD0000000000000000007", 1500)
    emu_pay(live).faults["refund"] = ["abnormal"]  # e.g. the student's bank card was cancelled
    assert pay.refund("RFD0000000000000000007", "RF00000000000000000014", 1500, 1500, "x").status is RefundStatus.PROCESSING
    wait_for(lambda: pay.query_refund("RF00000000000000000014").status is RefundStatus.ABNORMAL)
    wait_for(lambda: rx.events("REFUND.ABNORMAL"))
    note = pay.parse_refund_notify(*rx.events("REFUND.ABNORMAL")[0], time.time())
    assert note.status is RefundStatus.ABNORMAL and note.success_time is None and note.refund_fen == 1500


def test_forged_tampered_or_stale_refund_notifies_are_rejected(live, rx):
    pay = client(live, notify_url=rx.url)
    paid_order(live, pay, "RFD0000000000000000008", 1000)
    pay.refund("RFD0000000000000000008", "RF00000000000000000015", 1000, 1000, "x")
    wait_for(lambda: rx.events("REFUND.SUCCESS"))
    headers, body = rx.events("REFUND.SUCCESS")[0]
    assert pay.parse_refund_notify(headers, body, time.time()).status is RefundStatus.SUCCESS
    envelope = json.loads(body)
    envelope["resource"]["ciphertext"] = envelope["resource"]["ciphertext"][:-4] + "AAAA"
    with pytest.raises(NotifyError):  # body changed after signing
        pay.parse_refund_notify(headers, json.dumps(envelope).encode(), time.time())
    with pytest.raises(NotifyError):
        pay.parse_refund_notify({**headers, "Wechatpay-Serial": "PUB_KEY_ID_SOMEONE_ELSE"}, body, time.time())

    e = emu_pay(live)
    with e.lock:
        resource = e.refunds["RF00000000000000000015"].notify_resource()

    def signed(**kw: Any) -> tuple[dict[str, str], bytes]:
        args = {
            "private_key": platform_key(live),
            "serial": live.cfg.pay.public_key_id,
            "apiv3_key": live.cfg.pay.apiv3_key,
            "event_type": "REFUND.SUCCESS",
            "kind": "refund",
            **kw,
        }
        return signed_notify(resource, **args)

    assert pay.parse_refund_notify(*signed(at=time.time() - 200), time.time()).refund_fen == 1000  # inside 5 minutes
    for stale in (time.time() - 310, time.time() + 310):  # whole seconds are signed: keep clear of the edge
        with pytest.raises(NotifyError, match="5 minutes"):
            pay.parse_refund_notify(*signed(at=stale), time.time())
    with pytest.raises(NotifyError):  # the payment notify path refuses a replay just the same
        pay.parse_notify(*signed(at=time.time() - 310), time.time())
    with pytest.raises(NotifyError):  # another APIv3 key: does not decrypt
        pay.parse_refund_notify(*signed(apiv3_key="0" * 32), time.time())
    with pytest.raises(NotifyError):  # signed by a key that is not WeChat Pay's
        pay.parse_refund_notify(*signed(private_key=merchant_private_key(live)), time.time())
    with pytest.raises(NotifyError):  # the event must say what the resource says
        pay.parse_refund_notify(*signed(event_type="REFUND.CLOSED"), time.time())
