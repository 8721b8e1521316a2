"""WeChat API client: wechatpy's WeChatClient with one shared access_token in Redis, refreshed from one
place under a lock, timeouts on every call, and a bounded retry (wechatpy's own auto_retry recurses
without limit, so it is off).

One call goes around wechatpy: the template message, the outbox's hot path (hundreds a second in an alerts burst).
Through wechatpy and requests, request preparation, cookies, hooks and adapters cost more CPU than the call
(about half of the worker's per notice). ``_post_json`` posts it on urllib3's pool itself (``keepalive_pool``)
and keeps wechatpy's semantics exactly: the token as ``access_token`` in the query, the body JSON with raw UTF-8,
an HTTP error status raised as ``WeChatClientException(None)``, a non-zero errcode as ``WeChatClientException``
with it — so ``_call``'s one token refresh, its errcode mapping and ``maybe_sent`` apply unchanged. The token is
wechatpy's (``_Client.access_token``); every other call still goes through wechatpy.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any
from urllib.parse import quote

import redis
import requests
import urllib3
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from bot.adapters.keepalive import keepalive_pool
from bot.adapters.store import Store
from bot.config import WeChatConfig

log = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}
_JSON = {"Content-Type": "application/json; charset=utf-8"}
# How long a process reuses the shared token it read from Redis before reading it again. Safe because WeChat keeps a
# replaced token valid for 5 minutes after a refresh; a token error drops it at once (``WeChatAPI._call``).
TOKEN_REUSE_SECONDS = 60.0


class WeChatAPIError(Exception):
    """``maybe_sent``: the request left us but no answer came back (read timeout, dropped connection), so WeChat
    may have acted on it. Senders of non-idempotent calls (template, customer-service) must not simply resend."""

    def __init__(self, errcode: int | None, errmsg: str = "", maybe_sent: bool = False) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.maybe_sent = maybe_sent


class _Unreadable(Exception):
    """WeChat answered 200 with something that is not a JSON object: it may have acted on the call."""


def _never_sent(exc: BaseException) -> bool:
    """True only when the request surely did not reach WeChat (connect timeout, connection refused)."""
    if isinstance(exc, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):  # urllib3's covers NewConnectionError
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return isinstance(exc, redis.lock.LockError)


class _Client(WeChatClient):
    """wechatpy client pointed at ``api_base_url``; the token comes from ``/cgi-bin/stable_token``."""

    def __init__(self, cfg: WeChatConfig, store: Store) -> None:
        storage = RedisStorage(store.r, prefix=store.key("wechatpy"))
        super().__init__(
            cfg.appid,
            cfg.secret,
            session=storage,
            timeout=(min(2.0, cfg.request_timeout_seconds), cfg.request_timeout_seconds),
            auto_retry=False,
        )
        self.API_BASE_URL = f"{cfg.api_base_url}/cgi-bin/"
        self._cfg = cfg
        self._store = store
        self._held: tuple[str, float] | None = None  # (token, when read): one Redis read a minute, not one a call
        # requests reads the proxy and CA-bundle variables from the environment on every request (a tenth of the
        # outbox worker's CPU per template message): read once here, for the one host this session calls.
        self._http.trust_env = False
        self._http.proxies = requests.utils.get_environ_proxies(cfg.api_base_url)
        self._http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def fetch_access_token(self, force: bool = False) -> dict[str, Any]:
        lock = self._store.r.lock(self._store.key("lock", "token", self.appid), timeout=15, blocking_timeout=8)
        stale = self.session.get(self.access_token_key)
        with lock:
            current = self.session.get(self.access_token_key)
            if current and (not force or current != stale):
                return {"access_token": current}
            res = self._http.post(
                f"{self._cfg.api_base_url}/cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self._cfg.secret,
                    "force_refresh": force,
                },
                timeout=self.timeout,
            )
            res.raise_for_status()
            data = res.json()
            if data.get("errcode"):
                raise WeChatClientException(data["errcode"], data.get("errmsg", ""), client=self)
            ttl = max(60, int(data.get("expires_in", 7200)) - 300)
            self.session.set(self.access_token_key, data["access_token"], ttl)
            self.expires_at = int(time.time()) + ttl
            return data

    @property
    def access_token(self) -> str:
        held = self._held
        if held is not None and time.monotonic() - held[1] < TOKEN_REUSE_SECONDS:
            return held[0]
        token = self.session.get(self.access_token_key) or self.fetch_access_token()["access_token"]
        self._held = (token, time.monotonic())
        return token

    def forget_token(self) -> None:
        """WeChat rejected the token: drop this process's copy and the shared one, so the next call refreshes."""
        self._held = None
        self.session.delete(self.access_token_key)


