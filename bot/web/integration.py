"""``POST /integration/card-entries``: the card system reports what happened at its terminals (CONTRACT).

Signed as every cardsys/1 request is (``bot.adapters.cardsys_signing``, ``[cardsystem] secret``): a timestamp within
300 s of real time (the card system's clock against ours; the business clock that tests freeze plays no part here)
and a nonce never seen in the last 600 s. Replay-safe twice over: ``entry_id`` is the ledger's idempotency key, so a
retried entry (signed afresh) changes nothing and gets the same kind of answer (``"duplicate": true``).

A spend that leaves the card below its auto top-up threshold opens an attempt in the same transaction; inside bank
hours it is carried out before answering, otherwise it waits for the next window (``"autodebit"`` says which).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import select

from bot.adapters import cardsys_signing
from bot.autodebit import next_window, on_card_entry, process_attempt
from bot.clock import SCHOOL_TZ
from models import AutodebitAttempt, Cardholder, InsufficientBalance, lock_card, post_entry

log = logging.getLogger(__name__)
bp = Blueprint("integration", __name__)

ENTRY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
STUDENT_NO = re.compile(r"^\d{8,12}$")
MAX_FEN = 10_000_000


def _err(status: int, code: str, message: str) -> Any:
    return jsonify(error=code, message=message), status


def _authentic(svc: Any) -> str | None:
    """None when the request is signed, fresh and new; otherwise why not."""
    return cardsys_signing.verify(
        svc.cfg.cardsystem.secret, request.method, cardsys_signing.request_target(request.environ), request.headers,
        request.get_data(), cardsys_signing.nonce_claimer(svc.store, "integration"),
    )


def _parse(body: Any) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(body, dict):
        return None, "JSON object expected"
    entry_id, student_no, amount = body.get("entry_id"), body.get("student_no"), body.get("amount_fen")
    merchant, occurred = body.get("merchant", ""), body.get("occurred_at")
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        return None, "entry_id must match " + ENTRY_ID.pattern
    if not isinstance(student_no, str) or not STUDENT_NO.match(student_no):
        return None, "student_no must be 8-12 digits"
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or abs(amount) > MAX_FEN:
        return None, "amount_fen must be a non-zero integer (negative = spend)"
    if not isinstance(merchant, str) or len(merchant) > 64:
        return None, "merchant must be a string of at most 64 characters"
    try:
        at = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    except ValueError:
        at = None
    if at is None:
        return None, "occurred_at must be ISO 8601"
    at = (at if at.tzinfo else at.replace(tzinfo=SCHOOL_TZ)).astimezone(UTC).replace(tzinfo=None)
    return {"entry_id": entry_id, "student_no": student_no, "amount_fen": amount, "merchant": merchant, "at": at}, ""


@bp.post("/integration/card-entries")
def card_entries() -> Any:
    svc = current_app.extensions["cardbot"]
    problem = _authentic(svc)
    if problem:
        log.warning("card entry refused: %s", problem)
        return _err(401, "unauthorized", problem)
    entry, problem = _parse(request.get_json(silent=True))
    if entry is None:
        return _err(400, "invalid_request", problem)
    key = f"card:{entry['entry_id']}"
    with svc.session() as db, db.begin():
        card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == entry["student_no"])).scalar_one_or_none()
        if card_id is None:
            return _err(404, "unknown_card", "no card with this student_no")
        card = lock_card(db, card_id)
        if card.status != "active" and entry["amount_fen"] < 0:
            return _err(409, "card_blocked", f"card is {card.status}")
        try:
            posted = post_entry(db, card.id, entry["amount_fen"], "spend" if entry["amount_fen"] < 0 else "adjust", key,
                                description=entry["merchant"] or "", ref=entry["entry_id"], at=entry["at"])
        except InsufficientBalance:
            return _err(409, "insufficient_balance", "balance too low for this spend")
        if not posted.created and posted.entry.cardholder_id != card.id:
            return _err(409, "entry_id_reused", "entry_id already used for another card")
        attempt = on_card_entry(svc, db, card, entry["entry_id"]) if posted.created and entry["amount_fen"] < 0 else None
        attempt_id = attempt.id if attempt else None
    if not posted.created:  # a replay: report the attempt the first delivery opened, if any
        attempt_id = _attempt_for(svc, entry["entry_id"])
    autodebit = None
    if attempt_id is not None:
        status = process_attempt(svc, attempt_id) if posted.created else None
        autodebit = _describe(svc, attempt_id, status)
    with svc.session() as db:
        balance = db.execute(select(Cardholder.balance_fen).where(Cardholder.id == card_id)).scalar_one()
    return jsonify(entry_id=entry["entry_id"], duplicate=not posted.created, balance_after_entry_fen=posted.entry.balance_after_fen,
                   balance_fen=balance, autodebit=autodebit)


def _attempt_for(svc: Any, entry_id: str) -> int | None:
    with svc.session() as db:
        return db.execute(select(AutodebitAttempt.id).where(AutodebitAttempt.trigger_key == f"entry:{entry_id}")).scalar_one_or_none()


def _describe(svc: Any, attempt_id: int, status: str | None) -> dict[str, Any]:
    with svc.session() as db:
        a = db.get(AutodebitAttempt, attempt_id)
        assert a is not None
        out: dict[str, Any] = {"attempt_id": a.id, "status": a.status, "amount_fen": a.amount_fen}
        if a.reason:
            out["reason"] = a.reason
        if a.status == "waiting" and status == "waiting":
            out["next_window"] = next_window(svc).isoformat(timespec="minutes")
        return out


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
