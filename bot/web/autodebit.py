"""The /autodebit H5 page and its JSON API: sign, view and cancel the agreement; ask for a refund of a recent
auto top-up until ``refund_request_day`` of the next month. Identity is the OAuth session's openid only.

``GET /api/autodebit`` the page's state · ``POST /api/autodebit/agreement`` ``{"bank_account"}`` → 201 ·
``POST /api/autodebit/agreement/cancel`` · ``POST /api/autodebit/refunds`` ``{"attempt_id"}`` → 201.
Refusals answer 4xx ``{"error": CODE, "message": TEXT}`` like the top-up API.
"""

from __future__ import annotations

import calendar
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.autodebit import active_agreement, cancel, next_window, recent_topups, request_refund, sign
from bot.cards import card_for
from bot.clock import to_local
from bot.money import yuan
from bot.runtime import Runtime
from bot.texts import ordinal
from bot.web.auth import csrf_token, login_api, login_page
from bot.web.device import known_device
from bot.web.h5 import blueprint, tr
from models import AutodebitAttempt
from models.enums import AgreementStatus, AttemptStatus, CardStatus

bp = blueprint("autodebit", __name__)


def state(svc: Runtime, db: Session, openid: str) -> dict[str, Any]:
    """Everything the page shows, as plain data (also the JSON API's answer)."""
    card = card_for(db, openid)
    if card is None:
        return {"bound": False}
    c = svc.cfg.autodebit
    out: dict[str, Any] = {
        "bound": True,
        "card_active": card.status == CardStatus.ACTIVE,
        "balance": yuan(card.balance_fen),
        "threshold": c.threshold,
        "amount": c.amount,
        "bank_hours": str(c.bank_hours),
        "agreement": None,
        "topups": [],
    }
    agreement = active_agreement(db, card.id, svc.clock.today())
    if agreement is not None:
        out["agreement"] = {
            "bank_last4": agreement.bank_last4,
            "threshold": yuan(agreement.threshold_fen),
            "amount": yuan(agreement.amount_fen),
            "expires_on": f"{agreement.expires_on:%Y-%m-%d}",
        }
    for item in recent_topups(svc, db, card.id):
        a, req = item.attempt, item.request
        assert a.done_at is not None
        if req is not None:
            refund = {"state": req.status, "text": tr(f"autodebit_refund_{req.status}")}
        elif item.refundable:
            refund = {"state": "open", "text": tr("autodebit_refund_until", date=f"{item.deadline:%Y-%m-%d}")}
        else:
            refund = {"state": "too_late", "text": tr("autodebit_refund_too_late", date=f"{item.deadline:%Y-%m-%d}")}
        out["topups"].append({"id": a.id, "time": f"{to_local(a.done_at):%Y-%m-%d %H:%M}", "amount": yuan(a.amount_fen), "refund": refund})
    last = db.execute(
        select(AutodebitAttempt).where(AutodebitAttempt.cardholder_id == card.id).order_by(AutodebitAttempt.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is not None and last.status == AttemptStatus.FAILED:
        out["last_failed"] = tr(f"notice_reason_{last.reason or 'refused'}")
    if last is not None and last.status == AttemptStatus.WAITING:
        out["waiting_until"] = f"{next_window(svc):%m-%d %H:%M}"
    return out


@bp.get("/autodebit")
@login_page
def page() -> Any:
    with g.svc.session() as db:
        data = state(g.svc, db, g.openid)
    keys = ("signed", "cancelled", "requested", "error", "cancel_confirm", "refund_confirm")
    data["csrf"] = csrf_token()
    data["texts"] = {k: tr(f"autodebit_js_{k}" if not k.endswith("confirm") else f"autodebit_{k}") for k in keys}
    c = g.svc.cfg.autodebit
    return render_template(
        "autodebit/page.html",
        data=data,
        month=c.renew_month,
        month_name=calendar.month_name[c.renew_month],
        day=c.refund_request_day,
        day_ordinal=ordinal(c.refund_request_day),
        center=g.svc.cfg.school.center,
    )


@bp.get("/api/autodebit")
@login_api
def show() -> Any:
    with g.svc.session() as db:
        return jsonify(state(g.svc, db, g.openid))


@bp.post("/api/autodebit/agreement")
@login_api
@known_device
def create() -> Any:
    body = request.get_json(silent=True)
    signed = sign(g.svc, g.openid, body.get("bank_account") if isinstance(body, dict) else None)
    out: dict[str, Any] = {
        "bank_last4": signed.bank_last4,
        "expires_on": f"{signed.expires_on:%Y-%m-%d}",
        "threshold_fen": signed.threshold_fen,
        "amount_fen": signed.amount_fen,
    }
    if signed.autodebit is not None:
        out["autodebit"] = signed.autodebit
    return jsonify(out), 201


@bp.post("/api/autodebit/agreement/cancel")
@login_api
@known_device
def cancel_agreement() -> Any:
    cancel(g.svc, g.openid)
    return jsonify(status=AgreementStatus.CANCELLED)


@bp.post("/api/autodebit/refunds")
@login_api
@known_device
def refund() -> Any:
    body = request.get_json(silent=True)
    req = request_refund(g.svc, g.openid, body.get("attempt_id") if isinstance(body, dict) else None)
    return jsonify(request_id=req.id, status=req.status), 201


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
