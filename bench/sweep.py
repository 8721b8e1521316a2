"""Row 3b: the periodic auto top-up sweep over 100k cards with active agreements.

Cards, bindings and agreements are bulk-inserted with SQL; one card in ``LOW_EVERY`` is below its threshold (the
ones a trigger missed, which the sweep exists to catch). The sweep is timed as the worker runs it, bank calls
included (the emulator's sandbox bank, over HTTP).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from sqlalchemy import text

from bench import data
from bench.env import Settings
from bot.config import Config

LOW_EVERY = 1000


def sweep_function() -> Any:
    import bot.autodebit_service as svc_mod

    names = [n for n, f in vars(svc_mod).items() if "sweep" in n.lower() and inspect.isfunction(f) and f.__module__ == svc_mod.__name__]
    if not names:
        raise RuntimeError("bot.autodebit_service has no sweep function")
    preferred = [n for n in names if not n.startswith("_")] or names
    return getattr(svc_mod, sorted(preferred, key=len)[0])


def run(settings: Settings, cfg: Config, services: Any, report: Any) -> dict[str, Any]:
    engine = services.engine
    cards = 10_000 if settings.quick else 100_000
    t0 = time.perf_counter()
    data.add_cardholders(engine, 1, cards)
    low = data.add_agreements(engine, 1, cards, low_every=LOW_EVERY, threshold_fen=cfg.autodebit.threshold * 100,
                              amount_fen=cfg.autodebit.amount * 100)
    data.analyze(engine)
    load_s = time.perf_counter() - t0
    sweep = sweep_function()
    t0 = time.perf_counter()
    out = sweep(services)
    seconds = time.perf_counter() - t0
    with engine.connect() as conn:
        attempts = conn.execute(text("SELECT count(*) FROM autodebit_attempts")).scalar_one()
        by_status = dict(conn.execute(text("SELECT status, count(*) FROM autodebit_attempts GROUP BY status")).all())
    report(f"sweep: {cards} cards, {low} low, {seconds:.2f} s, returned {out!r}, attempts {by_status}")
    result: dict[str, Any] = {
        "cards": cards, "low": low, "seconds": seconds, "attempts": attempts, "returned": repr(out), "load_s": load_s,
        "note": f"`{sweep.__module__}.{sweep.__name__}(services)`; attempts by status: {by_status}.",
    }
    if settings.profile and seconds > 0.5:
        result["profile_text"] = _profile_again(services, engine, sweep)
    return result


def _profile_again(services: Any, engine: Any, sweep: Any) -> str:
    """Undo the attempts and lower the same cards again, then sweep under pyinstrument."""
    from pyinstrument import Profiler

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_notices"))
        conn.execute(text("DELETE FROM ledger_entries WHERE kind = 'autodebit'"))
        conn.execute(text("DELETE FROM autodebit_attempts"))
        conn.execute(text("UPDATE cardholders SET balance_fen = 1000, pending_fen = 0 WHERE id % :every = 0"), {"every": LOW_EVERY})
    prof = Profiler(interval=0.0005)
    prof.start()
    sweep(services)
    prof.stop()
    return prof.output_text(unicode=False, color=False, show_all=False)
