"""Typed config: defaults, TOML, environment overrides, errors that name the key, and the example file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import Config, ConfigError, load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_run_the_demo():
    cfg = load_config(None)
    assert cfg.topup.quick_amounts == [50, 100, 200]
    assert cfg.topup.single_limit == 500 and cfg.topup.daily_limit == 2000
    assert str(cfg.autodebit.bank_hours) == "06:00-20:40"
    assert cfg.binding.max_failures == 5 and cfg.binding.lockout_minutes == 30
    assert cfg.wechat.api_base_url == "https://api.weixin.qq.com"


def test_toml_file_and_env_override(tmp_path, monkeypatch):
    f = tmp_path / "c.toml"
    f.write_text('[topup]\nsingle_limit = 300\n[database]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    assert load_config(f).topup.single_limit == 300
    monkeypatch.setenv("CARDBOT_TOPUP__SINGLE_LIMIT", "200")
    monkeypatch.setenv("CARDBOT_DATABASE__URL", "postgresql+psycopg://u@h/db")
    cfg = load_config(f)
    assert cfg.topup.single_limit == 200
    assert cfg.database.url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[topup]\nsingle_limit = 'lots'\n", "topup.single_limit"),
        ("[autodebit]\nbank_hours = '25:00-26:00'\n", "autodebit.bank_hours"),
        ("[autodebit]\nbank_hours = '24:00-06:00'\n", "autodebit.bank_hours"),
        ("[autodebit]\nbank_hours = '06:00-24:30'\n", "autodebit.bank_hours"),
        ("[wechat]\nencoding_aes_key = 'short'\n", "wechat.encoding_aes_key"),
        ("[pay]\napiv3_key = 'too-short'\n", "pay.apiv3_key"),
        ("[binding]\nmax_failures = 0\n", "binding.max_failures"),
        ("[topup]\nquick_amounts = [50, 900]\n", "topup"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[topup]\nsingel_limit = 5\n", "topup.singel_limit"),
    ],
)
def test_bad_values_name_the_key(tmp_path, toml, key):
    f = tmp_path / "bad.toml"
    f.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert key in str(err.value)


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("06:00-20:40", ["06:00", "20:39:59"], ["05:59:59", "20:40", "00:00"]),
        ("23:00-07:00", ["23:00", "23:59:59", "00:00", "06:59"], ["07:00", "22:59"]),
        ("22:00-24:00", ["22:00", "23:59:59"], ["00:00", "21:59"]),
        ("00:00-24:00", ["00:00", "12:00", "23:59:59.999999"], []),
        ("00:00-23:59", ["00:00"], ["23:59:30"]),
        ("00:00-00:00", [], ["00:00", "12:00", "23:59"]),
    ],
)
def test_a_window_holds_its_start_not_its_end_and_24_00_ends_the_day(text, inside, outside):
    from datetime import time

    cfg = Config.model_validate({"autodebit": {"bank_hours": text}})
    window = cfg.autodebit.bank_hours
    assert str(window) == text
    assert all(window.contains(time.fromisoformat(t)) for t in inside)
    assert not any(window.contains(time.fromisoformat(t)) for t in outside)


def test_bad_env_value_names_the_key(monkeypatch):
    monkeypatch.setenv("CARDBOT_NOTICES__QUIET_HOURS", "late")
    with pytest.raises(ConfigError, match="notices.quiet_hours"):
        load_config(None)


def test_cli_refuses_to_start_with_bad_config(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[topup]\ndaily_limit = -1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(f), "menu", "validate"])
    assert result.exit_code != 0 and "topup.daily_limit" in result.output


def test_not_toml_is_reported(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[topup\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)


def test_example_config_loads_and_documents_every_key():
    cfg = load_config(ROOT / "config.example.toml")
    assert cfg == load_config(None) or cfg.model_dump() == load_config(None).model_dump()
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    sections = set(re.findall(r"^\[([a-z_]+)\]", text, re.M))
    for name, field in Config.model_fields.items():
        assert name in sections, f"[{name}] missing from config.example.toml"
        model = field.annotation
        for key in getattr(model, "model_fields", {}):
            assert re.search(rf"^{key}\s*=", text, re.M), f"{name}.{key} missing from config.example.toml"
