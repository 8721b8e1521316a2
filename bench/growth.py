"""Row 4: balance and bills latency and the server's memory as the roster grows (1k → 100k → 1M cardholders).

Each stage adds cards (all bound, each with an opening entry) with one set-based INSERT per table, so 1M loads in
well under two minutes; card 1 is the busiest, with a year of entries (10 a day). A fresh server per stage, then
BALANCE clicks by random users across the whole roster and BILLS clicks by the busiest card's three bound users, both at
a fixed rate (open loop, so latency includes any queueing). The clicking users' profiles are in Redis as a message of
a moment ago left them (``bench.webhook.seed_profiles``, as in row (a)): the row measures the database as the roster
grows, not each user's first message of the week, which writes its ``wechat_users`` row whatever the roster's size.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text

from bench import data
from bench.env import Settings
from bench.runner import run_load
from bench.webhook import create_time, pusher, seed_profiles
from bot.config import Config

BALANCE_RATE = 100
BILLS_RATE = 20
BUSY_FAMILY = [data.openid(1), f"{data.OPENID_PREFIX}busy_a", f"{data.OPENID_PREFIX}busy_b"]  # the card's three bound users


def clicks(cfg: Config, key: str, openids: list[str]) -> list[tuple[str, bytes]]:
    """One request per openid given, each with a CreateTime unused so far, so every dedup key is new."""
    p = pusher(cfg, "plain")
    out = []
    for oid in openids:
        xml = p.xml(oid, "event", {"Event": "CLICK", "EventKey": key}, create_time=create_time(oid))
        query, body = p.envelope(xml, "plain")
        out.append(("/wechat?" + urlencode(query), body))
    return out


def run(settings: Settings, cfg: Config, services: Any, bot_server: Any, sizes: list[int], report: Any) -> dict[str, Any]:
    engine = services.engine
    seconds = 3.0 if settings.quick else 15.0
    rng = random.Random(7)
    stages: list[dict[str, Any]] = []
    loaded = 0
    busy = 0
    total_load = 0.0
    for size in sizes:
        t0 = time.perf_counter()
        data.add_cardholders(engine, loaded + 1, size)
        if loaded == 0:
            busy = data.add_busy_year(engine, 1)
            data.bind_more(engine, 1, BUSY_FAMILY[1:])
        data.analyze(engine)
        load_s = time.perf_counter() - t0
        total_load += load_s
        loaded = size
        with engine.connect() as conn:
            ledger_rows = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
        report(f"growth: {size:,} cardholders, {ledger_rows:,} ledger rows loaded in {load_s:.1f} s")
        stage: dict[str, Any] = {"cardholders": size, "ledger_rows": ledger_rows, "load_s": load_s}
        with bot_server() as bot:
            n = int((seconds + 2) * BALANCE_RATE) + 50
            users = [data.openid(rng.randint(2, size)) for _ in range(n)]
            seed_profiles(services, [*users, *BUSY_FAMILY])
            stage["balance"] = run_load(
                settings, f"growth-balance-{size}", bot, clicks(cfg, "BALANCE", users), rate=BALANCE_RATE, duration=seconds, warmup=1.0
            )
            n = int((seconds + 2) * BILLS_RATE) + 50
            family = [BUSY_FAMILY[i % 3] for i in range(n)]
            stage["bills"] = run_load(
                settings, f"growth-bills-{size}", bot, clicks(cfg, "BILLS", family), rate=BILLS_RATE, duration=seconds, warmup=1.0
            )
            stage["rss_mib"] = bot.rss_mib()
        b, bl = stage["balance"], stage["bills"]
        report(
            f"growth {size:,}: balance p50 {b['p50_ms']:.1f} / p99 {b['p99_ms']:.1f} ms ({b['statuses']}), "
            f"bills p50 {bl['p50_ms']:.1f} / p99 {bl['p99_ms']:.1f} ms ({bl['statuses']}), RSS {stage['rss_mib']:.0f} MiB"
        )
        stages.append(stage)
    notes = [f"Loading all {loaded:,} cardholders (cards, opening entries, users, bindings) took {total_load:.1f} s in total."]
    notes += explain(engine)
    return {"stages": stages, "busy_entries": busy, "balance_rate": BALANCE_RATE, "bills_rate": BILLS_RATE, "seconds": seconds, "notes": notes}


def explain(engine: Any) -> list[str]:
    """Plans of the two per-card queries at the largest size, for the busiest card (what the handlers send)."""
    queries = {
        "balance: last 5 entries": "SELECT * FROM ledger_entries WHERE cardholder_id = 1 ORDER BY created_at DESC, id DESC LIMIT 5",
        "bills: this month's entries": (
            "SELECT * FROM ledger_entries WHERE cardholder_id = 1 AND created_at >= date_trunc('month', now() AT TIME ZONE 'utc') "
            "ORDER BY created_at DESC, id DESC"
        ),
        "card by openid": "SELECT * FROM bindings b JOIN cardholders c ON c.id = b.cardholder_id WHERE b.openid = 'o_bench_1'",
    }
    out = ["", "Query plans at the largest size (busiest card):", ""]
    with engine.connect() as conn:
        for label, sql in queries.items():
            plan = [r[0] for r in conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + sql))]
            keep = [p.strip().removeprefix("->").strip() for p in plan]
            keep = [p for p in keep if not p.startswith(("Planning", "Sort Key", "Presorted", "Full-sort", "Sort Method", "Pre-sorted"))]
            out.append(f"- {label}: `" + " → ".join(keep) + "`")
    return out
