"""Adapters to the outside systems the bot talks to: one small Protocol per system, one class per kind of it.

Production code reaches an outside system only through these; "no answer" always means "outcome unknown: ask
again with the same reference".
"""
