"""Production (``[emulator] enabled = false``) never runs on demo secrets: the real ``cardbot serve`` (gunicorn),
``cardbot worker`` and money commands started as processes with a production config file.

Refused: every demo or empty secret, an empty ``[redis] url`` (embedded Redis) and the sandbox bank, each named by
its key and never by its value. With real secrets the server runs: ``/metrics`` is off without an admin token and
the session cookie is ``Secure`` because ``public_base_url`` is https.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.config import Config
from tests.conftest import free_port

CARDBOT = str(Path(sys.executable).parent / "cardbot")
DEMO = Config()
REFUSED_KEYS = (
    "server.secret_key",
    "cardsystem.secret",
    "bank.secret",
    "wechat.secret",
    "wechat.token",
    "wechat.encoding_aes_key",
    "pay.apiv3_key",
    "redis.url",
    "bank.adapter",
    "electricity.secret",
    "electricity.api_base_url",
)
DEMO_VALUES = (
    DEMO.server.secret_key,
    DEMO.cardsystem.secret,
    DEMO.bank.secret,
    DEMO.wechat.secret,
    DEMO.wechat.token,
    DEMO.wechat.encoding_aes_key,
    DEMO.pay.apiv3_key,
    DEMO.electricity.secret,
)
# Settings a production config may run with (make_live(emulator={"enabled": False}, **PRODUCTION_READY) too).
PRODUCTION_READY = {
    "server": {"secret_key": "k" * 48},
    "cardsystem": {"secret": "i" * 40},
    "wechat": {"secret": "s" * 32, "token": "prodtoken123", "encoding_aes_key": "Q" * 43},
    "pay": {"apiv3_key": "P" * 32},
    "bank": {"adapter": "http", "api_base_url": "https://bank.example.edu.cn", "secret": "b" * 40},
    "electricity": {"api_base_url": "https://power.example.edu.cn", "secret": "e" * 40},
}
GOOD = {**PRODUCTION_READY, "server": {**PRODUCTION_READY["server"], "public_base_url": "https://card.example.edu.cn"}}


def _env() -> dict[str, str]:
    """No CARDBOT_* override of the developer's shell leaks into the processes under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CARDBOT_")}


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CARDBOT, "--config", str(config), *args], capture_output=True, text=True, timeout=60, env=_env())


def _assert_refused(proc: subprocess.CompletedProcess[str], keys: tuple[str, ...] = REFUSED_KEYS) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    for key in keys:
        assert key in out, (key, out[-2000:])
    for value in DEMO_VALUES:
        assert value not in out, "a secret's value was printed"


@pytest.mark.parametrize("command", [("serve", "--workers", "1"), ("worker", "--once"), ("worker",)])
def test_production_refuses_to_start_with_demo_secrets(prod_config, command):
    config = prod_config(redis={"url": ""})
    args = list(command)
    if command[0] == "serve":
        args += ["--port", str(free_port())]
    _assert_refused(_run(config, *args))


def test_money_commands_refuse_demo_secrets_but_menu_validate_works(prod_config, tmp_path):
    config = prod_config(redis={"url": ""})
    roster = tmp_path / "roster.csv"
    roster.write_text("student_no,name,id_number,passport_no,campus,balance,status,left_on\n", encoding="utf-8")
    _assert_refused(_run(config, "cardholders", "import", str(roster)))
    _assert_refused(_run(config, "notices", "list"))
    ok = _run(config, "menu", "validate")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_each_problem_is_named_alone(prod_config):
    config = prod_config(**{**GOOD, "wechat": {**GOOD["wechat"], "token": ""}})
    proc = _run(config, "worker", "--once")
    _assert_refused(proc, ("wechat.token",))
    assert not any(k in proc.stderr for k in REFUSED_KEYS if k != "wechat.token"), proc.stderr[-2000:]
    config = prod_config(**{**GOOD, "bank": {"adapter": "sandbox"}})
    _assert_refused(_run(config, "worker", "--once"), ("bank.adapter",))


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    end = time.monotonic() + 90
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a worker still starting up
            pass
        time.sleep(0.1)
    raise AssertionError("cardbot serve did not come up")


def test_production_serves_with_real_secrets_metrics_off_and_secure_cookies(prod_config):
    config = prod_config(**GOOD)
    port = free_port()
    proc = subprocess.Popen(
        [CARDBOT, "--config", str(config), "serve", "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        assert requests.get(url + "/metrics", timeout=10).status_code == 404
        assert requests.get(url + "/metrics", headers={"Authorization": "Bearer "}, timeout=10).status_code == 404
        page = requests.get(url + "/topup", allow_redirects=False, timeout=10)
        assert page.status_code == 302 and page.headers["Location"].startswith("https://open.weixin.qq.com/")
        cookie = page.headers["Set-Cookie"].lower()
        assert cookie.startswith("cardbot_session=") and "; secure" in cookie and "httponly" in cookie
        assert requests.get(url + "/simulator/", timeout=10).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
