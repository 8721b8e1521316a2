"""Row 3b: the periodic auto top-up sweep over 100k cards with active agreements.

Cards, bindings and agreements are bulk-inserted with SQL; one card in ``LOW_EVERY`` is below its threshold (the
ones a trigger missed, which the sweep exists to catch). The sweep is timed as the worker runs it, bank calls
included (the emulator's sandbox bank, over HTTP). The business clock is pinned to 10:00 school time today, inside
``[autodebit] bank_hours``: outside them the sweep only leaves every attempt waiting, which measures nothing.
"""

from __future__ import annotations

import inspect
import time
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Settings
from bot.clock import SCHOOL_TZ
from bot.config import Config

LOW_EVERY = 1000


def business_time() -> datetime:
    """10:00 school time today: inside the default bank hours, whenever the bench runs."""
    return datetime.now(SCHOOL_TZ).replace(hour=10, minute=0, second=0, microsecond=0)


def sweep_function() -> Any:
    import bot.autodebit as svc_mod

    names = [n for n, f in vars(svc_mod).items() if "sweep" in n.lower() and inspect.isfunction(f) and f.__module__ == svc_mod.__name__]
    if not names:
        raise RuntimeError("bot.autodebit has no sweep function")
    preferred = [n for n in names if not n.startswith("_")] or names
    return getattr(svc_mod, sorted(preferred, key=len)[0])


def run(settings: Settings, cfg: Config, services: Any, report: Any, emulator_pid: int) -> dict[str, Any]:
    engine = services.engine
    cards = 10_000 if settings.quick else 100_000
    t0 = time.perf_counter()
    data.add_cardholders(engine, 1, cards)
    data.add_agreements(engine, 1, cards, low_every=10**9, threshold_fen=cfg.autodebit.threshold * 100, amount_fen=cfg.autodebit.amount * 100)
    data.analyze(engine)
    load_s = time.perf_counter() - t0
    sweep = sweep_function()
    services.clock.freeze(business_time())
    runs = []
    for every in (LOW_EVERY, 100):
        low = _lower(engine, every)
        t0 = time.perf_counter()
        out = sweep(services)
        seconds = time.perf_counter() - t0
        with engine.connect() as conn:
            by_status = dict(conn.execute(text("SELECT status, count(*) FROM autodebit_attempts GROUP BY status")).all())
        report(f"sweep: {cards} cards, {low} low, {seconds:.2f} s, returned {out!r}, attempts {by_status}")
        runs.append(
            {"cards": cards, "low": low, "seconds": seconds, "attempts": sum(by_status.values()), "by_status": by_status, "returned": repr(out)}
        )
    result: dict[str, Any] = {
        "runs": runs,
        "load_s": load_s,
        "note": f"`{sweep.__module__}.{sweep.__name__}(services)` as the worker calls it: finds the low cards and processes each "
        "attempt through the bank (the emulator's sandbox bank over HTTP), crediting the ledger and queueing the notice.",
    }
    result["business_time"] = f"{services.clock.now():%H:%M} school time (inside bank hours {cfg.autodebit.bank_hours})"
    if settings.profile:
        import os

        from bench.runner import profile_call

        _lower(engine, 100)
        result["profile"] = profile_call(
            settings, "sweep", {"sweep": os.getpid(), "emulator (bank)": emulator_pid}, lambda: sweep(services), servers=("emulator (bank)",)
        )
    services.clock.freeze(None)
    return result


def _lower(engine: Any, every: int) -> int:
    """Forget earlier attempts, then put every ``every``-th card below its threshold; returns how many."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_notices"))
        conn.execute(text("DELETE FROM ledger_entries WHERE kind = 'autodebit'"))
        conn.execute(text("DELETE FROM autodebit_attempts"))
        conn.execute(text("UPDATE cardholders SET balance_fen = 5000 WHERE balance_fen < 2000"))
        low = conn.execute(text("UPDATE cardholders SET balance_fen = 1000 WHERE id % :every = 0"), {"every": every}).rowcount
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE cardholders"))
    return int(low)
