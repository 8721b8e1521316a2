"""``python -m bench`` (``make bench``): every benchmark in one run, a table on stdout and in bench/RESULTS.md.

Needs PostgreSQL (``CARDBOT_BENCH_DATABASE_URL``, default the test server; a ``cardbot_bench`` database is
dropped and re-created there) and Redis (``CARDBOT_BENCH_REDIS_URL``, default local; keys under a fresh prefix).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import env, report
from bench.env import Server, Settings

SECTIONS = ("webhook", "paynotify", "outbox", "alerts", "sweep", "cardsys", "growth")
# The servers under test run as in production: without the emulator, whose request hook would decode every push twice.
PRODUCTION = {"CARDBOT_EMULATOR__ENABLED": "false"}


def parse(argv: list[str] | None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: ~3 s per row, small data sets (results not written unless --write)")
    p.add_argument("--duration", type=float, default=None, help="seconds per webhook row (default 20, --quick 3)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers for every server row")
    p.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker for every server row")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--growth-sizes", default=None, help="cardholder counts for the growth rows (default 1000,100000,1000000)")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    p.add_argument("--keep-db", action="store_true", help="keep the cardbot_bench database afterwards (default: drop it)")
    p.add_argument("--write", action="store_true", help="write bench/RESULTS.md even for --quick")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "RESULTS.md"))
    a = p.parse_args(argv)
    s = Settings(
        duration=a.duration if a.duration is not None else (3.0 if a.quick else 20.0),
        quick=a.quick,
        workers=a.workers,
        threads=a.threads,
        concurrency=a.workers * a.threads,
        profile=not a.no_profile,
    )
    return s, a


def main(argv: list[str] | None = None) -> int:
    settings, args = parse(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    settings.workdir.mkdir(parents=True, exist_ok=True)
    machine = env.machine()

    def say(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    say(f"machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram']} RAM, commit {machine['commit']}")
    say(f"servers: {settings.server_desc}; load: {settings.concurrency} keep-alive connections, {settings.duration:g} s per row")

    from bot.config import load_config
    from bot.emulator.keys import ensure_keys
    from bot.runtime import build_runtime

    keys = ensure_keys(settings.workdir / "keys")
    db_url = env.recreate_database(settings)
    prefix = env.new_prefix()
    emu_port, bot_port = env.free_port(), env.free_port()
    emu_url, bot_url = f"http://127.0.0.1:{emu_port}", f"http://127.0.0.1:{bot_port}"
    overrides = env.bot_overrides(db_url, keys, emu_url, prefix, bot_url)
    base_env = env.as_env(overrides)
    cfg = load_config(None, **overrides)
    services = build_runtime(cfg)
    results: dict[str, Any] = {"machine": machine, "settings": settings, "db_url": db_url.split("@")[-1]}
    servers: list[Server] = []

    def start(
        name: str,
        spec: str,
        *,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
        health: str = "/healthz",
        workers: int | None = None,
        threads: int | None = None,
    ) -> Server:
        srv = Server(name, spec, settings, {**base_env, **(extra_env or {})}, port=port, health=health, workers=workers, threads=threads)
        servers.append(srv)
        return srv.wait_ready()

    try:
        # One process for the emulator: its state (tokens, followers, inbox) lives in memory.
        emulator = start(
            "emulator",
            "bench.apps:emulator_app()",
            port=emu_port,
            workers=1,
            threads=16,
            extra_env={"CARDBOT_BENCH_FOLLOWER_PREFIX": "o_bench_", "CARDBOT_BENCH_FOLLOWER_COUNT": "200000"},
        )
        for section in only:
            t0 = time.perf_counter()
            say(f"== {section}")
            try:
                env.truncate_all(services.engine)
                results[section] = _run_section(section, settings, args, cfg, services, start, bot_port, say, emulator.proc.pid, base_env)
            except Exception as exc:
                traceback.print_exc()
                results[section] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"== {section} done in {time.perf_counter() - t0:.0f} s")
    finally:
        for srv in reversed(servers):
            srv.stop()
        services.close()
        env.clear_prefix(prefix)
        if not args.keep_db:
            env.drop_database(settings)

    text = report.render(results)
    print()
    print(text)
    if not settings.quick or args.write:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"written to {args.output}")
    return 0


def _run_section(
    section: str,
    settings: Settings,
    args: argparse.Namespace,
    cfg: Any,
    services: Any,
    start: Any,
    bot_port: int,
    say: Any,
    emulator_pid: int,
    env_vars: dict[str, str],
) -> dict[str, Any]:
    if section == "webhook":
        from bench import webhook

        webhook.setup_data(services.engine)
        bot = start("bot", "bench.apps:bot_app()", port=bot_port, extra_env=PRODUCTION)
        try:
            return webhook.run(settings, cfg, services, bot, start, say)
        finally:
            bot.stop()
    if section == "paynotify":
        from bench import paynotify

        bot = start("bot-pay", "bench.apps:bot_app()", port=bot_port, extra_env=PRODUCTION)
        try:
            return paynotify.run(settings, cfg, services, bot, say, emulator_pid, start, PRODUCTION)
        finally:
            bot.stop()
    if section == "outbox":
        from bench import outbox

        return outbox.run(settings, cfg, services, say, emulator_pid, env_vars)
    if section == "alerts":
        from bench import alerts

        return alerts.run(settings, cfg, services, say, env_vars)
    if section == "sweep":
        from bench import sweep

        return sweep.run(settings, cfg, services, say, emulator_pid)
    if section == "cardsys":
        from bench import cardsys

        return cardsys.run(settings, cfg, services, start, say, PRODUCTION, env_vars)
    if section == "growth":
        from bench import growth

        default = [1000, 20000] if settings.quick else [1000, 100_000, 1_000_000]
        sizes = [int(x) for x in args.growth_sizes.split(",")] if args.growth_sizes else default

        def bot_server() -> Server:
            return start("bot-growth", "bench.apps:bot_app()", port=bot_port, extra_env=PRODUCTION)

        return growth.run(settings, cfg, services, bot_server, sizes, say)
    raise ValueError(section)


if __name__ == "__main__":
    sys.exit(main())
