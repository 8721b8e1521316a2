"""Inbound push parsing and reply rendering: signatures, AES, hostile-XML defence, wechatpy objects.

Every body passes defusedxml (no DTD, no entities) before wechatpy's parser sees it, both the outer
envelope and the decrypted inner message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from defusedxml import ElementTree as SafeET
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.replies import ArticlesReply, TextReply, TransferCustomerServiceReply

from bot.chat.replies import Article, Reply, Text, Transfer
from bot.config import WeChatConfig

OPENID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
MAX_TEXT_CHARS = 2048


class BadSignature(Exception):
    """Wrong or stale signature: 403."""


class BadMessage(Exception):
    """Correctly signed but not a message we can read: 400."""


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode(), usedforsecurity=False).hexdigest()  # WeChat's protocol


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    if not (signature and timestamp and nonce):
        return False
    return hmac.compare_digest(sha1_signature(token, timestamp, nonce), signature.lower())


def check_freshness(timestamp: str, max_skew: int, now: float | None = None) -> bool:
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    return abs((now or time.time()) - ts) <= max_skew


def _safe_tree(body: bytes | str) -> Any:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # defusedxml and expat errors alike
        raise BadMessage(f"unreadable xml: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise BadMessage("root element is not <xml>")
    return root


def decode_push(body: bytes, args: dict[str, str], cfg: WeChatConfig) -> tuple[Any, bool]:
    """Return (wechatpy message, encrypted?) for a push whose URL signature was already checked."""
    root = _safe_tree(body)
    encrypted = args.get("encrypt_type", "raw").lower() == "aes"
    if encrypted:
        enc = root.findtext("Encrypt")
        if not enc:
            raise BadMessage("safe mode push without <Encrypt>")
        msg_sig = args.get("msg_signature", "")
        expected = sha1_signature(cfg.token, args.get("timestamp", ""), args.get("nonce", ""), enc)
        if not msg_sig or not hmac.compare_digest(expected, msg_sig.lower()):
            raise BadSignature("msg_signature mismatch")
        try:
            inner = PrpCrypto(_aes_key(cfg)).decrypt(enc, cfg.appid)
        except Exception:
            raise BadMessage("cannot decrypt") from None
        root = _safe_tree(inner)
        text = inner
    else:
        text = body
    fields = {child.tag: (child.text or "") for child in root}
    missing = [f for f in REQUIRED if not fields.get(f)]
    if missing:
        raise BadMessage(f"missing {', '.join(missing)}")
    if not OPENID_RE.match(fields["FromUserName"]):
        raise BadMessage("FromUserName is not an openid")
    if not OPENID_RE.match(fields["ToUserName"]):  # echoed into the reply's FromUserName: must be a plain account id
        raise BadMessage("ToUserName is not an account id")
    if not fields["CreateTime"].isdigit():
        raise BadMessage("CreateTime is not a number")
    if len(fields.get("Content", "")) > MAX_TEXT_CHARS:
        raise BadMessage("Content too long")
    try:
        msg = parse_message(text)
    except Exception:
        raise BadMessage("wechatpy could not parse the message") from None
    if msg is None:
        raise BadMessage("empty message")
    try:  # wechatpy converts fields lazily: a non-numeric MsgId would otherwise fail later, in dedup or a handler
        for name in getattr(type(msg), "_fields", {}):
            getattr(msg, name)
    except (ValueError, TypeError, OverflowError, OSError):
        raise BadMessage("a field has the wrong type") from None
    return msg, encrypted


def _aes_key(cfg: WeChatConfig) -> bytes:
    import base64

    return base64.b64decode(cfg.encoding_aes_key + "=")


def dedup_key(msg: Any) -> str:
    """docs/wechat-facts.md: messages by FromUserName+MsgId(+CreateTime); events by FromUserName+CreateTime+Event+EventKey —
    except events that carry a MsgID (TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH): by it, as two reports can share a
    second."""
    raw = msg._data
    if msg.type == "event":
        if msgid := raw.get("MsgID") or raw.get("MsgId"):
            return f"r:{msg.source}:{msgid}"
        return f"e:{msg.source}:{raw.get('CreateTime', '')}:{raw.get('Event', '')}:{raw.get('EventKey', '') or ''}"
    return f"m:{msg.source}:{msg.id}:{raw.get('CreateTime', '')}"


def _cdata_safe(text: str) -> str:
    return (text or "").replace("]]>", "]]]]><![CDATA[>")


def render_reply(reply: Reply | None, msg: Any) -> str:
    """Plain reply XML, or 'success' for no reply."""
    if reply is None:
        return "success"
    if isinstance(reply, Text):
        return TextReply(message=msg, content=_cdata_safe(reply.content)).render()
    if isinstance(reply, Article):
        r = ArticlesReply(message=msg)
        r.add_article(
            {
                "title": _cdata_safe(reply.title),
                "description": _cdata_safe(reply.description),
                "image": reply.image,
                "url": reply.url,
            }
        )
        return r.render()
    if isinstance(reply, Transfer):
        xml = TransferCustomerServiceReply(message=msg).render()
        if not reply.kf_account:
            return xml
        trans = f"<TransInfo><KfAccount><![CDATA[{_cdata_safe(reply.kf_account)}]]></KfAccount></TransInfo>"
        return xml.replace("</xml>", trans + "</xml>")
    raise TypeError(f"unknown reply {reply!r}")


def encrypt_reply(xml: str, cfg: WeChatConfig, nonce: str, timestamp: str | None = None) -> str:
    if xml == "success":
        return xml
    return WeChatCrypto(cfg.token, cfg.encoding_aes_key, cfg.appid).encrypt_message(xml, nonce, timestamp)
