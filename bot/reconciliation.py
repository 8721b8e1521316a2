"""One day's reconciliation, run by ``cardbot reconcile DAY`` and kept (``reconciliation_runs``) so the console shows
the last one with its differences: the day's paid orders (every product) against WeChat Pay's trade bill, its auto
top-ups against the bank's debits, and for each product what we delivered against its target system (the card
system's credits, the electricity system's recharges). A side that does not answer is said so and counts as a
difference: the day is not reconciled until all agree."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.adapters.bank import BankUnavailable
from bot.adapters.pay import PayError
from bot.autodebit import reconcile_bank
from bot.credit_reconcile import reconcile_target
from bot.products import PORTS, Port
from bot.topup import reconcile
from models import ReconciliationRun

if TYPE_CHECKING:
    from bot.runtime import Runtime


@dataclass(frozen=True)
class Side:
    name: str  # wechat_pay | bank | a product (card, power): its target system
    clean: bool
    lines: list[str]  # the heading (or agreement, or why it did not answer), then one line per difference


def run(services: Runtime, day: date) -> list[Side]:
    """Compare the three sides of ``day`` and keep the result."""
    sides = [
        _side(
            "wechat_pay",
            lambda: reconcile(services, day),
            PayError,
            lambda exc: f"{day}: could not download the trade bill: {exc.code} {exc.message}",
            lambda n: f"{day}: {n} difference(s)",
            f"{day}: top-up orders and the WeChat Pay trade bill agree",
        ),
        _side(
            "bank",
            lambda: reconcile_bank(services, day),
            BankUnavailable,
            lambda exc: f"{day}: could not get the bank's debits: {exc}",
            lambda n: f"{day}: {n} auto top-up difference(s) with the bank",
            f"{day}: auto top-ups and the bank's debits agree",
        ),
        *(_target_side(services, port, day) for port in PORTS.values()),
    ]
    with services.session() as db, db.begin():
        db.add(
            ReconciliationRun(
                day=day,
                ran_at=services.clock.utcnow(),
                clean=all(s.clean for s in sides),
                sides=[{"name": s.name, "clean": s.clean, "lines": s.lines} for s in sides],
            )
        )
    return sides


def _target_side(services: Runtime, port: Port, day: date) -> Side:
    return _side(
        port.product.value,
        lambda: reconcile_target(services, port.product, day),
        port.system_error,
        lambda exc: f"{day}: the {port.system} did not answer: {exc}",
        lambda n: f"{day}: {n} {port.noun} difference(s) or open item(s) with the {port.system}",
        f"{day}: our {port.noun}s and the {port.system}'s agree",
    )


def _side(
    name: str,
    compare: Callable[[], Sequence[object]],
    fails: type[Exception],
    failed: Callable[[Any], str],
    heading: Callable[[int], str],
    agree: str,
) -> Side:
    try:
        diffs = compare()
    except fails as exc:
        return Side(name, False, [failed(exc)])
    return Side(name, not diffs, [heading(len(diffs)) if diffs else agree, *(str(d) for d in diffs)])


def last(services: Runtime) -> ReconciliationRun | None:
    with services.session() as db:
        return db.execute(select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(1)).scalar_one_or_none()
