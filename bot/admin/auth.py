"""Who is at the console: the session cookie (path ``/admin``, HttpOnly, SameSite=Strict, Secure on https) holds a
token whose session lives in Redis (bot.staff); ``staff_only`` sends anyone without one to the login page, and
``supervisor_only`` answers a clerk 403 and audits the attempt."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, current_app, g, redirect, request, url_for

from bot import audit
from bot.staff import session_staff
from models.enums import AuditOutcome

COOKIE = "cardbot_admin"


def load_staff() -> None:
    g.svc = current_app.extensions["cardbot"]
    g.staff = session_staff(g.svc, request.cookies.get(COOKIE, ""))


def set_cookie(resp: Any, token: str) -> Any:
    resp.set_cookie(
        COOKIE,
        token,
        path="/admin",
        httponly=True,
        samesite="Strict",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        max_age=None,
    )
    return resp


def clear_cookie(resp: Any) -> Any:
    resp.delete_cookie(COOKIE, path="/admin")
    return resp


def staff_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.staff is None:
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapper


def supervisor_only(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A supervisor's action: a clerk gets 403, and the attempt is in the audit log."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.staff is None:
                return redirect(url_for("admin.login", next=request.path))
            if not g.staff.supervisor:
                target = str(next(iter(kwargs.values()), ""))
                audit.record(g.svc, g.staff, action, target, request.form.get("reason", ""), AuditOutcome.FORBIDDEN, "supervisor only")
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate
