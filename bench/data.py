"""Bulk data for the bench, written with set-based SQL (PostgreSQL ``generate_series``), never the ORM row by row.

Rows look like what the roster import and the ledger write: every card has an opening ledger entry equal to
its balance, bound cards have a WeChat user and a binding. Ids are explicit so a stage can be extended
(1k → 100k → 1M) without touching what is already there.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sqlalchemy import text

OPENID_PREFIX = "o_bench_"
BANK = "6222020000000000"


def openid(i: int) -> str:
    return f"{OPENID_PREFIX}{i}"


def student_no(i: int) -> str:
    return str(2_000_000_000 + i)


ID_NUMBER = "110101200001011234"  # every bench card shares it, so the initial password is "011234"
PASSWORD = "011234"


@cache
def password_hash() -> str:
    from models.passwords import hash_password, initial_password

    assert initial_password(ID_NUMBER, None) == PASSWORD
    return hash_password(PASSWORD)


def add_cardholders(engine: Any, first: int, last: int, *, bind_every: int = 1, balance_sql: str | None = None) -> float:
    """Cards ``first..last`` (inclusive ids) with opening entries; every ``bind_every``-th card bound to ``openid(id)``.
    Returns the seconds it took."""
    t0 = time.perf_counter()
    balance = balance_sql or "10000 + (g::bigint * 7919) % 90000"
    params = {"first": first, "last": last, "hash": password_hash(), "idn": ID_NUMBER, "bind": bind_every, "pfx": OPENID_PREFIX}
    with engine.begin() as conn:
        conn.execute(
            text(
                f"""
                INSERT INTO cardholders (id, student_no, name, id_number, passport_no, campus, status, left_on, password_hash,
                                         balance_fen, created_at, updated_at)
                SELECT g, (2000000000 + g)::text, '测试' || g, :idn, NULL, 'main', 'active', NULL, :hash,
                       {balance}, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO ledger_entries (cardholder_id, amount_fen, balance_after_fen, kind, idempotency_key, description, created_at)
                SELECT id, balance_fen, balance_fen, 'opening', 'opening:' || student_no, 'opening balance', created_at - interval '400 days'
                FROM cardholders WHERE id BETWEEN :first AND :last AND balance_fen <> 0
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO wechat_users (openid, lang, following, created_at, last_message_at)
                SELECT :pfx || g, 'zh', true, now() AT TIME ZONE 'utc', NULL
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g WHERE g % :bind = 0
                """
            ),
            params,
        )
        conn.execute(
            text(
                """
                INSERT INTO bindings (openid, cardholder_id, created_at)
                SELECT :pfx || g, g, now() AT TIME ZONE 'utc'
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g WHERE g % :bind = 0
                """
            ),
            params,
        )
        for table in ("cardholders", "bindings", "ledger_entries"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    return time.perf_counter() - t0


def add_busy_year(engine: Any, card_id: int, per_day: int = 10) -> int:
    """A year of entries for one card: a top-up each morning and ``per_day - 1`` meals and shop visits; returns the count."""
    with engine.begin() as conn:
        opening = conn.execute(text("SELECT balance_fen FROM cardholders WHERE id = :id"), {"id": card_id}).scalar_one()
        conn.execute(
            text(
                """
                WITH e AS (
                    SELECT d, k,
                           CASE WHEN k = 0 THEN 12000 ELSE -(800 + (d * 7 + k * 13) % 900) END AS amount,
                           (now() AT TIME ZONE 'utc') - interval '365 days' + d * interval '1 day' + k * interval '80 minutes' AS at
                    FROM generate_series(0, 364) AS d, generate_series(0, CAST(:n AS int) - 1) AS k
                )
                INSERT INTO ledger_entries (cardholder_id, amount_fen, balance_after_fen, kind, idempotency_key, description, created_at)
                SELECT :id, amount, :opening + sum(amount) OVER (ORDER BY at, k),
                       CASE WHEN k = 0 THEN 'topup' ELSE 'spend' END,
                       'bench:busy:' || :id || ':' || d || ':' || k,
                       CASE WHEN k = 0 THEN '微信充值' ELSE '第一食堂' END, at
                FROM e
                """
            ),
            {"id": card_id, "n": per_day, "opening": opening},
        )
        conn.execute(
            text(
                "UPDATE cardholders SET balance_fen = (SELECT balance_after_fen FROM ledger_entries WHERE cardholder_id = :id "
                "ORDER BY created_at DESC, id DESC LIMIT 1) WHERE id = :id"
            ),
            {"id": card_id},
        )
    return 365 * per_day


def bind_more(engine: Any, card_id: int, openids: list[str]) -> None:
    """Extra WeChat users bound to one card (family members; the binding rules allow a few per card)."""
    with engine.begin() as conn:
        for oid in openids:
            conn.execute(
                text("INSERT INTO wechat_users (openid, lang, following, created_at) VALUES (:o, 'zh', true, now() AT TIME ZONE 'utc')"), {"o": oid}
            )
            conn.execute(
                text("INSERT INTO bindings (openid, cardholder_id, created_at) VALUES (:o, :c, now() AT TIME ZONE 'utc')"), {"o": oid, "c": card_id}
            )


def add_agreements(engine: Any, first: int, last: int, *, low_every: int, threshold_fen: int, amount_fen: int) -> int:
    """Active auto top-up agreements for cards ``first..last``; every ``low_every``-th card is put below the threshold.
    Returns how many cards are low (what a sweep should pick up)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO autodebit_agreements (cardholder_id, openid, bank_account, bank_last4, threshold_fen, amount_fen, status,
                                                  signed_at, expires_on, cancelled_at, reminder_sent_on)
                SELECT g, :pfx || g, :bank || lpad((g % 10000)::text, 4, '0'), lpad((g % 10000)::text, 4, '0'), :threshold, :amount,
                       'active', now() AT TIME ZONE 'utc' - interval '30 days', (now() + interval '300 days')::date, NULL, NULL
                FROM generate_series(CAST(:first AS int), CAST(:last AS int)) AS g
                """
            ),
            {"first": first, "last": last, "pfx": OPENID_PREFIX, "bank": BANK, "threshold": threshold_fen, "amount": amount_fen},
        )
        low = conn.execute(
            text("UPDATE cardholders SET balance_fen = :low WHERE id BETWEEN :first AND :last AND id % :every = 0"),
            {"low": max(0, threshold_fen // 2), "first": first, "last": last, "every": low_every},
        ).rowcount
    return int(low)


def add_orders(
    engine: Any, first_card: int, count: int, amount_fen: int, fee_fen: int, tag: str, *, product: str = "card", targets: list[str] | None = None
) -> list[str]:
    """Created (unpaid) orders, one per payer's card starting at ``first_card``; returns their order numbers. A card
    top-up's target is the payer's own card; another product's (``power``: a room id) is ``targets[i]``."""
    with engine.begin() as conn:
        rows = (
            conn.execute(
                text(
                    """
                INSERT INTO topup_orders (order_no, product, target, cardholder_id, openid, mode, amount_fen, fee_fen, status, business_day,
                                          prepay_id, transaction_id, created_at, expires_at, paid_at, closed_at)
                SELECT 'B' || :tag || lpad(g::text, 8, '0'), :product,
                       COALESCE((CAST(:targets AS text[]))[g - CAST(:first AS int) + 1], (SELECT student_no FROM cardholders WHERE id = g)),
                       g, :pfx || g, 'quick', :amount, :fee, 'created', current_date,
                       'wx' || :tag || g, NULL, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' + interval '15 minutes', NULL, NULL
                FROM generate_series(CAST(:first AS int), CAST(:first AS int) + CAST(:n AS int) - 1) AS g
                RETURNING order_no
                """
                ),
                {
                    "first": first_card,
                    "n": count,
                    "amount": amount_fen,
                    "fee": fee_fen,
                    "tag": tag,
                    "pfx": OPENID_PREFIX,
                    "product": product,
                    "targets": targets,
                },
            )
            .scalars()
            .all()
        )
    return list(rows)


