"""The English menu (issue 15): users who pick English are tagged, the English menu is a conditional menu matching
that tag, ``cardbot menu validate|publish`` handle both menus, and the emulator answers as WeChat does (65320 for a
language rule)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from click.testing import CliRunner

import menus
from bot.cli import cli

OID = "oEnglishMenu000000000001"
_times = itertools.count(int(time.time()) - 9000)


def _config(live, tmp_path: Path, *extra: str) -> Path:
    path = tmp_path / "c.toml"
    lines = ["[wechat]", f'api_base_url = "{live.url}"', "[database]", f'url = "{live.cfg.database.url}"', "[redis]"]
    lines += [f'url = "{live.cfg.redis.url}"', f'key_prefix = "{live.cfg.redis.key_prefix}"', *extra]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _api(live, path: str, body=None) -> dict:
    params = {"access_token": live.services.wechat.token()}
    if body is None:
        return live.http.get(live.url + path, params=params, timeout=10).json()
    return live.http.post(live.url + path, params=params, data=json.dumps(body, ensure_ascii=False).encode(), timeout=10).json()


def _seen_menu(live, openid: str) -> list[str]:
    return [b["name"] for b in _api(live, "/cgi-bin/menu/trymatch", {"user_id": openid})["button"]]


def test_publish_both_menus_and_the_menu_follows_the_language(live, wx, tmp_path):
    config = _config(live, tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "menu", "validate"])
    assert result.exit_code == 0 and "menu.en.toml: ok" in result.output, result.output
    for _ in range(2):  # publishing again replaces the English menu instead of adding another
        result = CliRunner().invoke(cli, ["--config", str(config), "menu", "publish"])
        assert result.exit_code == 0, result.output
    got = _api(live, "/cgi-bin/menu/get")
    assert [b["name"] for b in got["menu"]["button"]] == ["缴费大厅", "我的", "帮助"]
    [english] = got["conditionalmenu"]
    [tag] = [t for t in _api(live, "/cgi-bin/tags/get")["tags"] if t["name"] == "English"]
    assert english["matchrule"] == {"tag_id": str(tag["id"])}
    assert [b["name"] for b in english["button"]] == ["Payments", "My card", "Help"]

    assert _seen_menu(live, OID) == ["缴费大厅", "我的", "帮助"]
    assert "English" in wx.click(OID, "LANG", create_time=next(_times)).content
    assert live.emulator.user_tags[OID] == {tag["id"]}
    assert _seen_menu(live, OID) == ["Payments", "My card", "Help"]
    assert "中文" in wx.text(OID, "中文").content
    assert live.emulator.user_tags[OID] == set()
    assert _seen_menu(live, OID) == ["缴费大厅", "我的", "帮助"]
    wx.text(OID, "english")
    assert _seen_menu(live, OID)[0] == "Payments"
    simulator = live.http.get(live.url + "/simulator/api/menu", params={"openid": OID}, timeout=10).json()
    assert simulator["button"][0]["name"] == "Payments"  # the chat simulator shows each user the menu WeChat would


def test_language_still_switches_when_the_tag_api_fails(live, wx):
    live.emulator.faults["tags"] = 45009
    assert wx.text(OID, "English").content.startswith("Switched to English")
    assert wx.text(OID, "help").content.startswith("What I can do:")
    assert OID not in live.emulator.user_tags


def test_validate_refuses_an_english_menu_that_breaks_limits_or_drifts_from_the_main_one(live, tmp_path):
    english = menus.load(menus.ENGLISH_PATH)
    english["button"][0]["name"] = "Payments and top-ups"  # 20 bytes: WeChat allows 16
    del english["button"][2]["sub_button"][2]  # RULES missing
    bad = tmp_path / "en.toml"
    lines = []
    for b in english["button"]:
        lines += ["[[button]]", f'name = "{b["name"]}"']
        for s in b["sub_button"]:
            lines += ["[[button.sub_button]]", f'type = "{s["type"]}"', f'name = "{s["name"]}"', f'key = "{s["key"]}"']
    bad.write_text("\n".join(lines), encoding="utf-8")
    config = _config(live, tmp_path, "[menu]", f'english_path = "{bad}"')
    result = CliRunner().invoke(cli, ["--config", str(config), "menu", "validate"])
    assert result.exit_code == 1
    assert "english menu: button 1 'Payments and top-ups': name is 20 bytes" in result.output
    assert "english menu: click key RULES of the main menu is missing" in result.output


def test_emulator_conditional_menu_and_tag_errors_are_wechats(live):
    button = menus.load(menus.ENGLISH_PATH)["button"]
    assert _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {"tag_id": "100"}})["errcode"] == 65303
    assert _api(live, "/cgi-bin/menu/create", {"button": menus.load()["button"]})["errcode"] == 0
    assert _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {"language": "en"}})["errcode"] == 65320
    assert _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {"sex": "1"}})["errcode"] == 65320
    assert _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {}})["errcode"] == 65304
    assert _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {"tag_id": "123"}})["errcode"] == 45159
    tag = _api(live, "/cgi-bin/tags/create", {"tag": {"name": "English"}})["tag"]
    assert _api(live, "/cgi-bin/tags/create", {"tag": {"name": "English"}})["errcode"] == 45157
    assert _api(live, "/cgi-bin/tags/create", {"tag": {"name": "英" * 11}})["errcode"] == 45158
    menuid = _api(live, "/cgi-bin/menu/addconditional", {"button": button, "matchrule": {"tag_id": str(tag["id"])}})["menuid"]
    assert (
        _api(live, "/cgi-bin/tags/members/batchtagging", {"tagid": tag["id"], "openid_list": [f"o{i:027d}" for i in range(51)]})["errcode"] == 40032
    )
    assert _api(live, "/cgi-bin/tags/members/batchtagging", {"tagid": 999, "openid_list": [OID]})["errcode"] == 45159
    assert _api(live, "/cgi-bin/tags/members/batchtagging", {"tagid": tag["id"], "openid_list": ["bad openid!"]})["errcode"] == 40003
    assert _api(live, "/cgi-bin/tags/members/batchtagging", {"tagid": tag["id"], "openid_list": [OID]})["errcode"] == 0
    assert _seen_menu(live, OID)[0] == "Payments"
    assert _api(live, "/cgi-bin/menu/delconditional", {"menuid": menuid})["errcode"] == 0
    assert _api(live, "/cgi-bin/menu/delconditional", {"menuid": menuid})["errcode"] == 65301
    assert _seen_menu(live, OID)[0] == "缴费大厅"
