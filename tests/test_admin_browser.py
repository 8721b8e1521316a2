"""The console in headless Chromium, as the service center uses it: a supervisor sets up the account from the link
``cardbot admin add-user`` printed, signs in with password and TOTP, finds a student, lifts a lockout, approves an
auto top-up refund and sees the audit entries; a clerk who tries to approve gets 403, and that is audited too. The
pages are screenshotted into docs/ (README shows them)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from bot.binding_lock import BindingLock
from bot.cli.topup import command as reconcile_command
from models import RefundRequest
from models.enums import RefundStatus
from tests.support.admin import PASSWORD, SECRET, add_user, audit_rows, code, open_console, refund_requested, seed_history
from tests.support.browser import playwright

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("ledger_checked")]
expect = playwright().expect

DOCS = Path(__file__).resolve().parent.parent / "docs"
OPENID = "oConsoleBrowser000000001"
NO = "20235002"
LIVE_CONFIG = {"binding": {"max_failures": 5, "card_max_failures": 5}}


def _set_up(page, live, link):
    page.goto(link)
    secret = SECRET.search(page.content())
    page.fill("#password", PASSWORD)
    page.fill("#repeat", PASSWORD)
    if secret:
        page.fill("#code", code(live, secret.group(1)))
    page.click("#save")
    expect(page.locator("#message")).to_contain_text("设置完成")
    return secret.group(1) if secret else None


def _sign_in(page, live, name, secret=None):
    page.goto(live.url + "/admin/")
    expect(page).to_have_url(live.url + "/admin/login?next=/admin/")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    if secret:
        page.fill("#code", code(live, secret, 1))
    page.click("#login")
    expect(page.locator("#who")).to_contain_text(name)


def test_supervisor_finds_a_student_lifts_the_lockout_and_approves_the_refund(browser, live):
    request_id = refund_requested(live, OPENID, NO)
    lock = BindingLock(live.services)
    for _ in range(5):
        lock.reserve(OPENID, NO)
    assert lock.card_lock(NO) is not None
    seed_history(live, NO, OPENID)
    reconciled = CliRunner().invoke(reconcile_command, [live.services.clock.today().isoformat()], obj=SimpleNamespace(services=live.services))
    assert reconciled.exit_code == 1  # the seeded orders are not in WeChat Pay's bill: the dashboard shows the differences

    clerk_ctx, clerk, clerk_errors = open_console(browser, live)
    _set_up(clerk, live, add_user(live, "li.clerk", "clerk"))
    _sign_in(clerk, live, "li.clerk")
    clerk.click("text=退款申请")
    clerk.fill(f"#refund-{request_id} input[name=reason]", "学生要求退款")
    clerk.click(f"#refund-{request_id} button:has-text('批准退款')")
    expect(clerk.locator("h1")).to_have_text("没有权限")
    clerk_ctx.close()

    ctx, page, errors = open_console(browser, live)
    secret = _set_up(page, live, add_user(live, "wang.boss", "supervisor"))
    assert secret
    _sign_in(page, live, "wang.boss", secret)
    expect(page.locator("#pending-refunds")).to_contain_text("待处理退款 1 笔")
    expect(page.locator("#reconciliation")).to_contain_text("有差异")
    expect(page.locator("#topups")).to_contain_text("paid")
    page.screenshot(path=str(DOCS / "console-dashboard.png"), full_page=True)

    page.fill("#q", "张三")
    page.click("#find")
    expect(page.locator("#student")).to_have_text(f"张三 · {NO}")
    expect(page.locator("#card-locked")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("69.00")
    assert OPENID not in page.content()
    page.screenshot(path=str(DOCS / "console-student.png"), full_page=True)
    page.fill("#lockout input[name=reason]", "本人持身份证到柜台")
    page.click("#lockout button")
    expect(page.locator(".flash.ok")).to_contain_text("已解除锁定")
    expect(page.locator("#not-locked")).to_be_visible()
    assert lock.card_lock(NO) is None

    page.click("text=退款申请")
    page.fill(f"#refund-{request_id} input[name=reason]", "重复充值，已核对银行流水")
    page.click(f"#refund-{request_id} button:has-text('批准退款')")
    expect(page.locator(".flash.ok")).to_contain_text("已批准退款")
    expect(page.locator("#no-refunds")).to_be_visible()
    with live.session() as db:
        assert db.get(RefundRequest, request_id).status == RefundStatus.APPROVED

    page.click("text=审计日志")
    table = page.locator("#audit")
    expect(table).to_contain_text("approve_refund")
    expect(table).to_contain_text("重复充值，已核对银行流水")
    expect(table).to_contain_text("unlock")
    expect(table).to_contain_text("view_student")
    expect(table.locator("tr", has_text="li.clerk").filter(has_text="approve_refund")).to_contain_text("forbidden")
    page.screenshot(path=str(DOCS / "console-audit.png"), full_page=True)
    ctx.close()

    phone_ctx, phone, phone_errors = open_console(browser, live, 390, 844)
    _sign_in(phone, live, "li.clerk")
    phone.goto(f"{live.url}/admin/students/{NO}")
    expect(phone.locator("#not-locked")).to_be_visible()
    phone.screenshot(path=str(DOCS / "console-phone.png"), full_page=False)
    phone_ctx.close()

    assert clerk_errors == errors == phone_errors == []
    done = {(e.staff, e.action, e.outcome) for e in audit_rows(live)}
    assert {("li.clerk", "approve_refund", "forbidden"), ("wang.boss", "unlock", "done"), ("wang.boss", "approve_refund", "done")} <= done
