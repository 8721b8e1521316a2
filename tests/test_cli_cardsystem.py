"""``cardbot cardsystem check``: passes against the emulator's card system and fails, naming the call, against
deliberately broken ones (the real CLI, real HTTP, real HMAC)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot.cli import cli

ZHANG = ["--student-no", "20230001", "--name", "张三", "--password", "151020"]


def run_check(live, *args: str):
    env = {"CARDBOT_CONFIG": "", "CARDBOT_CARDSYSTEM__API_BASE_URL": live.url + "/emulator", "CARDBOT_CARDSYSTEM__SECRET": live.cfg.cardsystem.secret}
    return CliRunner().invoke(cli, ["cardsystem", "check", *(args or ZHANG)], env=env)


def failing(result) -> list[str]:
    return [line.split(":")[0].removeprefix("FAIL  ") for line in result.output.splitlines() if line.startswith("FAIL")]


def balance(live, student_no: str = "20230001") -> int:
    st = live.app.extensions["emulator_cardsys"]
    with st.lock:
        return st.accounts[student_no].balance_fen


def test_check_passes_against_the_emulator_and_says_it_moves_money(cs_live):
    result = run_check(cs_live)
    assert result.exit_code == 0, result.output
    assert "moves real money: 1 fen (0.01 yuan) is credited to card 20230001" in result.output
    assert "all 11 calls conform to cardsys/1" in result.output
    assert failing(result) == []
    assert balance(cs_live) == 10001
    assert "151020" not in result.output  # the password is never echoed


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("ignore_ref", ["POST credits", "GET credits?date="]),
        ("no_signature_check", ["signing (a badly signed request)", "signing (a stale timestamp)", "signing (a replayed nonce)"]),
        ("no_nonce_check", ["signing (a replayed nonce)"]),
    ],
)
def test_check_fails_naming_the_call_against_a_broken_card_system(cs_live, mode, named):
    cs_live.app.extensions["emulator_cardsys"].modes.add(mode)
    result = run_check(cs_live)
    assert result.exit_code == 1, result.output
    assert failing(result) == named, result.output
    assert "NOT CONFORMING" in result.output and named[0] in result.output.splitlines()[-1]


def test_check_names_a_wrong_secret_and_a_wrong_password(cs_live):
    env = {
        "CARDBOT_CONFIG": "",
        "CARDBOT_CARDSYSTEM__API_BASE_URL": cs_live.url + "/emulator",
        "CARDBOT_CARDSYSTEM__SECRET": "not-the-schools-secret",
    }
    result = CliRunner().invoke(cli, ["cardsystem", "check", *ZHANG], env=env)
    assert result.exit_code == 1
    assert "signing (a correctly signed request)" in failing(result)
    wrong = run_check(cs_live, "--student-no", "20230001", "--name", "张三", "--password", "999999")
    assert wrong.exit_code == 1 and "POST holders/verify (ok)" in failing(wrong)


def test_check_stops_on_maintenance_and_refuses_a_503_without_retry_after(cs_live):
    st = cs_live.app.extensions["emulator_cardsys"]
    st.faults["all"] = "maintenance"
    result = run_check(cs_live)
    assert result.exit_code == 2, result.output
    assert "503 unavailable, retry_after=600 s (conforms)" in result.output
    assert "run the check again in 600 s" in result.output
    st.modes.add("maintenance_without_retry_after")
    st.faults["credit"] = "maintenance"
    del st.faults["all"]
    broken = run_check(cs_live)
    assert broken.exit_code == 1 and "POST credits" in failing(broken), broken.output
    assert "retry_after" in broken.output
