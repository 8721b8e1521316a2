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


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture" or isinstance(target, ast.Name) and target.id == "fixture"


@pytest.mark.unit
def test_fixtures_are_defined_only_in_a_conftest():
    """Test modules share helpers through tests/support/ and fixtures through conftest.py, so no module shadows another's."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if path.name == "conftest.py":
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
    """40 entries this month: the totals and the count are right, and one bounded read of the card system's entries
    (``limit=200``) is all the reply costs: the totals are computed from the entries the card system returned."""
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
    assert len(loaded) == 41  # every entry of the month, once (no second pass for the totals)


# --- one debit path, owned transactions, one refusal, one notice builder, one H5 toolkit, enums (phase B) -------
STATUS_ENUMS = (
    models.enums.CardStatus,
    models.enums.OrderStatus,
    models.enums.AgreementStatus,
    models.enums.AttemptStatus,
    models.enums.RefundStatus,
    models.enums.NoticeStatus,
    models.enums.EntryKind,
)
STATUS_VALUES = {v.value for e in STATUS_ENUMS for v in e}
STATUS_FIELDS = {"status", "kind", "state"}
# The emulator speaks WeChat's own states, not ours.


def _sources(*tops: str) -> list[tuple[str, ast.Module]]:
    out = []
    for top in tops:
        for path in sorted((ROOT / top).glob("**/*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("bot/emulator/"):
                continue
            out.append((rel, ast.parse(path.read_text(encoding="utf-8"))))
    return out


def _status_literals(node: ast.AST) -> list[ast.Constant]:
    """String constants with an enum's value in ``node`` (a tuple or set of them counts each)."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [n for n in items if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in STATUS_VALUES]


def _target_name(target: ast.AST) -> str:
    return target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""


def test_no_status_literal_outside_its_enum():
    """Comparisons, assignments to a status/kind, ``status=``/``kind=`` arguments, ``.in_(…)``, SQL literals and
    returned statuses use the enums of models/enums.py, never the bare string."""
    found = []
    for rel, tree in _sources("bot", "handlers"):
        for node in ast.walk(tree):
            hits: list[ast.Constant] = []
            if isinstance(node, ast.Compare):
                for operand in (node.left, *node.comparators):
                    hits += _status_literals(operand)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        hits += [
                            v
                            for t, v in zip(target.elts, node.value.elts, strict=False)
                            if _target_name(t) in STATUS_FIELDS
                            for v in _status_literals(v)
                        ]
                    elif _target_name(target) in STATUS_FIELDS:
                        hits += _status_literals(node.value)
                    elif node in tree.body and _target_name(target).isupper() and isinstance(node.value, ast.Tuple):
                        hits += _status_literals(node.value) if len(_status_literals(node.value)) == len(node.value.elts) else []
            elif isinstance(node, ast.keyword) and node.arg in STATUS_FIELDS:
                hits += _status_literals(node.value)
            elif isinstance(node, ast.Call) and _target_name(node.func) in ("in_", "literal", "post_entry"):
                for arg in node.args:
                    hits += _status_literals(arg)
            elif isinstance(node, ast.Return) and node.value is not None:
                hits += _status_literals(node.value)
            found += [f"{rel}:{h.lineno}: {h.value!r}" for h in hits]
    assert found == []


def test_one_user_facing_refusal():
    """Every refusal a user or operator is told is a ``UserError``; no second exception carries its own text."""
    found = []
    for rel, tree in _sources("bot", "handlers"):
        for node in ast.walk(tree):
            has_text = isinstance(node, ast.ClassDef) and any(isinstance(f, ast.FunctionDef) and f.name == "message" for f in node.body)
            if has_text and node.name != "UserError":
                found.append(f"{rel}: {node.name}")
    assert found == []


def _calls(tree: ast.Module) -> set[str]:
    return {_target_name(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}


def test_entry_points_run_no_money_step_themselves():
    """Views and chat handlers parse, call one domain function and answer: no transaction, row lock, ledger entry or
    notice of their own, and no SQL in a handler."""
    found = []
    for rel, tree in _sources("bot/web", "handlers"):
        steps = _calls(tree) & {"begin", "commit", "lock_card", "post_entry", "queue_notice", "open_attempt", "on_card_entry"}
        if steps:
            found.append(f"{rel}: {sorted(steps)}")
        if rel.startswith("handlers/") and any(n.startswith("sqlalchemy") for n in _imports(ROOT / rel)):
            found.append(f"{rel}: imports sqlalchemy")
    assert found == []


def test_notices_are_built_in_one_place():
    """bot/notices.py builds every outbox notice (template urgency, money per language, the page it links)."""
    found = [rel for rel, tree in _sources("bot", "handlers") if rel != "bot/notices.py" and "Notice" in _calls(tree)]
    assert found == []


def test_h5_pages_share_one_toolkit():
    """The pages get services, openid and language from one ``before_request`` and ``t`` from a context processor;
    fetch, CSRF and the WeChat pay call live in one shared script."""
    found = []
    for rel, tree in _sources("bot/web"):
        if rel in ("bot/web/topup.py", "bot/web/bills.py", "bot/web/autodebit.py"):
            defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            found += [f"{rel}: {name}" for name in sorted(defined & {"_svc", "_lang", "_refused", "tr"})]
    for page in ("topup/page.html", "autodebit/page.html"):
        html = (ROOT / "bot/templates" / page).read_text(encoding="utf-8")
        if "fetch(" in html or "X-CSRF-Token" in html or "getBrandWCPayRequest" in html or "h5.js" not in html:
            found.append(f"{page}: its own fetch/CSRF/pay code")
    assert found == []


def test_money_and_cards_are_imported_from_their_modules():
    """``yuan``/``fen`` come from bot.money and ``card_for`` from bot.cards, not through bot.texts or bot.topup."""
    found = []
    for rel, tree in _sources("bot", "handlers", "tests"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("bot.texts", "bot.topup"):
                names = {a.name for a in node.names} & {"yuan", "fen", "card_for"}
                if names:
                    found.append(f"{rel}: {node.module} {sorted(names)}")
    import bot.texts

    assert found == [] and not hasattr(bot.texts, "yuan")
