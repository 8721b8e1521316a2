"""The mobile bill page (``GET /bills?month=YYYY-MM``). Identity is the OAuth session's openid only (bot.web.auth)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request, url_for
from sqlalchemy import select

from bot.clock import to_local
from bot.services import Services
from bot.texts import t, yuan
from bot.web.auth import current_openid, login_page
from handlers.balance import is_frozen
from handlers.bills import month_bill, month_label, next_month, prev_month
from handlers.binding import mask_student_no
from models import Binding, LedgerEntry, lang_of

bp = Blueprint("bills", __name__)
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
OLDEST_YEAR = 2000


def _svc() -> Services:
    return current_app.extensions["cardbot"]


def _entry_view(tr: Any, e: LedgerEntry) -> dict[str, Any]:
    local = to_local(e.created_at)
    return {
        "day": f"{local:%m-%d}",
        "time": f"{local:%H:%M}",
        "label": e.description if e.kind == "spend" and e.description else tr(f"kind_{e.kind}"),
        "amount": ("+" if e.amount_fen > 0 else "") + yuan(e.amount_fen),
        "income": e.amount_fen > 0,
        "balance_after": yuan(e.balance_after_fen),
    }


def _private(html: str, status: int = 200) -> Any:
    """Someone's bills: never cached by a proxy or the browser."""
    return html, status, {"Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"}


@bp.get("/bills")
@login_page
def page() -> Any:
    svc, openid = _svc(), current_openid() or ""
    today = svc.clock.today()
    with svc.session() as db:
        lang = lang_of(db, openid)

        def tr(key: str, **values: Any) -> str:
            return t(lang, key, **values)

        year, month = today.year, today.month
        wanted = request.args.get("month")
        if wanted is not None:
            m = MONTH.match(wanted)
            if not m or not 1 <= int(m.group(2)) <= 12 or not (OLDEST_YEAR, 1) <= (int(m.group(1)), int(m.group(2))) <= (year, month):
                return _private(_message(tr, lang, tr("bills_page_bad_month")), 400)
            year, month = int(m.group(1)), int(m.group(2))

        binding = db.execute(select(Binding).where(Binding.openid == openid)).scalar_one_or_none()
        if binding is None:
            return _private(_message(tr, lang, tr("not_bound")))
        card = binding.cardholder
        bill = month_bill(db, card.id, year, month)
        prev = prev_month(year, month)
        nxt = next_month(year, month)
        html = render_template(
            "bills/page.html",
            t=tr,
            lang=lang,
            school=svc.cfg.school.name,
            center=svc.cfg.school.service_center,
            name=card.masked_name,
            student_no=mask_student_no(card.student_no),
            balance=yuan(card.balance_fen),
            pending=yuan(card.pending_fen) if card.pending_fen > 0 else None,
            status=tr("status_graduate_frozen" if card.status == "graduated" and is_frozen(card, svc.cfg, today) else f"status_{card.status}"),
            month=month_label(tr, year, month),
            income=yuan(bill.income_fen),
            spent=yuan(bill.spent_fen),
            entries=[_entry_view(tr, e) for e in bill.entries],
            prev_url=url_for("bills.page", month=f"{prev[0]:04d}-{prev[1]:02d}") if prev[0] >= OLDEST_YEAR else None,
            prev_label=month_label(tr, *prev),
            next_url=url_for("bills.page", month=f"{nxt[0]:04d}-{nxt[1]:02d}") if nxt <= (today.year, today.month) else None,
            next_label=month_label(tr, *nxt),
        )
        return _private(html)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _message(tr: Any, lang: str, message: str) -> str:
    return render_template("message.html", lang=lang, title=tr("bills_page_title"), message=message, message_id="message")
