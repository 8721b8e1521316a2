"""What would the suggested fixes buy? ``python -m bench.whatif`` — an experiment, not part of ``python -m bench``.

Serves the bot with parts of its BALANCE path patched at start-up (``whatif_app()``, chosen by ``CARDBOT_WHATIF``)
and loads each variant like row (a). The patches reach into the bot's internals on purpose, to measure a change
before anyone makes it; when the bot changes, they may stop applying (they then fail loudly).

- ``inline``: the handler runs in the request thread (no thread-pool hop)
- ``noping``: no ``pool_pre_ping`` round trip at connection checkout
- ``core``: the BALANCE handler's two lookups in SQLAlchemy Core, same reply text
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import Future
from typing import Any

VARIANTS = ["", "noping", "inline", "core", "noping,core"]


def whatif_app() -> Any:
    from bench.apps import bot_app

    app = bot_app()
    svc = app.extensions["cardbot"]
    chosen = set(filter(None, os.environ.get("CARDBOT_WHATIF", "").split(",")))
    if "inline" in chosen:
        svc.__dict__["executor"] = _Inline()
    if "noping" in chosen:
        svc.engine.pool._pre_ping = False
    if "core" in chosen:
        _core_balance(app.extensions["router"])
    return app


class _Inline:
    def submit(self, fn: Any, *args: Any, **kw: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args, **kw))
        except BaseException as exc:
            f.set_exception(exc)
        return f


def _core_balance(router: Any) -> None:
    """Swaps the app's BALANCE route for one whose handler does the card lookup itself (no needs_card)."""
    from sqlalchemy import text

    from bot.cards import mask_student_no
    from bot.chat.router import Route
    from bot.clock import to_local
    from bot.money import yuan
    from models import Cardholder

    card_q = text(
        "SELECT c.id, c.name, c.student_no, c.balance_fen, c.status FROM bindings b JOIN cardholders c ON c.id = b.cardholder_id WHERE b.openid = :o"
    )
    entries_q = text(
        "SELECT amount_fen, kind, description, created_at FROM ledger_entries WHERE cardholder_id = :c ORDER BY created_at DESC, id DESC LIMIT 5"
    )

    def balance(msg: Any, ctx: Any) -> str:
        conn = ctx.db.connection()
        card = conn.execute(card_q, {"o": ctx.openid}).first()
        if card is None:
            return ctx.t("not_bound")
        masked = Cardholder(name=card.name).masked_name
        lines = [
            ctx.t("balance_header", name=masked, no=mask_student_no(card.student_no)),
            ctx.t("balance_amount", balance=yuan(card.balance_fen)),
            ctx.t("balance_status", status=ctx.t(f"status_{card.status}")),
        ]
        rows = conn.execute(entries_q, {"c": card.id}).all()
        lines.append(ctx.t("balance_recent") if rows else ctx.t("balance_no_entries"))
        for e in rows:
            label = e.description if e.kind == "spend" and e.description else ctx.t(f"kind_{e.kind}")
            lines.append(f"{to_local(e.created_at):%m-%d %H:%M} {label} {'+' if e.amount_fen > 0 else ''}{yuan(e.amount_fen)}")
        lines.append(ctx.t("balance_footer"))
        return "\n".join(lines)

    router._by_kind["click"]["BALANCE"] = Route("click", ("BALANCE",), balance)


def main(argv: list[str] | None = None) -> None:
    from bench import data, env, webhook
    from bench.env import Server, Settings
    from bench.runner import run_load
    from bot.config import load_config
    from bot.runtime import build_runtime

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10)
    a = p.parse_args(argv)
    settings = Settings(duration=a.duration, quick=True)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    db_url = env.recreate_database(settings)
    prefix = env.new_prefix()
    overrides = env.bot_overrides(db_url, settings.workdir / "keys", "http://127.0.0.1:9", prefix, "http://127.0.0.1:9")
    overrides["emulator"]["enabled"] = False
    cfg = load_config(None, **overrides)
    services = build_runtime(cfg)
    try:
        webhook.setup_data(services.engine)
        bound = [data.openid(i) for i in range(1, webhook.BOUND_USERS + 1)]
        print(f"{'variant':32} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/req':>10}")
        for variant in VARIANTS:
            srv = Server("whatif", "bench.whatif:whatif_app()", settings, {**env.as_env(overrides), "CARDBOT_WHATIF": variant}).wait_ready()
            try:
                reqs = webhook.click_requests(cfg, "plain", "BALANCE", bound, int((a.duration + 2) * 2000))
                r = run_load(settings, "whatif", srv, reqs, warmup=2)
            finally:
                srv.stop()
            print(
                f"{variant or 'as is':32} {r['throughput']:6.0f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} {r['server_cpu_ms_per_req']:10.2f}", flush=True
            )
    finally:
        services.close()
        env.clear_prefix(prefix)
        env.drop_database(settings)


if __name__ == "__main__":
    main()
