"""Money: integer fen inside, yuan with two decimals for people. The one place that converts, parses and charges fees."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


def fen(yuan_amount: int | float | str | Decimal) -> int:
    """Yuan (config values such as 50 or 0.5, exact decimal text) to fen, exactly: never through binary floats."""
    return int(Decimal(str(yuan_amount)) * 100)


def yuan(amount_fen: int) -> str:
    """Integer fen to a yuan string with two decimals: 5015 → '50.15', -5 → '-0.05'."""
    sign = "-" if amount_fen < 0 else ""
    amount_fen = abs(int(amount_fen))
    return f"{sign}{amount_fen // 100}.{amount_fen % 100:02d}"


def parse_yuan(text: str) -> int:
    """'12.5' → 1250 fen, exactly; more than two decimals, or not a number, is a ValueError."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{text!r} must have at most 2 decimals")
    return int(value * 100)


def fee_for(amount_fen: int, rate: float) -> int:
    """A fee of ``amount × rate`` rounded half-up to the fen (50.00 × 0.3% = 0.15; 0.5 fen → 1 fen)."""
    return int((Decimal(amount_fen) * Decimal(str(rate))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent(rate: float) -> str:
    """0.003 → '0.3' (for "0.3%"), without float noise or trailing zeros."""
    text = format(Decimal(str(rate)) * 100, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
