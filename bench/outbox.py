"""Row 3a: how fast the worker drains the notice outbox into the emulator's template-message API.

Pending ``topup_receipt`` notices are bulk-inserted the way ``post_entry`` queues them; ``bot.outbox.drain``
(what ``cardbot worker`` runs) is called until nothing is left, against the emulator over real HTTP (token from
the emulator, every send checked for follower, template id and field lengths). The emulator runs in one
gunicorn process; its job-finish push back to /wechat is off so only the drain is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import ROOT, Settings
from bot.config import Config

RECEIPT = {"amount": "50.00元", "fee": "0.15元", "balance": "123.45元", "time": "2026-11-25 12:00:00"}


def _drain_all(services: Any, workers: int, deadline_s: float) -> float:
    """Drain in this process (``workers`` threads); used for the profile, where py-spy watches this process."""
    from bot.outbox import drain

    stop = time.monotonic() + deadline_s

    def loop(worker_id: str) -> None:
        idle = 0
        while time.monotonic() < stop and idle < 2:
            if drain(services, worker_id) == 0:
                idle += 1
                time.sleep(0.05)
            else:
                idle = 0

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(f"bench-{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _workers(workers: int, env_vars: dict[str, str], *args: str, go_at: Any = None) -> dict[str, Any]:
    """``workers`` separate worker processes (``bench.drainer ARGS``), started together once all are ready; seconds
    from "go" until the last one finished (``go_at()`` is called at "go"), their CPU seconds and items handled."""
    full_env = {**os.environ, **env_vars, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.drainer", *args], cwd=ROOT, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]
    try:
        for p in procs:
            line = p.stdout.readline() if p.stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(f"drainer did not start: {line!r}")
        went = go_at() if go_at else None
        go = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = [json.loads(p.communicate(timeout=400)[0].strip().splitlines()[-1]) for p in procs]
        seconds = time.perf_counter() - go
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return {"seconds": seconds, "went": went, "cpu_s": sum(o["cpu_s"] for o in outs), "handled": sum(o["handled"] for o in outs)}


def _drain_processes(engine: Any, workers: int, env_vars: dict[str, str]) -> dict[str, Any]:
    """``workers`` outbox worker processes; the rate is rows sent over the time from "go" to the last ``sent_at``."""

    def now() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT now() AT TIME ZONE 'utc'")).scalar_one()

    out = _workers(workers, env_vars, go_at=now)
    with engine.connect() as conn:
        last = conn.execute(text("SELECT max(sent_at) FROM outbox_notices WHERE status = 'sent'")).scalar_one()
    return {"seconds": (last - out["went"]).total_seconds() if last else float("nan"), "cpu_s": out["cpu_s"], "handled": out["handled"]}


def _counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM outbox_notices GROUP BY status")).all())


def run(settings: Settings, cfg: Config, services: Any, report: Any, emulator_pid: int, env_vars: dict[str, str]) -> dict[str, Any]:
    engine = services.engine
    n = 500 if settings.quick else 5000
    data.add_cardholders(engine, 1, 2 * n + 10)
    runs = []
    first = 1
    for workers in (1, 2):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox_notices"))
        data.add_outbox(engine, first, n, "topup_receipt", RECEIPT)
        first += n
        r = _drain_processes(engine, workers, env_vars)
        secs = r["seconds"]
        counts = _counts(engine)
        sent = counts.get("sent", 0)
        runs.append(
            {
                "workers": workers,
                "notices": n,
                "seconds": secs,
                "per_s": sent / secs if secs else 0,
                "sent": sent,
                "other": sum(v for k, v in counts.items() if k != "sent"),
                "cpu_pct": 100 * r["cpu_s"] / secs if secs else 0,
            }
        )
        report(
            f"outbox, {workers} worker process(es): {n} notices in {secs:.2f} s = {sent / secs:.0f}/s, "
            f"worker CPU {runs[-1]['cpu_pct']:.0f}%; statuses {counts}"
        )
    result: dict[str, Any] = {
        "runs": runs,
        "note": "Each worker is a separate process running `bot.outbox.drain` in a loop, as `cardbot worker` does; the rate is "
        "notices sent over the time from the start signal to the last `sent_at`. Each send is a real HTTP call to the emulator's "
        "/cgi-bin/message/template/send (token checked, follower checked, template fields checked). Worker CPU: 100% = one core.",
    }
    if settings.profile:
        result["profile"] = _profile(settings, services, engine, first, min(n, 2000), emulator_pid)
    return result


def _profile(settings: Settings, services: Any, engine: Any, first: int, n: int, emulator_pid: int) -> dict[str, Any]:
    """py-spy on this process (the drain) and on the emulator (the receiving end) during one more drain."""
    import os

    from bench.runner import profile_call

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_notices"))
    data.add_outbox(engine, first, n, "topup_receipt", RECEIPT)
    return profile_call(
        settings, "outbox", {"drain (worker)": os.getpid(), "emulator": emulator_pid}, lambda: _drain_all(services, 1, 120), servers=("emulator",)
    )
