"""The mobile bill page (``GET /bills?month=YYYY-MM``). Identity is the OAuth session's openid only (bot.web.auth).

Balance and entries come from the card system (bot.balances, bot.bills); when it cannot answer, the page shows
the last known balance with its time and says plainly that the bill cannot be shown now (no totals)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Flask, g, render_template, request, url_for

from bot import balances
from bot.adapters.cardsystem import CardSystemError
from bot.bills import (
    MonthBill,
    PowerPayment,
    entry_view,
    month_bill,
    month_label,
    next_month,
    power_payments,
    power_view,
    prev_month,
    unavailable_text,
)
from bot.cards import can_transact, card_for, mask_student_no
from bot.config import Config
from bot.money import yuan
from bot.web.auth import login_page
from bot.web.h5 import blueprint, tr
from models import Cardholder
from models.enums import CardStatus

bp = blueprint("bills", __name__)
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
OLDEST_YEAR = 2000


def _private(html: str, status: int = 200) -> Any:
    """Someone's bills: never cached by a proxy or the browser."""
    return html, status, {"Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"}


@bp.get("/bills")
@login_page
def page() -> Any:
    svc, openid = g.svc, g.openid
    today = svc.clock.today()
    with svc.session() as db:
        year, month = today.year, today.month
        wanted = request.args.get("month")
        if wanted is not None:
            m = MONTH.match(wanted)
            if not m or not 1 <= int(m.group(2)) <= 12 or not (OLDEST_YEAR, 1) <= (int(m.group(1)), int(m.group(2))) <= (year, month):
                return _private(_message(tr("bills_page_bad_month")), 400)
            year, month = int(m.group(1)), int(m.group(2))

        card = card_for(db, openid)
    if card is None:
        return _private(_message(tr("not_bound")))
    center = svc.cfg.school.center
    shown = balances.read(svc, card)
    bill: MonthBill | None = None
    unavailable = ""
    try:
        bill = month_bill(svc, card.student_no, year, month)
    except CardSystemError as exc:
        unavailable = unavailable_text(tr, exc, svc.clock.now())
    prev = prev_month(year, month)
    nxt = next_month(year, month)
    html = render_template(
        "bills/page.html",
        school=svc.cfg.school.name,
        center=center,
        name=card.masked_name,
        student_no=mask_student_no(card.student_no),
        balance="—" if shown.balance_fen is None else yuan(shown.balance_fen),
        balance_note=tr("balance_as_of", as_of=balances.as_of_text(shown.as_of)) if shown.as_of is not None else "",
        balance_stale=balances.stale_line(tr, shown, center),
        status=tr(_status_key(shown.card, today, svc.cfg)),
        month=month_label(tr, year, month),
        unavailable=unavailable,
        partial=tr("bills_partial", count=bill.count) if bill is not None and not bill.complete else "",
        income=yuan(bill.income_fen) if bill else "",
        spent=yuan(bill.spent_fen) if bill else "",
        entries=_beside(bill, power_payments(svc, card.id, year, month)),
        prev_url=url_for("bills.page", month=f"{prev[0]:04d}-{prev[1]:02d}") if prev[0] >= OLDEST_YEAR else None,
        prev_label=month_label(tr, *prev),
        next_url=url_for("bills.page", month=f"{nxt[0]:04d}-{nxt[1]:02d}") if nxt <= (today.year, today.month) else None,
        next_label=month_label(tr, *nxt),
    )
    return _private(html)


def _beside(bill: MonthBill | None, paid: list[PowerPayment]) -> list[dict[str, str | bool]]:
    """The card's entries and the month's electricity payments in one list, newest first (the latter marked)."""
    rows = [(e.occurred_at, entry_view(tr, e)) for e in bill.entries] if bill else []
    rows += [(p.at, power_view(tr, p)) for p in paid]
    return [view for _, view in sorted(rows, key=lambda row: row[0], reverse=True)]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _status_key(card: Cardholder, today: date, cfg: Config) -> str:
    """A graduate past the freeze day is shown as frozen; every other card by its status."""
    if card.status == CardStatus.GRADUATED and can_transact(card, today, cfg) is not None:
        return "status_graduate_frozen"
    return f"status_{card.status}"


def _message(message: str) -> str:
    return render_template("message.html", title=tr("bills_page_title"), message=message, message_id="message")
