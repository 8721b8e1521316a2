"""Rows (a)–(e): the webhook under concurrent load, and (a) again at a fixed 200 requests/s.

Every request is built as WeChat builds it (``bot.emulator.push.Pusher``): a fresh nonce and signature, a unique
CreateTime/MsgId per user so the dedup key never repeats (a repeat would be answered from Redis, which is
cheaper and not what we want to measure), AES-encrypted for row (b).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

import redis
import requests

from bench import data
from bench.env import Server, Settings
from bench.runner import profile_server, run_load
from bot.config import Config
from bot.emulator.push import Pusher, ReplyMessage

BOUND_USERS = 2000  # cards 1..2000, bound to o_bench_1..o_bench_2000
UNBOUND_FIRST, UNBOUND_LAST = 2001, 12000  # cards people are binding in row (c)
_msgids = itertools.count(7_000_000_000)
_BASE_TIME = int(time.time())
_sent_by_user: dict[str, int] = {}


def create_time(openid: str) -> int:
    """A CreateTime never used before for this openid in this run: the dedup key of a click (openid, CreateTime,
    event, key) must never repeat across rows either, or a row would be partly answered from the dedup cache."""
    n = _sent_by_user.get(openid, 0)
    _sent_by_user[openid] = n + 1
    return _BASE_TIME - n


def pusher(cfg: Config, mode: str, server: Server | None = None) -> Pusher:
    def post(path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        assert server is not None
        r = requests.post(server.url + path, data=body, headers=headers, timeout=10)
        return r.status_code, r.text

    return Pusher(cfg.wechat, post, mode=mode)


def expected_balance(card_id: int) -> str:
    fen = 10000 + (card_id * 7919) % 90000
    return f"{fen // 100}.{fen % 100:02d}"


def click_requests(cfg: Config, mode: str, key: str, openids: list[str], count: int) -> list[tuple[str, bytes]]:
    p = pusher(cfg, mode)
    out = []
    for i in range(count):
        oid = openids[i % len(openids)]
        xml = p.xml(oid, "event", {"Event": "CLICK", "EventKey": key}, create_time=create_time(oid))
        query, body = p.envelope(xml, mode)
        out.append(("/wechat?" + urlencode(query), body))
    return out


def text_requests(cfg: Config, openids: list[str], contents: list[str]) -> list[tuple[str, bytes]]:
    p = pusher(cfg, "plain")
    out = []
    for oid, content in zip(openids, contents, strict=True):
        xml = p.xml(oid, "text", {"Content": content, "MsgId": str(next(_msgids))})
        query, body = p.envelope(xml, "plain")
        out.append(("/wechat?" + urlencode(query), body))
    return out


def setup_data(engine: Any) -> None:
    data.add_cardholders(engine, 1, BOUND_USERS)
    data.add_cardholders(engine, UNBOUND_FIRST, UNBOUND_LAST, bind_every=10**9)
    data.analyze(engine)


def seed_dialogs(services: Any, state: str, dialog_data: dict[str, Any], openids: list[str]) -> None:
    """Put each openid where the probe user stood after its BIND click (same keys and format as ``bot.chat.dialogs``),
    its profile cached as that click left it."""
    dialogs = services.dialogs
    raw = json.dumps({"state": state, "data": dialog_data}, ensure_ascii=False)
    r = services.store.r
    for chunk in range(0, len(openids), 5000):
        pipe = r.pipeline(transaction=False)
        for oid in openids[chunk : chunk + 5000]:
            pipe.set(dialogs._k(oid), raw, ex=dialogs.ttl)
            pipe.set(dialogs._seen(oid), state, ex=dialogs.ttl + 3600)
        pipe.execute()
    seed_profiles(services, openids)


def seed_profiles(services: Any, openids: list[str]) -> None:
    """Each openid's profile as a message of a moment ago left it (``bot.chat.profiles``): the steady state of users
    who use the bot, where a push reads its user from Redis alone (a first contact, or one more than 5 minutes after
    the last, also writes the ``wechat_users`` row; the trace shows the steady state too)."""
    from bot.chat.profiles import PROFILE_TTL_SECONDS, Profile

    profiles = services.profiles
    seen = profiles.encode(Profile("zh", int(time.time())))
    r = services.store.r
    for chunk in range(0, len(openids), 5000):
        pipe = r.pipeline(transaction=False)
        for oid in openids[chunk : chunk + 5000]:
            pipe.set(profiles.key(oid), seen, ex=PROFILE_TTL_SECONDS)
        pipe.execute()


def probe(label: str, reply: ReplyMessage, must_contain: str) -> str:
    shown = (reply.content or reply.raw)[:120].replace("\n", " / ")
    if reply.status != 200 or must_contain not in (reply.content or reply.raw):
        raise RuntimeError(f"{label}: unexpected reply (status {reply.status}): {shown!r}; expected {must_contain!r}")
    return shown


def run(settings: Settings, cfg: Config, services: Any, bot: Server, start_server: Any, report: Any) -> dict[str, Any]:
    dur_total = settings.duration + (0.5 if settings.quick else 2.0)
    plain_cap = int(dur_total * 3000)
    aes_cap = int(dur_total * 1500)
    bound = [data.openid(i) for i in range(1, BOUND_USERS + 1)]
    results: dict[str, Any] = {"probes": {}}
    seed_profiles(services, bound)

    # (a) balance, plain
    p_plain, p_aes = pusher(cfg, "plain", bot), pusher(cfg, "aes", bot)
    results["probes"]["a"] = probe("(a) balance", p_plain.click(bound[6], "BALANCE", create_time=create_time(bound[6])), expected_balance(7))
    results["probes"]["b"] = probe("(b) balance aes", p_aes.click(bound[7], "BALANCE", create_time=create_time(bound[7])), expected_balance(8))
    reqs = click_requests(cfg, "plain", "BALANCE", bound, plain_cap)
    results["a"] = run_load(settings, "a", bot, reqs)
    report(f"(a) balance plain: {_line(results['a'])}")

    # (b) balance, safe mode (AES both ways)
    reqs = click_requests(cfg, "aes", "BALANCE", bound, aes_cap)
    results["b"] = run_load(settings, "b", bot, reqs)
    report(f"(b) balance AES: {_line(results['b'])}")

    # (c) one binding-dialog step: users who pressed BIND answer the first question with their student number
    probe_oid = data.openid(UNBOUND_LAST + 1)
    first = p_plain.click(probe_oid, "BIND")
    dialog = services.dialogs.get(probe_oid)
    if dialog is None:
        results["c"] = {"error": f"BIND started no dialog (reply: {first.content[:80]!r})"}
    else:
        n = int(dur_total * 1500)
        oids = [f"{data.OPENID_PREFIX}c{i}" for i in range(n)]
        cards = [UNBOUND_FIRST + i % (UNBOUND_LAST - UNBOUND_FIRST + 1) for i in range(n)]
        seed_dialogs(services, dialog.state, dialog.data, oids)
        step = p_plain.text(oids[-1], data.student_no(cards[-1]))
        after = services.dialogs.get(oids[-1])
        results["probes"]["c"] = f"state {dialog.state} -> {after.state if after else None}: {step.content[:100]!r}"
        reqs = text_requests(cfg, oids[:-1], [data.student_no(c) for c in cards[:-1]])
        results["c"] = run_load(settings, "c", bot, reqs)
        results["c"]["step"] = results["probes"]["c"]
        report(f"(c) binding step: {_line(results['c'])}")

    # (a) at a fixed 200 requests/s: the latency a user sees at a realistic peak
    rate_dur = min(settings.duration, 20.0)
    reqs = click_requests(cfg, "plain", "BALANCE", bound, int((rate_dur + 2) * settings.fixed_rate) + 100)
    results["a_rate"] = run_load(settings, "a_rate", bot, reqs, rate=settings.fixed_rate, duration=rate_dur)
    report(f"(a) at {settings.fixed_rate}/s: {_line(results['a_rate'])}")

    results["trace"] = trace_one(cfg, bound[10])
    if settings.profile:
        reqs = click_requests(cfg, "plain", "BALANCE", bound, int(10 * 3000))
        results["a_profile"] = profile_server(settings, "a", bot, reqs, 6 if settings.quick else 10)

    # (d) bare Flask and (e) WeRoBot: the same requests as (a), other servers with the same gunicorn settings
    with start_server("bare", "bench.apps:bare_app()") as bare:
        reqs = click_requests(cfg, "plain", "BALANCE", bound, plain_cap)
        results["d"] = run_load(settings, "d", bare, reqs)
        results["d"]["wrapped"] = False  # a bare route has no dedup: a replayed request costs it the same
        report(f"(d) bare Flask: {_line(results['d'])}")
    with start_server("werobot", "bench.apps:werobot_app()", health="/wechat") as peer:
        reply = pusher(cfg, "plain", peer).click(bound[8], "BALANCE", create_time=create_time(bound[8]))
        results["probes"]["e"] = probe("(e) werobot", reply, expected_balance(9))
        reqs = click_requests(cfg, "plain", "BALANCE", bound, plain_cap)
        results["e"] = run_load(settings, "e", peer, reqs)
        report(f"(e) WeRoBot: {_line(results['e'])}")
    return results


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return r["error"]
    return (
        f"{r['throughput']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"non-2xx {sum(v for k, v in r['statuses'].items() if not k.startswith('2'))}, errors {sum(r['errors'].values())}, "
        f"loadgen CPU {r['loadgen_cpu_pct']:.0f}%, server CPU {r['server_cpu_pct']:.0f}%, PG+Redis CPU {r['backend_cpu_pct']:.0f}%"
        + (" (request list wrapped: some repeats)" if r.get("wrapped") else "")
    )


def trace_one(cfg: Config, openid: str, key: str = "BALANCE") -> dict[str, Any]:
    """What one push costs the bot: the SQL statements, Redis commands and pool checkouts, traced in-process
    (Flask's test client) on an app built from the same config as the server's."""
    from psycopg.pq import TransactionStatus
    from sqlalchemy import event

    from bot import create_app

    app = create_app(cfg.model_copy(update={"emulator": cfg.emulator.model_copy(update={"enabled": False})}))
    svc = app.extensions["cardbot"]
    sql: list[str] = []
    redis_cmds: list[str] = []
    checkouts = [0]

    def on_sql(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sql.append(" ".join(statement.split())[:90])

    def ended(word: str) -> Any:
        def listener(conn: Any) -> None:  # only what goes to the server: psycopg sends nothing when no transaction is open
            if conn.connection.dbapi_connection.info.transaction_status != TransactionStatus.IDLE:
                sql.append(word)

        return listener

    for engine in {svc.engine.pool: svc.engine, svc.read_engine.pool: svc.read_engine}.values():  # lone reads have their own pool
        event.listen(engine, "before_cursor_execute", on_sql)
        event.listen(engine, "commit", ended("COMMIT"))
        event.listen(engine, "rollback", ended("ROLLBACK"))
        event.listen(engine.pool, "checkout", lambda *a: checkouts.__setitem__(0, checkouts[0] + 1))
    client = app.test_client()
    p = pusher(cfg, "plain")
    original = svc.store.r.execute_command
    pipelined = redis.client.Pipeline.execute

    def counting(*args: Any, **kw: Any) -> Any:
        redis_cmds.append(str(args[0]))
        return original(*args, **kw)

    def counting_pipeline(pipe: Any, *args: Any, **kw: Any) -> Any:
        redis_cmds.append("PIPELINE(" + " ".join(str(c[0][0]) for c in pipe.command_stack) + ")")
        return pipelined(pipe, *args, **kw)

    def send(create_time: int) -> Any:
        query, body = p.envelope(p.xml(openid, "event", {"Event": "CLICK", "EventKey": key}, create_time=create_time), "plain")
        return client.post("/wechat?" + urlencode(query), data=body, headers={"Content-Type": "text/xml"})

    send(create_time(openid))  # warm: first use compiles statements and opens connections
    sql.clear()
    checkouts[0] = 0
    svc.store.r.execute_command = counting  # type: ignore[method-assign]
    redis.client.Pipeline.execute = counting_pipeline  # type: ignore[method-assign]
    try:
        resp = send(create_time(openid))
    finally:
        svc.store.r.execute_command = original  # type: ignore[method-assign]
        redis.client.Pipeline.execute = pipelined  # type: ignore[method-assign]
        svc.close()
    return {"status": resp.status_code, "sql": sql, "redis": redis_cmds, "checkouts": checkouts[0]}
