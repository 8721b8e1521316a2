"""The HTTP session of the bot's clients of outside systems that are called from many threads at once (the card
system, the electricity system): one keep-alive connection per calling thread, the environment read once."""

from __future__ import annotations

import os

import requests
import requests.adapters


def keepalive_session(base_url: str, connections: int = 32) -> requests.Session:
    """One keep-alive connection per thread that calls at once (the worker delivers credits in 16 threads; requests'
    default of 10 would close and reopen the others on every call). The environment's proxy and CA bundle settings
    are read once here, not on every call (requests would scan the whole environment per request)."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(base_url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
