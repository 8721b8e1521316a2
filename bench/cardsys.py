"""Rows 5a–5c: the bot on the ``http`` card system (cardsys/1) against a card system answering every call in 20 ms
(the emulator's card system with its ``latency`` knob, one gunicorn process: its state is in memory).

(a) A BALANCE click on the ``http`` card system: the bot served by gunicorn, its balance reply one
    ``GET /accounts/{student_no}`` to the card system (bot/balances.py), at a fixed 100 req/s.
(d) A lost-card report (#14: one reply, < 1 s p99): ``LOSS_REPORTS`` students each tap 挂失 (not timed), then
    answer 确认 at a fixed ``LOSS_RATE``/s, timed: the card marked lost at the card system (``POST
    /accounts/{student_no}/loss``), the report recorded, every bound account's notice queued, the reply. Counted
    afterwards: one report per card, each ``lost``.
(b) Credit delivery: pending credits due now, delivered by ``bot.credits.deliver_due`` as the worker calls it, pass
    after pass until none is left; credits per second.
(c) A backlog of 20,000 credits paid over a 4-hour maintenance window (pending, ``waiting_for = maintenance``, due at
    the window's end), delivered the same way; seconds until the last one is on its card. Both (b) and (c) are
    counted at the card system's side (``GET /credits?date=``): each ref credited exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Server, Settings, free_port
from bench.runner import run_load
from bench.webhook import click_requests, create_time, pusher, text_requests
from bot.config import Config

LATENCY_MS = 20
CARDS = 2000
RATE = 100
BACKLOG = 20_000
WINDOW_HOURS = 4
LOSS_REPORTS, LOSS_RATE = 400, 20  # cards of their own (after the credits' 1..CARDS) reported lost, 20 a second


def run(
    settings: Settings,
    cfg: Config,
    services: Any,
    start: Callable[..., Server],
    report: Callable[[str], None],
    production: dict[str, str],
    env_vars: dict[str, str],
) -> dict[str, Any]:
    from bot import credits
    from bot.clock import SCHOOL_TZ
    from bot.runtime import build_runtime

    engine = services.engine
    data.add_cardholders(engine, 1, CARDS + LOSS_REPORTS)
    data.analyze(engine)
    port = free_port()
    cs_env, cs_cfg = on_http_card_system(cfg, f"http://127.0.0.1:{port}/emulator")
    cardsys = start(
        "cardsys",
        "bench.apps:cardsys_app()",
        port=port,
        workers=1,
        threads=32,
        extra_env={"CARDBOT_BENCH_CARDSYS_LATENCY_MS": str(LATENCY_MS), "CARDBOT_BENCH_CARDSYS_ACCOUNTS": str(CARDS + LOSS_REPORTS)},
    )
    result: dict[str, Any] = {"latency_ms": LATENCY_MS, "threads": credits.DELIVER_THREADS}
    try:
        bot = start("bot-cs", "bench.apps:bot_app()", extra_env={**production, **cs_env})
        try:
            result["a"] = _balance_clicks(settings, cfg, bot, report)
            result["d"] = _loss_reports(settings, cfg, engine, bot, report)
        finally:
            bot.stop()
        # the same bot in this process (as its worker), on the http card system
        cs_services = build_runtime(cs_cfg)
        try:
            day = cs_services.clock.now().astimezone(SCHOOL_TZ).date()
            n = 2000 if settings.quick else 4000
            result["b"] = _deliver(cs_services, engine, cardsys, "B", n, maintenance=False, day=day)
            report(f"(b) {n} credits in {result['b']['seconds']:.1f} s: {result['b']['per_s']:.0f}/s, {result['b']['check']}")
            n = 4000 if settings.quick else BACKLOG
            result["c"] = _deliver(cs_services, engine, cardsys, "M", n, maintenance=True, day=day)
            report(f"(c) backlog of {n}: {result['c']['seconds']:.1f} s, {result['c']['check']}")
            n = 2000 if settings.quick else 4000
            result["b2"] = _deliver(cs_services, engine, cardsys, "W", n, maintenance=False, day=day, processes=2, env_vars={**env_vars, **cs_env})
            report(
                f"(b) with 2 worker processes: {n} credits in {result['b2']['seconds']:.1f} s: {result['b2']['per_s']:.0f}/s, {result['b2']['check']}"
            )
        finally:
            cs_services.close()
    finally:
        cardsys.stop()
    return result


def on_http_card_system(cfg: Config, url: str) -> tuple[dict[str, str], Config]:
    """The bot on the ``http`` card system at ``url``: the environment for a bot server, the config for this process."""
    env = {"CARDBOT_CARDSYSTEM__ADAPTER": "http", "CARDBOT_CARDSYSTEM__API_BASE_URL": url}
    return env, cfg.model_copy(update={"cardsystem": cfg.cardsystem.model_copy(update={"adapter": "http", "api_base_url": url})})


def _balance_clicks(settings: Settings, cfg: Config, bot: Server, report: Callable[[str], None]) -> dict[str, Any]:
    bound = [data.openid(i) for i in range(1, CARDS + 1)]
    probe = pusher(cfg, "plain", bot).click(bound[0], "BALANCE")
    if "100.00" not in probe.content:
        return {"error": f"the probe click did not show the card system's balance: {probe.content[:120]!r}"}
    duration = min(settings.duration, 20.0)
    reqs = click_requests(cfg, "plain", "BALANCE", bound, int((duration + 3) * RATE) + 100)
    out = run_load(settings, "cs_balance", bot, reqs, rate=RATE, duration=duration)
    out["probe"] = probe.content
    report(f"(a) BALANCE at {RATE}/s: p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms")
    return out


def _loss_reports(settings: Settings, cfg: Config, engine: Any, bot: Server, report: Callable[[str], None]) -> dict[str, Any]:
    first, last = CARDS + 1, CARDS + (100 if settings.quick else LOSS_REPORTS)
    probe_user, *users = [data.openid(i) for i in range(first, last + 1)]
    p = pusher(cfg, "plain", bot)
    p.click(probe_user, "LOSS", create_time=create_time(probe_user))
    probe = p.text(probe_user, "确认")
    if "已挂失" not in probe.content:
        return {"error": f"the probe report was not answered as done: {probe.content[:120]!r}"}
    asked = run_load(settings, "cs_loss_ask", bot, click_requests(cfg, "plain", "LOSS", users, len(users)), once=True, warmup=0, duration=600)
    confirms = text_requests(cfg, users, ["确认"] * len(users))
    out = run_load(settings, "cs_loss", bot, confirms, rate=LOSS_RATE, once=True, warmup=0, duration=len(users) / LOSS_RATE + 60)
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                text("SELECT status, count(*) FROM card_losses WHERE cardholder_id BETWEEN :a AND :b GROUP BY status"), {"a": first, "b": last}
            ).all()
        )
    cards = last - first + 1
    out["reports"] = len(users)
    out["asked_failed"] = sum(v for k, v in asked["statuses"].items() if not str(k).startswith("2")) + sum(asked["errors"].values())
    out["exactly_once"] = by_status == {"lost": cards}
    out["check"] = f"{cards} cards (the probe's included): reports by status {by_status}"
    out["probe"] = probe.content
    report(f"(d) loss reports at {LOSS_RATE}/s: p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms, {out['check']}")
    return out


def _deliver(
    services: Any,
    engine: Any,
    cardsys: Server,
    prefix: str,
    n: int,
    *,
    maintenance: bool,
    day: Any,
    processes: int = 0,
    env_vars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Deliver ``n`` owed credits: in this process (as one worker), or in ``processes`` worker processes
    (``bench.drainer credits``, as a school running several ``cardbot worker``s)."""
    from bench.outbox import _workers
    from bot import credits

    _owe(engine, prefix, n, maintenance=maintenance)
    passes, t0, cpu0, cs0 = 0, time.perf_counter(), time.process_time(), cardsys.cpu_seconds()
    if processes:
        out = _workers(processes, env_vars or {}, "credits")
        seconds, bot_cpu_s = out["seconds"], out["cpu_s"]
    else:
        while credits.deliver_due(services):
            passes += 1
        seconds, bot_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    cpu = {"bot_ms": 1000 * bot_cpu_s / n, "cardsys_ms": 1000 * (cardsys.cpu_seconds() - cs0) / n}
    with engine.connect() as conn:
        by_status = dict(conn.execute(text("SELECT status, count(*) FROM card_credits WHERE ref LIKE :p GROUP BY status"), {"p": f"{prefix}%"}).all())
    made = Counter(r.ref for r in services.card_system.credits_on(day) if r.ref.startswith(prefix))
    twice = sum(1 for c in made.values() if c > 1)
    exactly_once = len(made) == n and twice == 0 and by_status == {"delivered": n}
    check = (
        f"card system: {len(made)} refs credited, {twice} twice; ours: {by_status}; "
        f"CPU per credit: bot {cpu['bot_ms']:.1f} ms, card system {cpu['cardsys_ms']:.1f} ms"
    )
    return {
        "n": n,
        "seconds": seconds,
        "per_s": n / seconds if seconds else 0.0,
        "passes": passes,
        "exactly_once": exactly_once,
        "check": check,
        **cpu,
    }


