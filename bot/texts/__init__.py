"""User-facing texts, one module per language (``zh``, ``en``) with the same keys.

``t(lang, key, **values)`` formats a text; money is passed already formatted with ``bot.money.yuan``; a value that
exists in both languages (the service center's address, from config) is passed as ``Localized`` and told in ``lang``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.texts import en, zh

__all__ = ["Localized", "ordinal", "t"]

LANGS = {"zh": zh.TEXTS, "en": en.TEXTS}


@dataclass(frozen=True)
class Localized:
    """A value given in both languages (English falls back to Chinese when not given)."""

    zh: str
    en: str = ""

    def told(self, lang: str) -> str:
        return self.en if lang == "en" and self.en else self.zh


def t(lang: str, key: str, /, **values: object) -> str:
    table = LANGS.get(lang, zh.TEXTS)
    template = table.get(key) or zh.TEXTS[key]
    if not values:
        return template
    return template.format(**{k: v.told(lang) if isinstance(v, Localized) else v for k, v in values.items()})


def ordinal(n: int) -> str:
    """1 → 1st, 2 → 2nd, 11 → 11th, 23 → 23rd (English day numbers)."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
