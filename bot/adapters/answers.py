"""Strict reading of an outside system's JSON answers (cardsys/1, power/1): a field of the wrong type, an empty text,
an unknown enum value or a time without its offset is that system's protocol error, never a guess."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


class StrictReader:
    """The readers of one protocol, raising its ``error`` (a ``TargetProtocolError``)."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def need(self, data: Any, key: str, kind: type) -> Any:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.error(f"{key!r} must be {kind.__name__}, got {value!r}")
        return value

    def text(self, data: Any, key: str, *, empty: bool = False) -> str:
        value = str(self.need(data, key, str))
        if not value and not empty:
            raise self.error(f"{key!r} must not be empty")
        return value

    def enum(self, enum: type[E], data: Any, key: str) -> E:
        value = self.need(data, key, str)
        try:
            return enum(value)
        except ValueError:
            raise self.error(f"{key!r} must be one of {[e.value for e in enum]}, got {value!r}") from None

    def time(self, data: Any, key: str) -> datetime:
        text = self.need(data, key, str)
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise self.error(f"{key!r} must be ISO 8601 with an offset, got {text!r}")
        return at