def _owe(engine: Any, prefix: str, n: int, *, maintenance: bool) -> None:
    """``n`` pending credits spread over the cards; for the backlog, paid across the 4-hour window and due at its end."""
    spread = f"interval '1 second' * ((g * {WINDOW_HOURS * 3600}) / {n})" if maintenance else "interval '0'"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO card_credits (ref, channel, cardholder_id, student_no, target, openid, amount_fen, fee_fen, paid_at, status,
                                          tries, next_try_at, waiting_for, created_at)
                SELECT :prefix || g, 'wechat_pay', 1 + g % {CARDS}, (2000000000 + 1 + g % {CARDS})::text, (2000000000 + 1 + g % {CARDS})::text,
                       '{data.OPENID_PREFIX}' || (1 + g % {CARDS}),
                       100, 0, now() AT TIME ZONE 'utc' - interval '{WINDOW_HOURS} hours' + {spread}, 'pending',
                       :tries, now() AT TIME ZONE 'utc', :waiting, now() AT TIME ZONE 'utc' - interval '{WINDOW_HOURS} hours' + {spread}
                FROM generate_series(1, :n) AS g
                """
            ),
            {"prefix": prefix, "n": n, "tries": 1 if maintenance else 0, "waiting": "maintenance" if maintenance else None},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE card_credits"))
