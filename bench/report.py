"""The results table (Markdown, printed and written to bench/RESULTS.md), with each target checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"  # hand-written: what holds the missed targets back

TARGETS = {
    "a_vs_d": 0.2,  # issue 18's lines for the webhook
    "a_vs_e": 1.0,
    "a_vs_e_goal": 1.5,
    "a_rate_p99_ms": 20.0,
    "a_cpu_ms": 1.0,
    "c_vs_a": 1.5,
    "paynotify_per_s": 300.0,
    "power_vs_card": 0.9,
    "outbox_per_s": 500.0,
    "sweep_s": 10.0,
    "growth_p99_ratio": 2.0,
    "cs_balance_p99_ms": 150.0,
    "loss_p99_ms": 1000.0,
    "credits_per_s": 200.0,
    "backlog_s": 120.0,
}


def _f(x: Any, fmt: str = ".1f") -> str:
    try:
        return format(float(x), fmt)
    except (TypeError, ValueError):
        return "–"


def _ok(good: bool | None) -> str:
    return "–" if good is None else ("met" if good else "**missed**")


def _load_row(label: str, r: dict[str, Any] | None) -> str:
    if not r:
        return f"| {label} | not run | | | | | | | |"
    if "error" in r:
        return f"| {label} | error: {r['error']} | | | | | | | |"
    bad = sum(v for k, v in r["statuses"].items() if not k.startswith("2")) + sum(r["errors"].values())
    return (
        f"| {label} | {_f(r['throughput'], '.0f')} | {_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {bad} | "
        f"{_f(r['loadgen_cpu_pct'], '.0f')}% | {_f(r['server_cpu_pct'], '.0f')}% | {_f(r.get('backend_cpu_pct'), '.0f')}% | "
        f"{_f(r['server_cpu_ms_per_req'], '.2f')} |"
    )


def _profile(title: str, prof: dict[str, Any] | None) -> list[str]:
    if not prof:
        return []
    if "error" in prof or not prof.get("busy_samples"):
        return [f"*{title}*: {prof.get('error', 'no samples')}", ""]
    out = [f"*{title}* — py-spy, {prof['busy_samples']} samples holding the GIL (Python CPU time; for a server, all its workers):", ""]
    out.append("| our function (inclusive) | % CPU | hottest leaf function (self) | % CPU |")
    out.append("|---|---:|---|---:|")
    ours, leaf = prof.get("ours_inclusive", []), prof.get("leaf_self", [])
    for i in range(max(len(ours), len(leaf))):
        o = ours[i] if i < len(ours) else ("", "")
        lf = leaf[i] if i < len(leaf) else ("", "")
        out.append(f"| `{o[0]}` | {o[1]} | `{lf[0]}` | {lf[1]} |" if o[0] else f"| | | `{lf[0]}` | {lf[1]} |")
    out.append("")
    if prof.get("by_package"):
        out += ["Self time by package: " + ", ".join(f"{k} {v}%" for k, v in prof["by_package"]), ""]
    return out


def _yes(good: bool) -> str:
    return "yes" if good else "**no**"


def _cardsys(cs: dict[str, Any], checks: list[tuple[str, str, str]]) -> list[str]:
    """Section 5: the ``http`` card system answering every call in ``latency_ms`` (bench/cardsys.py)."""
    lines = ["## 5. Card system over HTTP (cardsys/1)", ""]
    if "error" in cs:
        return lines + [f"error: {cs['error']}", ""]
    lines += [
        f"The emulator's card system in one gunicorn process, every call answered after {cs['latency_ms']} ms. (a) is the bot under "
        'gunicorn on `[cardsystem] adapter = "http"`: a BALANCE click, whose reply is one `GET /accounts/{student_no}` to the '
        "card system, at a fixed rate. (d) is the same bot: students who tapped 挂失 (not timed) answer 确认 at a fixed rate, "
        "each a card marked lost at the card system, the report recorded and every bound account's notice queued before the "
        "reply; counted afterwards, one report a card. (b), (c): `bot.credits.deliver_due` in the bench process as the worker calls it "
        f"({cs['threads']} threads), pass after pass; counted at the card system (`GET /credits?date=`).",
        "",
        "| row | req/s | p50 ms | p99 ms | failed | load-gen CPU | server CPU | PostgreSQL+Redis CPU | server CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _load_row("(a) BALANCE click on the card system", cs.get("a")),
        _load_row("(d) lost-card report (确认), one a card", cs.get("d")),
        "",
        "| row | credits | seconds | credits/s | passes | exactly once | bot CPU ms/credit | card system CPU ms/credit |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key, label in (
        ("b", "(b) credits due now, one worker process"),
        ("b2", "(b) the same, two worker processes"),
        ("c", "(c) backlog after a 4-hour maintenance window"),
    ):
        r = cs.get(key)
        if r:
            lines.append(
                f"| {label} | {r['n']:,} | {_f(r['seconds'])} | {_f(r['per_s'], '.0f')} | {r['passes']} | {_yes(r['exactly_once'])} | "
                f"{_f(r['bot_ms'])} | {_f(r['cardsys_ms'])} |"
            )
    lines.append("")
    a, b, b2, c, d = cs.get("a") or {}, cs.get("b"), cs.get("b2"), cs.get("c"), cs.get("d") or {}
    if "p99_ms" in a:
        checks.append(("card-system balance click p99 < 150 ms at 100/s", f"{_f(a['p99_ms'])} ms", _ok(a["p99_ms"] < TARGETS["cs_balance_p99_ms"])))
    if "p99_ms" in d:
        lines += [f"(d): {d['check']}.", ""]
        checks.append(
            (
                "lost-card report answered < 1 s p99 (card system at 20 ms), one report a card",
                f"{_f(d['p99_ms'])} ms",
                _ok(d["p99_ms"] < TARGETS["loss_p99_ms"] and d["exactly_once"]),
            )
        )
    if b:
        checks.append(
            ("credit delivery ≥ 200/s (one worker)", f"{_f(b['per_s'], '.0f')}/s", _ok(b["per_s"] >= TARGETS["credits_per_s"] and b["exactly_once"]))
        )
    if b2:
        checks.append(
            (
                "credit delivery ≥ 200/s (two workers)",
                f"{_f(b2['per_s'], '.0f')}/s",
                _ok(b2["per_s"] >= TARGETS["credits_per_s"] and b2["exactly_once"]),
            )
        )
    if c:
        checks.append(
            (
                f"backlog of {c['n']:,} delivered < 2 min, each once",
                f"{_f(c['seconds'])} s",
                _ok(c["seconds"] < TARGETS["backlog_s"] and c["exactly_once"]),
            )
        )
    return lines


PAY_ROWS = (
    ("card", "card top-up → card system (the bot's ledger)"),
    ("power", "dorm electricity → electricity system (power/1 over HTTP)"),
    ("card_http", "card top-up → card system (cardsys/1 over HTTP)"),
)


def _paynotify(pn: dict[str, Any], checks: list[tuple[str, str, str]]) -> list[str]:
    """Section 2: the card row and the electricity row side by side (bench/paynotify.py)."""
    lines = ["## 2. Pay notify", ""]
    if "error" in pn:
        return lines + [f"error: {pn['error']}", ""]
    lines += [
        f"{pn['orders']} paid orders per product (after an uncounted warm-up of both), each notified twice at once (two "
        f"separately signed copies sent back to back by {pn['concurrency']} connections), signature verified (RSA-SHA256) and "
        "resource decrypted (AES-256-GCM) by the bot each time; the notify is answered once the payment and its credit are "
        'committed. A card top-up goes to the card system the bench runs with, the bot\'s own ledger (`[cardsystem] adapter = "ledger"`, '
        "the same database), credited inside the payment's transaction, before the answer; an electricity order (product `power`, "
        "a room id as target) goes out as one signed power/1 recharge over HTTP to the emulator's electricity system (one gunicorn "
        "process, also WeChat's emulator: its CPU is the electricity system's share of the cores), sent right after the answer by "
        "the server's delivery threads (their answers recorded together by one recorder thread per worker). The third row is the "
        'card row again on a second bot server whose card system is a school\'s: cardsys/1 over HTTP (`adapter = "http"`) to the '
        "emulator's card system in its own gunicorn process (one worker, 16 threads, as the electricity system's), so a top-up "
        "is delivered as an electricity payment is; its emulator CPU is that card system's. "
        "A row's time runs from its first notify to its last payment's delivery (the wait after the "
        "last answer is the tail column); CPU per payment is the server's (all workers) over the row, divided by payments delivered.",
        "",
        "| product | notifies | notifies/s | payments delivered/s | tail s | p50 ms | p99 ms | failed | delivered exactly once | "
        "load-gen CPU | server CPU | server CPU ms/payment | PostgreSQL+Redis CPU | emulator CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in PAY_ROWS:
        r = pn.get(key)
        if not r:
            lines.append(f"| {label} | not run | | | | | | | | | | | | |")
            continue
        lines.append(
            f"| {label} | {r['requests']} | {_f(r['notifies_per_s'], '.0f')} | {_f(r['payments_per_s'], '.0f')} | {_f(r.get('settle_s'), '.2f')} | "
            f"{_f(r['p50_ms'])} | {_f(r['p99_ms'])} | {r['failed']} | {_yes(r['exactly_once'])} | {_f(r['loadgen_cpu_pct'], '.0f')}% | "
            f"{_f(r['server_cpu_pct'], '.0f')}% | {_f(r.get('server_cpu_ms_per_payment'), '.1f')} | {_f(r.get('backend_cpu_pct'), '.0f')}% | "
            f"{_f(r.get('emulator_cpu_pct'), '.0f')}% |"
        )
    lines.append("")
    lines += [f"- {label}: {pn[key]['check']}" for key, label in PAY_ROWS if pn.get(key)]
    lines.append("")
    card, power = pn.get("card"), pn.get("power")
    if card:
        checks.append(
            (
                "pay notify ≥ 300/s, each payment delivered once",
                f"{_f(card['notifies_per_s'], '.0f')}/s",
                _ok(card["notifies_per_s"] >= TARGETS["paynotify_per_s"] and card["exactly_once"]),
            )
        )
    over_http = pn.get("card_http")
    if power and over_http:
        ratio = power["payments_per_s"] / over_http["payments_per_s"] if over_http["payments_per_s"] else None
        checks.append(
            (
                f"pay notify (power) ≥ {TARGETS['power_vs_card']}× the card row's payments/s (both delivered over HTTP), each delivered once",
                f"{_f(power['payments_per_s'], '.0f')}/s = {_f(ratio, '.2f')}× of {_f(over_http['payments_per_s'], '.0f')}/s",
                _ok(None if ratio is None else ratio >= TARGETS["power_vs_card"] and power["exactly_once"] and over_http["exactly_once"]),
            )
        )
    if card and power and card["payments_per_s"]:
        lines += [
            f"Electricity against the card row on the bot's own ledger (a credit inside the payment's transaction, no network "
            f"call): {power['payments_per_s'] / card['payments_per_s']:.2f}×.",
            "",
        ]
    return (
        lines
        + _profile("Profile of pay notify (card row)", pn.get("profile"))
        + _profile("Profile of pay notify (electricity row)", pn.get("profile_power"))
        + _profile("Profile of pay notify (card row over cardsys/1)", (over_http or {}).get("profile"))
    )


def _power_sweep(pw: dict[str, Any], checks: list[tuple[str, str, str]]) -> list[str]:
    lines = [
        "### Low-power sweep",
        "",
        f"`bot.power.sweep_low(services)` as the worker calls it, over {pw['rooms']:,} rooms each kept by one account: every room "
        "read from the emulator's electricity system over power/1 (500 rooms a call), the rooms below their threshold (10 kWh) "
        "alerted once a day through the outbox. The second run reads every room again and alerts nobody.",
        "",
        "| run | rooms read | rooms alerted | notices queued | seconds | sweep CPU s | electricity system CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(pw["runs"], 1):
        lines.append(
            f"| {i} | {run['read']:,} | {run['alerted']:,} | {run['notices']:,} | {_f(run['seconds'], '.2f')} | {_f(run['cpu_s'], '.2f')} | "
            f"{_f(run['emulator_cpu_s'], '.2f')} |"
        )
    lines += ["", f"Check: {pw['check']} ({_yes(pw['ok'])}).", ""]
    first = pw["runs"][0]
    checks.append(
        (
            f"low-power sweep over {pw['rooms']:,} rooms < 10 s, each low room alerted once",
            f"{_f(first['seconds'], '.2f')} s",
            _ok(first["seconds"] < 10 and pw["ok"]),
        )
    )
    return lines


TRACE_BEFORE = [
    "Before the hot-path rework (issue #18; commit 999d499, same trace): 5 SQL statements, 1 COMMIT and 3 ROLLBACK over 4 "
    "pool checkouts, each pinged (`pool_pre_ping`), each transaction opened by its own BEGIN: about 17 PostgreSQL round trips; "
    "3 Redis round trips (SET NX for the dedup claim, GET of the dialog, the dedup finish pipeline); the user's row loaded "
    "through the ORM, the handler run on a thread pool.",
    "",
    "    SELECT wechat_users.openid, wechat_users.lang, wechat_users.following, wechat_users.subscr",
    "    SELECT cardholders.id, cardholders.student_no, cardholders.name, cardholders.id_number, ca",
    "    COMMIT",
    "    SELECT cardholders.id, cardholders.student_no, cardholders.name, cardholders.id_number, ca",
    "    ROLLBACK",
    "    SELECT card_credits.id, card_credits.ref, card_credits.channel, card_credits.cardholder_id",
    "    ROLLBACK",
    "    SELECT cardholders.id, cardholders.student_no, cardholders.name, cardholders.id_number, ca",
    "    SELECT ledger_entries.id, ledger_entries.cardholder_id, ledger_entries.amount_fen, ledger_",
    "    ROLLBACK",
]


def render(res: dict[str, Any]) -> str:
    m, s = res["machine"], res["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"- date: {m['date']} · commit: {m['commit']} · mode: {'quick (smoke)' if s.quick else 'full'}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Python {m['python']}, load average before the run {m['load_before']}",
        f"- servers: {s.server_desc}, each on its own loopback port; PostgreSQL `{res.get('db_url', '')}` and Redis on this machine",
        f"- load generator: a separate Python process, {s.concurrency} threads with keep-alive connections, pre-built requests each with "
        f"a fresh signature (and unique CreateTime/MsgId); {s.duration:g} s per row after a warm-up; its own CPU is in the table "
        "(100% = one core of this machine, shared with the server)",
        "",
    ]
    checks: list[tuple[str, str, str]] = []
    wh = res.get("webhook")
    if wh is not None:
        lines += ["## 1. Webhook", ""]
        if "error" in wh:
            lines += [f"error: {wh['error']}", ""]
        else:
            lines += [
                "| row | req/s | p50 ms | p99 ms | failed | load-gen CPU | server CPU | PostgreSQL+Redis CPU | server CPU ms/req |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                _load_row("(a) BALANCE click, bound user, plain", wh.get("a")),
                _load_row("(b) same, safe mode (AES)", wh.get("b")),
                _load_row("(c) one binding-dialog step (student number)", wh.get("c")),
                _load_row("(d) baseline: bare Flask route, fixed reply", wh.get("d")),
                _load_row("(e) peer: WeRoBot, same query, same DB and Redis", wh.get("e")),
                _load_row(f"(a) at a fixed {s.fixed_rate} req/s", wh.get("a_rate")),
                "",
            ]
            a, d, e, ar = wh.get("a") or {}, wh.get("d") or {}, wh.get("e") or {}, wh.get("a_rate") or {}
            ad = a.get("throughput", 0) / d["throughput"] if d.get("throughput") else None
            ae = a.get("throughput", 0) / e["throughput"] if e.get("throughput") else None
            lines += [
                f"Ratios: (a)/(d) = **{_f(ad, '.2f')}** (target ≥ {TARGETS['a_vs_d']}), "
                f"(a)/(e) = **{_f(ae, '.2f')}** (target ≥ {TARGETS['a_vs_e']}, goal {TARGETS['a_vs_e_goal']}).",
                "",
            ]
            c = wh.get("c") or {}
            checks.append(("(a) ≥ 20% of (d)", _f(ad, ".2f"), _ok(None if ad is None else ad >= TARGETS["a_vs_d"])))
            checks.append(("(a) ≥ 1.0× (e) (goal 1.5×)", _f(ae, ".2f"), _ok(None if ae is None else ae >= TARGETS["a_vs_e"])))
            cpu = a.get("server_cpu_ms_per_req")
            checks.append(("(a) server CPU ≤ 1.0 ms per click", f"{_f(cpu)} ms", _ok(None if cpu is None else cpu <= TARGETS["a_cpu_ms"])))
            ca = a["throughput"] / c["throughput"] if c.get("throughput") and a.get("throughput") else None
            checks.append(("(c) within 1.5× of (a)", f"(a)/(c) = {_f(ca, '.2f')}", _ok(None if ca is None else ca <= TARGETS["c_vs_a"])))
            p99 = ar.get("p99_ms")
            checks.append((f"(a) p99 < 20 ms at {s.fixed_rate}/s", f"{_f(p99)} ms", _ok(None if p99 is None else p99 < TARGETS["a_rate_p99_ms"])))
            probes = wh.get("probes", {})
            if probes:
                lines += ["Replies checked before each row:", ""]
                lines += [f"- ({k}) `{v}`" for k, v in probes.items()]
                lines.append("")
            tr = wh.get("trace")
            if tr:
                sql = [x for x in tr["sql"] if x not in ("COMMIT", "ROLLBACK")]
                lines += [
                    f"What one BALANCE click costs the bot now (traced in-process, a user seen in the last 5 minutes): {len(sql)} SQL "
                    f"statement(s), {len(tr['sql']) - len(sql)} COMMIT/ROLLBACK sent to the server, over {tr['checkouts']} pool "
                    f"checkout(s) (no ping: a connection the server closed is refused at checkout by its readable socket); "
                    f"{len(tr['redis'])} Redis round "
                    f"trip(s): {'; '.join(tr['redis'])}.",
                    "",
                    *[f"    {x}" for x in tr["sql"]],
                    "",
                    *TRACE_BEFORE,
                    "",
                ]
            lines += _profile("Profile of row (a)", wh.get("a_profile"))
    pn = res.get("paynotify")
    if pn is not None:
        lines += _paynotify(pn, checks)
    ob = res.get("outbox")
    if ob is not None:
        lines += ["## 3a. Notice outbox", ""]
        if "error" in ob:
            lines += [f"error: {ob['error']}", ""]
        else:
            lines += [
                "| worker processes | notices | seconds | notices/s | sent | failed/other | worker CPU |",
                "|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for run in ob["runs"]:
                lines.append(
                    f"| {run['workers']} | {run['notices']} | {_f(run['seconds'], '.2f')} | {_f(run['per_s'], '.0f')} | "
                    f"{run['sent']} | {run['other']} | {_f(run.get('cpu_pct'), '.0f')}% |"
                )
            lines += ["", ob.get("note", ""), ""]
            for run in ob["runs"]:
                label = f"outbox ≥ 500 notices/s ({run['workers']} worker process{'es' if run['workers'] > 1 else ''})"
                checks.append((label, f"{_f(run['per_s'], '.0f')}/s", _ok(run["per_s"] >= TARGETS["outbox_per_s"])))
            prof = ob.get("profile") or {}
            for label in ("drain (worker)", "emulator"):
                if label in prof:
                    lines += _profile(f"Profile of one more drain, {label} process", prof[label])
    al = res.get("alerts")
    if al is not None:
        lines += ["## 3c. Alerts for a burst of card entries", ""]
        if "error" in al:
            lines += [f"error: {al['error']}", ""]
        else:
            lines += [
                "| entries | queued in s (with alerts) | entries posted in s | same entries without alerts "
                "| CPU ms/entry with alerts: pushers + alerts worker + database | without alerts | alerts queued "
                "| drained/s (2 workers) | statuses |",
                "|---:|---:|---:|---:|---:|---:|---|---:|---|",
                f"| {al['entries']} | {_f(al['queue_seconds'])} | {_f(al.get('pushed_seconds'))} | {_f(al['queue_seconds_without_alerts'])} | "
                f"{_f(al.get('cpu_ms_per_entry'), '.2f')} + {_f(al.get('worker_cpu_ms_per_entry'), '.2f')} + "
                f"{_f(al.get('db_cpu_ms_per_entry'), '.2f')} | "
                f"{_f(al.get('cpu_ms_per_entry_without_alerts'), '.2f')} + {_f(al.get('db_cpu_ms_per_entry_without_alerts'), '.2f')} | "
                f"{al['queued']} | "
                f"{_f(al['drain_per_s'], '.0f')} | {al['statuses']} |",
                "",
                al.get("note", ""),
                "",
            ]
            checks.append((f"alerts of {al['entries']:,} entries queued < 10 s", f"{_f(al['queue_seconds'])} s", _ok(al["queue_seconds"] < 10)))
            checks.append(("alerts drained ≥ 500/s", f"{_f(al['drain_per_s'], '.0f')}/s", _ok(al["drain_per_s"] >= 500)))
    sw = res.get("sweep")
    if sw is not None:
        lines += ["## 3b. Auto top-up sweep", ""]
        if "error" in sw:
            lines += [f"error: {sw['error']}", ""]
        else:
            lines += [
                "| cards with an agreement | below threshold | sweep seconds | attempts made (by outcome) |",
                "|---:|---:|---:|---|",
            ]
            for run in sw["runs"]:
                lines.append(f"| {run['cards']:,} | {run['low']:,} | {_f(run['seconds'], '.2f')} | {run['attempts']} {run['by_status']} |")
            pinned = f" Business clock pinned to {sw['business_time']}." if sw.get("business_time") else ""
            lines += ["", sw.get("note", "") + pinned + f" Data load (cards, users, bindings, agreements): {_f(sw['load_s'])} s.", ""]
            worst = max(sw["runs"], key=lambda r: r["seconds"])
            measured = f"{_f(worst['seconds'], '.2f')} s ({worst['cards']:,} cards, {worst['low']:,} low)"
            checks.append(("sweep of 100k cards < 10 s", measured, _ok(worst["seconds"] < TARGETS["sweep_s"])))
            prof = sw.get("profile") or {}
            for label in ("sweep", "emulator (bank)"):
                if label in prof:
                    lines += _profile(f"Profile of the 1% sweep again, {label} process", prof[label])
            if pw := sw.get("power"):
                lines += _power_sweep(pw, checks)
    cs = res.get("cardsys")
    if cs is not None:
        lines += _cardsys(cs, checks)
    gr = res.get("growth")
    if gr is not None:
        lines += ["## 4. Growth", ""]
        if "error" in gr:
            lines += [f"error: {gr['error']}", ""]
        else:
            lines += [
                f"Balance: BALANCE clicks by random bound users at {gr['balance_rate']} req/s; "
                "bills: BILLS clicks by the busiest card's three bound users "
                f"({gr['busy_entries']} entries over the last year) at {gr['bills_rate']} req/s; {gr['seconds']:g} s each. "
                "RSS: gunicorn master + workers after the rows.",
                "",
                "| cardholders | ledger rows | load s | balance p50 ms | balance p99 ms | bills p50 ms | bills p99 ms | server RSS MiB |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for st in gr["stages"]:
                b, bl = st.get("balance", {}), st.get("bills", {})
                lines.append(
                    f"| {st['cardholders']:,} | {st['ledger_rows']:,} | {_f(st['load_s'])} | {_f(b.get('p50_ms'))} | {_f(b.get('p99_ms'))} | "
                    f"{_f(bl.get('p50_ms'))} | {_f(bl.get('p99_ms'))} | {_f(st.get('rss_mib'), '.0f')} |"
                )
            lines.append("")
            p99s = [st.get("balance", {}).get("p99_ms") for st in gr["stages"]]
            if all(isinstance(x, int | float) for x in p99s) and len(p99s) > 1:
                ratio = max(p99s) / min(p99s)
                checks.append(
                    (
                        f"balance p99 flat (≤ 2×) {gr['stages'][0]['cardholders']:,} → {gr['stages'][-1]['cardholders']:,}",
                        f"{ratio:.2f}×",
                        _ok(ratio <= TARGETS["growth_p99_ratio"]),
                    )
                )
            lines += [x for x in gr.get("notes", [])] + ([""] if gr.get("notes") else [])
    if checks:
        lines += ["## Targets", "", "| target | measured | |", "|---|---:|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in checks]
        lines.append("")
    if res.get("notes"):
        lines += ["## Notes", ""] + list(res["notes"]) + [""]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)
