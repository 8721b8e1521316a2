"""The /topup H5 page and its JSON API. Identity is the OAuth session's openid only (bot.web.auth).

``POST /api/topup/orders`` creates an order (docs/contract.md); ``GET /api/topup/orders/<order_no>`` lets the page poll
its own order until it is paid or closed, and a paid one until the card system took it (``credit``: delivered with its
balance, pending with why and until when — "已支付，待入账" — or refused); ``POST /api/topup/orders/<order_no>/cancel`` (after the pay sheet was
cancelled or failed) closes it so the daily limit is freed at once. Another user's order number answers 404, like
an unknown one.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from markupsafe import Markup, escape  # Markup only wraps our own constant tag; values are escaped
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import announce, balances
from bot.balances import as_of_text, stale_line
from bot.cards import card_for
from bot.credits import told
from bot.money import fen, percent, yuan
from bot.topup import ORDER_NO, cancel_order, card_refusal, create_order, in_peak, quick_options, refused, remaining_today
from bot.web.auth import csrf_token, login_api, login_page
from bot.web.device import known_device
from bot.web.h5 import blueprint, refuse, tr
from models import CardCredit, TopupOrder
from models.enums import CreditStatus, OrderStatus

bp = blueprint("topup", __name__)


@bp.get("/topup")
@login_page
def page() -> Any:
    svc, openid, cfg = g.svc, g.openid, g.svc.cfg
    with svc.session() as db:
        card = card_for(db, openid)
    shown = balances.read(svc, card) if card is not None else None  # no transaction held while the card system is asked
    card = shown.card if shown is not None else None  # its status as the card system has it now
    with svc.session() as db:
        refusal = card_refusal(card)
        if refusal is not None or card is None or shown is None:
            msg = refusal.message(g.lang) if refusal else ""
            return render_template("message.html", title=tr("topup_blocked_title"), message=msg, message_id="blocked")
        now = svc.clock.now()
        remaining = remaining_today(cfg, db, card.id, now.date())
        c = cfg.topup
        quick = quick_options(cfg)
        example = quick[0] if quick else None
        data = {
            "csrf": csrf_token(),
            "quick": quick,
            "custom": {"min_fen": fen(c.custom_min), "max_fen": min(fen(c.custom_max), fen(c.single_limit)), "step_fen": fen(c.custom_step)},
            "remaining_fen": remaining,
            "texts": {k: tr(f"topup_js_{k}") for k in ("processing", "cancel", "closed", "not_in_wechat", "choose")}
            | {"success": tr("topup_js_success"), "fail": tr("topup_js_fail"), "remaining": tr("topup_remaining")},
            "daily": c.daily_limit,
            "single": c.single_limit,
        }
        return render_template(
            "topup/page.html",
            data=data,
            card_line=escape(tr("topup_card_line")).format(
                name=card.masked_name, balance=Markup('<b id="balance">{}</b>').format("—" if shown.balance_fen is None else yuan(shown.balance_fen))
            ),
            balance_note=tr("balance_as_of", as_of=as_of_text(shown.as_of)) if shown.as_of is not None else "",
            balance_stale=stale_line(tr, shown, cfg.school.center),
            announcements=announce.lines(svc, tr),
            quick=quick,
            rate=percent(c.quick_fee_rate),
            example=example,
            custom=c,
            custom_max=min(c.custom_max, c.single_limit),
            remaining=yuan(remaining),
            peak=", ".join(str(w) for w in c.peak_hours) if in_peak(cfg, now) else "",
            center=cfg.school.center,
        )


@bp.post("/api/topup/orders")
@login_api
@known_device
def create() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return refuse(refused("invalid_amount"))
    made = create_order(g.svc, g.openid, body.get("amount_fen"), body.get("mode"))
    o = made.order
    return jsonify(order_no=o.order_no, amount_fen=o.amount_fen, fee_fen=o.fee_fen, pay_params=made.pay_params), 201


@bp.get("/api/topup/orders/<order_no>")
@login_api
def status(order_no: str) -> Any:
    svc, openid = g.svc, g.openid
    with svc.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one_or_none() if ORDER_NO.match(order_no) else None
        if order is None or order.openid != openid:
            return refuse(refused("not_found", 404))
        out: dict[str, Any] = {
            "order_no": order.order_no,
            "status": order.status,
            "amount_fen": order.amount_fen,
            "fee_fen": order.fee_fen,
            "amount": yuan(order.amount_fen),
        }
        if order.status == OrderStatus.PAID:
            out |= _credit_state(db, order)
            out["remaining"] = yuan(remaining_today(svc.cfg, db, order.cardholder_id, svc.clock.now().date()))
    return jsonify(out)


def _credit_state(db: Session, order: TopupOrder) -> dict[str, Any]:
    """A paid order's way to the card: ``credit`` = delivered (with the card system's balance) | pending | refused."""
    credit = db.execute(select(CardCredit).where(CardCredit.ref == order.order_no)).scalar_one_or_none()
    if credit is None or credit.status == CreditStatus.DELIVERED:
        balance = credit.balance_fen if credit is not None and credit.balance_fen is not None else None
        return {"credit": CreditStatus.DELIVERED, "balance": None if balance is None else yuan(balance)}
    return {"credit": credit.status, "message": told(credit, g.lang, g.svc.cfg.school.center)}


@bp.post("/api/topup/orders/<order_no>/cancel")
@login_api
def cancel(order_no: str) -> Any:
    """200 with the order's state (closed, or paid after all); 503 while WeChat Pay has not confirmed the close."""
    done = cancel_order(g.svc, g.openid, order_no)
    o = done.order
    out: dict[str, Any] = {
        "order_no": o.order_no,
        "status": o.status,
        "amount": yuan(o.amount_fen),
        "balance": yuan(done.balance_fen),
        "remaining_fen": done.remaining_fen,
        "remaining": yuan(done.remaining_fen),
    }
    if o.status == OrderStatus.PAID:
        with g.svc.session() as db:
            state = _credit_state(db, o)
        if state["credit"] != CreditStatus.DELIVERED:
            return jsonify(out | state)
        return jsonify(out | state | {"message": tr("topup_js_success", amount=out["amount"], balance=state["balance"])})
    if o.status == OrderStatus.CLOSED:
        return jsonify(out | {"message": tr("topup_js_cancel")})
    return jsonify(out | {"error": "cancel_unconfirmed", "message": tr("topup_cancel_unconfirmed")}), 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
