"""The one place that imports the handlers: every module's ``Routes`` composed into one ``Router``."""

from __future__ import annotations

from bot.chat.router import Router, Routes


def build_router(*extra: Routes) -> Router:
    """The handlers' routes, then ``extra`` (a test's or an experiment's own); a key answered twice is refused."""
    from handlers import alerts, autodebit, balance, bills, binding, help, loss, notices, power, subscription, support, topup

    modules = (binding, balance, bills, topup, power, autodebit, help, notices, subscription, loss, alerts, support)
    return Router(*(module.routes for module in modules), *extra)
