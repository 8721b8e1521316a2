"""Roster import (all-or-nothing, idempotent, balances through the ledger) and the ``cardbot cardholders`` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import cli
from bot.money import parse_yuan
from bot.roster import RosterError, import_roster
from models import Cardholder, LedgerEntry, ledger_sum
from models.passwords import verify_password

HEADER = "student_no,name,id_number,passport_no,campus,balance,status,left_on\n"
GOOD = (
    HEADER
    + "20230001,张三,11010820030615102x,,main,100.00,active,\n"
    + "20230003,Anna Schmidt,,c4k7n2p91,main,200,active,\n"
    + "20190005,赵六,510107200007302113,,main,23.4,graduated,2026-09-30\n"
    + "20220007,周八,110108200501012113,,east,0,lost,\n"
)


def _write(tmp_path: Path, text: str, name: str = "roster.csv", bom: bool = False) -> Path:
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return p


def _count(db, model=Cardholder) -> int:
    return db.execute(select(func.count()).select_from(model)).scalar_one()


def _card(db, no: str) -> Cardholder:
    return db.execute(select(Cardholder).where(Cardholder.student_no == no)).scalar_one()


def test_import_with_bom_hashes_initial_passwords_and_posts_opening_balances(live, tmp_path):
    path = _write(tmp_path, GOOD, bom=True)
    with live.session() as db:
        result = import_roster(db, path)
        db.commit()
    assert (result.created, result.updated, result.unchanged) == (4, 0, 0)
    assert str(result) == "created 4, updated 0, unchanged 0"
    with live.session() as db:
        zhang = _card(db, "20230001")
        assert zhang.id_number == "11010820030615102X"
        assert verify_password(zhang.password_hash, "15102" + "0") and not verify_password(zhang.password_hash, "15102X")
        assert "102" not in zhang.password_hash
        anna = _card(db, "20230003")
        assert anna.passport_no == "C4K7N2P91" and verify_password(anna.password_hash, "7N2P91")
        grad = _card(db, "20190005")
        assert grad.status == "graduated" and str(grad.left_on) == "2026-09-30" and grad.balance_fen == 2340
        for card in (zhang, anna, grad, _card(db, "20220007")):
            assert card.balance_fen == ledger_sum(db, card.id)
        kinds = db.execute(select(LedgerEntry.kind, LedgerEntry.amount_fen).where(LedgerEntry.cardholder_id == zhang.id)).all()
        assert kinds == [("opening", 10000)]


def test_reimport_is_idempotent_and_never_rewrites_a_live_balance(live, tmp_path):
    path = _write(tmp_path, GOOD)
    with live.session() as db:
        import_roster(db, path)
        db.commit()
        entries = _count(db, LedgerEntry)
    with live.session() as db:
        again = import_roster(db, path)
        db.commit()
        assert (again.created, again.updated, again.unchanged) == (0, 0, 4) and again.differences == []
        assert _count(db, LedgerEntry) == entries
        hash_before = _card(db, "20230001").password_hash
    changed = GOOD.replace("20230001,张三,11010820030615102x,,main,100.00", "20230001,张三,11010820030615102x,,north,80.05")
    changed = changed.replace("20230003,Anna Schmidt,,c4k7n2p91,main,200", "20230003,Anna Schmidt,,c4k7n2p91,main,0")
    changed += "20240004,王小明,310115200211092128,,east,15.00,active,\n"
    with live.session() as db:
        result = import_roster(db, _write(tmp_path, changed, "v2.csv"))
        db.commit()
        assert (result.created, result.updated, result.unchanged) == (1, 1, 3)
        assert [(d.student_no, d.live_fen, d.csv_fen) for d in result.differences] == [("20230001", 10000, 8005), ("20230003", 20000, 0)]
        assert result.adjusted == [] and "2 balances differ from the file (kept)" in str(result)
        zhang = _card(db, "20230001")
        assert zhang.campus == "north" and zhang.balance_fen == 10000 == ledger_sum(db, zhang.id)  # the stale CSV changes nothing
        assert _card(db, "20230003").balance_fen == 20000
        assert zhang.password_hash == hash_before  # same ID number: the password is not reset
        assert _count(db, LedgerEntry) == entries + 1  # only the new card's opening balance
        assert db.execute(select(LedgerEntry).where(LedgerEntry.kind == "adjust")).first() is None


def test_set_balances_writes_one_adjust_entry_per_difference_with_the_reason(live, tmp_path):
    with live.session() as db:
        import_roster(db, _write(tmp_path, GOOD))
        db.commit()
    changed = GOOD.replace("main,100.00,active", "main,80.05,active")
    with live.session() as db:
        result = import_roster(db, _write(tmp_path, changed, "v2.csv"), set_balances_reason="audit 2026-03 found a double count")
        db.commit()
        assert [(a.student_no, a.live_fen, a.csv_fen, a.entry_key) for a in result.adjusted] == [
            ("20230001", 10000, 8005, result.adjusted[0].entry_key)
        ]
        zhang = _card(db, "20230001")
        assert zhang.balance_fen == 8005 == ledger_sum(db, zhang.id)
        adjust = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "adjust")).scalar_one()
        assert adjust.amount_fen == -1995 and adjust.idempotency_key == result.adjusted[0].entry_key
        assert "audit 2026-03 found a double count" in adjust.description
    back = GOOD  # a second correction of the same card gets its own key
    with live.session() as db:
        result = import_roster(db, _write(tmp_path, back, "v3.csv"), set_balances_reason="undo")
        db.commit()
        keys = list(db.execute(select(LedgerEntry.idempotency_key).where(LedgerEntry.kind == "adjust")).scalars())
        assert len(keys) == len(set(keys)) == 2 and _card(db, "20230001").balance_fen == 10000


@pytest.mark.parametrize(
    ("rows", "line", "fragment"),
    [
        ("20230001,张三,11010820030615102X,,main,1.00,active,\n2023001,李四,440305200402182115,,main,1,active,\n", 3, "8-12 digits"),
        ("20230001,张三,11010820030615102X,,main,1.234,active,\n", 2, "at most 2 decimals"),
        ("20230001,张三,11010820030615102X,,main,-1,active,\n", 2, "out of range"),
        ("20230001,张三,11010820030615102X,,main,abc,active,\n", 2, "not a number"),
        ("20230001,张三,11010820030615102X,,main,1,sleeping,\n", 2, "status"),
        ("20230001,张三,11010820030615102X,,main,1,graduated,\n", 2, "left_on is required"),
        ("20230001,张三,11010820030615102X,,main,1,graduated,30/09/2026\n", 2, "YYYY-MM-DD"),
        ("20230001,张三,1101082003061510,,main,1,active,\n", 2, "id_number"),
        ("20230001,张三,,,main,1,active,\n", 2, "id_number or passport_no"),
        ("20230001,,11010820030615102X,,main,1,active,\n", 2, "name is empty"),
        ("20230001,张三,11010820030615102X,,main,1,active\n", 2, "too few fields"),
        ("20230001,张三,11010820030615102X,,main,1,active,,extra\n", 2, "expected 8"),
        ("20230001,张三,11010820030615102X,,main,1,active,\n20230001,张三,11010820030615102X,,main,1,active,\n", 3, "already on line 3"),
        ("20230001,A,,P1234567,main,1,active,\n20230002,B,,p1234567,main,1,active,\n", 3, "passport_no P1234567 already"),
    ],
)
def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_written(live, tmp_path, rows, line, fragment):
    # a good row first (line 2): the rows under test start at line 3, hence ``line + 1``
    path = _write(tmp_path, HEADER + "20220006,孙七,320102199905122111,,east,8.00,frozen,\n" + rows)
    with live.session() as db, pytest.raises(RosterError) as err:
        import_roster(db, path)
    assert err.value.line_no == line + 1 and fragment in err.value.message
    with live.session() as db:
        assert _count(db) == 0 and _count(db, LedgerEntry) == 0


def test_every_problem_is_listed_and_the_header_is_checked(live, tmp_path):
    path = _write(tmp_path, HEADER + "1,张三,11010820030615102X,,main,1,active,\n20230002,李四,x,,main,1,active,\n")
    with live.session() as db, pytest.raises(RosterError) as err:
        import_roster(db, path)
    assert [ln for ln, _ in err.value.problems] == [2, 3]
    with live.session() as db, pytest.raises(RosterError) as err:
        import_roster(db, _write(tmp_path, "student_no,name,balance\n20230001,张三,1\n", "h.csv"))
    assert err.value.line_no == 1 and "missing id_number" in err.value.message
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(HEADER.encode() + "20230001,Jos\xe9,,P1234567,main,1,active,\n".encode("latin-1"))
    with live.session() as db, pytest.raises(RosterError, match="UTF-8"):
        import_roster(db, bad)


def test_passport_of_another_card_in_the_database_is_refused(live, tmp_path):
    with live.session() as db:
        import_roster(db, _write(tmp_path, HEADER + "20230003,Anna,,C4K7N2P91,main,1,active,\n"))
        db.commit()
    with live.session() as db, pytest.raises(RosterError) as err:
        import_roster(db, _write(tmp_path, HEADER + "20230004,Bob,,C4K7N2P91,main,1,active,\n", "b.csv"))
    assert err.value.line_no == 2 and "belongs to student_no 20230003" in err.value.message


@pytest.mark.unit
def test_parse_yuan_is_exact():
    assert parse_yuan("0.1") == 10 and parse_yuan("19.99") == 1999 and parse_yuan("100") == 10000
    for bad in ("1.001", "NaN", "inf", "1e-3"):
        with pytest.raises(ValueError):
            parse_yuan(bad)


def _config(tmp_path: Path, live) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(
        f'[database]\nurl = "{live.cfg.database.url}"\n[redis]\nurl = "{live.cfg.redis.url}"\nkey_prefix = "{live.services.store.prefix}"\n',
        encoding="utf-8",
    )
    return p


def test_cli_import_and_show(live, tmp_path):
    runner = CliRunner()
    config = _config(tmp_path, live)
    result = runner.invoke(cli, ["--config", str(config), "cardholders", "import", str(_write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "created 4, updated 0, unchanged 0" in result.output
    result = runner.invoke(cli, ["--config", str(config), "cardholders", "import", str(_write(tmp_path, GOOD))])
    assert "created 0, updated 0, unchanged 4" in result.output

    shown = runner.invoke(cli, ["--config", str(config), "cardholders", "show", "20230001"])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert "张三" in out and "100.00" in out and "opening" in out and "0 of 3" in out
    assert "110" in out and "11010820030615102X" not in out and "argon2" not in out and "$" not in out
    grad = runner.invoke(cli, ["--config", str(config), "cardholders", "show", "20190005"]).output
    assert "2026-12-30" in grad
    missing = runner.invoke(cli, ["--config", str(config), "cardholders", "show", "29990001"])
    assert missing.exit_code != 0 and "no cardholder" in missing.output


def test_cli_import_error_names_the_line_and_writes_nothing(live, tmp_path):
    config = _config(tmp_path, live)
    bad = _write(tmp_path, GOOD + "20230009,钱九,11010820030615102X,,main,1.5.0,active,\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "cardholders", "import", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:6:" in result.output and "nothing was imported" in result.output
    with live.session() as db:
        assert _count(db) == 0


def test_cli_import_reports_balance_differences_and_applies_none(live, tmp_path):
    runner = CliRunner()
    config = _config(tmp_path, live)
    assert runner.invoke(cli, ["--config", str(config), "cardholders", "import", str(_write(tmp_path, GOOD))]).exit_code == 0
    stale = _write(tmp_path, GOOD.replace("main,100.00,active", "main,80.05,active"), "stale.csv")
    result = runner.invoke(cli, ["--config", str(config), "cardholders", "import", str(stale)])
    assert result.exit_code == 0, result.output
    assert "created 0, updated 0, unchanged 4" in result.output
    assert "20230001  live 100.00  csv 80.05" in result.output and "--set-balances" in result.output
    with live.session() as db:
        assert _card(db, "20230001").balance_fen == 10000


def test_cli_set_balances_needs_a_reason_and_prints_each_adjust_entry(live, tmp_path):
    runner = CliRunner()
    config = _config(tmp_path, live)
    assert runner.invoke(cli, ["--config", str(config), "cardholders", "import", str(_write(tmp_path, GOOD))]).exit_code == 0
    stale = str(_write(tmp_path, GOOD.replace("main,100.00,active", "main,80.05,active"), "stale.csv"))
    base = ["--config", str(config), "cardholders", "import", stale]
    for extra in (["--set-balances"], ["--set-balances", "--reason", "   "], ["--reason", "why"]):
        refused = runner.invoke(cli, base + extra)
        assert refused.exit_code == 2 and "--reason" in refused.output, refused.output
    with live.session() as db:
        assert _card(db, "20230001").balance_fen == 10000 and db.execute(select(LedgerEntry).where(LedgerEntry.kind == "adjust")).first() is None
    applied = runner.invoke(cli, base + ["--set-balances", "--reason", "ticket 4711"])
    assert applied.exit_code == 0, applied.output
    with live.session() as db:
        adjust = db.execute(select(LedgerEntry).where(LedgerEntry.kind == "adjust")).scalar_one()
        assert _card(db, "20230001").balance_fen == 8005 and "ticket 4711" in adjust.description
    assert f"adjusted 20230001  100.00 -> 80.05  (-19.95)  entry {adjust.idempotency_key}" in applied.output
