"""The service center's console over real HTTP (the browser's own test is tests/test_admin_browser.py): accounts from
``cardbot admin add-user`` and their one-time setup link, login with argon2 password and (supervisors) TOTP, rate
limit, idle sessions in Redis, CSRF on every write, no page without a session, the clerk/supervisor line (403,
audited), the same domain functions as the CLI, and the append-only audit log with its CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot import staff as staff_domain
from bot.binding_lock import BindingLock
from bot.cli.topup import command as reconcile_command
from bot.config import load_config
from bot.outbox import NEEDS_AN_OPERATOR
from models import OutboxNotice, RefundRequest
from models.enums import CreditStatus, NoticeStatus, RefundStatus
from tests.conftest import make_config
from tests.support.admin import PASSWORD, Desk, add_user, audit_rows, code, refund_requested, staff
from tests.support.autodebit import student
from tests.support.credits import credit, refunds_at_wechat, refused_topup

pytestmark = pytest.mark.usefixtures("ledger_checked")

OPENID = "oConsoleStudent000000001"
NO = "20235001"
PAGES = [
    "/admin/",
    "/admin/search?q=2023",
    f"/admin/students/{NO}",
    "/admin/refunds",
    "/admin/credits",
    "/admin/notices",
    "/admin/announce",
    "/admin/audit",
    "/admin/audit.csv",
]
WRITES = [f"/admin/students/{NO}/unlock", f"/admin/students/{NO}/bindings/1/remove", "/admin/refunds/1/approve", "/admin/refunds/1/reject",
          "/admin/credits/T1/retry", "/admin/credits/T1/refund", "/admin/notices/1/requeue", "/admin/notices/1/mark-sent", "/admin/announce"]  # fmt: skip


def test_no_console_page_without_a_session(live):
    student(live, OPENID, student_no=NO)
    anonymous = Desk(live)
    for path in PAGES:
        r = anonymous.get(path)
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"], path
    for path in WRITES:
        assert anonymous.post(path, {"reason": "x"}, csrf=False).status_code == 400, path  # no CSRF token: refused first
        r = anonymous.post(path, {"reason": "x"})  # a token from the login page, still no session
        assert r.status_code == 302 and "/admin/login" in r.headers["Location"], path
    assert audit_rows(live) == []
    assert BindingLock(live.services).failures("card", NO) == 0


def test_setup_link_is_one_time_and_supervisors_need_the_code(live):
    link = add_user(live, "wang.li", "supervisor")
    assert link.startswith(live.url + "/admin/setup/")
    desk = Desk(live)
    page = desk.get(link.removeprefix(live.url))
    assert 'id="totp-secret"' in page.text
    short = desk.post(link.removeprefix(live.url), {"password": "short", "repeat": "short", "code": "000000"})
    assert short.status_code == 400 and "至少需要 12 位" in short.text
    wrong_code = desk.post(link.removeprefix(live.url), {"password": PASSWORD, "repeat": PASSWORD, "code": "000000"})
    assert wrong_code.status_code == 400 and "验证码不正确" in wrong_code.text
    secret = desk.set_up(link)
    assert secret
    assert Desk(live).get(link.removeprefix(live.url)).status_code == 404  # spent
    assert desk.login("wang.li").status_code == 401  # no code
    assert desk.login("wang.li", "wrong-password-123", code(live, secret, 1)).status_code == 401
    ok = desk.login("wang.li", PASSWORD, code(live, secret, 1))
    assert ok.status_code == 302
    assert Desk(live).login("wang.li", PASSWORD, code(live, secret, 1)).status_code == 401  # a code is good once
    assert desk.get("/admin/").status_code == 200
    with live.session() as db:
        stored = db.execute(text("SELECT password_hash, setup_token_hash FROM staff_users WHERE name = 'wang.li'")).one()
    assert stored[0].startswith("$argon2") and stored[1] is None
    assert [(e.staff, e.outcome) for e in audit_rows(live, "login")] == [
        ("wang.li", "refused"),
        ("wang.li", "refused"),
        ("wang.li", "done"),
        ("wang.li", "refused"),
    ]
    again = CliRunner().invoke(
        __import__("bot.cli.admin", fromlist=["command"]).command,
        ["add-user", "wang.li", "--role", "clerk"],
        obj=type("O", (), {"services": live.services})(),
    )
    assert again.exit_code == 1 and "already exists" in again.output


def test_login_attempts_are_rate_limited(live):
    desk = staff(live, "li.na", "clerk")
    other = Desk(live)
    limit = live.cfg.admin.login_attempts_per_minute
    answers = [other.login("li.na", "not-the-password").status_code for _ in range(limit)]
    assert answers == [401] * (limit - 1) + [429]  # every attempt in the minute counts, the good one before too
    assert other.login("li.na").status_code == 429  # even the right password waits out the window
    assert desk.get("/admin/").status_code == 200  # a session already open is not affected


def test_session_idles_out_in_redis_and_logout_ends_it(live):
    desk = staff(live, "zhao.min", "clerk")
    store = live.services.store
    keys = list(store.r.scan_iter(match=store.key("admin", "session", "*")))
    assert len(keys) == 1
    assert live.cfg.admin.idle_minutes * 60 - 5 <= store.r.ttl(keys[0]) <= live.cfg.admin.idle_minutes * 60
    store.r.expire(keys[0], 5)
    assert desk.get("/admin/").status_code == 200
    assert store.r.ttl(keys[0]) > 60  # a request starts the idle time again
    store.r.delete(keys[0])  # what 30 idle minutes do
    r = desk.get("/admin/")
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    desk = staff(live, "zhao.min2", "clerk")
    assert desk.post("/admin/logout").status_code == 302
    assert desk.get("/admin/").status_code == 302
    cookie = [c for c in desk.http.cookies if c.name == "cardbot_admin"]
    assert cookie == []


def test_every_write_needs_the_csrf_token(live):
    student(live, OPENID, student_no=NO)
    BindingLock(live.services).reserve(OPENID, NO)
    desk = staff(live, "qian.yu", "clerk")
    r = desk.post(f"/admin/students/{NO}/unlock", {"reason": "owner at the counter"}, csrf=False)
    assert r.status_code == 400 and "页面已过期" in r.text
    r = desk.post(f"/admin/students/{NO}/unlock", {"reason": "owner at the counter", "csrf_token": "forged"}, csrf=False)
    assert r.status_code == 400
    assert BindingLock(live.services).failures("card", NO) == 1
    assert desk.post(f"/admin/students/{NO}/unlock", {"reason": "owner at the counter"}).status_code == 302
    assert BindingLock(live.services).failures("card", NO) == 0


def test_a_clerk_cannot_decide_a_refund_and_the_attempt_is_audited(live):
    request_id = refund_requested(live, OPENID, NO)
    clerk = staff(live, "sun.li", "clerk")
    r = clerk.post(f"/admin/refunds/{request_id}/approve", {"reason": "student asked"})
    assert r.status_code == 403 and "需要主管权限" in r.text
    assert clerk.post(f"/admin/credits/T{request_id}/refund", {"reason": "x"}).status_code == 403
    with live.session() as db:
        assert db.get(RefundRequest, request_id).status == RefundStatus.PENDING
    forbidden = [(e.staff, e.role, e.action, e.target, e.outcome) for e in audit_rows(live) if e.outcome == "forbidden"]
    assert forbidden == [
        ("sun.li", "clerk", "approve_refund", str(request_id), "forbidden"),
        ("sun.li", "clerk", "refund_credit", f"T{request_id}", "forbidden"),
    ]

    boss = staff(live, "zhou.qiang", "supervisor")
    assert boss.post(f"/admin/refunds/{request_id}/approve", {"reason": ""}).status_code == 302  # no reason: nothing done
    with live.session() as db:
        assert db.get(RefundRequest, request_id).status == RefundStatus.PENDING
    page = boss.post(f"/admin/refunds/{request_id}/approve", {"reason": "duplicate top-up, checked the bank slip"})
    assert page.status_code == 302
    with live.session() as db:
        req = db.get(RefundRequest, request_id)
        assert req.status == RefundStatus.APPROVED and req.decided_by == "zhou.qiang"
    decided = audit_rows(live, "approve_refund")
    assert [(e.staff, e.outcome, e.reason) for e in decided] == [
        ("sun.li", "forbidden", "student asked"),
        ("zhou.qiang", "refused", ""),
        ("zhou.qiang", "done", "duplicate top-up, checked the bank slip"),
    ]
    again = boss.post(f"/admin/refunds/{request_id}/reject", {"reason": "changed my mind"})
    assert again.status_code == 302
    assert audit_rows(live, "reject_refund")[-1].outcome == "refused"  # already decided: the domain's refusal


def test_viewing_a_student_is_audited_and_openids_are_masked(live):
    student(live, OPENID, student_no=NO)
    desk = staff(live, "wu.fang", "clerk")
    found = desk.get("/admin/search?q=" + NO)
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/admin/students/{NO}")
    page = desk.get(f"/admin/students/{NO}")
    assert page.status_code == 200 and "25.00" in page.text
    assert OPENID not in page.text and OPENID[:4] + "…" + OPENID[-4:] in page.text
    h = page.headers
    assert h["Cache-Control"] == "no-store" and h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "same-origin"
    assert "default-src 'none'" in h["Content-Security-Policy"] and "frame-ancestors 'none'" in h["Content-Security-Policy"]  # no script at all
    assert [(e.action, e.target) for e in audit_rows(live) if e.action in ("search", "view_student")] == [("search", NO), ("view_student", NO)]
    assert desk.get("/admin/search?q=张").status_code == 302  # one match by name goes straight to it
    assert desk.get("/admin/students/99999999").status_code == 404


def test_notices_are_decided_through_the_outbox_and_the_audit_log_exports(live):
    student(live, OPENID, student_no=NO)
    with live.session() as db, db.begin():
        db.add(
            OutboxNotice(openid=OPENID, kind="topup_receipt", data={}, dedup_key="console:n1", status=NoticeStatus.UNCERTAIN, last_error="report 123")
        )
    desk = staff(live, "=cmd|' /C calc'!A0", "clerk")
    listed = desk.get("/admin/notices")
    assert "report 123" in listed.text
    notice_id = int(listed.text.split("/admin/notices/")[1].split("/")[0])
    assert desk.post(f"/admin/notices/{notice_id}/requeue", {"reason": "student did not get it"}).status_code == 302
    with live.session() as db:
        row = db.get(OutboxNotice, notice_id)
        assert row.status == NoticeStatus.PENDING and "student did not get it" in row.last_error
    assert row.status not in NEEDS_AN_OPERATOR
    r = desk.get("/admin/audit.csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    requeued = [x for x in rows if x["action"] == "requeue_notice"]
    assert requeued and requeued[0]["reason"] == "student did not get it" and requeued[0]["staff"].startswith("'=")
    assert audit_rows(live)[-1].action == "export_audit"


def test_the_audit_log_refuses_an_update(live):
    desk = staff(live, "zheng.he", "clerk")
    desk.get("/admin/")
    with live.services.engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("UPDATE audit_log SET reason = 'rewritten'"))
        conn.commit()
    assert all(e.reason != "rewritten" for e in audit_rows(live))


def test_dashboard_shows_the_day_and_the_last_reconciliation(live):
    refund_requested(live, OPENID, NO)
    result = CliRunner().invoke(reconcile_command, [live.services.clock.today().isoformat()], obj=type("O", (), {"services": live.services})())
    desk = staff(live, "feng.yi", "clerk")
    page = desk.get("/admin/").text
    assert "待处理退款 1 笔" in page and page.count('<svg class="chart"') == 2
    assert "succeeded" in page  # today's auto top-up by status
    assert "最近一次对账" in page and live.services.clock.today().isoformat() in page
    assert ("一致" in page) == (result.exit_code == 0)


def test_announcement_is_kept_in_redis_until_its_time(live):
    desk = staff(live, "chen.bo", "clerk")
    until = datetime(2099, 1, 1, 8, 0)
    r = desk.post("/admin/announce", {"text": "今晚 23:00-01:00 卡务系统维护", "until": until.strftime("%Y-%m-%dT%H:%M"), "reason": "IT notice"})
    assert r.status_code == 302
    raw = live.services.store.r.get(live.services.store.key("announcement"))
    assert '"text": "今晚 23:00-01:00 卡务系统维护"' in raw and '"until": "2099-01-01T08:00:00+08:00"' in raw
    assert "卡务系统维护" in desk.get("/admin/").text
    past = desk.post("/admin/announce", {"text": "old", "until": "2000-01-01T08:00", "reason": "x"})
    assert past.status_code == 302 and audit_rows(live, "announce")[-1].outcome == "refused"


def test_console_is_off_in_production_unless_on_with_https(database_url, keys_dir):
    prod = {"emulator": {"enabled": False}}
    assert not make_config(database_url, keys_dir, 1, "x:", **prod).admin_enabled
    on = make_config(database_url, keys_dir, 1, "x:", admin={"enabled": "on"}, **prod)
    assert any(p.startswith("admin.enabled:") for p in on.production_problems())
    https = load_config(None, admin={"enabled": "on"}, server={"public_base_url": "https://card.example.edu.cn"}, **prod)
    assert not any(p.startswith("admin.enabled:") for p in https.production_problems())
    assert load_config(None).admin_enabled  # the demo has it


def test_a_wrong_name_costs_the_same_check(live):
    with pytest.raises(Exception) as exc:
        staff_domain.authenticate(live.services, "nobody", "whatever-password", "")
    assert getattr(exc.value, "code", "") == "admin_login_failed"


def test_removing_a_binding_at_the_desk_ends_that_accounts_access(live):
    student(live, OPENID, student_no=NO)
    desk = staff(live, "lin.xue", "clerk")
    page = desk.get(f"/admin/students/{NO}").text
    binding_id = int(page.split(f"/admin/students/{NO}/bindings/")[1].split("/")[0])
    assert desk.post(f"/admin/students/{NO}/bindings/{binding_id}/remove", {"reason": "phone stolen, owner at the counter"}).status_code == 302
    with live.session() as db:
        assert db.execute(text("SELECT count(*) FROM bindings")).scalar_one() == 0
    assert desk.post(f"/admin/students/{NO}/bindings/{binding_id}/remove", {"reason": "again"}).status_code == 302
    assert [e.outcome for e in audit_rows(live, "remove_binding")] == ["done", "refused"]


def test_a_supervisor_refunds_a_refused_credit_through_the_same_function_as_the_cli(cs_live):
    ref = refused_topup(cs_live, OPENID, NO)
    clerk = staff(cs_live, "he.clerk", "clerk")
    assert ref in clerk.get("/admin/credits").text
    assert clerk.post(f"/admin/credits/{ref}/refund", {"reason": "card lost"}).status_code == 403
    boss = staff(cs_live, "he.boss", "supervisor")
    assert boss.post(f"/admin/credits/{ref}/refund", {"reason": "card lost, student asked for the money back"}).status_code == 302
    assert credit(cs_live, ref).status in (CreditStatus.REFUNDING, CreditStatus.REFUNDED)
    assert len(refunds_at_wechat(cs_live, ref)) == 1
    assert [(e.staff, e.outcome) for e in audit_rows(cs_live, "refund_credit")] == [("he.clerk", "forbidden"), ("he.boss", "done")]


def test_the_console_writes_no_sql_and_moves_no_money_itself():
    """Views call domain functions (the CLI's); no SQLAlchemy, model or transaction in bot/admin."""
    import ast
    from pathlib import Path

    found = []
    for path in sorted((Path(__file__).resolve().parent.parent / "bot" / "admin").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and (node.module.startswith("sqlalchemy") or (node.module.startswith("models") and node.module != "models.enums"))
            ):
                found.append(f"{path.name}: {node.module}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("begin", "commit", "execute", "post_entry", "session"):
                found.append(f"{path.name}: {node.func.attr}")
    assert found == []
