"""Infrastructure: migrations match the models, dedup across processes, embedded Redis, menu publishing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

import models
from bot.adapters.store import connect
from bot.chat.router import Routes
from bot.cli import cli
from bot.config import RedisConfig

_runs: list[str] = []
test_routes = Routes()


@test_routes.text("__test_xproc__")
def _xproc(msg, ctx):
    _runs.append(ctx.services.cfg.server.public_base_url)
    return "ran"


def test_migrations_match_the_models(live):
    with live.services.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), models.Base.metadata)
    assert diff == [], diff


def test_a_retry_reaching_another_process_runs_once(make_live):
    """Two servers sharing Redis (as two hosts would): WeChat's retry may land on either."""
    first = make_live(routes=[test_routes], redis={"key_prefix": "tshared-dedup:"})
    second = make_live(routes=[test_routes], redis={"key_prefix": "tshared-dedup:"})
    _runs.clear()
    a, b = first.pusher(), second.pusher()
    xml = a.xml("oXproc00000000000000000001", "text", {"Content": "__test_xproc__", "MsgId": "77001"})
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda p: p.send("oXproc00000000000000000001", xml), [a, b, a, b]))
    assert len(_runs) == 1
    assert {r.content for r in replies} == {"ran"}


def test_embedded_redis_when_no_url(tmp_path):
    store = connect(RedisConfig(url="", embedded_path=str(tmp_path / "r.db")))
    assert store.ping()
    store.r.set(store.key("x"), "1")
    assert store.r.get("cardbot:x") == "1"
    store.close()


def test_menu_publish_through_the_api(live, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "\n".join(
            [
                "[wechat]",
                f'api_base_url = "{live.url}"',
                "[database]",
                f'url = "{live.cfg.database.url}"',
                "[redis]",
                f'url = "{live.cfg.redis.url}"',
                f'key_prefix = "{live.cfg.redis.key_prefix}"',
            ]
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["--config", str(cfg), "menu", "publish"])
    assert result.exit_code == 0, result.output
    got = live.http.get(live.url + "/cgi-bin/menu/get", params={"access_token": live.services.wechat.token()}).json()
    names = [b["name"] for b in got["menu"]["button"]]
    assert names == ["缴费大厅", "我的", "帮助"]
