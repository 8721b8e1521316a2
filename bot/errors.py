"""The one user-facing refusal: a code for APIs, an HTTP status, and the text that tells the user what to do next."""

from __future__ import annotations

from typing import Any

from bot.texts import t


class UserError(Exception):
    """A request the rules refuse. ``key`` (default: ``code``) names the text in bot/texts, ``values`` fill it.

    A domain rule speaks generically; a caller with its own words re-keys it (``err.keyed("topup_err_")``), and a
    caller with a family of texts defaults its key the same way (e.g. ``topup_err_{code}``).
    """

    def __init__(self, code: str, status: int = 400, key: str | None = None, **values: Any) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.key = key or code
        self.values = values

    def message(self, lang: str) -> str:
        return t(lang, self.key, **self.values)

    def keyed(self, prefix: str) -> UserError:
        """The same refusal told with the caller's text ``{prefix}{code}``."""
        return UserError(self.code, self.status, f"{prefix}{self.code}", **self.values)
