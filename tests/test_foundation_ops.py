"""Operations: health, metrics, logs with request id and hashed openid, the shared access token."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from bot.adapters.wechat_api import WeChatAPI, WeChatAPIError
from bot.chat.router import Routes
from bot.logs import JsonFormatter, hash_openid, scrub

OID = "oOps0000000000000000000001"


def test_healthz_checks_database_and_redis(live):
    r = live.http.get(live.url + "/healthz")
    assert r.status_code == 200 and r.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_healthz_reports_redis_down(make_live):
    live = make_live(redis={"url": "redis://127.0.0.1:1/0"})
    r = live.http.get(live.url + "/healthz")
    assert r.status_code == 503 and r.json()["checks"]["redis"] == "down"


def test_metrics_count_requests_latency_and_dedup(make_live):
    live = make_live(server={"admin_token": "ops-token"})
    wx = live.pusher()
    xml = wx.xml(OID, "text", {"Content": "help", "MsgId": "424242"})
    wx.send(OID, xml)
    wx.send(OID, xml)
    assert live.http.get(live.url + "/metrics").status_code == 401
    text = live.http.get(live.url + "/metrics", headers={"Authorization": "Bearer ops-token"}).text
    assert 'cardbot_http_requests_total{endpoint="/wechat",method="POST",status="200"} 2.0' in text
    assert "cardbot_http_request_seconds_bucket" in text
    assert "cardbot_dedup_hits_total 1.0" in text
    assert "cardbot_handler_errors_total" in text or "cardbot_handler_errors" in text


def test_logs_are_json_with_request_id_and_hashed_openid(make_live, caplog):
    caplog.set_level(logging.INFO)
    routes = Routes()

    @routes.text("__test_log__")
    def noisy(msg, ctx):
        logging.getLogger("handlers.test").info("handling for %s", "someone")
        return "ok"

    make_live(routes=[routes]).pusher().text(OID, "__test_log__")
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "handlers.test"]
    assert lines
    payload = json.loads(lines[0])
    assert payload["user"] == hash_openid(OID) and OID not in lines[0]
    assert payload["request_id"] != "-"


@pytest.mark.unit
def test_scrub_hides_secrets():
    line = scrub('GET /cgi-bin/token?appid=wx1&secret=abc123&access_token=TOKEN9 {"password": "123456"}')
    assert "abc123" not in line and "TOKEN9" not in line and "123456" not in line


def test_token_is_shared_and_fetched_once_under_concurrency(live):
    apis = [WeChatAPI(live.cfg.wechat, live.services.store) for _ in range(8)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda a=a: tokens.append(a.token())) for a in apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1
    assert live.emulator.token_fetches == 1


def test_rejected_token_is_refreshed_once_then_retried(live, wx):
    wx.text(OID, "help")  # opens the 48 h customer-service window
    api = live.services.wechat
    old = api.token()
    with live.emulator.lock:
        for tok in live.emulator.tokens:
            tok.invalid_after = 0  # WeChat invalidated it (e.g. another server fetched a new one)
    api.send_text(OID, "hello")
    assert api.token() != old
    assert live.emulator.inbox[OID][-1]["content"]["content"] == "hello"


def test_token_errors_do_not_retry_forever(live, monkeypatch):
    api = live.services.wechat
    calls = {"n": 0}
    real = live.emulator.check_token

    def always_bad(value):
        calls["n"] += 1
        return 40001

    monkeypatch.setattr(live.emulator, "check_token", always_bad)
    with pytest.raises(WeChatAPIError) as err:
        api.send_text(OID, "x")
    assert err.value.errcode == 40001 and calls["n"] == 2
    monkeypatch.setattr(live.emulator, "check_token", real)


def test_customer_service_window_closed_is_reported(live):
    with pytest.raises(WeChatAPIError) as err:
        live.services.wechat.send_text("oNeverWrote00000000000001", "hi")
    assert err.value.errcode == 45015
