"""menus/menu.toml against WeChat's limits (UTF-8 bytes), and the menu commands."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import menus
from bot.chat.routes import build_router
from bot.cli import cli

pytestmark = pytest.mark.unit


def _menu(*buttons):
    return {"button": list(buttons)}


def _click(name="余额", key="BALANCE"):
    return {"type": "click", "name": name, "key": key}


def test_shipped_menu_is_valid_and_every_key_is_answered():
    data = menus.load()
    menus.validate(data)
    names = [b["name"] for b in data["button"]]
    assert names[0] == "缴费大厅"
    hall = {s["key"] for s in data["button"][0]["sub_button"]}
    assert hall == {"BALANCE", "TOPUP", "AUTODEBIT", "BILLS", "POWER"}  # WeChat allows 5 sub-buttons: the hall is full
    clicks = build_router().keys("click")
    for key in menus.click_keys(data):
        assert key in clicks, f"menu key {key} has no handler"
    for key in ("BALANCE", "TOPUP", "AUTODEBIT", "BILLS", "BIND", "UNBIND", "HELP"):
        assert key in menus.click_keys(data)


@pytest.mark.parametrize(
    ("menu", "fragment"),
    [
        (_menu(), "top-level buttons"),
        (_menu(*[_click(key=f"K{i}") for i in range(4)]), "top-level buttons"),
        (_menu({"name": "大厅", "sub_button": [_click(key=f"K{i}") for i in range(6)]}), "6 sub-buttons"),
        (_menu({"name": "大厅", "sub_button": []}), "0 sub-buttons"),
        (_menu(_click(name="缴费大厅缴费大厅")), "'缴费大厅缴费大厅': name is 24 bytes"),
        (_menu({"name": "我的", "sub_button": [_click(name="一二三四五六七八九十一二三四")]}), "name is 42 bytes"),
        (_menu(_click(key="K" * 129)), "key is 129 bytes"),
        (_menu({"type": "view", "name": "官网", "url": "https://x.cn/" + "a" * 250}), "url is 263 bytes"),
        (_menu({"type": "view", "name": "官网", "url": "ftp://x"}), "needs an http(s) url"),
        (_menu({"type": "click", "name": "空"}), "needs a key"),
        (_menu({"type": "weird", "name": "怪", "key": "X"}), "unknown type"),
        (_menu({"type": "click", "name": "", "key": "X"}), "name is empty"),
    ],
)
def test_each_limit_is_enforced_with_the_button_named(menu, fragment):
    with pytest.raises(menus.MenuError) as err:
        menus.validate(menu)
    assert fragment in str(err.value)


def test_limits_count_utf8_bytes_not_characters():
    menus.validate(_menu(_click(name="缴费大厅啊")))  # 5 chars = 15 bytes: fits 16
    with pytest.raises(menus.MenuError):
        menus.validate(_menu(_click(name="缴费大厅啊a!")))  # 17 bytes


def test_json_is_raw_utf8():
    text = menus.to_json(menus.load())
    assert "缴费大厅" in text and "\\u" not in text
    assert json.loads(text) == menus.load()


def test_menu_commands(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(cli, ["menu", "validate"])
    assert ok.exit_code == 0, ok.output
    shown = runner.invoke(cli, ["menu", "show"])
    assert shown.exit_code == 0 and "缴费大厅" in shown.output
    bad = tmp_path / "menu.toml"
    bad.write_text('[[button]]\nname = "这个名字实在是太长了"\ntype = "click"\nkey = "X"\n', encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[menu]\npath = "{bad}"\n', encoding="utf-8")
    res = runner.invoke(cli, ["--config", str(cfg), "menu", "validate"])
    assert res.exit_code == 1 and "这个名字实在是太长了" in res.output and "bytes" in res.output
