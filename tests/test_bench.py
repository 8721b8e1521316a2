"""The benchmark's own machinery (no timing here): requests are signed like WeChat's and never repeat a dedup key,
the load generator counts what it sends and what comes back, and profiles are read correctly."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bench import loadgen, report, runner, webhook
from bot.chat.wechat_xml import check_signature, decode_push, dedup_key


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["plain", "aes"])
def test_click_requests_are_signed_and_unique(demo_cfg, mode: str) -> None:  # type: ignore[no-untyped-def]
    users = ["o_a", "o_b", "o_c"]
    reqs = webhook.click_requests(demo_cfg, mode, "BALANCE", users, 30) + webhook.click_requests(demo_cfg, mode, "BALANCE", users, 30)
    keys, nonces = set(), set()
    for path, body in reqs:
        args = dict(parse_qsl(urlsplit(path).query))
        assert check_signature(demo_cfg.wechat.token, args["signature"], args["timestamp"], args["nonce"])
        msg, encrypted = decode_push(body, args, demo_cfg.wechat)
        assert encrypted == (mode == "aes")
        assert (msg.type, msg.event, msg.key) == ("event", "click", "BALANCE")
        keys.add(dedup_key(msg))
        nonces.add(args["nonce"])
    assert len(keys) == len(reqs), "a repeated dedup key would be answered from the cache"
    assert len(nonces) > len(reqs) * 0.9


@pytest.mark.unit
def test_text_requests_carry_unique_msgids(demo_cfg) -> None:  # type: ignore[no-untyped-def]
    reqs = webhook.text_requests(demo_cfg, ["o_x", "o_x"], ["2000000001", "2000000001"])
    msgs = [decode_push(body, dict(parse_qsl(urlsplit(path).query)), demo_cfg.wechat)[0] for path, body in reqs]
    assert [m.content for m in msgs] == ["2000000001", "2000000001"]
    assert dedup_key(msgs[0]) != dedup_key(msgs[1])


def test_loadgen_sends_each_request_once_and_counts_statuses() -> None:
    seen: list[bytes] = []
    lock = threading.Lock()

    @Request.application
    def app(request: Request) -> Response:
        with lock:
            seen.append(request.get_data())
        return Response("nope" if b"bad" in request.get_data() else "ok", status=403 if b"bad" in request.get_data() else 200)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reqs = [(f"/wechat?i={i}", b"bad" if i % 5 == 0 else f"body{i}".encode()) for i in range(40)]
        out = loadgen.run(f"http://127.0.0.1:{server.server_port}", reqs, 30, 4, 0, 0, once=True)
    finally:
        server.shutdown()
    assert out["requests"] == 40
    assert out["statuses"] == {"200": 32, "403": 8}
    assert out["errors"] == {}
    assert sorted(seen) == sorted(body for _, body in reqs)


def test_profile_summary_attributes_time_to_our_functions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = tmp_path / "p.txt"
    raw.write_text(
        'process 1:"gunicorn";Thread.run (threading.py:982);push (bot/webhook.py:70);decode_push (bot/wechat_xml.py:80);parse (xml/etree.py:1) 30\n'
        'process 1:"gunicorn";Thread.run (threading.py:982);run_message (bot/conversation.py:49);execute (sqlalchemy/orm/session.py:2) 60\n'
        'process 1:"gunicorn";Thread.run (threading.py:982);handle (gunicorn/workers/gthread.py:5) 10\n'
    )
    s = runner.summarize_raw(raw)
    assert s["busy_samples"] == 100
    assert dict(s["ours_inclusive"]) == {
        "run_message (bot/conversation.py)": 60.0,
        "push (bot/webhook.py)": 30.0,
        "decode_push (bot/wechat_xml.py)": 30.0,
    }
    assert dict(s["by_package"]) == {"sqlalchemy": 60.0, "xml": 30.0, "gunicorn": 10.0}


def test_cardsys_latency_knob_delays_every_protocol_call(cs_live, cs) -> None:  # type: ignore[no-untyped-def]
    cs_live.app.extensions["emulator_cardsys"].latency = 0.2
    t0 = time.perf_counter()
    account = cs.account("20230001")
    assert account is not None and account.balance_fen == 10000
    assert time.perf_counter() - t0 >= 0.2


@pytest.mark.unit
def test_cardsys_section_reports_a_credit_counted_twice_as_missed() -> None:
    once = {"n": 20000, "seconds": 90.0, "per_s": 222.0, "passes": 10, "exactly_once": True, "bot_ms": 3.0, "cardsys_ms": 1.0}
    checks: list[tuple[str, str, str]] = []
    lines = report._cardsys({"latency_ms": 20, "threads": 16, "b": once, "c": {**once, "exactly_once": False}}, checks)
    assert any("| (c) backlog" in line and "**no**" in line for line in lines)
    assert [c[2] for c in checks] == ["met", "**missed**"]  # (a) not run: no check


@pytest.mark.unit
def test_cardsys_section_holds_the_loss_report_to_one_second_and_one_report_a_card() -> None:
    d = {
        "throughput": 20.0,
        "p50_ms": 60.0,
        "p99_ms": 180.0,
        "statuses": {"200": 399},
        "errors": {},
        "loadgen_cpu_pct": 1.0,
        "server_cpu_pct": 30.0,
        "backend_cpu_pct": 5.0,
        "server_cpu_ms_per_req": 9.0,
        "exactly_once": True,
        "check": "400 cards (the probe's included): reports by status {'lost': 400}",
    }
    base = {"latency_ms": 20, "threads": 16}
    checks: list[tuple[str, str, str]] = []
    lines = report._cardsys({**base, "d": d}, checks)
    assert any(line.startswith("| (d) lost-card report") and "| 180.0 |" in line for line in lines)
    assert checks == [("lost-card report answered < 1 s p99 (card system at 20 ms), one report a card", "180.0 ms", "met")]
    checks.clear()
    report._cardsys({**base, "d": {**d, "p99_ms": 1200.0}}, checks)
    report._cardsys({**base, "d": {**d, "exactly_once": False}}, checks)
    assert [c[2] for c in checks] == ["**missed**", "**missed**"]


@pytest.mark.unit
def test_paynotify_section_holds_the_power_row_to_the_card_row_over_http() -> None:
    card = {
        "requests": 600,
        "notifies_per_s": 500.0,
        "payments_per_s": 250.0,
        "p50_ms": 20.0,
        "p99_ms": 60.0,
        "failed": 0,
        "statuses": {"204": 600},
        "loadgen_cpu_pct": 20.0,
        "server_cpu_pct": 120.0,
        "backend_cpu_pct": 40.0,
        "delivered": 300,
        "exactly_once": True,
        "check": "card system: 300 entries",
    }
    over_http = {**card, "payments_per_s": 200.0, "check": "card system (cardsys/1): 300 refs"}
    base = {"orders": 300, "concurrency": 16, "card": card, "card_http": over_http}
    checks: list[tuple[str, str, str]] = []
    lines = report._paynotify({**base, "power": {**card, "payments_per_s": 170.0, "check": "electricity system: 300 refs"}}, checks)
    assert [line.split(" | ")[0] for line in lines if line.startswith("| card") or line.startswith("| dorm")] == [
        "| card top-up → card system (the bot's ledger)",
        "| dorm electricity → electricity system (power/1 over HTTP)",
        "| card top-up → card system (cardsys/1 over HTTP)",
    ]
    assert "- dorm electricity → electricity system (power/1 over HTTP): electricity system: 300 refs" in lines
    assert checks[1][1:] == ("170/s = 0.85× of 200/s", "**missed**")
    assert any(line.endswith("no network call): 0.68×.") for line in lines)  # the ledger row's ratio, told, not a line
    checks = []
    report._paynotify({**base, "power": {**card, "payments_per_s": 240.0, "exactly_once": False}}, checks)
    assert [c[2] for c in checks] == ["met", "**missed**"]  # fast enough, but a room recharged twice
    checks = []
    report._paynotify({**base, "power": {**card, "payments_per_s": 190.0}, "card_http": {**over_http, "exactly_once": False}}, checks)
    assert [c[2] for c in checks] == ["met", "**missed**"]  # the row it is held to delivered a credit twice
    checks = []
    report._paynotify({**base, "power": {**card, "payments_per_s": 190.0}}, checks)
    assert [c[1:] for c in checks] == [("500/s", "met"), ("190/s = 0.95× of 200/s", "met")]
    checks = []
    report._paynotify({k: v for k, v in base.items() if k != "card_http"} | {"power": card}, checks)
    assert [c[0] for c in checks] == ["pay notify ≥ 300/s, each payment delivered once"]  # no row to hold it to


@pytest.mark.unit
def test_the_sweep_section_holds_the_low_power_sweep_to_10_seconds_and_one_alert_a_room() -> None:
    runs = [{"read": 20000, "alerted": 842, "notices": 842, "seconds": 1.2, "cpu_s": 0.6, "emulator_cpu_s": 0.3}]
    runs.append({**runs[0], "alerted": 0, "notices": 0})
    checks: list[tuple[str, str, str]] = []
    lines = report._power_sweep({"rooms": 20000, "runs": runs, "ok": True, "check": "842 notices"}, checks)
    assert "| 1 | 20,000 | 842 | 842 | 1.20 | 0.60 | 0.30 |" in lines
    checks.clear()
    report._power_sweep({"rooms": 20000, "runs": [{**runs[0], "seconds": 10.5}, runs[1]], "ok": True, "check": ""}, checks)
    report._power_sweep({"rooms": 20000, "runs": runs, "ok": False, "check": "alerted twice"}, checks)
    assert [c[2] for c in checks] == ["**missed**", "**missed**"]
