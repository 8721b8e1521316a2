"""The HTTP clients of outside systems that are called from many threads at once (the card system, the electricity
system): one keep-alive connection per calling thread, the environment read once."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import certifi
import requests
import requests.adapters
import urllib3


def keepalive_session(base_url: str, connections: int = 32) -> requests.Session:
    """One keep-alive connection per thread that calls at once (the worker delivers credits in 16 threads; requests'
    default of 10 would close and reopen the others on every call). The environment's proxy and CA bundle settings
    are read once here, not on every call (requests would scan the whole environment per request)."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(base_url)
    session.verify = _ca_bundle()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def keepalive_pool(base_url: str, connections: int = 32) -> urllib3.PoolManager:
    """urllib3's pool itself, for a client whose every call is one signed request and one JSON answer: requests'
    session (cookies, hooks, request preparation, adapters) costs a delivery more CPU than the call. The same
    environment settings as ``keepalive_session`` (proxy, CA bundle), read once; no retries and no redirects (the
    caller decides what an unanswered call means)."""
    proxy = requests.utils.get_environ_proxies(base_url).get(urlsplit(base_url).scheme)
    settings: dict[str, Any] = {"maxsize": connections, "retries": False, "cert_reqs": "CERT_REQUIRED", "ca_certs": _ca_bundle(certifi.where())}
    return urllib3.ProxyManager(proxy, **settings) if proxy else urllib3.PoolManager(**settings)


def _ca_bundle(default: str | bool = True) -> str | bool:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or default
