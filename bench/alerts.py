"""Row 3c: alerts for a burst of card entries (one canteen at noon): queued, then drained (issue 14: 10,000 entries'
alerts queued in < 10 s, drained at ≥ 500 notices/s).

Every card is bound, its account follows and chose the each-spend and large-spend alerts. The queue phase calls
``bot.card_entries.record_entry`` (what ``POST /integration/card-entries`` runs after the signature check) for one
spend per card from ``THREADS`` threads, as the card system's concurrent pushes would: each entry posts to the ledger
and queues its alerts in the same transaction. Measured twice, without and with alerts chosen, so the row shows what
the alerts add. The drain phase releases the held (merging) spend alerts and runs the same worker processes as the
outbox row (``bench.outbox._drain_processes``) against the emulator's template API.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Settings
from bench.outbox import _counts, _drain_processes
from bot.config import Config

THREADS = 8
TARGET_QUEUE_S = 10.0
TARGET_DRAIN_PER_S = 500.0


def _choose_alerts(engine: Any, first: int, last: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO alert_settings (openid, spend, low_balance, low_threshold_fen, large_spend, large_threshold_fen, paused_by, updated_at)
                SELECT :pfx || g, true, true, 2000, true, 1500, NULL, now() AT TIME ZONE 'utc'
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
                """
            ),
            {"pfx": data.OPENID_PREFIX, "first": first, "last": last},
        )


def _burst(services: Any, first: int, n: int, tag: str) -> float:
    """One spend per card ``first..first+n-1`` through ``record_entry``, from ``THREADS`` threads; seconds taken."""
    from bot.card_entries import CardEntry, record_entry

    at = datetime.now(UTC).replace(tzinfo=None)

    def one(i: int) -> None:
        record_entry(services, CardEntry(f"{tag}{i}", str(2000000000 + i), -(1200 + i % 700), "第一食堂 Canteen 1", at))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(first, first + n)))
    return time.perf_counter() - t0


def run(settings: Settings, cfg: Config, services: Any, report: Any, env_vars: dict[str, str]) -> dict[str, Any]:
    engine = services.engine
    n = 1000 if settings.quick else 10_000
    data.add_cardholders(engine, 1, 2 * n)
    data.analyze(engine)
    plain = _burst(services, n + 1, n, "P")  # cards without alerts: the entries alone
    _choose_alerts(engine, 1, n)
    with_alerts = _burst(services, 1, n, "A")
    with engine.connect() as conn:
        queued = dict(conn.execute(text("SELECT kind, count(*) FROM outbox_notices GROUP BY kind")).all())
    report(f"alerts: {n} entries in {plain:.2f} s without alerts, {with_alerts:.2f} s with them; queued {queued}")
    with engine.begin() as conn:  # release the spend alerts held for merging (and any quiet-hours hold) to time the drain
        conn.execute(text("UPDATE outbox_notices SET next_attempt_at = now() AT TIME ZONE 'utc' - interval '1 second', urgent = true"))
    drained = _drain_processes(engine, 2, env_vars)
    counts = _counts(engine)
    sent = counts.get("sent", 0)
    per_s = sent / drained["seconds"] if drained["seconds"] else 0.0
    report(f"alerts drain, 2 worker processes: {sent} sent in {drained['seconds']:.2f} s = {per_s:.0f}/s; statuses {counts}")
    return {
        "entries": n,
        "queue_seconds": with_alerts,
        "queue_seconds_without_alerts": plain,
        "queued": queued,
        "drain_seconds": drained["seconds"],
        "drain_per_s": per_s,
        "statuses": counts,
        "targets": {"queue < 10 s": with_alerts < TARGET_QUEUE_S, "drain ≥ 500/s": per_s >= TARGET_DRAIN_PER_S},
        "note": f"record_entry from {THREADS} threads in one process (the card system's concurrent pushes, without HTTP and "
        "signature checks); PostgreSQL on the same machine.",
    }
