"""The house rules that a grep could check, checked: who imports handlers, fixtures only in a conftest.py, status
values the database refuses, and the chat bill that totals a long month in SQL instead of loading it."""

from __future__ import annotations

import ast
import itertools
import time
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError

import models
from models import LedgerEntry, post_entry
from tests.support.factories import bind, make_cardholder

ROOT = Path(__file__).resolve().parent.parent
OID = "oHouse0000000000000000001"
_event_times = itertools.count(int(time.time()))


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.unit
def test_only_the_router_builder_imports_handlers():
    """Pages, CLI, worker, benchmarks and tests reach the rules through domain modules; handlers never import each other."""
    offenders = []
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", "build") or rel == Path("bot/chat/routes.py"):
            continue
        names = {n for n in _imports(path) if n == "handlers" or n.startswith("handlers.")}
        if names and rel.parts[0] != "handlers" or rel.parts[0] == "handlers" and names:
            offenders.append(f"{rel}: {sorted(names)}")
    assert offenders == []


# Its ``breakable`` fixture moves to tests/soak/conftest.py with the soak rework (issue 12), which owns that file.
FIXTURES_PENDING = {Path("tests/soak/test_soak.py")}


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture" or isinstance(target, ast.Name) and target.id == "fixture"


@pytest.mark.unit
def test_fixtures_are_defined_only_in_a_conftest():
    """Test modules share helpers through tests/support/ and fixtures through conftest.py, so no module shadows another's."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if path.name == "conftest.py" or rel in FIXTURES_PENDING:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(_is_fixture(d) for d in node.decorator_list):
                offenders.append(f"{rel}:{node.lineno} {node.name}")
    assert offenders == []


BAD_ROWS = {
    "ledger_entries": "kind",
    "outbox_notices": "status",
    "autodebit_agreements": "status",
    "autodebit_attempts": "status",
    "autodebit_refund_requests": "status",
    "cardholders": "status",
    "topup_orders": "status",
}


def test_the_migrated_schema_has_every_models_check(live):
    with live.services.engine.connect() as conn:
        found = inspect(conn)
        for table in models.Base.metadata.sorted_tables:
            wanted = {c.name for c in table.constraints if c.__class__.__name__ == "CheckConstraint"}
            assert {c["name"] for c in found.get_check_constraints(table.name)} == wanted, table.name
    for table, column in BAD_ROWS.items():
        names = {c.name for c in models.Base.metadata.tables[table].constraints if c.__class__.__name__ == "CheckConstraint"}
        assert f"ck_{table}_{column}" in names, table


@pytest.mark.parametrize("table", sorted(BAD_ROWS))
def test_the_database_refuses_a_state_the_code_does_not_know(live, table):
    """One valid row in each table, then its state set to an unknown value: the CHECK built from the enum refuses it."""
    with live.session() as db:
        card = make_cardholder(db, balance_fen=10000)
        bind(db, OID, card)
        today = live.services.clock.today()
        db.add(models.OutboxNotice(openid=OID, kind="topup_receipt", data={}, dedup_key="house:n"))
        db.add(
            models.TopupOrder(
                order_no="Thouse000001",
                cardholder_id=card.id,
                openid=OID,
                mode="quick",
                amount_fen=5000,
                business_day=today,
                expires_at=datetime(2100, 1, 1),
            )
        )
        agreement = models.AutodebitAgreement(
            cardholder_id=card.id,
            openid=OID,
            bank_account="6222020000000001",
            bank_last4="0001",
            threshold_fen=2000,
            amount_fen=5000,
            expires_on=date(2100, 1, 1),
        )
        db.add(agreement)
        db.flush()
        attempt = models.AutodebitAttempt(cardholder_id=card.id, agreement_id=agreement.id, amount_fen=5000, trigger_key="house:t")
        db.add(attempt)
        db.flush()
        db.add(models.RefundRequest(attempt_id=attempt.id, openid=OID))
        db.commit()
    with live.services.engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(text(f"UPDATE {table} SET {BAD_ROWS[table]} = 'bogus'"))
        conn.commit()


def test_chat_bill_totals_a_long_month_without_loading_it(live):
    """40 entries this month: the totals and the count are right, and at most the six shown rows are loaded."""
    with live.session() as db:
        card = make_cardholder(db, balance_fen=100000)
        bind(db, OID, card)
        for i in range(40):
            post_entry(db, card.id, -100 - i, "spend", f"house:{i}", description=f"窗口{i}")
        db.commit()
    loaded = []

    def on_load(target, _context):
        loaded.append(target.id)

    event.listen(LedgerEntry, "load", on_load)
    try:
        desc = live.pusher().click(OID, "BILLS", create_time=next(_event_times)).articles[0]["Description"]
    finally:
        event.remove(LedgerEntry, "load", on_load)
    spent = sum(100 + i for i in range(40))
    assert f"收入 1000.00 元 · 支出 {spent // 100}.{spent % 100:02d} 元（共41笔）" in desc
    assert "窗口39 -1.39" in desc and "窗口34 -1.34" in desc and "窗口33" not in desc and "还有35笔" in desc
    assert len(loaded) <= 6
