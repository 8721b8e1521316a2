"""The pure rules: can a card transact or take money, money conversion and fees, month arithmetic. No services."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from bot.calendar import add_months, day_start_utc, month_bounds_utc, month_start
from bot.cards import can_add_money, can_transact, freeze_on, mask_student_no
from bot.config import load_config
from bot.errors import UserError
from bot.money import fee_for, fen, parse_yuan, percent, yuan
from models import Cardholder
from models.enums import CardStatus

pytestmark = pytest.mark.unit

CFG = load_config(None, graduates={"freeze_after_months": 3})
TODAY = date(2026, 6, 15)


def _card(status: CardStatus, left_on: date | None = None) -> Cardholder:
    return Cardholder(student_no="20230001", name="张三", status=status, left_on=left_on)


# --- cards ---------------------------------------------------------------------------
def test_an_active_card_transacts_and_takes_money():
    card = _card(CardStatus.ACTIVE)
    assert can_transact(card, TODAY, CFG) is None and can_add_money(card) is None


@pytest.mark.parametrize("status", [CardStatus.FROZEN, CardStatus.LOST])
def test_frozen_and_lost_cards_do_nothing(status):
    card = _card(status)
    refused = can_transact(card, TODAY, CFG)
    assert refused is not None and refused.code == f"card_{status}" and refused.status == 403
    assert can_add_money(card).code == f"card_{status}"


def test_a_graduate_spends_until_the_freeze_day_but_never_tops_up():
    card = _card(CardStatus.GRADUATED, left_on=date(2026, 3, 15))
    assert freeze_on(card, CFG) == date(2026, 6, 15)
    assert can_transact(card, date(2026, 6, 14), CFG) is None
    assert can_transact(card, date(2026, 6, 15), CFG).code == "card_graduated"
    assert can_transact(card, date(2026, 9, 1), CFG).code == "card_graduated"
    assert can_add_money(card).code == "card_graduated"


def test_a_graduate_without_a_leaving_day_is_frozen():
    card = _card(CardStatus.GRADUATED)
    assert freeze_on(card, CFG) is None and can_transact(card, TODAY, CFG).code == "card_graduated"


def test_the_freeze_day_is_clamped_to_the_month_end():
    assert freeze_on(_card(CardStatus.GRADUATED, date(2026, 11, 30)), CFG) == date(2027, 2, 28)
    assert freeze_on(_card(CardStatus.ACTIVE, date(2026, 11, 30)), CFG) is None


def test_no_card_is_not_bound():
    refused = can_add_money(None)
    assert refused.code == "not_bound" and refused.status == 403


def test_refusals_speak_each_callers_words():
    refused = can_transact(_card(CardStatus.LOST), TODAY, CFG)
    assert "挂失" in refused.message("zh") and "lost" in refused.message("en")
    topup = refused.keyed("topup_err_")
    assert (topup.code, topup.status, topup.key) == ("card_lost", 403, "topup_err_card_lost")
    assert "不能充值" in topup.message("zh")
    assert UserError("daily_limit", 409, "topup_err_daily_limit", limit=2000, remaining="5.00").message("en").count("5.00") == 1


def test_student_numbers_are_masked():
    assert mask_student_no("20230001") == "2023**01"
    assert mask_student_no("202300012345") == "2023******45"
    assert mask_student_no("123456") == "123456"


# --- money ------------------------------------------------------------------------------
def test_yuan_formats_two_decimals_with_sign():
    assert [yuan(n) for n in (0, 5, -5, 5015, -100000, 10**9)] == ["0.00", "0.05", "-0.05", "50.15", "-1000.00", "10000000.00"]


@pytest.mark.parametrize(("text", "fen_"), [("0.1", 10), ("19.99", 1999), ("100", 10000), ("0", 0), ("-3.5", -350), ("1E2", 10000), (" 7.00 ", 700)])
def test_parse_yuan_is_exact(text, fen_):
    assert parse_yuan(text) == fen_


@pytest.mark.parametrize("text", ["", "abc", "1.001", "0.005", "NaN", "Infinity", "1,00", "¥5"])
def test_parse_yuan_refuses_what_is_not_money(text):
    with pytest.raises(ValueError):
        parse_yuan(text)


def test_fen_from_config_values_is_exact():
    assert [fen(v) for v in (50, 0.5, "19.99", 0.29, 500)] == [5000, 50, 1999, 29, 50000]


@pytest.mark.parametrize(
    ("amount", "rate", "fee"),
    [(5000, 0.003, 15), (10000, 0.003, 30), (20000, 0.003, 60), (50, 0.01, 1), (49, 0.01, 0), (150, 0.003, 0), (167, 0.003, 1), (0, 0.003, 0)],
)
def test_fee_rounds_half_up_to_the_fen(amount, rate, fee):
    assert fee_for(amount, rate) == fee


def test_percent_has_no_float_noise():
    assert [percent(r) for r in (0.003, 0.1, 0.0, 0.0125, 1)] == ["0.3", "10", "0", "1.25", "100"]


# --- calendar ---------------------------------------------------------------------------
def test_add_months_clamps_to_the_month_end_and_wraps_the_year():
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 9, 30), 3) == date(2026, 12, 30)
    assert add_months(date(2026, 1, 31), 0) == date(2026, 1, 31)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


def test_month_start_goes_back_and_forth_across_years():
    assert month_start(date(2026, 1, 17)) == date(2026, 1, 1)
    assert month_start(date(2026, 1, 17), back=1) == date(2025, 12, 1)
    assert month_start(date(2026, 12, 31), back=-1) == date(2027, 1, 1)
    assert month_start(date(2026, 3, 5), back=14) == date(2025, 1, 1)


def test_local_month_bounds_in_utc():
    assert day_start_utc(date(2026, 1, 1)) == datetime(2025, 12, 31, 16, 0)
    assert month_bounds_utc(date(2026, 12, 1)) == (datetime(2026, 11, 30, 16, 0), datetime(2026, 12, 31, 16, 0))
    assert month_bounds_utc(date(2026, 2, 1)) == (datetime(2026, 1, 31, 16, 0), datetime(2026, 2, 28, 16, 0))
