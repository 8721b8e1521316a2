"""The service-center console in tests: staff made with the real CLI and set up through the real setup page, a
``Desk`` (a browser-less staff member over real HTTP: cookies, CSRF tokens from the pages) and TOTP codes on the
bot's clock."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import pyotp
import requests
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli.admin import command as admin_command
from bot.clock import SCHOOL_TZ
from models import AuditEntry, Cardholder, TopupOrder
from models.enums import OrderStatus
from tests.support.autodebit import at, entry, logged_in, signed, student

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
PASSWORD = "counter-password-2026"


def code(live: Any, secret: str, steps: int = 0) -> str:
    """The authenticator's code on the bot's clock, ``steps`` 30-second steps on (each code is accepted once)."""
    return pyotp.TOTP(secret).at(live.services.clock.now() + timedelta(seconds=30 * steps))


def add_user(live: Any, name: str, role: str) -> str:
    """``cardbot admin add-user``: the setup link it prints."""
    result = CliRunner().invoke(
        admin_command, ["add-user", name, "--role", role], obj=SimpleNamespace(services=live.services), catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


class Desk:
    """One staff member's browser over real HTTP."""

    def __init__(self, live: Any) -> None:
        self.live = live
        self.http = requests.Session()
        self.csrf = ""
        self.secret: str | None = None

    def get(self, path: str, **kw: Any) -> requests.Response:
        r = self.http.get(self.live.url + path, timeout=15, allow_redirects=kw.pop("allow_redirects", False), **kw)
        if m := CSRF.search(r.text):
            self.csrf = m.group(1)
        return r

    def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True) -> requests.Response:
        if csrf and not self.csrf:
            self.get("/admin/login")
        body = {**({"csrf_token": self.csrf} if csrf else {}), **(data or {})}
        return self.http.post(self.live.url + path, data=body, timeout=30, allow_redirects=False)

    def set_up(self, link: str, password: str = PASSWORD) -> str | None:
        """Open the setup link and finish it; a supervisor's TOTP secret is returned."""
        path = link.removeprefix(self.live.url)
        page = self.get(path)
        assert page.status_code == 200, page.text
        secret = m.group(1) if (m := SECRET.search(page.text)) else None
        data = {"password": password, "repeat": password}
        if secret:
            data["code"] = code(self.live, secret)
        r = self.post(path, data)
        assert r.status_code == 200 and "设置完成" in r.text, r.text
        return secret

    def login(self, name: str, password: str = PASSWORD, totp: str = "") -> requests.Response:
        self.get("/admin/login")
        return self.post("/admin/login", {"name": name, "password": password, "code": totp})


def staff(live: Any, name: str, role: str, steps: int = 1) -> Desk:
    """A staff member made, set up and signed in (a supervisor with the code ``steps`` on from the setup's)."""
    desk = Desk(live)
    secret = desk.set_up(add_user(live, name, role))
    r = desk.login(name, totp=code(live, secret, steps) if secret else "")
    assert r.status_code == 302, r.text
    desk.secret = secret
    return desk


def audit_rows(live: Any, action: str | None = None) -> list[AuditEntry]:
    with live.session() as db:
        q = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            q = q.where(AuditEntry.action == action)
        return list(db.execute(q).scalars())


def refund_requested(live: Any, openid: str, student_no: str) -> int:
    """An auto top-up of 50.00 on a card left with 21.00, and its refund requested on the page: the request's id."""
    live.services.clock.freeze(at(2026, 11, 20, 10, 0))
    student(live, openid, student_no=student_no, balance_fen=2100)
    signed(live, openid, bank_balance_fen=100_000)
    body = entry(live, student_no, -200).json()
    assert body["autodebit"]["status"] == "succeeded", body
    r = logged_in(live, openid).post("/api/autodebit/refunds", {"attempt_id": body["autodebit"]["attempt_id"]})
    assert r.status_code == 201, r.text
    return int(r.json()["request_id"])


class BrowserErrors(list[str]):
    """Uncaught script errors and CSP violations a console page reports (there should be none: it runs no script)."""


def open_console(browser: Any, live: Any, width: int = 1280, height: int = 900) -> tuple[Any, Any, BrowserErrors]:
    """A fresh browser context (its own cookies) on the console's login page: ``(context, page, errors)``."""
    from tests.support.browser import TIMEOUT_MS

    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = BrowserErrors()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # a 403 answer and the browser's favicon 404 are logged as "Failed to load resource": expected, not errors
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    page.goto(live.url + "/admin/")
    return context, page, errors


def seed_history(live: Any, student_no: str, openid: str, days: int = 30) -> None:
    """Top-up orders of the last ``days`` days (most paid, some closed or failed) and this morning's, for the
    dashboard's tallies and charts (orders only: no money moves)."""
    rng = random.Random(16)
    now = live.services.clock.now()
    with live.session() as db, db.begin():
        card_id = db.execute(select(Cardholder.id).where(Cardholder.student_no == student_no)).scalar_one()
        for back in range(days):
            day = now.date() - timedelta(days=back)
            hours = (
                [h for h in (7, 7, 8, 8, 8, 9, 9, 10) if h <= now.hour]
                if back == 0
                else rng.choices((7, 8, 11, 12, 12, 13, 17, 18, 21), k=rng.randint(2, 9))
            )
            for i, hour in enumerate(hours):
                at = datetime.combine(day, time(hour, rng.randint(0, 59)), SCHOOL_TZ).astimezone(UTC).replace(tzinfo=None)
                status = rng.choices((OrderStatus.PAID, OrderStatus.CLOSED, OrderStatus.FAILED), weights=(88, 9, 3))[0]
                db.add(
                    TopupOrder(
                        order_no=f"S{day:%Y%m%d}{i:04d}",
                        cardholder_id=card_id,
                        openid=openid,
                        mode="quick",
                        amount_fen=rng.choice((5000, 10000, 20000, 3000)),
                        status=status,
                        business_day=day,
                        created_at=at,
                        expires_at=at + timedelta(minutes=15),
                        paid_at=at if status == OrderStatus.PAID else None,
                    )
                )
