"""Row 2: ``POST /pay/notify`` throughput with real signatures, real AES-GCM resources and concurrent duplicates, for
both products of the payment hall, one row after the other on the same bot server.

Notifies are built by the emulator's own ``signed_notify`` (the platform key signs, the APIv3 key encrypts), for
orders that exist in the database unpaid. Every payment is notified twice, two separately signed copies next
to each other in the send order, so with 16 connections both copies are in flight together — as when WeChat Pay
retries from two servers at once. The bot answers once the payment and its credit are committed
(``bot.topup.apply_payment``):

- card: top-ups of the payer's card, to the card system the bench runs with (``[cardsystem] adapter = "ledger"``, the
  bot's own ledger in the same database), credited inside the payment's transaction, so before the answer;
- power: electricity for a dorm room (product ``power``, target a room id of the emulator's electricity system), each
  one signed power/1 recharge over HTTP to the emulator's electricity system (one gunicorn process), sent right after
  the answer by the server's delivery threads (``bot.credits.AfterAnswer``; the answers that came in meanwhile
  recorded in one transaction by one recorder thread per worker).

A row's time runs from its first notify to its last payment's delivery, so payments delivered/s count both ways alike.

Before the rows, ``WARM`` payments of each product are notified, uncounted, so neither row pays for a cold server.
Afterwards every order must be delivered exactly once, counted on our side (order paid, credit delivered, one receipt)
and at the target system (card: one ledger entry and balance = entries; power: each ref recharged once).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from bench import data
from bench.env import Server, Settings, free_port, tree_cpu_seconds
from bench.runner import profile_server, run_load
from bot.clock import SCHOOL_TZ
from bot.config import Config
from bot.emulator.electricity import label, room_ids
from bot.emulator.pay import Order, signed_notify

AMOUNT_FEN, FEE_FEN = 5000, 15  # a quick card top-up of 50 yuan and its fee
POWER_FEN = 5000  # 50 yuan of electricity (no fee)
CARD_TAG, POWER_TAG, CARD_HTTP_TAG = "n", "w", "h"  # order numbers ``B{tag}00000001…``, the refs each row counts
WARM = 100  # payments of each product made before the rows, not counted
PROFILED = 1000  # payments of each row's profile, not counted


def build_notifies(
    cfg: Config,
    order_nos: list[str],
    first_card: int,
    copies: int = 2,
    *,
    total_fen: int = AMOUNT_FEN + FEE_FEN,
    description: str = "校园卡充值",
) -> list[tuple[str, bytes, dict[str, str]]]:
    """``copies`` separately signed SUCCESS notifies for each order, paid by the account of card ``first_card + i``."""
    key = serialization.load_pem_private_key(Path(cfg.emulator.platform_private_key_path).read_bytes(), None)
    now = time.time()
    out = []
    for i, no in enumerate(order_nos):
        order = Order(
            appid=cfg.wechat.appid,
            mchid=cfg.pay.mchid,
            out_trade_no=no,
            description=description,
            total=total_fen,
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


def run(
    settings: Settings,
    cfg: Config,
    services: Any,
    bot: Server,
    report: Callable[[str], None],
    emulator_pid: int,
    start: Callable[..., Server],
    production: dict[str, str],
) -> dict[str, Any]:
    n = 300 if settings.quick else 3000
    engine = services.engine
    # payers: cards 1..n top up their own card, n+1..2n pay for a room each, then the warm-up's, then the profiles',
    # then the top-ups of the card row over cardsys/1 (with its own warm-up)
    warm_card, warm_power, profile_card = 2 * n + 1, 2 * n + WARM + 1, 2 * n + 2 * WARM + 1
    profiled = PROFILED if not settings.quick else 300
    profile_power = profile_card + profiled
    over_http = profile_power + profiled
    data.add_cardholders(engine, 1, over_http + n + WARM + profiled - 1)
    rooms = room_ids()
    cards = _card_orders(engine, 1, n, CARD_TAG)
    power = _power_orders(engine, n + 1, rooms[:n], POWER_TAG)
    warm = _card_notifies(cfg, _card_orders(engine, warm_card, WARM, "u"), warm_card)
    warm += _power_notifies(cfg, _power_orders(engine, warm_power, rooms[n : n + WARM], "v"), warm_power)
    data.analyze(engine)
    result: dict[str, Any] = {"orders": n, "concurrency": settings.concurrency}

    # both products paid once on every worker first, so that neither row pays for the server's first requests
    run_load(settings, "paynotify-warmup", bot, warm, once=True, warmup=0, duration=600)
    result["card"] = notify_row(
        settings, "paynotify", bot, emulator_pid, _card_notifies(cfg, cards, 1), _answered(engine, CARD_TAG, n), lambda: _card_delivered(engine, n)
    )
    day = _school_day(services)
    result["power"] = notify_row(
        settings,
        "paynotify-power",
        bot,
        emulator_pid,
        _power_notifies(cfg, power, n + 1),
        _answered(engine, POWER_TAG, n),
        lambda: _power_delivered(services, engine, n + 1, n, day),
    )
    result["card_http"] = _card_over_cardsys(settings, cfg, start, production, over_http, n, profiled)
    for key in ("card", "power", "card_http"):
        r = result[key]
        report(
            f"pay notify ({key}): {r['notifies_per_s']:.0f} notifies/s ({r['payments_per_s']:.0f} payments delivered/s), "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, statuses {r['statuses']}, exactly once: {'yes' if r['exactly_once'] else 'NO'} "
            f"({r['check']})"
        )
    if settings.profile:
        seconds = _profile_seconds(settings)
        more = _card_orders(engine, profile_card, profiled, "p")
        result["profile"] = profile_server(settings, "paynotify", bot, _card_notifies(cfg, more, profile_card), seconds, once=True)
        rooms_more = rooms[n + WARM : n + WARM + profiled]
        more = _power_orders(engine, profile_power, rooms_more, "q")
        result["profile_power"] = profile_server(settings, "paynotify-power", bot, _power_notifies(cfg, more, profile_power), seconds, once=True)
    return result


def _card_over_cardsys(
    settings: Settings, cfg: Config, start: Callable[..., Server], production: dict[str, str], first: int, n: int, profiled: int
) -> dict[str, Any]:
    """The card row again, with the card system a school runs: cardsys/1 over HTTP (``[cardsystem] adapter = "http"``)
    to the emulator's card system in its own gunicorn process (one worker, as many threads as the electricity
    system's), so a top-up is delivered as an electricity payment is: right after the answer, by the delivery threads.
    Cards ``first``..``first + n - 1`` pay the row, the next ``WARM`` the warm-up, then ``profiled`` the profile; the
    card system has an account for each."""
    from bench.cardsys import on_http_card_system
    from bot.runtime import build_runtime

    port = free_port()
    url = f"http://127.0.0.1:{port}/emulator"
    cardsys = start(
        "paynotify-cardsys",
        "bench.apps:cardsys_app()",
        port=port,
        workers=1,
        threads=16,
        extra_env={"CARDBOT_BENCH_CARDSYS_ACCOUNTS": str(first + n + WARM + profiled)},
    )
    cs_env, cs_cfg = on_http_card_system(cfg, url)
    cs_services = build_runtime(cs_cfg)
    try:
        bot = start("bot-pay-cs", "bench.apps:bot_app()", extra_env={**production, **cs_env})
        try:
            engine = cs_services.engine
            warm = _card_notifies(cfg, _card_orders(engine, first + n, WARM, "x"), first + n)
            run_load(settings, "paynotify-cs-warmup", bot, warm, once=True, warmup=0, duration=600)
            orders = _card_orders(engine, first, n, CARD_HTTP_TAG)
            data.analyze(engine)
            day = _school_day(cs_services)
            row = notify_row(
                settings,
                "paynotify-cs",
                bot,
                cardsys.proc.pid,
                _card_notifies(cfg, orders, first),
                _answered(engine, CARD_HTTP_TAG, n),
                lambda: _card_delivered_over_http(cs_services, n, day),
            )
            if settings.profile:
                more = _card_orders(engine, first + n + WARM, profiled, "y")
                row["profile"] = profile_server(
                    settings, "paynotify-cs", bot, _card_notifies(cfg, more, first + n + WARM), _profile_seconds(settings), once=True
                )
            return row
        finally:
            bot.stop()
    finally:
        cs_services.close()
        cardsys.stop()


def _profile_seconds(settings: Settings) -> float:
    return 4 if settings.quick else 8


def _card_delivered_over_http(services: Any, n: int, since: date) -> dict[str, Any]:
    """Counted on our side and at the card system, which lists credits by school day (the row may span two)."""
    like = f"B{CARD_HTTP_TAG}%"
    with services.engine.connect() as conn:
        paid = conn.execute(text("SELECT count(*) FROM topup_orders WHERE status = 'paid' AND order_no LIKE :p"), {"p": like}).scalar_one()
        by_status = _credits(conn, "card", like)
        receipts = conn.execute(
            text("SELECT count(*) FROM outbox_notices WHERE kind = 'topup_receipt' AND dedup_key LIKE :k"), {"k": f"topup:{like}"}
        ).scalar_one()
    made = Counter(r.ref for day in {since, _school_day(services)} for r in services.card_system.credits_on(day) if r.ref.startswith(like[:-1]))
    twice = sum(1 for c in made.values() if c > 1)
    return {
        "delivered": by_status.get("delivered", 0),
        "exactly_once": len(made) == paid == receipts == n and twice == 0 and by_status == {"delivered": n},
        "check": f"card system (cardsys/1): {len(made)} refs credited, {twice} twice; "
        f"ours: {paid} orders paid, credits {by_status}, {receipts} receipts",
    }


def _card_orders(engine: Any, first_card: int, count: int, tag: str) -> list[str]:
    return data.add_orders(engine, first_card, count, AMOUNT_FEN, FEE_FEN, tag)


def _power_orders(engine: Any, first_card: int, rooms: list[str], tag: str) -> list[str]:
    """An order for each room, by the account that keeps it (one room per payer's card from ``first_card`` on)."""
    data.add_rooms(engine, first_card, {r: label(r) for r in rooms})
    return data.add_orders(engine, first_card, len(rooms), POWER_FEN, 0, tag, product="power", targets=rooms)


def _card_notifies(cfg: Config, order_nos: list[str], first_card: int) -> list[tuple[str, bytes, dict[str, str]]]:
    return build_notifies(cfg, order_nos, first_card)


def _power_notifies(cfg: Config, order_nos: list[str], first_card: int) -> list[tuple[str, bytes, dict[str, str]]]:
    return build_notifies(cfg, order_nos, first_card, total_fen=POWER_FEN, description="宿舍电费")


def notify_row(
    settings: Settings,
    name: str,
    bot: Server,
    emulator_pid: int,
    reqs: list[tuple[str, bytes, dict[str, str]]],
    answered: Callable[[], bool],
    delivered: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Send every notify once (both copies of a payment at once), wait until every payment's delivery is answered
    (``answered()``: a payment may be delivered right after its notify was answered), then count what was delivered
    (``delivered()``: ``delivered`` payments, ``exactly_once``, ``check`` — the evidence in words). Payments delivered/s
    run from the first notify to the last delivery. The emulator's CPU is the electricity system's share of the two
    cores (the card row's card system is in PostgreSQL's)."""
    e0 = tree_cpu_seconds(emulator_pid)
    r = run_load(settings, name, bot, reqs, once=True, warmup=0, duration=600, settled=answered)
    emulator_cpu = tree_cpu_seconds(emulator_pid) - e0
    counted = delivered()
    payments = max(1, counted["delivered"])
    return {
        "requests": r["requests"],
        "notifies_per_s": r["throughput"],
        "payments_per_s": counted["delivered"] / (r["wall_s"] + r["settle_s"]),
        "settle_s": r["settle_s"],
        "server_cpu_ms_per_payment": 1000 * r["server_cpu_s"] / payments,
        "emulator_cpu_ms_per_payment": 1000 * emulator_cpu / payments,
        "p50_ms": r["p50_ms"],
        "p99_ms": r["p99_ms"],
        "failed": sum(v for k, v in r["statuses"].items() if not k.startswith("2")) + sum(r["errors"].values()),
        "statuses": r["statuses"],
        "loadgen_cpu_pct": r["loadgen_cpu_pct"],
        "server_cpu_pct": r["server_cpu_pct"],
        "backend_cpu_pct": r["backend_cpu_pct"],
        "emulator_cpu_pct": 100 * emulator_cpu / (r["wall_s"] + r["settle_s"]),
        **counted,
    }


def _answered(engine: Any, tag: str, n: int) -> Callable[[], bool]:
    """Whether every payment of the row has its delivery answered (no credit of its refs is still pending)."""
    query = text("SELECT count(*) FROM card_credits WHERE ref LIKE :p AND status <> 'pending'")

    def answered() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(query, {"p": f"B{tag}%"}).scalar_one() >= n)

    return answered


def _card_delivered(engine: Any, n: int) -> dict[str, Any]:
    like = f"B{CARD_TAG}%"
    with engine.connect() as conn:
        paid = conn.execute(text("SELECT count(*) FROM topup_orders WHERE status = 'paid' AND order_no LIKE :p"), {"p": like}).scalar_one()
        by_status = _credits(conn, "card", like)
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries WHERE kind = 'topup' AND ref LIKE :p"), {"p": like}).scalar_one()
        receipts = conn.execute(
            text("SELECT count(*) FROM outbox_notices WHERE kind = 'topup_receipt' AND dedup_key LIKE :k"), {"k": f"topup:{like}"}
        ).scalar_one()
        wrong = conn.execute(
            text(
                "SELECT count(*) FROM cardholders c JOIN topup_orders o ON o.cardholder_id = c.id "
                "WHERE c.balance_fen <> (SELECT sum(amount_fen) FROM ledger_entries e WHERE e.cardholder_id = c.id)"
            )
        ).scalar_one()
    return {
        "delivered": by_status.get("delivered", 0),
        "exactly_once": paid == entries == receipts == n and by_status == {"delivered": n} and wrong == 0,
        "check": f"card system (the ledger): {entries} top-up entries, balance ≠ entries on {wrong} cards; "
        f"ours: {paid} orders paid, credits {by_status}, {receipts} receipts",
    }


def _power_delivered(services: Any, engine: Any, first_card: int, n: int, since: date) -> dict[str, Any]:
    """Counted on our side and at the electricity system, which lists recharges by school day (the row may span two)."""
    like = f"B{POWER_TAG}%"
    with engine.connect() as conn:
        paid = conn.execute(
            text("SELECT count(*) FROM topup_orders WHERE status = 'paid' AND product = 'power' AND order_no LIKE :p"), {"p": like}
        ).scalar_one()
        by_status = _credits(conn, "power", like)
        receipts = conn.execute(
            text("SELECT count(*) FROM outbox_notices WHERE kind = 'power_receipt' AND dedup_key LIKE :k"), {"k": f"power:{like}"}
        ).scalar_one()
        read = conn.execute(
            text(
                "SELECT count(*) FROM power_rooms r JOIN card_credits c ON c.target = r.room_id "
                "WHERE c.product = 'power' AND c.ref LIKE :p AND r.remaining_kwh IS NOT NULL"
            ),
            {"p": like},
        ).scalar_one()
        on_cards = conn.execute(
            text("SELECT count(*) FROM ledger_entries WHERE kind <> 'opening' AND cardholder_id BETWEEN :a AND :b"),
            {"a": first_card, "b": first_card + n - 1},
        ).scalar_one()
    made = Counter(r.ref for day in {since, _school_day(services)} for r in services.electricity.recharges_on(day) if r.ref.startswith(like[:-1]))
    twice = sum(1 for c in made.values() if c > 1)
    return {
        "delivered": by_status.get("delivered", 0),
        "exactly_once": len(made) == paid == receipts == read == n and twice == 0 and by_status == {"delivered": n} and on_cards == 0,
        "check": f"electricity system: {len(made)} refs recharged, {twice} twice; ours: {paid} orders paid, credits {by_status}, "
        f"{receipts} receipts, {read} rooms with the new reading, {on_cards} entries on the payers' cards",
    }


def _credits(conn: Any, product: str, like: str) -> dict[str, int]:
    rows = conn.execute(
        text("SELECT status, count(*) FROM card_credits WHERE product = :product AND ref LIKE :p GROUP BY status"), {"product": product, "p": like}
    )
    return {status: count for status, count in rows.all()}


def _school_day(services: Any) -> date:
    return services.clock.now().astimezone(SCHOOL_TZ).date()
