"""Row 2: ``POST /pay/notify`` throughput with real signatures, real AES-GCM resources and concurrent duplicates.

Notifies are built by the emulator's own ``signed_notify`` (the platform key signs, the APIv3 key encrypts), for
orders that exist in the database unpaid. Every payment is notified twice, two separately signed copies next
to each other in the send order, so with 16 connections both copies are in flight together — as when WeChat Pay
retries from two servers at once. Afterwards every order must be credited exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from bench import data
from bench.env import Server, Settings
from bench.runner import profile_server, run_load
from bot.config import Config
from bot.emulator.pay import Order, signed_notify

AMOUNT_FEN, FEE_FEN = 5000, 15


def build_notifies(cfg: Config, order_nos: list[str], first_card: int, copies: int = 2) -> list[tuple[str, bytes, dict[str, str]]]:
    key = serialization.load_pem_private_key(Path(cfg.emulator.platform_private_key_path).read_bytes(), None)
    now = time.time()
    out = []
    for i, no in enumerate(order_nos):
        order = Order(
            appid=cfg.wechat.appid,
            mchid=cfg.pay.mchid,
            out_trade_no=no,
            description="校园卡充值",
            total=AMOUNT_FEN + FEE_FEN,
            openid=data.openid(first_card + i),
            notify_url=cfg.pay.notify_url,
            time_expire=now + 900,
            prepay_id=f"wx{no}",
            trade_state="SUCCESS",
            transaction_id="4200" + no.encode().hex()[:28],
            success_time=now,
        )
        tx = order.transaction()
        for _ in range(copies):
            headers, body = signed_notify(tx, private_key=key, serial=cfg.pay.public_key_id, apiv3_key=cfg.pay.apiv3_key)
            out.append(("/pay/notify", body, headers))
    return out


def run(settings: Settings, cfg: Config, services: Any, bot: Server, report: Any) -> dict[str, Any]:
    n_orders = 300 if settings.quick else 3000
    engine = services.engine
    data.add_cardholders(engine, 1, n_orders + 1000)
    orders = data.add_orders(engine, 1, n_orders, AMOUNT_FEN, FEE_FEN, "n")
    data.analyze(engine)
    reqs = build_notifies(cfg, orders, 1)
    r = run_load(settings, "paynotify", bot, reqs, once=True, warmup=0, duration=600)
    with engine.connect() as conn:
        paid = conn.execute(text("SELECT count(*) FROM topup_orders WHERE status = 'paid' AND order_no LIKE 'Bn%'")).scalar_one()
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries WHERE kind = 'topup'")).scalar_one()
        receipts = conn.execute(text("SELECT count(*) FROM outbox_notices WHERE kind = 'topup_receipt'")).scalar_one()
        wrong = conn.execute(
            text(
                "SELECT count(*) FROM cardholders c JOIN topup_orders o ON o.cardholder_id = c.id "
                "WHERE c.balance_fen <> (SELECT sum(amount_fen) FROM ledger_entries e WHERE e.cardholder_id = c.id)"
            )
        ).scalar_one()
    once = paid == entries == receipts == n_orders and wrong == 0
    failed = sum(v for k, v in r["statuses"].items() if not k.startswith("2")) + sum(r["errors"].values())
    result = {
        "orders": n_orders,
        "requests": r["requests"],
        "concurrency": r["concurrency"],
        "notifies_per_s": r["throughput"],
        "payments_per_s": n_orders / r["wall_s"],
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "failed": failed,
        "statuses": r["statuses"],
        "exactly_once": "yes" if once else f"NO: paid {paid}, entries {entries}, receipts {receipts}, balance≠ledger {wrong}",
        "loadgen_cpu_pct": r["loadgen_cpu_pct"],
        "server_cpu_pct": r["server_cpu_pct"],
        "backend_cpu_pct": r["backend_cpu_pct"],
    }
    report(
        f"pay notify: {result['notifies_per_s']:.0f} notifies/s ({result['payments_per_s']:.0f} payments/s), p50 {r['p50_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms, statuses {r['statuses']}, exactly once: {result['exactly_once']}"
    )
    if settings.profile:
        more = data.add_orders(engine, n_orders + 1, 1000 if not settings.quick else 300, AMOUNT_FEN, FEE_FEN, "p")
        result["profile"] = profile_server(settings, "paynotify", bot, build_notifies(cfg, more, n_orders + 1), 4 if settings.quick else 8, once=True)
    return result
