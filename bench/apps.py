"""WSGI apps the bench serves with gunicorn (``bench.apps:bot_app()`` etc.); config comes from CARDBOT_* variables.

- ``bot_app``: the real bot, exactly as ``cardbot serve`` builds it.
- ``bare_app``: the fastest a Flask webhook can be: one route returning a fixed reply (row d).
- ``werobot_app``: the peer (row e): WeRoBot answering the BALANCE click from the same database and Redis.
- ``emulator_app``: the bot app with its emulator mounted, in ONE process (emulator state is in memory),
  with the bench's openids already following the account.
- ``cardsys_app``: the emulator again, as the school's card system: every cardsys/1 call takes
  ``CARDBOT_BENCH_CARDSYS_LATENCY_MS``, with an account for each bench card 1..``CARDBOT_BENCH_CARDSYS_ACCOUNTS``.
"""

from __future__ import annotations

import os
import time
from typing import Any

FIXED_REPLY = (
    "<xml><ToUserName><![CDATA[o_bench]]></ToUserName><FromUserName><![CDATA[gh_cardbot_demo]]></FromUserName>"
    "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[余额 123.45 元]]></Content></xml>"
)


def bot_app() -> Any:
    from bot import create_app
    from bot.config import load_config

    return create_app(load_config())


def bare_app() -> Any:
    from flask import Flask, Response

    app = Flask(__name__)

    @app.post("/wechat")
    def wechat() -> Response:
        return Response(FIXED_REPLY, mimetype="application/xml")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    return app


def werobot_app() -> Any:
    """A fair peer: signature check and parsing by WeRoBot, then the same lookups our balance reply needs
    (binding joined to the cardholder with SQLAlchemy, the user's dialog key in Redis) and a text reply."""
    import redis
    from sqlalchemy import create_engine, text
    from werobot import WeRoBot

    from bot.config import load_config

    cfg = load_config()
    engine = create_engine(cfg.database.url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    r = redis.Redis.from_url(cfg.redis.url, decode_responses=True)
    robot = WeRoBot(token=cfg.wechat.token, SESSION_STORAGE=False)
    query = text("SELECT c.name, c.balance_fen FROM bindings b JOIN cardholders c ON c.id = b.cardholder_id WHERE b.openid = :openid")

    @robot.key_click("BALANCE")
    def balance(message: Any) -> str:
        r.get(f"{cfg.redis.key_prefix}dialog:{message.source}")
        with engine.connect() as conn:
            row = conn.execute(query, {"openid": message.source}).first()
        if row is None:
            return "请先绑定校园卡"
        fen = row.balance_fen
        return f"{row.name} 的校园卡余额：{fen // 100}.{fen % 100:02d} 元（{time.strftime('%m-%d %H:%M')}）"

    return robot.wsgi


def emulator_app() -> Any:
    app = bot_app()
    state = app.extensions["emulator"]
    prefix = os.environ.get("CARDBOT_BENCH_FOLLOWER_PREFIX", "")
    count = int(os.environ.get("CARDBOT_BENCH_FOLLOWER_COUNT", "0"))
    with state.lock:
        state.followers.update(f"{prefix}{i}" for i in range(count))
    return app


def cardsys_app() -> Any:
    from bench.data import student_no

    app = bot_app()
    st = app.extensions["emulator_cardsys"]
    st.latency = int(os.environ.get("CARDBOT_BENCH_CARDSYS_LATENCY_MS", "0")) / 1000
    for i in range(1, int(os.environ.get("CARDBOT_BENCH_CARDSYS_ACCOUNTS", "0")) + 1):
        st.open(student_no(i), f"测试{i}", "123456", 10000)
    return app
