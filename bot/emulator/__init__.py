"""Loopback emulator of the WeChat and WeChat Pay APIs, the bank and the card system the bot calls, plus the
browser chat simulator.

Mounted only when ``[emulator] enabled``; production code reaches it only through the base URLs.
"""

from __future__ import annotations

from flask import Flask

from bot.emulator.state import EmulatorState


def init_app(app: Flask) -> None:
    cfg = app.extensions["cardbot"].cfg
    app.extensions["emulator"] = EmulatorState(token_ttl=cfg.emulator.token_ttl_seconds, token_grace=cfg.emulator.token_grace_seconds)
    from bot.emulator import bank, cardsys, electricity, pay, simulator, wechat_api

    app.register_blueprint(wechat_api.bp)
    app.wsgi_app = wechat_api.TemplateSend(app.wsgi_app, cfg, app.extensions["emulator"])  # type: ignore[method-assign]
    app.extensions["wechat"].observe(wechat_api.follows_observer(app.extensions["emulator"]))
    for part in (pay, bank, cardsys, electricity, simulator):
        part.init_app(app)
