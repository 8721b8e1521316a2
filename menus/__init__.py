"""The menu definition (``menu.toml``) and its checks against WeChat's limits, in UTF-8 bytes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("menu.toml")
ENGLISH_PATH = Path(__file__).with_name("menu.en.toml")  # the conditional menu for users tagged English

TOP_MAX, SUB_MAX = 3, 5
NAME_TOP_BYTES, NAME_SUB_BYTES, KEY_BYTES, URL_BYTES = 16, 40, 128, 256
TYPES_WITH_KEY = {"click", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin", "location_select"}


class MenuError(ValueError):
    """All problems found, each naming its button."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load(path: str | Path | None = None) -> dict[str, Any]:
    with open(path or DEFAULT_PATH, "rb") as fh:
        return tomllib.load(fh)


def _nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def _check_leaf(b: dict[str, Any], where: str, problems: list[str]) -> None:
    kind = b.get("type")
    if kind in TYPES_WITH_KEY:
        key = b.get("key", "")
        if not key:
            problems.append(f"{where}: a {kind} button needs a key")
        elif _nbytes(key) > KEY_BYTES:
            problems.append(f"{where}: key is {_nbytes(key)} bytes, WeChat allows {KEY_BYTES}")
    elif kind == "view":
        url = b.get("url", "")
        if not url.startswith(("http://", "https://")):
            problems.append(f"{where}: a view button needs an http(s) url")
        elif _nbytes(url) > URL_BYTES:
            problems.append(f"{where}: url is {_nbytes(url)} bytes, WeChat allows {URL_BYTES}")
    elif kind in ("miniprogram",):
        if not b.get("appid") or not b.get("pagepath"):
            problems.append(f"{where}: a miniprogram button needs appid and pagepath")
    else:
        problems.append(f"{where}: unknown type {kind!r}")


def validate(menu: dict[str, Any]) -> None:
    """Raise ``MenuError`` listing every limit broken; names are counted in UTF-8 bytes."""
    problems: list[str] = []
    buttons = menu.get("button", [])
    if not 1 <= len(buttons) <= TOP_MAX:
        problems.append(f"menu: {len(buttons)} top-level buttons, WeChat allows 1 to {TOP_MAX}")
    for i, b in enumerate(buttons, 1):
        name = b.get("name", "")
        where = f"button {i} {name!r}"
        if not name:
            problems.append(f"button {i}: name is empty")
        elif _nbytes(name) > NAME_TOP_BYTES:
            problems.append(f"{where}: name is {_nbytes(name)} bytes, WeChat allows {NAME_TOP_BYTES}")
        subs = b.get("sub_button")
        if subs is None:
            _check_leaf(b, where, problems)
            continue
        if not 1 <= len(subs) <= SUB_MAX:
            problems.append(f"{where}: {len(subs)} sub-buttons, WeChat allows 1 to {SUB_MAX}")
        for j, s in enumerate(subs, 1):
            sname = s.get("name", "")
            swhere = f"{where} → sub-button {j} {sname!r}"
            if not sname:
                problems.append(f"{where} → sub-button {j}: name is empty")
            elif _nbytes(sname) > NAME_SUB_BYTES:
                problems.append(f"{swhere}: name is {_nbytes(sname)} bytes, WeChat allows {NAME_SUB_BYTES}")
            _check_leaf(s, swhere, problems)
    if problems:
        raise MenuError(problems)


def check_same_keys(main: dict[str, Any], other: dict[str, Any]) -> None:
    """A conditional menu offers the main menu's actions: a click key missing from either side is a mistake."""
    problems = [f"english menu: click key {k} is not in the main menu" for k in sorted(click_keys(other) - click_keys(main))]
    problems += [f"english menu: click key {k} of the main menu is missing" for k in sorted(click_keys(main) - click_keys(other))]
    if problems:
        raise MenuError(problems)


def conditional(menu: dict[str, Any], tag_id: int) -> dict[str, Any]:
    """The body of ``menu/addconditional``: WeChat matches conditional menus by user tag only (a language rule: 65320)."""
    return {"button": menu["button"], "matchrule": {"tag_id": str(tag_id)}}


def to_json(menu: dict[str, Any]) -> str:
    """Raw UTF-8 JSON (``ensure_ascii=False``): escaped Chinese makes WeChat answer 40033."""
    return json.dumps(menu, ensure_ascii=False, separators=(",", ":"))


def click_keys(menu: dict[str, Any]) -> set[str]:
    keys = set()
    for b in menu.get("button", []):
        for s in b.get("sub_button", [b]):
            if s.get("type") == "click":
                keys.add(s["key"])
    return keys
