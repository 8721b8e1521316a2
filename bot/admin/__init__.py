"""The service center's web console at ``/admin``: staff sign in (argon2 password, TOTP for supervisors), find a
student, see the whole file, act with a typed reason, and read the audit log; the day at a glance on the front page.

Thin views over the domain (bot.desk for reading, the CLI's own functions for acting, bot.audit for the log). Every
page needs a console session (bot.staff, Redis, idle expiry); every POST needs Flask-WTF's CSRF token; a page that
shows a student's data and every action is audited, a refused or forbidden one included. No script runs in the
console (its CSP allows none): forms and server-rendered SVG charts only.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    """Mounted only when ``[admin]`` enables it (``Config.admin_enabled``); CSRF is checked by the console's own
    views only (the bot's H5 APIs and WeChat's pushes have their own rules)."""
    from bot.admin import views

    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the browser session; the console session ends sooner
    csrf.init_app(app)
    app.register_blueprint(views.bp)
