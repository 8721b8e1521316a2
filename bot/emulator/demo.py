"""``cardbot demo`` (what ``make run`` starts): the WeChat emulator, the bot and the simulator on one port, with demo data.

Everything lives under ``var/`` (SQLite, keys, embedded Redis when ``CARDBOT_REDIS__URL`` is unset), so a fresh
clone needs nothing else. The bot reaches the emulator only through its base URLs, as it would reach WeChat.
``CARDBOT_CARDSYSTEM__ADAPTER=http make run`` runs the same demo on the emulator's card system (cardsys/1 at
``/emulator/cardsys/v1``, its accounts seeded from the same roster): credits go there, terminals push from there.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from bot.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)

ROSTER = Path(__file__).with_name("demo_roster.csv")
DRAIN_EVERY_SECONDS = 1.0
JOBS_EVERY_SECONDS = 30.0


def demo_config(path: str | None, host: str, port: int) -> Config:
    """The configuration with every WeChat and WeChat Pay address pointed at the built-in emulator."""
    base = f"http://{host}:{port}"
    return load_config(
        path,
        wechat={"api_base_url": base, "oauth_base_url": base},
        pay={"api_base_url": base, "notify_url": f"{base}/pay/notify"},
        server={"public_base_url": base},
        emulator={"enabled": True},
    )


def prepare(cfg: Config, services: Any) -> None:
    """Keys, schema and the demo roster; safe to repeat at every start: the import adds cards it has not seen and
    keeps every live balance (what was topped up or spent in the demo stays)."""
    from bot.emulator.keys import ensure_keys
    from bot.migrate import upgrade

    ensure_keys(cfg.emulator.keys_dir)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a newcomer needs the address, not migration chatter
    if cfg.database.url.startswith("sqlite:///"):
        Path(cfg.database.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    upgrade(cfg.database.url)
    from bot.roster import import_roster

    with services.session() as db:
        result = import_roster(db, ROSTER)
        db.commit()
    click.echo(f"demo roster: {result}")


def background(services: Any, stop: threading.Event) -> None:
    """What ``cardbot worker`` does, in-process: deliver due credits, drain the notice outbox, run the scheduled jobs."""
    from bot.worker import run_due_jobs

    next_jobs = 0.0
    while not stop.wait(DRAIN_EVERY_SECONDS):
        try:
            background_pass(services)
            if time.monotonic() >= next_jobs:
                next_jobs = time.monotonic() + JOBS_EVERY_SECONDS
                run_due_jobs(services, "demo")
        except Exception:
            log.exception("demo background work failed; retrying")


def background_pass(services: Any) -> int:
    """One pass of the worker's frequent work: credits the card system has not taken yet, then the notices."""
    from bot.worker import drain_all

    return drain_all(services, "demo")


def publish_menu(services: Any) -> None:
    """Create the menus (main and English) through the (emulated) API, as ``cardbot menu publish`` would."""
    import menus
    from bot import lang_menu
    from bot.adapters.wechat_api import WeChatAPIError

    try:
        lang_menu.publish(services, menus.load(services.cfg.menu_path), menus.load(services.cfg.menu_english_path))
    except WeChatAPIError as exc:
        log.warning("menu not published: %s", exc)


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_context
def command(ctx: click.Context, host: str, port: int) -> None:
    """Emulator + bot + simulator on one port, with demo data (what `make run` starts)."""
    from werkzeug.serving import make_server

    from bot import create_app
    from bot.emulator.bank import seed_demo
    from bot.runtime import build_runtime

    path = getattr(ctx.obj, "path", None)
    try:
        cfg = demo_config(path, host, port)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    services = build_runtime(cfg, allow_embedded_redis=True)
    prepare(cfg, services)
    app = create_app(cfg, services=services)
    seed_demo(app)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    stop = threading.Event()
    threading.Thread(target=background, args=(services, stop), daemon=True, name="demo-worker").start()
    threading.Thread(target=publish_menu, args=(services,), daemon=True, name="demo-menu").start()
    base = cfg.server.public_base_url
    click.echo("")
    click.echo(f"  campus-card-bot demo · {cfg.school.name}")
    click.echo(f"  模拟器 Simulator:  {base}/simulator")
    click.echo(f"  WeChat push URL:   {base}/wechat   (emulated WeChat API at {base}/cgi-bin/...)")
    click.echo("  Ctrl+C to stop")
    click.echo("")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        services.close()  # also saves and stops the embedded Redis


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops the demo as Ctrl+C does, so the embedded Redis is shut down too."""
    raise KeyboardInterrupt
