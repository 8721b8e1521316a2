"""Every request to the bank is signed (the bank protocol in ``bot/adapters/bank.py``: cardsys/1's HMAC scheme with
``X-Bank-*`` headers and ``[bank] secret``). The sandbox bank refuses an unsigned, tampered, wrongly keyed, replayed
or stale request with 401 and does nothing; the bot takes a 401 for what it is — its own configuration error, logged
loudly — and never for a lost answer that could be debited: the attempt stays open and is settled by asking again
with the same reference once the secret is right."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
import requests

from bot.adapters import cardsys_signing
from bot.adapters.bank import BankRejected, make_bank_gateway
from bot.autodebit import STALE_PROCESSING, sweep
from bot.config import load_config
from tests.support.autodebit import GOOD_ACCOUNT, at, attempts, balance, bank, entries, entry, logged_in, signed, student

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oAutodebitBankSign000001"
NO = "20231201"
PATH = "/emulator/bank/debit"


def _body(ref: str = "AD1", amount_fen: int = 4000) -> bytes:
    return json.dumps({"account": GOOD_ACCOUNT, "amount_fen": amount_fen, "ref": ref}).encode()


def _post(live, raw: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(live.url + PATH, data=raw, headers={"Content-Type": "application/json", **headers}, timeout=10)


def test_signed_requests_are_accepted(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    bank(live).open(GOOD_ACCOUNT, 10_000)
    raw = _body()
    r = _post(live, raw, cardsys_signing.BANK.sign(live.cfg.bank.secret, "POST", PATH, raw))
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 6000
    gw = make_bank_gateway(live.cfg)  # the bot's own client, through the live app
    assert gw.query("AD1").ok and [d.ref for d in gw.debits(live.services.clock.today())] == ["AD1"]


@pytest.mark.parametrize(
    "attack", ["unsigned", "cardsys_headers", "tampered_body", "wrong_secret", "replayed_nonce", "stale_timestamp", "other_path"]
)
def test_forged_requests_are_refused_and_nothing_is_debited(live, attack):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    bank(live).open(GOOD_ACCOUNT, 10_000)
    secret, raw = live.cfg.bank.secret, _body()
    sign = cardsys_signing.BANK.sign
    if attack == "unsigned":
        headers: dict[str, str] = {}
    elif attack == "cardsys_headers":
        headers = cardsys_signing.sign(secret, "POST", PATH, raw)
    elif attack == "tampered_body":
        headers, raw = sign(secret, "POST", PATH, raw), _body(amount_fen=9000)
    elif attack == "wrong_secret":
        headers = sign(live.cfg.cardsystem.secret, "POST", PATH, raw)
    elif attack == "replayed_nonce":
        headers = sign(secret, "POST", PATH, _body(ref="AD0", amount_fen=1))
        assert _post(live, _body(ref="AD0", amount_fen=1), headers).status_code == 200
        bank(live).open(GOOD_ACCOUNT, 10_000)
        headers = sign(secret, "POST", PATH, raw, nonce=headers[cardsys_signing.BANK.nonce_header])
    elif attack == "stale_timestamp":
        headers = sign(secret, "POST", PATH, raw, timestamp=int(time.time()) - cardsys_signing.WINDOW_SECONDS - 60)
    else:
        headers = sign(secret, "POST", "/emulator/bank/query", raw)
    r = _post(live, raw, headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 10_000
    assert [d for d in bank(live).statement if d["ref"] == "AD1"] == []


def test_a_client_with_the_wrong_secret_is_refused_not_unanswered(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    bank(live).open(GOOD_ACCOUNT, 10_000)
    cfg = load_config(None, bank={"adapter": "http", "api_base_url": live.url + "/emulator/bank", "secret": "not-the-banks-secret"})
    gw = make_bank_gateway(cfg)
    with pytest.raises(BankRejected, match=r"\[bank\] secret"):
        gw.debit(GOOD_ACCOUNT, 4000, "AD1")
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 10_000


def test_auto_top_up_with_a_misconfigured_secret_stays_open_and_is_settled_once_fixed(live, caplog):
    caplog.set_level(logging.INFO)
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    card_id = student(live, OPENID, student_no=NO, balance_fen=2100)
    signed(live, OPENID)
    bank(live).secret = "the-bank-was-given-another-secret"
    assert entry(live, NO, -200).json()["autodebit"]["status"] == "processing"
    [attempt] = attempts(live, card_id)
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1_000_000 and bank(live).calls == []
    assert any(r.levelno >= logging.ERROR and "[bank] secret" in r.getMessage() for r in caplog.records)
    assert not any(live.cfg.bank.secret in r.getMessage() for r in caplog.records)

    live.services.clock.shift(STALE_PROCESSING + timedelta(minutes=1))
    sweep(live.services)  # still refused: nothing decided, nothing debited, no new attempt
    assert [a.status for a in attempts(live, card_id)] == ["processing"]
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1_000_000

    bank(live).secret = None  # the operator fixed the configuration
    live.services.clock.shift(STALE_PROCESSING + timedelta(minutes=1))
    sweep(live.services)
    [done] = attempts(live, card_id)
    assert (done.id, done.status) == (attempt.id, "succeeded")
    assert [c["op"] for c in bank(live).calls] == ["query", "debit"] and bank(live).calls[1]["ref"] == f"AD{attempt.id}"
    assert bank(live).accounts[GOOD_ACCOUNT].balance_fen == 1_000_000 - 5000
    assert [e.amount_fen for e in entries(live, card_id, "autodebit")] == [5000] and balance(live, card_id) == 1900 + 5000


def test_signing_an_agreement_while_the_bank_refuses_our_signature_is_a_polite_503(live):
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    student(live, OPENID, student_no=NO, balance_fen=10000)
    bank(live).secret = "the-bank-was-given-another-secret"
    r = logged_in(live, OPENID).sign()
    assert r.status_code == 503 and r.json()["error"] == "bank_unavailable", r.text
