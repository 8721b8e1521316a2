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


@dataclass(frozen=True)
class Transfer:
    """Hand this message, and the chat after it, to the account's customer service (``transfer_customer_service``);
    ``kf_account`` names one agent, empty = any."""

    kf_account: str = ""


Reply = Text | Article | Transfer