def add_rooms(engine: Any, first: int, rooms: dict[str, str]) -> None:
    """Dorm rooms (id → label) as the electricity page keeps them, each kept by the account of one card from ``first``
    on, in order (an order is only made for a kept room, and its receipt stores the room's new reading)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO power_rooms (room_id, label, remaining_kwh, read_at, threshold_kwh, alerted_on)
                SELECT r, l, NULL, NULL, 10, NULL FROM unnest(CAST(:ids AS text[]), CAST(:labels AS text[])) AS t(r, l)
                """
            ),
            {"ids": list(rooms), "labels": list(rooms.values())},
        )
        conn.execute(
            text(
                """
                INSERT INTO saved_rooms (openid, room_id, created_at)
                SELECT :pfx || (CAST(:first AS int) + i - 1), r, now() AT TIME ZONE 'utc'
                FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS t(r, i)
                """
            ),
            {"ids": list(rooms), "first": first, "pfx": OPENID_PREFIX},
        )


def add_outbox(engine: Any, first: int, count: int, kind: str, data: dict[str, str]) -> int:
    """Pending notices for ``count`` users, the way ``post_entry`` queues them."""
    import json

    with engine.begin() as conn:
        n = conn.execute(
            text(
                """
                INSERT INTO outbox_notices (dedup_key, openid, kind, data, url, urgent, status, attempts, next_attempt_at, created_at)
                SELECT 'bench:' || g, :pfx || g, :kind, CAST(:data AS json), NULL, true, 'pending', 0,
                       now() AT TIME ZONE 'utc' - interval '1 second', now() AT TIME ZONE 'utc'
                FROM generate_series(CAST(:first AS int), CAST(:first AS int) + CAST(:n AS int) - 1) AS g
                """
            ),
            {"first": first, "n": count, "kind": kind, "data": json.dumps(data, ensure_ascii=False), "pfx": OPENID_PREFIX},
        ).rowcount
    return int(n)


def analyze(engine: Any, tables: tuple[str, ...] = ()) -> None:
    """VACUUM ANALYZE the database, or only ``tables``; then the load's dirty pages written out now rather than by a
    checkpoint in the middle of a measured row."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM ANALYZE {', '.join(tables)}"))
        conn.execute(text("CHECKPOINT"))