class WeChatAPI:
    """The calls the bot makes. Each raises ``WeChatAPIError`` with WeChat's errcode on failure."""

    def __init__(self, cfg: WeChatConfig, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self.client = _Client(cfg, store)
        self.http = keepalive_pool(cfg.api_base_url)  # the template message's own pool (module docstring)
        self._timeout = urllib3.Timeout(connect=min(2.0, cfg.request_timeout_seconds), read=cfg.request_timeout_seconds)

    def _call(self, fn: Any, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        """Refresh the token once and retry once on token errors; one retry on network errors, but for a
        non-idempotent call only when the request surely never reached WeChat."""
        token_retried = net_retried = False
        while True:
            try:
                return fn(*args, **kwargs)
            except WeChatClientException as exc:
                code = exc.errcode
                if code in TOKEN_ERRORS and not token_retried:
                    token_retried = True
                    log.info("wechat token rejected (%s); refreshing once", code)
                    self.client.forget_token()
                    self.client.fetch_access_token(force=True)
                    continue
                if code is None and not net_retried:  # an HTTP error status: WeChat's gateway refused it
                    net_retried = True
                    time.sleep(0.2)
                    continue
                raise WeChatAPIError(code, str(exc.errmsg or "")) from None
            except (requests.RequestException, urllib3.exceptions.HTTPError, _Unreadable, redis.lock.LockError) as exc:
                unsent = _never_sent(exc)
                if not net_retried and (idempotent or unsent):
                    net_retried = True
                    time.sleep(0.2)
                    continue
                raise WeChatAPIError(None, type(exc).__name__, maybe_sent=not unsent and not idempotent) from None

    def token(self) -> str:
        return self._call(lambda: self.client.access_token)

    def send_text(self, openid: str, content: str) -> dict[str, Any]:
        """Customer-service text message (only inside WeChat's 48 h window)."""
        return self._call(self.client.message.send_text, openid, content, idempotent=False)

    def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None) -> str:
        """The msgid WeChat gave the message (its delivery report carries it). Posted by ``_post_json``, the same
        request wechatpy's ``message.send_template`` makes (``url`` left out when None)."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url is not None:
            body["url"] = url
        res = self._call(self._post_json, "message/template/send", body, idempotent=False)
        return str(res.get("msgid", ""))

    def _post_json(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/cgi-bin/<endpoint>`` on urllib3's pool, raising what wechatpy's ``client.post`` raises
        (module docstring); network errors are urllib3's own (no retries, no redirects: ``_call`` decides)."""
        raw = json.dumps(body, ensure_ascii=False).encode()  # raw UTF-8: WeChat refuses \uXXXX escapes (40033)
        target = f"{self.client.API_BASE_URL}{endpoint}?access_token={quote(self.client.access_token, safe='')}"
        res = self.http.urlopen("POST", target, body=raw, headers=_JSON, timeout=self._timeout, redirect=False)
        if res.status >= 400:  # requests' raise_for_status in wechatpy: no errcode
            raise WeChatClientException(None, None, client=self.client)
        try:
            result = json.loads(res.data.decode("utf-8", "ignore"), strict=False)
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise _Unreadable(f"HTTP {res.status}, no JSON object")
        errcode = int(result.get("errcode") or 0)
        if errcode:
            raise WeChatClientException(errcode, result.get("errmsg", errcode), client=self.client)
        return result

    def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.client.menu.create, menu)

    def get_menu(self) -> dict[str, Any]:
        return self._call(self.client.menu.get)

    def add_conditional_menu(self, menu: dict[str, Any]) -> str:
        """``menu/addconditional`` (``button`` + ``matchrule``) → the new menu's id."""
        return str(self._call(self.client.menu.add_conditional, menu, idempotent=False)["menuid"])

    def delete_conditional_menu(self, menuid: str) -> None:
        self._call(self.client.menu.del_conditional, menuid)

    def menu_for(self, openid: str) -> dict[str, Any]:
        """The menu this user sees (``menu/trymatch``)."""
        return self._call(self.client.menu.try_match, openid)

    def tags(self) -> list[dict[str, Any]]:
        return list(self._call(self.client.tag.get))

    def create_tag(self, name: str) -> int:
        return int(self._call(self.client.tag.create, name, idempotent=False)["id"])

    def tag_users(self, tag_id: int, openids: list[str]) -> None:
        self._call(self.client.tag.tag_user, tag_id, openids)

    def untag_users(self, tag_id: int, openids: list[str]) -> None:
        self._call(self.client.tag.untag_user, tag_id, openids)

    def oauth_openid(self, code: str) -> str:
        """Exchange a single-use OAuth code for the user's openid (snsapi_base)."""
        try:
            res = requests.get(
                f"{self.cfg.api_base_url}/sns/oauth2/access_token",
                params={"appid": self.cfg.appid, "secret": self.cfg.secret, "code": code, "grant_type": "authorization_code"},
                timeout=(2, self.cfg.request_timeout_seconds),
            )
            data = res.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatAPIError(None, type(exc).__name__) from None
        if not isinstance(data, dict) or data.get("errcode") or "openid" not in data:
            raise WeChatAPIError(data.get("errcode") if isinstance(data, dict) else None, "no openid")
        return str(data["openid"])
