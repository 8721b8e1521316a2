"""``POST /pay/notify``: WeChat Pay's payment notifications (API v3); ``POST /pay/refund-notify``: its refund
notifications, for refunds of credits the card system refused (``bot.credit_refunds``).

Verified with WeChat Pay's public key and decrypted with the APIv3 key (wechatpayv3), checked against our order,
then recorded exactly once (``bot.topup.apply_payment``): the order paid and its credit owed in one transaction. The
answer follows that commit; a credit for a target across the network is delivered right after the answer on this
process's delivery threads (``bot.credits.AfterAnswer``), so WeChat is not kept waiting on the card or electricity
system, and a duplicate notify waits only for the payment's transaction. A notify signed more than 5 minutes off the
business clock (a replay) or whose transaction names no payer is refused before anything is looked up. Success and duplicates answer 204; anything
forged or mismatched answers 4xx with WeChat's ``{"code": "FAIL", "message": ...}`` so WeChat retries and a
person can look, and changes nothing. Nothing secret is logged: only the order number and the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from bot.adapters.pay import NotifyError
from bot.credit_refunds import RefundMismatch, refund_notified
from bot.topup import Mismatch, apply_payment

log = logging.getLogger(__name__)
bp = Blueprint("pay_notify", __name__)


def _fail(status: int, message: str) -> Any:
    return jsonify(code="FAIL", message=message), status


@bp.post("/pay/notify")
def notify() -> Any:
    svc = current_app.extensions["cardbot"]
    try:
        data = svc.pay.parse_notify(request.headers, request.get_data(), svc.clock.now().timestamp())
    except NotifyError as exc:
        log.warning("pay notify refused: %s (serial %s)", exc, request.headers.get("Wechatpay-Serial", "-")[:64])
        return _fail(401, "签名验证失败")
    event = data.get("event_type")
    tx = data["resource"]
    if event != "TRANSACTION.SUCCESS":
        log.info("pay notify %s ignored (event %s)", tx.get("out_trade_no", "-"), event)
        return Response(status=204)
    payer = tx.get("payer")
    if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str) or not payer["openid"]:
        log.error("pay notify for %s refused: no payer", str(tx.get("out_trade_no", "-"))[:32])
        return _fail(400, "缺少支付者信息")
    try:
        credited = apply_payment(svc, tx, svc.after_answer.deliver)
    except Mismatch as exc:
        log.error("pay notify for %s refused: %s does not match the order", str(tx.get("out_trade_no", "-"))[:32], exc)
        return _fail(400, "订单信息不匹配")
    log.info("pay notify %s: %s", tx.get("out_trade_no"), "credited" if credited else "already credited")
    return Response(status=204)


@bp.post("/pay/refund-notify")
def refund_notify() -> Any:
    """The refund a verified REFUND.* notify names settles (once; a repeat answers 204 and changes nothing)."""
    svc = current_app.extensions["cardbot"]
    try:
        result = svc.pay.parse_refund_notify(request.headers, request.get_data(), svc.clock.now().timestamp())
    except NotifyError as exc:
        log.warning("refund notify refused: %s (serial %s)", exc, request.headers.get("Wechatpay-Serial", "-")[:64])
        return _fail(401, "签名验证失败")
    try:
        credit = refund_notified(svc, result)
    except RefundMismatch as exc:
        log.error("refund notify for %s refused: %s does not match our refund", result.out_refund_no[:64], exc)
        return _fail(400, "退款信息不匹配")
    log.info("refund notify %s (%s): credit %s is %s", result.out_refund_no, result.status, credit.ref, credit.status)
    return Response(status=204)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
