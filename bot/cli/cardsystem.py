"""``cardbot cardsystem check``: the conformance checker a school's integrator runs against its cardsys/1 middleware.

It talks to ``[cardsystem] api_base_url`` with ``[cardsystem] secret`` (whatever ``adapter`` says, so it can run
before the bot is switched to ``http``) and reports call by call what conforms to docs/card-system.md. It moves real
money: one fen is credited to the test card (the credit stays there). Exit 0 when everything conforms, 1 naming
the calls that do not, 2 when the card system is closed for maintenance (a conforming 503) and the run could not
finish.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
import requests

from bot.adapters import cardsys_signing
from bot.adapters.cardsystem import (
    CardSystemError,
    CardSystemUnavailable,
    Channel,
    Credit,
    CreditResult,
    HttpCardSystem,
    VerifyResult,
    http_card_system,
    raise_for_maintenance,
)
from bot.clock import SCHOOL_TZ

CHECK_CREDIT_FEN = 1


def _show(c: Credit | None) -> str:
    if c is None:
        return "404 unknown_ref"
    return f"ok (entry {c.entry_id}, balance {c.balance_fen})" if c.result is CreditResult.OK else f"refused ({c.reason})"


class Nonconforming(Exception):
    """What the card system did that the protocol does not allow."""


class Checker:
    def __init__(self, client: HttpCardSystem, student_no: str, name: str, password: str) -> None:
        self.client = client
        self.student_no, self.name, self.password = student_no, name, password
        self.failed: list[str] = []
        self.passed = 0

    def run(self) -> int:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("signing (a correctly signed request)", self.signed_ok),
            ("signing (a badly signed request)", self.bad_signature),
            ("signing (a stale timestamp)", self.stale),
            ("signing (a replayed nonce)", self.replayed),
            ("POST holders/verify (ok)", self.verify_ok),
            ("POST holders/verify (mismatch)", self.verify_mismatch),
            ("GET accounts/{student_no}", self.account),
            ("GET accounts/{student_no}/entries", self.entries),
            ("POST credits", self.credit),
            ("GET credits/{ref}", self.credit_status),
            ("GET credits?date=", self.credits_on),
        ]
        self.ref = "CHK" + secrets.token_hex(12)
        self.first: Any = None
        for call, step in steps:
            try:
                detail = step()
            except CardSystemUnavailable as exc:
                click.echo(f"WAIT  {call}: 503 unavailable, retry_after={exc.retry_after} s (conforms)")
                click.echo(f"The card system is closed for maintenance: run the check again in {exc.retry_after} s.")
                return 2
            except (Nonconforming, CardSystemError) as exc:
                self.failed.append(call)
                click.echo(f"FAIL  {call}: {exc}")
                continue
            self.passed += 1
            click.echo(f"ok    {call}: {detail}")
        click.echo("note  503 handling: checked whenever the system answers 503; it did not during this run")
        if self.failed:
            click.echo(f"NOT CONFORMING ({len(self.failed)} of {len(steps)}): " + "; ".join(self.failed))
            return 1
        click.echo(f"all {len(steps)} calls conform to cardsys/1")
        return 0

    # -- signing -------------------------------------------------------------------------------------------
    def _probe(self) -> requests.PreparedRequest:
        """A harmless signed GET whose PATH carries a query string."""
        return self.client.prepare("GET", f"/accounts/{self.student_no}/entries", {"limit": 1})

    def _status(self, prep: requests.PreparedRequest) -> int:
        r = self.client.send(prep)
        raise_for_maintenance(r)
        return r.status_code

    def signed_ok(self) -> str:
        status = self._status(self._probe())
        if status != 200:
            raise Nonconforming(f"answered {status}, expected 200 (PATH must include the query string exactly as sent)")
        return "accepted"

    def _refused(self, prep: requests.PreparedRequest, what: str) -> str:
        status = self._status(prep)
        if status != 401:
            raise Nonconforming(f"{what} answered {status}, expected 401")
        return "refused with 401"

    def bad_signature(self) -> str:
        prep = self._probe()
        sig = prep.headers[cardsys_signing.SIGNATURE_HEADER]
        prep.headers[cardsys_signing.SIGNATURE_HEADER] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        return self._refused(prep, "a wrong signature")

    def stale(self) -> str:
        prep = self._probe()
        prep.headers.update(
            cardsys_signing.sign(self.client.secret, "GET", prep.path_url, timestamp=int(time.time()) - cardsys_signing.WINDOW_SECONDS - 60)
        )
        return self._refused(prep, "a timestamp 360 s old")

    def replayed(self) -> str:
        prep = self._probe()
        if (status := self._status(prep)) != 200:
            raise Nonconforming(f"the first sending answered {status}, expected 200")
        return self._refused(prep, "the same request sent again")

    # -- holders and accounts ------------------------------------------------------------------------------
    def verify_ok(self) -> str:
        v = self.client.verify_holder(self.student_no, self.name, self.password)
        if v.result is not VerifyResult.OK or v.holder is None:
            raise Nonconforming(f"result {v.result.value!r} for the test card's own name and password, expected 'ok'")
        if v.holder.name != self.name:
            raise Nonconforming(f"holder.name {v.holder.name!r}, expected {self.name!r}")
        return f"ok, {v.holder.kind.value}, {v.holder.status.value}"

    def verify_mismatch(self) -> str:
        wrong = "000000" if self.password != "000000" else "111111"
        v = self.client.verify_holder(self.student_no, self.name, wrong)
        if v.result is not VerifyResult.MISMATCH:
            raise Nonconforming(f"result {v.result.value!r} for a wrong password, expected 'mismatch'")
        return "mismatch"

    def account(self) -> str:
        acc = self.client.account(self.student_no)
        if acc is None:
            raise Nonconforming("404 unknown_holder for the test card")
        if self.client.account("0" * 12) is not None:
            raise Nonconforming("an account for student_no 000000000000, expected 404 unknown_holder")
        return f"balance {acc.balance_fen} fen as of {acc.as_of.isoformat()}; unknown holder 404"

    def entries(self) -> str:
        since = datetime.now(SCHOOL_TZ) - timedelta(days=400)
        many = self.client.entries(self.student_no, since=since, limit=200)
        if any(e.occurred_at < since for e in many):
            raise Nonconforming("an entry older than since")
        one = self.client.entries(self.student_no, since=since, limit=1)
        if many and [e.entry_id for e in one] != [many[0].entry_id]:
            raise Nonconforming("limit=1 did not answer the newest entry alone")
        return f"{len(many)} entries since {since.date()}, newest first; limit honoured"

    # -- money ---------------------------------------------------------------------------------------------
    def credit(self) -> str:
        before = self._balance()
        paid_at = datetime.now(SCHOOL_TZ)
        self.first = self.client.credit(self.ref, self.student_no, CHECK_CREDIT_FEN, Channel.WECHAT_PAY, paid_at)
        if self.first.result is not CreditResult.OK:
            raise Nonconforming(f"the test card refused a credit ({self.first.reason}): use an active card")
        again = self.client.credit(self.ref, self.student_no, CHECK_CREDIT_FEN, Channel.WECHAT_PAY, paid_at)
        if again != self.first:
            raise Nonconforming(f"the same ref answered {_show(again)} after {_show(self.first)}")
        after = self._balance()
        if after != before + CHECK_CREDIT_FEN or self.first.balance_fen != after:
            raise Nonconforming(
                f"balance {before} → {after} fen (answered {self.first.balance_fen}); a credit of "
                f"{CHECK_CREDIT_FEN} fen sent twice with one ref must move it once"
            )
        return f"ref {self.ref}: entry {self.first.entry_id}, repeated: same answer, balance moved once ({before} → {after})"

    def _balance(self) -> int:
        acc = self.client.account(self.student_no)
        if acc is None:
            raise Nonconforming("the test card vanished")
        return acc.balance_fen

    def credit_status(self) -> str:
        if self.first is None:
            raise Nonconforming("no credit to ask about (POST credits failed)")
        status = self.client.credit_status(self.ref)
        if status != self.first:
            raise Nonconforming(f"answered {_show(status)} for {self.ref}, expected the first answer {_show(self.first)}")
        if (unknown := self.client.credit_status("CHK" + secrets.token_hex(12))) is not None:
            raise Nonconforming(f"a ref never sent answered {_show(unknown)}, expected 404 unknown_ref")
        return "the first answer; a ref never sent: 404 unknown_ref"

    def credits_on(self) -> str:
        day = datetime.now(SCHOOL_TZ).date()
        records = self.client.credits_on(day)
        mine = [r for r in records if r.ref == self.ref]
        if self.first is not None and (
            len(mine) != 1
            or mine[0].amount_fen != CHECK_CREDIT_FEN
            or mine[0].entry_id != self.first.entry_id
            or mine[0].student_no != self.student_no
        ):
            raise Nonconforming(f"the check's credit {self.ref} is not listed once, as made, for {day}")
        return f"{len(records)} credit(s) on {day}, the check's among them"


@click.group("cardsystem")
def command() -> None:
    """The school's card system (cardsys/1, docs/card-system.md)."""


@command.command("check")
@click.option("--student-no", required=True, help="a test card the card system knows, active")
@click.option("--name", required=True, help="its holder's name as registered")
@click.option("--password", prompt=True, hide_input=True, help="its current card password (asked when left out)")
@click.pass_obj
def check(obj: Any, student_no: str, name: str, password: str) -> None:
    """Check the configured card system against cardsys/1, call by call. Moves 0.01 yuan onto the test card."""
    client = http_card_system(obj.cfg)
    click.echo(f"Checking the card system at {client.base} against cardsys/1.")
    click.echo(f"NOTE: this moves real money: {CHECK_CREDIT_FEN} fen (0.01 yuan) is credited to card {student_no} and stays there.")
    sys.exit(Checker(client, student_no, name, password).run())
