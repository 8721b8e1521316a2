"""Row 3a: how fast the worker drains the notice outbox into the emulator's template-message API.

Pending ``topup_receipt`` notices are bulk-inserted the way ``post_entry`` queues them; ``bot.outbox.drain_once``
(what ``cardbot worker`` runs) is called until nothing is left, against the emulator over real HTTP (token from
the emulator, every send checked for follower, template id and field lengths). The emulator runs in one
gunicorn process; its job-finish push back to /wechat is off so only the drain is measured.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Settings
from bot.config import Config

RECEIPT = {"amount": "50.00元", "fee": "0.15元", "balance": "123.45元", "time": "2026-11-25 12:00:00"}


def _drain_all(services: Any, workers: int, deadline_s: float) -> float:
    from bot.outbox import drain_once

    stop = time.monotonic() + deadline_s

    def loop(worker_id: str) -> None:
        idle = 0
        while time.monotonic() < stop:
            if drain_once(services, worker_id) == 0:
                idle += 1
                if idle >= 2:
                    return
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


def _counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT status, count(*) FROM outbox_notices GROUP BY status")).all())


def run(settings: Settings, cfg: Config, services: Any, report: Any) -> dict[str, Any]:
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
        secs = _drain_all(services, workers, 300)
        counts = _counts(engine)
        sent = counts.get("sent", 0)
        runs.append({"workers": workers, "notices": n, "seconds": secs, "per_s": sent / secs if secs else 0, "sent": sent,
                     "other": sum(v for k, v in counts.items() if k != "sent")})
        report(f"outbox, {workers} worker(s): {n} notices in {secs:.2f} s = {sent / secs:.0f}/s; statuses {counts}")
    result: dict[str, Any] = {
        "runs": runs,
        "note": "Workers are threads of one process here (a deployment runs separate `cardbot worker` processes). "
        "Each send is a real HTTP call to the emulator's /cgi-bin/message/template/send.",
    }
    if settings.profile:
        result["profile_text"] = _pyinstrument(services, engine, first, min(n, 1000))
    return result


def _pyinstrument(services: Any, engine: Any, first: int, n: int) -> str:
    from pyinstrument import Profiler

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_notices"))
    data.add_outbox(engine, first, n, "topup_receipt", RECEIPT)
    prof = Profiler(interval=0.0005)
    prof.start()
    _drain_all(services, 1, 120)
    prof.stop()
    return prof.output_text(unicode=False, color=False, show_all=False)
