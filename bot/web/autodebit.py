"""The /autodebit H5 page and its JSON API: sign, view and cancel the agreement; ask for a refund of a recent
auto top-up until ``refund_request_day`` of the next month. Identity is the OAuth session's openid only.

``GET /api/autodebit`` the page's state · ``POST /api/autodebit/agreement`` ``{"bank_account"}`` → 201 ·
``POST /api/autodebit/agreement/cancel`` · ``POST /api/autodebit/refunds`` ``{"attempt_id"}`` → 201.
Refusals answer 4xx ``{"error": CODE, "message": TEXT}`` like the top-up API.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.autodebit import (
    AutodebitError,
    active_agreement,
    cancel,
    lang_of,
    next_window,
    open_attempt,
    process_attempt,
    recent_topups,
    request_refund,
    sign,
)
from bot.clock import to_local
from bot.services import Services
from bot.texts import t, yuan
from bot.topup import card_for
from bot.web.auth import csrf_token, current_openid, login_api, login_page
from models import AutodebitAttempt, lock_card

bp = Blueprint("autodebit", __name__)


def _svc() -> Services:
    return current_app.extensions["cardbot"]


def _refused(err: AutodebitError, lang: str) -> Any:
    return jsonify(error=err.code, message=err.message(lang)), err.status


def state(svc: Services, db: Session, openid: str, lang: str) -> dict[str, Any]:
    """Everything the page shows, as plain data (also the JSON API's answer)."""
    card = card_for(db, openid)
    if card is None:
        return {"bound": False}
    c = svc.cfg.autodebit
    out: dict[str, Any] = {
        "bound": True,
        "card_active": card.status == "active",
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
            refund = {"state": req.status, "text": t(lang, f"autodebit_refund_{req.status}")}
        elif item.refundable:
            refund = {"state": "open", "text": t(lang, "autodebit_refund_until", date=f"{item.deadline:%Y-%m-%d}")}
        else:
            refund = {"state": "too_late", "text": t(lang, "autodebit_refund_too_late", date=f"{item.deadline:%Y-%m-%d}")}
        out["topups"].append(
            {"id": a.id, "time": f"{to_local(a.done_at):%Y-%m-%d %H:%M}", "amount": yuan(a.amount_fen), "refund": refund}
        )
    last = db.execute(
        select(AutodebitAttempt).where(AutodebitAttempt.cardholder_id == card.id).order_by(AutodebitAttempt.id.desc()).limit(1)
    ).scalar_one_or_none()
    if last is not None and last.status == "failed":
        out["last_failed"] = t(lang, f"notice_reason_{last.reason or 'refused'}")
    if last is not None and last.status == "waiting":
        out["waiting_until"] = f"{next_window(svc):%m-%d %H:%M}"
    return out


@bp.get("/autodebit")
@login_page
def page() -> Any:
    svc, openid = _svc(), current_openid() or ""
    with svc.session() as db:
        lang = lang_of(db, openid)
        data = state(svc, db, openid, lang)

    def tr(key: str, **values: Any) -> str:
        return t(lang, key, **values)

    keys = ("signed", "cancelled", "requested", "error", "cancel_confirm", "refund_confirm")
    data["csrf"] = csrf_token()
    data["texts"] = {k: tr(f"autodebit_js_{k}" if not k.endswith("confirm") else f"autodebit_{k}") for k in keys}
    c = svc.cfg.autodebit
    return render_template(
        "autodebit/page.html", t=tr, lang=lang, data=data, month=c.renew_month, day=c.refund_request_day, center=svc.cfg.school.service_center
    )


@bp.get("/api/autodebit")
@login_api
def show() -> Any:
    svc, openid = _svc(), current_openid() or ""
    with svc.session() as db:
        return jsonify(state(svc, db, openid, lang_of(db, openid)))


@bp.post("/api/autodebit/agreement")
@login_api
def create() -> Any:
    svc, openid = _svc(), current_openid() or ""
    body = request.get_json(silent=True)
    with svc.session() as db, db.begin():
        lang = lang_of(db, openid)
        try:
            agreement = sign(svc, db, openid, body.get("bank_account") if isinstance(body, dict) else None)
        except AutodebitError as err:
            return _refused(err, lang)
        out = {"bank_last4": agreement.bank_last4, "expires_on": f"{agreement.expires_on:%Y-%m-%d}",
               "threshold_fen": agreement.threshold_fen, "amount_fen": agreement.amount_fen}
        # already below the threshold when signing: that is a trigger too
        attempt = open_attempt(svc, db, lock_card(db, agreement.cardholder_id), f"sign:{agreement.id}")
        attempt_id = attempt.id if attempt else None
    if attempt_id is not None:
        out["autodebit"] = process_attempt(svc, attempt_id)
    return jsonify(out), 201


@bp.post("/api/autodebit/agreement/cancel")
@login_api
def cancel_agreement() -> Any:
    svc, openid = _svc(), current_openid() or ""
    with svc.session() as db, db.begin():
        lang = lang_of(db, openid)
        try:
            cancel(svc, db, openid)
        except AutodebitError as err:
            return _refused(err, lang)
    return jsonify(status="cancelled")


@bp.post("/api/autodebit/refunds")
@login_api
def refund() -> Any:
    svc, openid = _svc(), current_openid() or ""
    body = request.get_json(silent=True)
    with svc.session() as db, db.begin():
        lang = lang_of(db, openid)
        try:
            req = request_refund(svc, db, openid, body.get("attempt_id") if isinstance(body, dict) else None)
        except AutodebitError as err:
            return _refused(err, lang)
        out = {"request_id": req.id, "status": req.status}
    return jsonify(out), 201


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
