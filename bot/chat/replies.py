"""What a handler returns. Handlers know nothing of XML: the webhook renders these with wechatpy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    content: str


@dataclass(frozen=True)
class Article:
    """A single news article: a reply to a message may show only one."""

    title: str
    description: str
    url: str
    image: str = ""


Reply = Text | Article
