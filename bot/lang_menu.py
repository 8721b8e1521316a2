"""The English menu follows the user's language. WeChat no longer matches conditional menus by language (a
``language`` rule is refused with 65320), so a user who picks English gets the ``[menu] english_tag`` user tag, is
untagged on switching back, and the English menu is a conditional menu matching that tag (``cardbot menu publish``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import menus
from bot.adapters.wechat_api import WeChatAPIError

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)
TAG_CACHE_SECONDS = 24 * 3600
TAG_EXISTS = 45157


def english_tag_id(services: Runtime) -> int:
    """The tag's id at WeChat, created when missing; remembered in Redis so a language switch costs one call."""
    name = services.cfg.menu.english_tag
    key = services.store.key("menu", "english_tag", name)
    cached = services.store.r.get(key)
    if cached is not None:
        return int(cached)
    tag_id = _find(services, name)
    if tag_id is None:
        try:
            tag_id = services.wechat.create_tag(name)
        except WeChatAPIError as exc:
            if exc.errcode != TAG_EXISTS or (tag_id := _find(services, name)) is None:  # another process created it
                raise
    services.store.r.set(key, tag_id, ex=TAG_CACHE_SECONDS)
    return tag_id


def _find(services: Runtime, name: str) -> int | None:
    return next((int(t["id"]) for t in services.wechat.tags() if t.get("name") == name), None)


def follow_language(services: Runtime, openid: str, lang: str) -> bool:
    """Tag (English) or untag the user so WeChat shows the matching menu. A failure is logged and changes nothing
    else: the replies already speak the chosen language, and the next switch tries again."""
    try:
        tag_id = english_tag_id(services)
        if lang == "en":
            services.wechat.tag_users(tag_id, [openid])
        else:
            services.wechat.untag_users(tag_id, [openid])
        return True
    except WeChatAPIError as exc:
        log.warning("english menu tag not updated: %s", exc)
        return False


def publish(services: Runtime, main: dict[str, Any], english: dict[str, Any]) -> str:
    """The main menu, then the English conditional menu in place of the one published before (→ its menu id)."""
    services.wechat.create_menu(main)
    tag_id = english_tag_id(services)
    current = services.wechat.get_menu() or {}
    for old in current.get("conditionalmenu", []):
        if str(old.get("matchrule", {}).get("tag_id", "")) == str(tag_id):
            services.wechat.delete_conditional_menu(str(old["menuid"]))
    return services.wechat.add_conditional_menu(menus.conditional(english, tag_id))
