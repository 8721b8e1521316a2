"""The console's pages and actions. Each view: who (``g.staff``), one domain call, one audit entry, one answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from bot import announce as announcements
from bot import audit, binding, credit_refunds, desk, outbox, staff
from bot.admin import charts, csrf
from bot.admin.auth import COOKIE, clear_cookie, load_staff, set_cookie, staff_only, supervisor_only
from bot.autodebit import approve_refund, refund_cases, reject_refund
from bot.clock import SCHOOL_TZ, to_local
from bot.errors import UserError
from bot.money import yuan
from bot.texts import t
from bot.web.ratelimit import RateLimiter
from models.enums import AuditOutcome, CreditStatus, NoticeStatus

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static", static_url_path="/static")

# The console runs no script at all; forms post only to itself; no one may frame it.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # Flask-WTF checks the Referer of a POST on https
    "Cache-Control": "no-store",
}
MAX_REASON = 256


@bp.before_request
def _who() -> None:
    g.lang = request.cookies.get("admin_lang", "zh") if request.cookies.get("admin_lang") in ("zh", "en") else "zh"
    load_staff()
    if request.method == "POST":
        csrf.protect()


@bp.after_request
def _headers(resp: Response) -> Response:
    for name, value in _HEADERS.items():
        resp.headers[name] = value
    return resp


@bp.context_processor
def _template_values() -> dict[str, Any]:
    return {"t": tr, "lang": g.lang, "staff": g.get("staff"), "yuan": yuan, "local": to_local, "school": _school_time}


def _school_time(at: datetime) -> datetime:
    """An aware time (the card system's, a balance's) in school time."""
    return at.astimezone(SCHOOL_TZ)


def tr(key: str, /, **values: Any) -> str:
    return t(g.lang, key, **values)


@bp.errorhandler(CSRFError)
def _csrf_failed(err: CSRFError) -> Any:
    return render_template("admin/message.html", title=tr("admin_csrf_title"), text=tr("admin_csrf_text")), 400


@bp.errorhandler(403)
def _forbidden(err: Any) -> Any:
    return render_template("admin/message.html", title=tr("admin_forbidden_title"), text=tr("admin_forbidden_text")), 403


# --- signing in -------------------------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    nxt = request.values.get("next", "")
    nxt = nxt if nxt.startswith("/admin/") and not nxt.startswith("//") else url_for("admin.dashboard")
    if request.method == "GET":
        return render_template("admin/login.html", next=nxt, error="")
    name = request.form.get("name", "").strip()[:64]
    limiter, limit = RateLimiter(g.svc.store), g.svc.cfg.admin.login_attempts_per_minute
    wait = max(limiter.hit("adminlogin", name or "-", limit), limiter.hit("adminloginip", request.remote_addr or "-", limit * 4))
    if wait:
        resp = Response(render_template("admin/login.html", next=nxt, error=tr("admin_login_wait", seconds=wait)), status=429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    try:
        who = staff.authenticate(g.svc, name, request.form.get("password", ""), request.form.get("code", ""))
    except UserError as err:
        audit.record_failed_login(g.svc, name, err.code)
        return render_template("admin/login.html", next=nxt, error=err.message(g.lang)), err.status
    audit.record(g.svc, who, "login", who.name)
    return set_cookie(redirect(nxt), staff.start_session(g.svc, who))


@bp.post("/logout")
def logout() -> Any:
    if g.staff is not None:
        audit.record(g.svc, g.staff, "logout", g.staff.name)
    staff.end_session(g.svc, request.cookies.get(COOKIE, ""))
    return clear_cookie(redirect(url_for("admin.login")))


@bp.route("/setup/<token>", methods=["GET", "POST"])
def setup(token: str) -> Any:
    try:
        pending = staff.setup_of(g.svc, token)
    except UserError as err:
        return render_template("admin/message.html", title=tr("admin_setup_title"), text=err.message(g.lang)), err.status
    if request.method == "GET":
        return render_template("admin/setup.html", pending=pending, error="")
    form = request.form
    try:
        who = staff.complete_setup(g.svc, token, form.get("password", ""), form.get("repeat", ""), form.get("code", ""))
    except UserError as err:
        return render_template("admin/setup.html", pending=pending, error=err.message(g.lang)), err.status
    audit.record(g.svc, who, "setup", who.name)
    return render_template("admin/message.html", title=tr("admin_setup_title"), text=tr("admin_setup_done"), link=url_for("admin.login"))


@bp.get("/lang/<lang>")
def language(lang: str) -> Any:
    resp = redirect(url_for("admin.dashboard"))
    resp.set_cookie("admin_lang", lang if lang in ("zh", "en") else "zh", path="/admin", samesite="Strict", httponly=True)
    return resp


# --- reading ----------------------------------------------------------------------------------------------------
@bp.get("/")
@staff_only
def dashboard() -> Any:
    day = desk.glance(g.svc)
    return render_template(
        "admin/dashboard.html",
        day=day,
        hourly=charts.hourly_volume(tr("admin_chart_hourly"), day.hourly_fen),
        rate=charts.success_rate(tr("admin_chart_rate"), day.success, tr("admin_chart_no_orders")),
        announcement=announcements.current(g.svc),
    )


@bp.get("/search")
@staff_only
def search() -> Any:
    q = request.args.get("q", "").strip()[:64]
    found = desk.find(g.svc, q) if q else []
    if q:
        audit.record(g.svc, g.staff, "search", q, detail=f"{len(found)} found")
    if len(found) == 1:
        return redirect(url_for("admin.student", student_no=found[0].student_no))
    return render_template("admin/search.html", q=q, found=found)


@bp.get("/students/<student_no>")
@staff_only
def student(student_no: str) -> Any:
    file = desk.student_file(g.svc, student_no)
    if file is None:
        abort(404)
    audit.record(g.svc, g.staff, "view_student", file.card.student_no)
    return render_template("admin/student.html", f=file, history=audit.entries(g.svc, about=file.card.student_no, limit=20))


@bp.get("/refunds")
@staff_only
def refunds() -> Any:
    return render_template("admin/refunds.html", cases=refund_cases(g.svc, open_only=request.args.get("all") != "1"))


@bp.get("/credits")
@staff_only
def credits() -> Any:
    status = request.args.get("status", "")
    chosen = CreditStatus(status) if status in CreditStatus.__members__.values() else None
    return render_template("admin/credits.html", rows=credit_refunds.listed(g.svc, chosen), why=credit_refunds.why, masked=desk.mask_openid)


@bp.get("/notices")
@staff_only
def notices() -> Any:
    return render_template("admin/notices.html", rows=outbox.needing_operator(g.svc), masked=desk.mask_openid)


@bp.get("/audit")
@staff_only
def audit_log() -> Any:
    about = request.args.get("about", "").strip()[:64]
    return render_template("admin/audit.html", rows=audit.entries(g.svc, about=about, limit=500), about=about)


@bp.get("/audit.csv")
@staff_only
def audit_csv() -> Any:
    audit.record(g.svc, g.staff, "export_audit")
    body = "\ufeff" + audit.export_csv(g.svc)  # a BOM, so spreadsheet programs read the Chinese right
    stamp = f"{g.svc.clock.now():%Y%m%d-%H%M}"
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename=audit-{stamp}.csv"})


# --- acting -----------------------------------------------------------------------------------------------------
def _back(default: str) -> str:
    back = request.form.get("back", "")
    return back if back.startswith("/admin/") and not back.startswith("//") else default


def _act(action: str, target: str, default_back: str, do: Callable[[str], str]) -> Any:
    """Run one action with the typed reason: audited whatever comes of it; the outcome is flashed on the next page."""
    reason = request.form.get("reason", "").strip()
    back = _back(default_back)
    if not reason or len(reason) > MAX_REASON:
        audit.record(g.svc, g.staff, action, target, reason, AuditOutcome.REFUSED, "no reason given")
        flash(tr("admin_reason_needed", n=MAX_REASON), "bad")
        return redirect(back)
    try:
        detail = do(reason)
    except UserError as err:
        audit.record(g.svc, g.staff, action, target, reason, AuditOutcome.REFUSED, err.code)
        flash(err.message(g.lang), "bad")
        return redirect(back)
    audit.record(g.svc, g.staff, action, target, reason, AuditOutcome.DONE, detail)
    flash(tr("admin_done", action=tr(f"admin_action_{action}"), detail=detail), "ok")
    return redirect(back)


@bp.post("/students/<student_no>/unlock")
@staff_only
def unlock(student_no: str) -> Any:
    def do(reason: str) -> str:
        lifted = binding.unlock(g.svc, student_no)
        return ", ".join(f"{k}: {v}" for k, v in lifted.items() if v) or "not locked"

    return _act("unlock", student_no, url_for("admin.student", student_no=student_no), do)


@bp.post("/students/<student_no>/bindings/<int:binding_id>/remove")
@staff_only
def remove_binding(student_no: str, binding_id: int) -> Any:
    def do(reason: str) -> str:
        card = desk.card_by_no(g.svc, student_no)
        gone = binding.remove_at_desk(g.svc, card.id, binding_id) if card is not None else None
        if gone is None:
            raise UserError("admin_binding_gone", 404)
        return f"binding {binding_id} ({desk.mask_openid(gone.openid)})"

    return _act("remove_binding", student_no, url_for("admin.student", student_no=student_no), do)


@bp.post("/refunds/<int:request_id>/approve")
@supervisor_only("approve_refund")
def refund_approve(request_id: int) -> Any:
    return _act(
        "approve_refund", str(request_id), url_for("admin.refunds"), lambda reason: f"refund {approve_refund(g.svc, request_id, g.staff.name).status}"
    )


@bp.post("/refunds/<int:request_id>/reject")
@supervisor_only("reject_refund")
def refund_reject(request_id: int) -> Any:
    return _act(
        "reject_refund",
        str(request_id),
        url_for("admin.refunds"),
        lambda reason: f"refund {reject_refund(g.svc, request_id, g.staff.name, reason).status}",
    )


@bp.post("/credits/<ref>/retry")
@supervisor_only("retry_credit")
def credit_retry(ref: str) -> Any:
    return _act("retry_credit", ref, url_for("admin.credits"), lambda reason: f"credit {credit_refunds.retry(g.svc, ref).status}")


@bp.post("/credits/<ref>/refund")
@supervisor_only("refund_credit")
def credit_refund(ref: str) -> Any:
    def do(reason: str) -> str:
        out = credit_refunds.refund(g.svc, ref)
        return f"credit {out.credit.status} {out.credit.refund_no or ''} {out.detail}".strip()

    return _act("refund_credit", ref, url_for("admin.credits"), do)


@bp.post("/notices/<int:notice_id>/<decision>")
@staff_only
def notice_decide(notice_id: int, decision: str) -> Any:
    status = {"requeue": NoticeStatus.PENDING, "mark-sent": NoticeStatus.SENT}.get(decision)
    if status is None:
        abort(404)
    action = "requeue_notice" if status is NoticeStatus.PENDING else "mark_notice_sent"

    def do(reason: str) -> str:
        row = outbox.settle_by_operator(g.svc, notice_id, status, f"{action} by {g.staff.name}: {reason}"[:500])
        return f"notice {row.id} {row.status}"

    return _act(action, str(notice_id), url_for("admin.notices"), do)


@bp.route("/announce", methods=["GET", "POST"])
@staff_only
def announce() -> Any:
    if request.method == "GET":
        return render_template("admin/announce.html", current=announcements.current(g.svc))

    def do(reason: str) -> str:
        try:
            until = datetime.fromisoformat(request.form.get("until", "")).replace(tzinfo=SCHOOL_TZ)
        except ValueError:
            raise UserError("announce_in_past", 400) from None
        made = announcements.announce(g.svc, request.form.get("text", ""), until)
        return f"until {made.until:%Y-%m-%d %H:%M}: {made.text}"

    return _act("announce", "announcement", url_for("admin.announce"), do)
