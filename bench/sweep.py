"""Row 3b: the periodic auto top-up sweep over 100k cards with active agreements, and the low-power sweep over the
electricity system's 20,000 rooms.

Cards, bindings and agreements are bulk-inserted with SQL; one card in ``LOW_EVERY`` is below its threshold (the
ones a trigger missed, which the sweep exists to catch). The sweep is timed as the worker runs it, bank calls
included (the emulator's sandbox bank, over HTTP). The business clock is pinned to 10:00 school time today, inside
``[autodebit] bank_hours``: outside them the sweep only leaves every attempt waiting, which measures nothing.

The low-power sweep (``bot.power.sweep_low``, as the worker runs it) reads every kept room from the emulator's
electricity system over power/1 (500 rooms a call) and alerts the rooms below their threshold (10 kWh) once a day:
20,000 rooms, each kept by one account; run twice, the second run reads them all again and alerts nobody.
"""

from __future__ import annotations

import inspect
import time
from datetime import datetime
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Settings, tree_cpu_seconds
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
    result["power"] = power_sweep(services, report, emulator_pid)
    return result


def power_sweep(services: Any, report: Any, emulator_pid: int) -> dict[str, Any]:
    from bot import power
    from bot.emulator.electricity import label, room_ids

    rooms = room_ids()
    data.add_rooms(services.engine, 1, {r: label(r) for r in rooms})
    data.analyze(services.engine)
    runs = []
    for _ in range(2):
        t0, cpu0, e0 = time.perf_counter(), time.process_time(), tree_cpu_seconds(emulator_pid)
        out = power.sweep_low(services)
        seconds = time.perf_counter() - t0
        runs.append({**out, "seconds": seconds, "cpu_s": time.process_time() - cpu0, "emulator_cpu_s": tree_cpu_seconds(emulator_pid) - e0})
        report(f"low-power sweep: {len(rooms)} rooms kept, {seconds:.2f} s, returned {out!r}")
    with services.engine.connect() as conn:
        notices = conn.execute(text("SELECT count(*) FROM outbox_notices WHERE kind = 'power_low'")).scalar_one()
    first = runs[0]
    ok = first["read"] == len(rooms) and runs[1]["read"] == len(rooms) and notices == first["alerted"] > 0 and runs[1]["alerted"] == 0
    check = f"{notices} low-power notices queued for {first['alerted']} rooms alerted; the second run alerted {runs[1]['alerted']}"
    return {"rooms": len(rooms), "runs": runs, "ok": ok, "check": check}


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
