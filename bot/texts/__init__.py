"""User-facing texts, one module per language (``zh``, ``en``) with the same keys.

``t(lang, key, **values)`` formats a text; money is passed already formatted with ``bot.money.yuan``.
"""

from __future__ import annotations

from bot.texts import en, zh

__all__ = ["t"]

LANGS = {"zh": zh.TEXTS, "en": en.TEXTS}


def t(lang: str, key: str, /, **values: object) -> str:
    table = LANGS.get(lang, zh.TEXTS)
    template = table.get(key) or zh.TEXTS[key]
    return template.format(**values) if values else template
