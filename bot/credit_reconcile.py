"""The third side of ``cardbot reconcile DATE``: our credits (every payment of that school day, WeChat Pay and auto
top-up) against the card system's credits of that day (``GET /credits?date=``), and likewise every other product's
deliveries against its target system's list of the day (``bot.products``: the electricity system's recharges).

A credit is matched by its ``ref`` whichever day it reached the card: one paid before midnight and delivered after the
nightly maintenance is on the card system's next day, so one of ours missing from the day's list is asked about by
``ref`` before it is called a difference. Money paid but not on the card (pending, refused, refund under way) is listed
as an open item: it is owed to someone until it is delivered or refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot import products
from bot.calendar import day_start_utc
from bot.money import yuan
from models import CardCredit
from models.enums import CreditStatus, Product

if TYPE_CHECKING:
    from bot.runtime import Runtime


class Gap(StrEnum):
    NOT_AT_CARD_SYSTEM = "not_at_card_system"  # delivered here; the card system has no such credit
    UNKNOWN_REF = "unknown_ref"  # the card system credited a ref we never owed
    NOT_DELIVERED_HERE = "not_delivered_here"  # the card system credited a ref we hold as not delivered
    MISMATCH = "amount_mismatch"  # same ref, another amount or another card
    OPEN_PENDING = "open_pending"  # paid, still on its way to the card
    OPEN_REFUSED = "open_refused"  # paid, refused by the card system, not yet refunded
    OPEN_REFUNDING = "open_refunding"  # refused and a refund under way


OPEN = {CreditStatus.PENDING: Gap.OPEN_PENDING, CreditStatus.REFUSED: Gap.OPEN_REFUSED, CreditStatus.REFUNDING: Gap.OPEN_REFUNDING}


@dataclass(frozen=True)
class CreditDifference:
    kind: Gap
    ref: str
    local_fen: int | None
    card_fen: int | None
    note: str = ""
    product: Product = Product.CARD

    def __str__(self) -> str:
        local = "-" if self.local_fen is None else yuan(self.local_fen)
        remote = "-" if self.card_fen is None else yuan(self.card_fen)
        return f"{self.kind:<19} {self.ref:<32} local={local:>10} {self.product}={remote:>10} {self.note}".rstrip()


def reconcile_card_system(services: Runtime, day: date) -> list[CreditDifference]:
    """Every difference between our card credits and the card system's for ``day``; raises ``CardSystemError`` when
    the card system does not answer (the day's list or a question about one ref)."""
    return reconcile_target(services, Product.CARD, day)


def reconcile_target(services: Runtime, product: Product, day: date) -> list[CreditDifference]:
    """Every difference between our deliveries of ``product`` and its target system's for ``day``; raises the
    system's error (``Port.system_error``) when it does not answer."""
    port = products.port(product)
    records = port.delivered_on(services, day)
    start, end = day_start_utc(day), day_start_utc(day + timedelta(days=1))
    with services.session() as db:
        paid = select(CardCredit).where(CardCredit.product == product, CardCredit.paid_at >= start, CardCredit.paid_at < end)
        ours = list(db.execute(paid.order_by(CardCredit.paid_at, CardCredit.id)).scalars())
        refs = [r.ref for r in records]
        known = {c.ref: c for c in db.execute(select(CardCredit).where(CardCredit.ref.in_(refs))).scalars()} if refs else {}
    diffs: list[CreditDifference] = []

    def add(kind: Gap, ref: str, local: int | None, remote: int | None, note: str = "") -> None:
        diffs.append(CreditDifference(kind, ref, local, remote, note, product))

    for r in records:
        c = known.get(r.ref)
        if c is None or c.product != product:
            add(Gap.UNKNOWN_REF, r.ref, None, r.amount_fen, f"{product} {port.shown(r.target)}")
        elif (c.amount_fen, c.target) != (r.amount_fen, r.target):
            note = "" if c.target == r.target else f"{product} {port.shown(r.target)}, ours {port.shown(c.target)}"
            add(Gap.MISMATCH, r.ref, c.amount_fen, r.amount_fen, note)
        elif c.status != CreditStatus.DELIVERED:
            add(Gap.NOT_DELIVERED_HERE, r.ref, c.amount_fen, r.amount_fen, f"here {c.status}")
    listed = set(refs)
    for c in ours:
        if c.status == CreditStatus.DELIVERED and c.ref not in listed:
            answer = port.ask(services, c.ref)  # delivered on another day (after maintenance) is no difference
            if answer is None or not answer.ok:
                note = "unknown_ref" if answer is None else f"{product} system: refused {answer.reason}".rstrip()
                add(Gap.NOT_AT_CARD_SYSTEM, c.ref, c.amount_fen, None, note)
        elif (gap := OPEN.get(CreditStatus(c.status))) is not None and c.ref not in listed:  # else: not_delivered_here
            note = {Gap.OPEN_PENDING: c.waiting_for or "", Gap.OPEN_REFUSED: c.reason or ""}.get(gap, f"{c.refund_no} {c.note or ''}")
            add(gap, c.ref, c.amount_fen, None, note.strip())
    return diffs
