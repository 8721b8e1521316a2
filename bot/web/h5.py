"""What every H5 page shares: who is asking, in which language, and how a refusal is answered.

A page's blueprint is made by ``blueprint``: before each request it puts the services, the session's openid (bot.web.auth)
and the user's language on ``g``, its templates get ``t`` and ``lang`` from a context processor, and a ``UserError``
a view lets through is answered by ``refuse``. The browser side
is one shared script (templates/h5.js: fetch with the CSRF header, the WeChat pay call).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify

from bot.errors import UserError
from bot.texts import t
from bot.web.auth import current_openid
from models import lang_of


def blueprint(name: str, import_name: str) -> Blueprint:
    bp = Blueprint(name, import_name)
    bp.before_request(_who)
    bp.context_processor(lambda: {"t": tr, "lang": g.lang})
    bp.register_error_handler(UserError, refuse)
    return bp


def _who() -> None:
    g.svc = current_app.extensions["cardbot"]
    g.openid = current_openid() or ""
    g.lang = "zh"
    if g.openid:
        with g.svc.session() as db:
            g.lang = lang_of(db, g.openid)


def tr(key: str, /, **values: Any) -> str:
    """A text in the asking user's language."""
    return t(g.lang, key, **values)


def refuse(err: UserError) -> Any:
    """A refusal as the pages' APIs answer it: ``{"error": CODE, "message": TEXT}`` with the error's HTTP status."""
    return jsonify(error=err.code, message=err.message(g.lang)), err.status
