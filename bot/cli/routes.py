"""``cardbot routes``: what the bot answers, in the order the router tries it; needs no database or Redis."""

from __future__ import annotations

import unicodedata

import click

HEADER = ("kind", "key or words", "handler", "needs_card")


def _width(text: str) -> int:
    """Columns a terminal gives ``text``: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@click.command("routes")
def command() -> None:
    """Every route: kind, key or words, handler, and the reply to a user without a card (needs_card)."""
    from bot.chat.router import handler_name
    from bot.chat.routes import build_router

    rows = [(route.kind, ", ".join(route.keys) or "-", handler_name(route.handler), route.needs_card or "-") for route in build_router().table()]
    widths = [max(_width(row[i]) for row in (HEADER, *rows)) for i in range(len(HEADER))]
    for row in (HEADER, *rows):
        click.echo("  ".join(cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)).rstrip())
