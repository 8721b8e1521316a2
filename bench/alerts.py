"""Row 3c: alerts for a burst of card entries (one canteen at noon): queued, then drained (issue 14: 10,000 entries'
alerts queued in < 10 s, drained at ≥ 500 notices/s).

Every card is bound, its account follows and chose the each-spend, large-spend and low-balance alerts. The queue
phase calls ``bot.card_entries.record_entry`` (what ``POST /integration/card-entries`` runs after the signature check)
for one spend per card from ``PROCESSES`` processes of ``bench.pusher.THREADS`` threads each, as the card system's
concurrent pushes arrive at the bot's gunicorn workers in production (several worker processes; one GIL-bound
process is not what production runs): each entry posts to the ledger and, its card's accounts having chosen alerts,
is marked ``alerts_due`` in the same transaction. Beside the pushers one worker process (``bench.drainer alerts``,
as ``cardbot worker`` runs: a pass, then its 1 s interval) queues the marked spends' alerts a batch at a time
(``bot.alerts.queue_due``); the alerts are queued when that worker has done the last marked spend. Measured twice, without and with alerts chosen,
so the row shows what the alerts add; the CPU per entry is the pushing processes', the alerts worker's and the
database's. The drain phase releases the held (merging) spend alerts and runs the same worker processes as the
outbox row (``bench.outbox._drain_processes``) against the emulator's template API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import psutil
from sqlalchemy import text

from bench import data, pusher
from bench.env import ROOT, Settings
from bench.outbox import _counts, _drain_processes
from bot.config import Config

PROCESSES = 2
# The tables the row loads, analyzed before the bursts. Not the outbox: it starts empty here, as it never is in
# production (sent notices are kept), and an empty table analyzed makes PostgreSQL plan each account's lookups in it
# (held spend alert, alerts today) as a scan of the whole table, a plan the pushers' prepared statements then keep
# while the burst fills it. Never analyzed, it is planned as production's is: by the account's index.
LOADED = ("cardholders", "ledger_entries", "wechat_users", "bindings", "alert_settings")
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


def _db_cpu(db_name: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process serving the bench database (its command line names it)."""
    out = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(db_name in part for part in p.info["cmdline"] or []) and "postgres" in (p.info["cmdline"] or [""])[0]:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def _burst(env_vars: dict[str, str], db_name: str, first: int, n: int, tag: str) -> dict[str, float]:
    """One spend per card ``first..first+n-1`` through ``record_entry`` from ``PROCESSES`` pusher processes (cards
    interleaved) and the alerts worker, started together once all are ready: seconds from "go" to the last entry
    posted and to the last alert queued, the pushers', the worker's and the database server processes' CPU per entry."""
    full_env = {**os.environ, **env_vars, "PYTHONPATH": str(ROOT)}
    share = [len(range(first + k, first + n, PROCESSES)) for k in range(PROCESSES)]

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    procs = [start("bench.pusher", tag, str(first + k), str(share[k]), str(PROCESSES)) for k in range(PROCESSES)]
    worker = start("bench.drainer", "alerts")

    def tell(p: subprocess.Popen[str], line: str) -> None:
        assert p.stdin is not None
        p.stdin.write(line + "\n")
        p.stdin.flush()

    try:
        for p in [*procs, worker]:
            line = p.stdout.readline() if p.stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(f"pusher or worker did not start: {line!r}")
        db0 = _db_cpu(db_name)
        t0 = time.perf_counter()
        for p in [*procs, worker]:
            tell(p, "go")
        outs = []
        for p in procs:
            assert p.stdout is not None
            outs.append(json.loads(p.stdout.readline()))
        pushed = time.perf_counter() - t0
        tell(worker, "done")
        assert worker.stdout is not None
        queued = json.loads(worker.stdout.readline())
        db1 = _db_cpu(db_name)  # the pushers keep their connections until "exit"
        for p in procs:
            p.communicate("exit\n", timeout=60)
        worker.wait(timeout=60)
    finally:
        for p in [*procs, worker]:
            if p.poll() is None:
                p.kill()
    db_s = sum(cpu - db0.get(pid, 0.0) for pid, cpu in db1.items())
    return {
        "seconds": max(pushed, queued["seconds"]),
        "pushed_seconds": pushed,
        "cpu_ms_per_entry": 1000 * sum(o["cpu_s"] for o in outs) / n,
        "worker_cpu_ms_per_entry": 1000 * queued["cpu_s"] / n,
        "db_cpu_ms_per_entry": 1000 * db_s / n,
    }


