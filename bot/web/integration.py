"""``POST /integration/card-entries``: the card system reports what happened at its terminals (docs/contract.md).

Signed as every cardsys/1 request is (``bot.adapters.cardsys_signing``, ``[cardsystem] secret``): a timestamp within
300 s of real time (the card system's clock against ours; the business clock that tests freeze plays no part here)
and a nonce never seen in the last 600 s. Replay-safe twice over: ``entry_id`` is the ledger's idempotency key, so a
retried entry (signed afresh) changes nothing and gets the same kind of answer (``"duplicate": true``).
What an entry does (the debit or, with a remote card system, the remembered balance; the auto top-up it may open) is
bot.card_entries; this view checks and answers. ``balance_after_fen`` is required only with a remote card system.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from bot.adapters import cardsys_signing
from bot.card_entries import CardEntry, record_entry
from bot.clock import SCHOOL_TZ
from bot.errors import UserError

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
        svc.cfg.cardsystem.secret,
        request.method,
        cardsys_signing.request_target(request.environ),
        request.headers,
        request.get_data(),
        cardsys_signing.nonce_claimer(svc.store, "integration"),
    )


def _parse(body: Any) -> tuple[CardEntry | None, str]:
    if not isinstance(body, dict):
        return None, "JSON object expected"
    entry_id, student_no, amount = body.get("entry_id"), body.get("student_no"), body.get("amount_fen")
    merchant, occurred, after = body.get("merchant", ""), body.get("occurred_at"), body.get("balance_after_fen")
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        return None, "entry_id must match " + ENTRY_ID.pattern
    if not isinstance(student_no, str) or not STUDENT_NO.match(student_no):
        return None, "student_no must be 8-12 digits"
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or abs(amount) > MAX_FEN:
        return None, "amount_fen must be a non-zero integer (negative = spend)"
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or abs(after) > MAX_FEN):
        return None, "balance_after_fen must be an integer"
    if not isinstance(merchant, str) or len(merchant) > 64:
        return None, "merchant must be a string of at most 64 characters"
    try:
        at = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    except ValueError:
        at = None
    if at is None:
        return None, "occurred_at must be ISO 8601"
    at = (at if at.tzinfo else at.replace(tzinfo=SCHOOL_TZ)).astimezone(UTC).replace(tzinfo=None)
    return CardEntry(entry_id, student_no, amount, merchant or "", at, after), ""


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
    try:
        recorded = record_entry(svc, entry)
    except UserError as err:
        return _err(err.status, err.code, err.message("en"))
    return jsonify(asdict(recorded))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
