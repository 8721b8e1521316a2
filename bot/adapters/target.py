"""The failures every system the bot delivers paid money to can have (the card system, the electricity system), so
the one delivery machinery (``bot.credits``) decides the same way whatever the product:

``TargetUnavailable`` — closed for maintenance: nothing was done; try again after ``retry_after`` seconds.
``TargetNoAnswer`` — timeout, reset, 5xx: the outcome is unknown; ask about the same ``ref``, never make a new one.
``TargetProtocolError`` — an answer that breaks the protocol: just as unknown; settle it by asking about the ``ref``.
"""

from __future__ import annotations


class TargetUnavailable(Exception):
    retry_after: int


class TargetNoAnswer(Exception):
    pass


class TargetProtocolError(Exception):
    pass
