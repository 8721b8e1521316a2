"""``cardbot admin add-user NAME --role clerk|supervisor``: a service-center account for the web console (/admin),
printed as a one-time setup link where its holder sets a password (and, for a supervisor, the authenticator)."""

from __future__ import annotations

from typing import Any

import click

from bot.errors import UserError
from bot.staff import add_user
from models.enums import StaffRole


@click.group("admin")
def command() -> None:
    """Service-center accounts of the web console."""


@command.command("add-user")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in StaffRole]), required=True)
@click.pass_obj
def add(obj: Any, name: str, role: str) -> None:
    """Create NAME (or renew the setup link of an account not set up yet); prints its one-time setup link."""
    services = obj.services
    try:
        token = add_user(services, name, StaffRole(role))
    except UserError as err:
        raise click.ClickException(err.message("en")) from None
    hours = services.cfg.admin.setup_link_hours
    click.echo(f"{name.strip()} ({role}): open within {hours} h to set the password:")
    click.echo(f"{services.cfg.server.public_base_url}/admin/setup/{token}")
