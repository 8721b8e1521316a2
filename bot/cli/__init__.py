"""The ``cardbot`` command line. Every command takes ``--config PATH``."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from bot.config import Config, ConfigError, load_config


class Obj:
    """Lazily loaded config and services for a command."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._cfg: Config | None = None
        self._svc: Any = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            try:
                self._cfg = load_config(self.path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._cfg

    @property
    def ready_cfg(self) -> Config:
        """The config for serving, working or moving money: refused in production while it holds demo settings."""
        try:
            self.cfg.check_production()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        return self.cfg

    @property
    def services(self) -> Any:
        if self._svc is None:
            from bot.runtime import build_runtime

            self._svc = build_runtime(self.ready_cfg)
        return self._svc


pass_obj = click.make_pass_decorator(Obj)


class LazyGroup(click.Group):
    """Loads a command's module only when that command runs, so production commands never import the emulator."""

    lazy = {"demo": "bot.emulator.demo:command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
@click.option("--config", "config_path", envvar="CARDBOT_CONFIG", default=None, help="config.toml to use")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """campus-card-bot: WeChat official account bot for the campus card."""
    from bot.logs import setup_logging

    setup_logging()
    ctx.obj = Obj(config_path)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@pass_obj
def serve(obj: Obj, host: str, port: int, workers: int) -> None:
    """Production server (gunicorn) for the Flask app."""
    from gunicorn.app.base import BaseApplication

    cfg = obj.ready_cfg

    class App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 8)
            self.cfg.set("timeout", 30)
            self.cfg.set("accesslog", None)

        def load(self) -> Any:
            from bot import create_app

            return create_app(cfg)

    App().run()


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
@pass_obj
def db_upgrade(obj: Obj, revision: str) -> None:
    """Alembic migrations to head."""
    from bot.migrate import upgrade

    upgrade(obj.cfg.database.url, revision)
    click.echo(f"database at {revision}")


@cli.group()
def menu() -> None:
    """The custom menu (menus/menu.toml)."""


def _menu(obj: Obj) -> dict[str, Any]:
    return _menus(obj)[0]


def _menus(obj: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    """The main menu and the English conditional menu, each checked against WeChat's limits, with the same keys."""
    import menus

    main, english = menus.load(obj.cfg.menu_path), menus.load(obj.cfg.menu_english_path)
    problems = []
    for where, data in (("", main), ("english menu: ", english)):
        try:
            menus.validate(data)
        except menus.MenuError as exc:
            problems += [where + p for p in exc.problems]
    try:
        menus.check_same_keys(main, english)
    except menus.MenuError as exc:
        problems += exc.problems
    for p in problems:
        click.echo(f"error: {p}", err=True)
    if problems:
        sys.exit(1)
    return main, english


@menu.command("validate")
@pass_obj
def menu_validate(obj: Obj) -> None:
    """Check the main and the English menu against WeChat's limits."""
    _menus(obj)
    click.echo(f"{obj.cfg.menu_path}: ok")
    click.echo(f"{obj.cfg.menu_english_path}: ok")


@menu.command("show")
@pass_obj
def menu_show(obj: Obj) -> None:
    """Print the JSON sent to WeChat: the main menu, then the English one (its matchrule's tag_id is resolved at publish)."""
    import menus

    main, english = _menus(obj)
    click.echo(menus.to_json(main))
    click.echo(menus.to_json(menus.conditional(english, 0)))


@menu.command("publish")
@pass_obj
def menu_publish(obj: Obj) -> None:
    """Create the main menu and the English conditional menu (user tag [menu] english_tag) through the WeChat API
    (menu calls are limited to 1000 a day)."""
    from bot import lang_menu
    from bot.adapters.wechat_api import WeChatAPIError

    main, english = _menus(obj)
    try:
        menuid = lang_menu.publish(obj.services, main, english)
    except WeChatAPIError as exc:
        raise click.ClickException(f"WeChat refused the menu: {exc}") from None
    click.echo(f"menu published; English menu {menuid} for users tagged {obj.cfg.menu.english_tag!r}")


def main() -> None:
    cli()


# One module per command group; imported last because they use ``pass_obj`` from here.
from bot import worker  # noqa: E402
from bot.cli import admin, announce, autodebit, binding, cardholders, cardsystem, credits, notices, routes, topup  # noqa: E402

for _command in (
    cardholders.command,
    topup.command,
    autodebit.command,
    credits.command,
    notices.command,
    binding.command,
    cardsystem.command,
    routes.command,
    admin.command,
    worker.command,
    announce.command,
):
    cli.add_command(_command)
