"""cardsys/1 (docs/card-system.md): the signing both ways, the http client against the emulator's card system over real
HTTP, credits idempotent by ref, maintenance, lost answers settled by asking again with the same ref, replays."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import pytest
import requests

from bot.adapters import cardsys_signing
from bot.adapters.cardsystem import (
    CardSystemNoAnswer,
    CardSystemProtocolError,
    CardSystemUnavailable,
    Channel,
    Credit,
    CreditResult,
    HolderKind,
    HttpCardSystem,
    LossAction,
    LossResult,
    Refusal,
    TerminalEntryKind,
    VerifyResult,
)
from bot.clock import SCHOOL_TZ
from models.enums import CardStatus
from tests.support.topup import wait_for

ZHANG = ("20230001", "张三", "10200")  # demo roster: id number ...15102X → password 15102X with X as 0
ZHANG_PW = "15102" + "0"


def emu(live):
    return live.app.extensions["emulator_cardsys"]


def paid() -> datetime:
    return datetime.now(SCHOOL_TZ)


def emu_balance(live, student_no: str) -> int:
    with emu(live).lock:
        return emu(live).accounts[student_no].balance_fen


# -- signing ---------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_signature_vectors_both_ways():
    body = b'{"ref":"A1","amount_fen":100}'
    # computed independently: printf 'POST\n/cardsys/v1/credits?x=1\n1764500000\n0123456789abcdefABCDEF\n{body}' | openssl dgst -sha256 -hmac test-secret
    post = "e5d7942bced967ed068699b42128025120a710e8844da75a60ed7a5ddf07f182"
    get = "9b13d646c06c022c1f08c7cd7390d3006522539dc70fb6bc229a2ee522fcd23e"
    assert cardsys_signing.signature("test-secret", "POST", "/cardsys/v1/credits?x=1", "1764500000", "0123456789abcdefABCDEF", body) == post
    assert cardsys_signing.signature("test-secret", "GET", "/emulator/cardsys/v1/accounts/20230001", "1764500000", "NONCE0123456789AB", b"") == get
    headers = cardsys_signing.sign("test-secret", "POST", "/cardsys/v1/credits?x=1", body, timestamp=1764500000, nonce="0123456789abcdefABCDEF")
    assert headers == {"X-Cardsys-Timestamp": "1764500000", "X-Cardsys-Nonce": "0123456789abcdefABCDEF", "X-Cardsys-Signature": post}

    seen: set[str] = set()

    def claim(nonce: str) -> bool:
        fresh = nonce not in seen
        seen.add(nonce)
        return fresh

    def check(secret="test-secret", path="/cardsys/v1/credits?x=1", raw=body, hdrs=headers, now=1764500000 + 299):
        return cardsys_signing.verify(secret, "POST", path, hdrs, raw, claim, now=now)

    assert check(secret="other") == "bad signature"
    assert check(path="/cardsys/v1/credits") == "bad signature"  # the query string is signed
    assert check(raw=body + b" ") == "bad signature"  # the raw bytes are signed
    assert check(now=1764500000 + 301) == "timestamp outside the 300 s window"
    assert check(hdrs={**headers, "X-Cardsys-Nonce": "short"}) == "missing or malformed signature headers"
    assert check(hdrs={**headers, "X-Cardsys-Signature": post.upper()}) == "missing or malformed signature headers"
    assert seen == set()  # refused requests use up no nonce
    assert check() is None
    assert check() == "nonce already used"


def _hand_signed(
    live, method: str, target: str, body: bytes = b"", *, secret: str | None = None, ts: int | None = None, nonce: str = "HandSigned0123456789"
) -> requests.Response:
    """Signed without the bot's module, as a school's integrator would from the page alone."""
    stamp = str(int(time.time()) if ts is None else ts)
    key = (secret or live.cfg.cardsystem.secret).encode()
    sig = hmac.new(key, f"{method}\n{target}\n{stamp}\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Cardsys-Timestamp": stamp, "X-Cardsys-Nonce": nonce, "X-Cardsys-Signature": sig, "Content-Type": "application/json"}
    return requests.request(method, live.url + target, data=body or None, headers=headers, timeout=10)


def test_emulator_checks_signature_window_and_nonce(cs_live):
    target = "/emulator/cardsys/v1/accounts/20230001/entries?limit=2&since=2020-01-01T00%3A00%3A00%2B08%3A00"
    first = _hand_signed(cs_live, "GET", target, nonce="N" * 16)
    assert first.status_code == 200, first.text
    assert len(first.json()["entries"]) == 1
    assert _hand_signed(cs_live, "GET", target, nonce="N" * 16).status_code == 401  # replayed nonce
    assert _hand_signed(cs_live, "GET", target, nonce="M" * 16, secret="guess").status_code == 401
    assert _hand_signed(cs_live, "GET", target, nonce="O" * 16, ts=int(time.time()) - 301).status_code == 401
    unsigned = requests.get(cs_live.url + target, timeout=10)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "unauthorized"
    body = json.dumps({"student_no": ZHANG[0], "name": ZHANG[1], "password": ZHANG_PW}, ensure_ascii=False).encode()
    ok = _hand_signed(cs_live, "POST", "/emulator/cardsys/v1/holders/verify", body, nonce="P" * 16)
    assert ok.status_code == 200 and ok.json()["result"] == "ok", ok.text


def test_client_requests_replayed_are_refused(cs_live, cs):
    prep = cs.prepare("POST", "/holders/verify", body={"student_no": ZHANG[0], "name": ZHANG[1], "password": ZHANG_PW})
    assert cs.send(prep).status_code == 200
    again = cs.send(prep)
    assert again.status_code == 401 and again.json() == {"error": "unauthorized", "message": "nonce already used"}


# -- every call ------------------------------------------------------------------------------------------------


def test_every_call_of_the_client_against_the_emulator(cs_live, cs):
    ok = cs.verify_holder(ZHANG[0], ZHANG[1], ZHANG_PW)
    assert ok.result is VerifyResult.OK and ok.holder is not None
    assert (ok.holder.name, ok.holder.kind, ok.holder.status, ok.holder.left_on) == ("张三", HolderKind.STUDENT, CardStatus.ACTIVE, None)
    assert cs.verify_holder(ZHANG[0], ZHANG[1], "000000").result is VerifyResult.MISMATCH
    assert cs.verify_holder(ZHANG[0], "张 三", ZHANG_PW).result is VerifyResult.MISMATCH
    assert cs.verify_holder("20999999", "x", "000000").result is VerifyResult.UNKNOWN_HOLDER
    anna = cs.verify_holder("20230003", "Anna Schmidt", "7N2P91")  # no id number: the passport's last 6
    assert anna.holder is not None and anna.holder.kind is HolderKind.INTERNATIONAL
    grad = cs.account("20190005")
    assert grad is not None and grad.holder.status is CardStatus.GRADUATED and grad.holder.left_on == date(2026, 9, 30)

    acc = cs.account(ZHANG[0])
    assert acc is not None and acc.balance_fen == 10000 and acc.as_of.utcoffset() == timedelta(hours=8)
    assert cs.account("20999999") is None

    credit = cs.credit("ORDER-1", ZHANG[0], 5000, Channel.WECHAT_PAY, paid())
    assert credit.result is CreditResult.OK and credit.balance_fen == 15000 and credit.entry_id
    assert cs.credit("ORDER-1", ZHANG[0], 5000, Channel.WECHAT_PAY, paid()) == credit
    assert cs.credit_status("ORDER-1") == credit
    assert cs.credit_status("ORDER-never") is None

    entries = cs.entries(ZHANG[0], since=datetime.now(SCHOOL_TZ) - timedelta(days=1), limit=200)
    assert [(e.kind, e.amount_fen, e.balance_after_fen) for e in entries] == [
        (TerminalEntryKind.TOPUP, 5000, 15000),
        (TerminalEntryKind.ADJUST, 10000, 10000),
    ]
    assert entries[0].entry_id == credit.entry_id
    assert [e.entry_id for e in cs.entries(ZHANG[0], limit=1)] == [credit.entry_id]
    assert cs.entries(ZHANG[0], since=datetime.now(SCHOOL_TZ) + timedelta(minutes=5)) == []

    [record] = cs.credits_on(datetime.now(SCHOOL_TZ).date())
    assert (record.ref, record.student_no, record.amount_fen, record.entry_id) == ("ORDER-1", ZHANG[0], 5000, credit.entry_id)
    assert cs.credits_on(date(2020, 1, 1)) == []

    assert cs.credit("AD-1", "20220006", 100, Channel.AUTODEBIT, paid()) == Credit(CreditResult.REFUSED, reason=Refusal.CARD_FROZEN)
    assert cs.credit("AD-2", "20190005", 100, Channel.AUTODEBIT, paid()).reason is Refusal.GRADUATED
    assert cs.credit("AD-3", "20999999", 100, Channel.AUTODEBIT, paid()).reason is Refusal.UNKNOWN_HOLDER
    assert cs.credit("AD-4", ZHANG[0], 200_000, Channel.AUTODEBIT, paid()).reason is Refusal.OVER_LIMIT

    lost = cs.loss("LOSS-1", ZHANG[0], LossAction.REPORT)
    assert (lost.result, lost.status) == (LossResult.OK, CardStatus.LOST)
    assert cs.credit("ORDER-2", ZHANG[0], 100, Channel.WECHAT_PAY, paid()).reason is Refusal.CARD_LOST
    assert cs.loss("LOSS-2", ZHANG[0], LossAction.CANCEL, "000000").result is LossResult.MISMATCH
    back = cs.loss("LOSS-3", ZHANG[0], LossAction.CANCEL, ZHANG_PW)
    assert (back.result, back.status) == (LossResult.OK, CardStatus.ACTIVE)
    assert cs.loss("LOSS-1", ZHANG[0], LossAction.REPORT) == lost  # a repeated ref: the first answer, nothing done
    assert cs.account(ZHANG[0]).holder.status is CardStatus.ACTIVE
    assert cs.loss("LOSS-4", "20220006", LossAction.REPORT).reason is Refusal.CARD_FROZEN
    assert cs.credit("ORDER-2", ZHANG[0], 100, Channel.WECHAT_PAY, paid()).reason is Refusal.CARD_LOST  # for ever

    kiosk = requests.post(
        cs_live.url + "/emulator/cardsys/kiosk/password",
        timeout=10,
        json={"student_no": ZHANG[0], "old_password": ZHANG_PW, "new_password": "654321"},
    )
    assert kiosk.status_code == 200
    assert cs.verify_holder(ZHANG[0], ZHANG[1], ZHANG_PW).result is VerifyResult.MISMATCH
    assert cs.verify_holder(ZHANG[0], ZHANG[1], "654321").result is VerifyResult.OK
    assert emu_balance(cs_live, ZHANG[0]) == 15000


def test_credit_is_idempotent_by_ref_under_concurrent_repeats(cs_live, cs):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: cs.credit("SAME-REF", "20230002", 1000, Channel.WECHAT_PAY, paid()), range(8)))
    assert len(set(answers)) == 1 and answers[0].result is CreditResult.OK
    assert emu_balance(cs_live, "20230002") == 3550 + 1000
    assert len(cs.credits_on(datetime.now(SCHOOL_TZ).date())) == 1


def test_maintenance_is_503_with_retry_after_and_nothing_done(cs_live, cs):
    emu(cs_live).faults["all"] = "maintenance"
    with pytest.raises(CardSystemUnavailable) as exc:
        cs.credit("MAINT-1", ZHANG[0], 100, Channel.WECHAT_PAY, paid())
    assert exc.value.retry_after == 600
    with pytest.raises(CardSystemUnavailable):
        cs.account(ZHANG[0])
    del emu(cs_live).faults["all"]
    assert cs.credit_status("MAINT-1") is None
    assert emu_balance(cs_live, ZHANG[0]) == 10000


def test_answer_lost_after_the_credit_is_settled_by_asking_with_the_same_ref(cs_live, cs):
    emu(cs_live).faults["credit"] = ["lost"]
    with pytest.raises(CardSystemNoAnswer):
        cs.credit("LOST-1", ZHANG[0], 700, Channel.AUTODEBIT, paid())
    status = cs.credit_status("LOST-1")
    assert status is not None and status.result is CreditResult.OK and status.balance_fen == 10700
    assert cs.credit("LOST-1", ZHANG[0], 700, Channel.AUTODEBIT, paid()) == status
    assert emu_balance(cs_live, ZHANG[0]) == 10700


def test_no_answer_before_the_credit_then_the_same_ref_credits_once(cs_live, cs):
    emu(cs_live).faults["credit"] = ["5xx", "slow"]
    with pytest.raises(CardSystemNoAnswer):
        cs.credit("NOANS-1", ZHANG[0], 300, Channel.WECHAT_PAY, paid())
    assert cs.credit_status("NOANS-1") is None  # never received: repeat the same ref
    with pytest.raises(CardSystemNoAnswer):  # slow: we give up, the card system goes on
        cs.credit("NOANS-1", ZHANG[0], 300, Channel.WECHAT_PAY, paid())
    made = wait_for(lambda: cs.credit_status("NOANS-1"))
    assert cs.credit("NOANS-1", ZHANG[0], 300, Channel.WECHAT_PAY, paid()) == made
    assert emu_balance(cs_live, ZHANG[0]) == 10300


def test_answers_breaking_the_protocol_are_refused(cs_live, cs):
    from bot.adapters.cardsystem import HttpCardSystem

    wrong_secret = HttpCardSystem(cs.base.removesuffix("/cardsys/v1"), "not-the-secret", 1.0)
    with pytest.raises(CardSystemProtocolError, match="401"):
        wrong_secret.account(ZHANG[0])
    emu(cs_live).modes.add("maintenance_without_retry_after")
    emu(cs_live).faults["account"] = "maintenance"
    with pytest.raises(CardSystemProtocolError, match="retry_after"):
        cs.account(ZHANG[0])


def test_terminal_swipe_is_pushed_to_the_bot_signed(cs_live):
    from tests.support.autodebit import balance, student

    card_id = student(cs_live, "oCardsysSwipe0001", student_no=ZHANG[0], balance_fen=10000)
    r = requests.post(
        cs_live.url + "/emulator/cardsys/terminals/swipe",
        timeout=15,
        json={"student_no": ZHANG[0], "amount_fen": 1250, "merchant": "第二食堂 Canteen 2"},
    )
    assert r.status_code == 200, r.text
    push = r.json()["push"]
    assert push["status"] == 200 and push["response"]["duplicate"] is False, push
    assert push["response"]["entry_id"] == r.json()["entry"]["entry_id"]
    assert emu_balance(cs_live, ZHANG[0]) == 8750
    assert balance(cs_live, card_id) == 8750


def _cardsys1(server, method: str, path: str, body, act: bool) -> tuple[int, dict[str, object]]:
    """What a cardsys/1 server answers (``tests.support.flaky``): a credit is made once per ref."""
    if method == "POST" and act:
        return 200, server.made.setdefault(body["ref"], {"result": "ok", "entry_id": "E1", "balance_fen": 12345})
    if path.startswith("/cardsys/v1/credits/") and (made := server.made.get(path.rsplit("/", 1)[1])):
        return 200, made
    if path.startswith("/cardsys/v1/credits?"):
        return 200, {"credits": []}
    return 404, {"error": "unknown_ref"}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("plan", "seen", "outcome"),
    [
        (["reset"], ["POST /credits", "GET /credits/T0001", "POST /credits"], "ok"),  # never arrived: sent again
        (["lost"], ["POST /credits", "GET /credits/T0001"], "ok"),  # made, answer lost: asked, not sent again
        (["lost", "reset"], ["POST /credits", "GET /credits/T0001", "GET /credits/T0001"], "ok"),  # a read is sent again
        (["reset", "answer", "reset"], ["POST /credits", "GET /credits/T0001", "POST /credits"], "no answer"),
        (["silent"], ["POST /credits"], "no answer"),  # timed out: the card system may still be at it, left to the next try
    ],
)
def test_a_credit_reset_before_its_answer_is_asked_about_at_once(plan, seen, outcome):
    """A credit whose connection was reset before any answer (a kept-alive connection the card system timed out as
    we reused it) is asked about by its ref at once, and sent again, with the same ref, only when it never arrived;
    before, it waited for the worker's next try, minutes for a student who had just paid."""
    from tests.support.flaky import serving

    with serving(plan, _cardsys1, "/cardsys/v1") as server:
        client = HttpCardSystem(server.url, "s" * 32, 0.5)
        try:
            answer = client.credit("T0001", "20230001", 5000, Channel.WECHAT_PAY, datetime.now(SCHOOL_TZ))
        except CardSystemNoAnswer:
            answer = None
        assert ("ok" if answer and answer.balance_fen == 12345 else "no answer") == outcome
        assert server.seen == seen and len(server.made) == (outcome == "ok")
        server.plan[:] = ["reset"]
        assert client.credits_on(date(2026, 12, 1)) == []
        assert server.seen[-2:] == ["GET /credits?date=2026-12-01"] * 2
