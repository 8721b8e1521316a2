"""The WeChat side of a push: build a user's message as WeChat would, sign it (and AES-encrypt it in safe
mode), send it to the bot's ``/wechat`` and read the reply. Used by the simulator, the tests and the benchmarks.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from defusedxml import ElementTree as SafeET
from wechatpy.crypto import WeChatCrypto

from bot.chat.wechat_xml import sha1_signature
from bot.config import WeChatConfig

_msg_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)


@dataclass
class ReplyMessage:
    """What the user's phone shows for one push."""

    status: int
    raw: str
    type: str = ""
    content: str = ""
    articles: list[dict[str, str]] = field(default_factory=list)
    kf_account: str = ""  # a transfer_customer_service reply's chosen agent (empty: any)

    @property
    def transferred(self) -> bool:
        """WeChat hands this message, and the chat after it, to the account's customer service."""
        return self.type == "transfer_customer_service"

    @property
    def empty(self) -> bool:
        return self.raw in ("", "success")


PostFn = Callable[[str, dict[str, str], bytes], tuple[int, str]]


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class Pusher:
    """Sends pushes for an official account. ``post(path_with_query, headers, body) -> (status, text)``."""

    def __init__(
        self,
        cfg: WeChatConfig,
        post: PostFn,
        mode: str = "plain",
        on_push: Callable[[str], None] | None = None,
        on_reply: Callable[[str, ReplyMessage], None] | None = None,
    ):
        self.cfg = cfg
        self.post = post
        self.mode = mode
        self.on_push = on_push
        self.on_reply = on_reply
        self.account = "gh_cardbot_demo"

    # --- message builders ------------------------------------------------
    def xml(self, openid: str, msgtype: str, fields: dict[str, str], create_time: int | None = None) -> str:
        ts = create_time or int(time.time())
        parts = [
            f"<ToUserName>{cdata(self.account)}</ToUserName>",
            f"<FromUserName>{cdata(openid)}</FromUserName>",
            f"<CreateTime>{ts}</CreateTime>",
            f"<MsgType>{cdata(msgtype)}</MsgType>",
        ]
        for k, v in fields.items():
            parts.append(f"<{k}>{v if k in ('MsgId', 'Latitude', 'Longitude', 'Precision') else cdata(v)}</{k}>")
        return "<xml>" + "".join(parts) + "</xml>"

    def text(self, openid: str, content: str, **kw: Any) -> ReplyMessage:
        return self.send(openid, self.xml(openid, "text", {"Content": content, "MsgId": str(next(_msg_ids))}, kw.get("create_time")), **kw)

    def click(self, openid: str, key: str, **kw: Any) -> ReplyMessage:
        return self.send(openid, self.xml(openid, "event", {"Event": "CLICK", "EventKey": key}, kw.get("create_time")), **kw)

    def event(self, openid: str, event: str, key: str = "", **kw: Any) -> ReplyMessage:
        fields = {"Event": event}
        if key or event in ("subscribe", "SCAN"):
            fields["EventKey"] = key
        return self.send(openid, self.xml(openid, "event", fields, kw.get("create_time")), **kw)

    def image(self, openid: str, **kw: Any) -> ReplyMessage:
        fields = {"PicUrl": "http://example.invalid/p.jpg", "MediaId": "media1", "MsgId": str(next(_msg_ids))}
        return self.send(openid, self.xml(openid, "image", fields, kw.get("create_time")), **kw)

    # --- transport -------------------------------------------------------
    def signed_query(self, timestamp: str | None = None, nonce: str | None = None, body_encrypt: str | None = None) -> dict[str, str]:
        ts = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        q = {"signature": sha1_signature(self.cfg.token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": ""}
        if body_encrypt is not None:
            q["encrypt_type"] = "aes"
            q["msg_signature"] = sha1_signature(self.cfg.token, ts, nonce, body_encrypt)
        return q

    def envelope(self, xml: str, mode: str | None = None, timestamp: str | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """Return (query, body) for a push in plain, compat or aes mode."""
        mode = mode or self.mode
        ts = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        if mode == "plain":
            return self.signed_query(ts, nonce), xml.encode()
        crypto = WeChatCrypto(self.cfg.token, self.cfg.encoding_aes_key, self.cfg.appid)
        wrapped = crypto.encrypt_message(xml, nonce, ts)
        enc = SafeET.fromstring(wrapped).findtext("Encrypt") or ""
        if mode == "compat":
            inner = xml[len("<xml>") : -len("</xml>")]
            body = f"<xml>{inner}<Encrypt>{cdata(enc)}</Encrypt></xml>"
        else:
            to_user = SafeET.fromstring(xml).findtext("ToUserName") or ""
            body = f"<xml><ToUserName>{cdata(to_user)}</ToUserName><Encrypt>{cdata(enc)}</Encrypt></xml>"
        return self.signed_query(ts, nonce, enc), body.encode()

    def send(self, openid: str, xml: str, mode: str | None = None, **kw: Any) -> ReplyMessage:
        mode = mode or self.mode
        query, body = self.envelope(xml, mode, kw.get("timestamp"), kw.get("nonce"))
        if self.on_push:
            self.on_push(openid)
        status, text = self.post(f"/wechat?{urlencode(query)}", {"Content-Type": "text/xml"}, body)
        reply = self.read_reply(status, text, mode)
        if self.on_reply:
            self.on_reply(openid, reply)
        return reply

    def read_reply(self, status: int, text: str, mode: str) -> ReplyMessage:
        if status != 200 or text in ("", "success"):
            return ReplyMessage(status, text)
        root = SafeET.fromstring(text)
        if mode != "plain":
            enc = root.findtext("Encrypt") or ""
            expected = sha1_signature(self.cfg.token, root.findtext("TimeStamp") or "", root.findtext("Nonce") or "", enc)
            if expected != root.findtext("MsgSignature"):
                raise AssertionError("reply MsgSignature does not verify")
            crypto = WeChatCrypto(self.cfg.token, self.cfg.encoding_aes_key, self.cfg.appid)
            text = crypto.decrypt_message(text, root.findtext("MsgSignature"), root.findtext("TimeStamp"), root.findtext("Nonce"))
            root = SafeET.fromstring(text)
        msg = ReplyMessage(status, text, type=root.findtext("MsgType") or "", content=root.findtext("Content") or "")
        msg.kf_account = root.findtext("TransInfo/KfAccount") or ""
        for item in root.iter("item"):
            msg.articles.append({c.tag: c.text or "" for c in item})
        return msg
