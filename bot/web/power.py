"""The /power H5 page (缴费大厅 → 电费) and its JSON API. Identity is the OAuth session's openid only (bot.web.auth).

The page lists the rooms this account keeps (remaining kWh, price, reading time; the last reading when the electricity
system does not answer), picks a new one campus → building → floor → room (``GET /api/power/places?parent=``), keeps
or removes it, sets its alert threshold, and pays for it: ``POST /api/power/orders`` makes an order like a top-up's
(``bot.power.order``), paid with WeChat Pay JSAPI; ``GET /api/power/orders/<order_no>`` lets the page poll it until
the electricity system took it (``delivery``: delivered with the new kWh, pending with why, or refused);
``POST /api/power/orders/<order_no>/cancel`` closes it after the pay sheet was left. Another user's order answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlalchemy import select

from bot import power
from bot.adapters.electricity import ElectricityError
from bot.cards import card_for
from bot.clock import to_local
from bot.credits import told
from bot.money import fen, yuan
from bot.topup import ORDER_NO, cancel_order, refused, remaining_today
from bot.web.auth import csrf_token, login_api, login_page
from bot.web.device import known_device
from bot.web.h5 import blueprint, refuse, tr
from models import CardCredit, TopupOrder
from models.enums import CreditStatus, OrderStatus, Product

bp = blueprint("power", __name__)


def _room_json(r: power.RoomView) -> dict[str, Any]:
    return {
        "room_id": r.room_id,
        "label": r.label,
        "remaining_kwh": None if r.remaining_kwh is None else str(r.remaining_kwh),
        "price": None if r.price_fen_per_kwh is None else yuan(r.price_fen_per_kwh),
        "read_at": None if r.read_at is None else f"{to_local(r.read_at):%m-%d %H:%M}",
        "threshold_kwh": str(r.threshold_kwh),
        "live": r.live,
        "open": r.open,
    }


@bp.get("/power")
@login_page
def page() -> Any:
    svc, openid, cfg = g.svc, g.openid, g.svc.cfg
    with svc.session() as db:
        card = card_for(db, openid)
        if card is None:
            return render_template("message.html", title=tr("power_title"), message=tr("topup_err_not_bound"), message_id="blocked")
        remaining = remaining_today(cfg, db, card.id, svc.clock.now().date(), Product.POWER)
    c = cfg.electricity
    rooms = [_room_json(r) for r in power.kept(svc, openid)]
    data = {
        "csrf": csrf_token(),
        "rooms": rooms,
        "quick": [{"amount_fen": fen(a), "amount": yuan(fen(a))} for a in c.quick_amounts],
        "custom": {"min_fen": fen(c.custom_min), "max_fen": min(fen(c.custom_max), fen(c.single_limit)), "step_fen": fen(c.custom_step)},
        "texts": {
            k: tr(f"power_{k}")
            for k in ("remaining", "price", "read_at", "last_known", "threshold", "threshold_set", "forget", "pay", "js_success", "js_pending")
        }
        | {"room_closed": tr("power_closed")}
        | {k: tr(f"power_pick_{k}") for k in ("campus", "building", "floor", "room")}
        | {k: tr(f"topup_js_{k}") for k in ("processing", "cancel", "closed", "not_in_wechat", "choose", "fail")}
        | {"choose_room": tr("power_js_choose_room"), "remaining_today": tr("power_remaining_today")},
        "daily": c.daily_limit,
    }
    return render_template(
        "power/page.html",
        data=data,
        rooms=rooms,
        custom=c,
        custom_max=min(c.custom_max, c.single_limit),
        remaining=yuan(remaining),
        center=cfg.school.center.told(g.lang),
    )


@bp.get("/api/power/places")
@login_api
def places() -> Any:
    parent = request.args.get("parent", "")
    if len(parent) > 32:
        return refuse(power.refused("unknown_room", 404))
    try:
        found = g.svc.electricity.places(parent)
    except ElectricityError:
        return refuse(power.refused("unavailable", 503))
    return jsonify(places=[{"id": p.id, "name": p.name, "kind": p.kind} for p in found])


@bp.post("/api/power/rooms")
@login_api
def keep() -> Any:
    body = request.get_json(silent=True)
    room_id = body.get("room_id") if isinstance(body, dict) else None
    return jsonify(_room_json(power.keep(g.svc, g.openid, room_id if isinstance(room_id, str) else ""))), 201


@bp.post("/api/power/rooms/<room_id>/forget")
@login_api
def forget(room_id: str) -> Any:
    power.forget(g.svc, g.openid, room_id)
    return jsonify(room_id=room_id, kept=False)


@bp.post("/api/power/rooms/<room_id>/threshold")
@login_api
def threshold(room_id: str) -> Any:
    body = request.get_json(silent=True)
    value = power.set_threshold(g.svc, g.openid, room_id, body.get("kwh") if isinstance(body, dict) else None)
    return jsonify(room_id=room_id, threshold_kwh=str(value))


@bp.post("/api/power/orders")
@login_api
@known_device
def create() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return refuse(refused("invalid_amount"))
    made = power.order(g.svc, g.openid, body.get("room_id"), body.get("amount_fen"), body.get("mode"))
    o = made.order
    return jsonify(order_no=o.order_no, room_id=o.target, amount_fen=o.amount_fen, pay_params=made.pay_params), 201


def _own(order_no: str) -> TopupOrder:
    with g.svc.session() as db:
        order = db.execute(select(TopupOrder).where(TopupOrder.order_no == order_no)).scalar_one_or_none() if ORDER_NO.match(order_no) else None
    if order is None or order.openid != g.openid or order.product != Product.POWER:
        raise refused("not_found", 404)
    return order


def _state(order: TopupOrder) -> dict[str, Any]:
    out: dict[str, Any] = {"order_no": order.order_no, "status": order.status, "room_id": order.target, "amount": yuan(order.amount_fen)}
    if order.status != OrderStatus.PAID:
        return out
    with g.svc.session() as db:
        out["remaining"] = yuan(remaining_today(g.svc.cfg, db, order.cardholder_id, g.svc.clock.now().date(), Product.POWER))
    with g.svc.session() as db:
        c = db.execute(select(CardCredit).where(CardCredit.ref == order.order_no)).scalar_one_or_none()
    if c is None or c.status == CreditStatus.DELIVERED:
        kwh = None if c is None or c.kwh_after is None else str(c.kwh_after)
        return out | {"delivery": CreditStatus.DELIVERED, "kwh": kwh, "message": tr("power_js_success", amount=out["amount"], kwh=kwh or "—")}
    return out | {"delivery": c.status, "message": told(c, g.lang, g.svc.cfg.school.center)}


@bp.get("/api/power/orders/<order_no>")
@login_api
def status(order_no: str) -> Any:
    return jsonify(_state(_own(order_no)))


@bp.post("/api/power/orders/<order_no>/cancel")
@login_api
def cancel(order_no: str) -> Any:
    _own(order_no)
    order = cancel_order(g.svc, g.openid, order_no).order
    out = _state(order)
    if order.status == OrderStatus.CREATED:
        return jsonify(out | {"error": "cancel_unconfirmed", "message": tr("topup_cancel_unconfirmed")}), 503
    return jsonify(out)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
