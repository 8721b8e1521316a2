"""The service-center console in tests: staff made with the real CLI and set up through the real setup page, a
``Desk`` (a browser-less staff member over real HTTP: cookies, CSRF tokens from the pages) and TOTP codes on the
bot's clock."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pyotp
import requests
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli.admin import command as admin_command
from models import AuditEntry
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
