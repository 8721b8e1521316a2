"""User-facing texts, one module per language (``zh``, ``en``) with the same keys.

``t(lang, key, **values)`` formats a text; money is passed already formatted with ``yuan()``.
"""

from __future__ import annotations

from bot.texts import en, zh

LANGS = {"zh": zh.TEXTS, "en": en.TEXTS}


def t(lang: str, key: str, /, **values: object) -> str:
    table = LANGS.get(lang, zh.TEXTS)
    template = table.get(key) or zh.TEXTS[key]
    return template.format(**values) if values else template


def yuan(fen: int) -> str:
    """Integer fen to a yuan string with two decimals: 5015 → '50.15', -5 → '-0.05'."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"