def run(settings: Settings, cfg: Config, services: Any, report: Any, env_vars: dict[str, str]) -> dict[str, Any]:
    engine = services.engine
    n = 1000 if settings.quick else 10_000
    data.add_cardholders(engine, 1, 2 * n)
    data.analyze(engine, LOADED)
    plain = _burst(env_vars, settings.db_name, n + 1, n, "P")  # cards without alerts: the entries alone
    _choose_alerts(engine, 1, n)
    data.analyze(engine, LOADED)
    alerted = _burst(env_vars, settings.db_name, 1, n, "A")
    with_alerts = alerted["seconds"]
    with engine.connect() as conn:
        queued = dict(conn.execute(text("SELECT kind, count(*) FROM outbox_notices GROUP BY kind")).all())
    report(
        f"alerts: {n} entries in {plain['seconds']:.2f} s without alerts ({plain['cpu_ms_per_entry']:.2f} ms CPU each, "
        f"database {plain['db_cpu_ms_per_entry']:.2f} ms), {with_alerts:.2f} s with them ({alerted['cpu_ms_per_entry']:.2f} ms CPU each, "
        f"alerts worker {alerted['worker_cpu_ms_per_entry']:.2f} ms, database {alerted['db_cpu_ms_per_entry']:.2f} ms; "
        f"posted in {alerted['pushed_seconds']:.2f} s); queued {queued}"
    )
    with engine.begin() as conn:  # release the spend alerts held for merging (and any quiet-hours hold) to time the drain
        conn.execute(text("UPDATE outbox_notices SET next_attempt_at = now() AT TIME ZONE 'utc' - interval '1 second', urgent = true"))
    drained = _drain_processes(engine, 2, env_vars)
    counts = _counts(engine)
    sent = counts.get("sent", 0)
    per_s = sent / drained["seconds"] if drained["seconds"] else 0.0
    worker_ms = 1000 * drained["cpu_s"] / sent if sent else float("nan")
    report(
        f"alerts drain, 2 worker processes: {sent} sent in {drained['seconds']:.2f} s = {per_s:.0f}/s, "
        f"worker CPU {worker_ms:.2f} ms each; statuses {counts}"
    )
    return {
        "entries": n,
        "queue_seconds": with_alerts,
        "queue_seconds_without_alerts": plain["seconds"],
        "pushed_seconds": alerted["pushed_seconds"],
        "cpu_ms_per_entry": alerted["cpu_ms_per_entry"],
        "worker_cpu_ms_per_entry": alerted["worker_cpu_ms_per_entry"],
        "cpu_ms_per_entry_without_alerts": plain["cpu_ms_per_entry"],
        "db_cpu_ms_per_entry": alerted["db_cpu_ms_per_entry"],
        "db_cpu_ms_per_entry_without_alerts": plain["db_cpu_ms_per_entry"],
        "queued": queued,
        "drain_seconds": drained["seconds"],
        "drain_per_s": per_s,
        "drain_worker_cpu_ms_per_notice": worker_ms,
        "statuses": counts,
        "targets": {"queue < 10 s": with_alerts < TARGET_QUEUE_S, "drain ≥ 500/s": per_s >= TARGET_DRAIN_PER_S},
        "note": f"record_entry from {PROCESSES} processes of {pusher.THREADS} threads (the card system's concurrent pushes as "
        f"{PROCESSES} gunicorn workers take them, without HTTP and signature checks; production runs several worker processes, "
        "not one GIL-bound process), one alerts worker beside them queuing the marked spends' alerts a batch at a time "
        "(`bot.alerts.queue_due`, a pass every second as `cardbot worker` runs); queued = when it finished the last one. "
        "PostgreSQL on the same machine. CPU per entry: the pushing processes', the alerts worker's and their PostgreSQL "
        "server processes'; two cores take 10,000 entries in 10 s only if they add up to under 2 ms per entry.",
    }
