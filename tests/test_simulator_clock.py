"""Issue 14.5: the simulator shows it all: `/` leads to the simulator, a business-clock control with the moments worth
showing (peak, quiet hours, bank closed, refund deadline, September renewal, a graduate's freeze), and the sandbox
bank's demo accounts beside the demo cards."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bot.emulator.bank import DEMO_ACCOUNTS, seed_demo
from tests.support.browser import playwright


def boot(live: Any) -> dict[str, Any]:
    r = live.http.get(live.url + "/simulator")
    assert r.status_code == 200
    return json.loads(re.search(r'<script id="boot" type="application/json">(.*?)</script>', r.text, re.S).group(1))


def test_root_leads_to_the_simulator(live: Any) -> None:
    r = live.http.get(live.url + "/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/simulator")


def test_business_clock_presets_and_reset(live: Any) -> None:
    clock = live.services.clock
    presets = {p["key"]: p["at"] for p in boot(live)["clock"]["presets"]}
    assert set(presets) == {"peak", "quiet", "bank_closed", "refund_deadline", "renewal", "graduate_freeze"}
    assert presets["quiet"].endswith("23:30") and presets["renewal"][5:10] == "09-01" and presets["refund_deadline"][8:10] == "05"

    r = live.http.post(live.url + "/simulator/api/clock", json={"at": presets["quiet"]})
    assert r.status_code == 200 and r.json()["frozen"] and r.json()["now"] == presets["quiet"]
    assert f"{clock.now():%Y-%m-%dT%H:%M}" == presets["quiet"]
    assert live.cfg.notices.quiet_hours.contains(clock.now().time().replace(tzinfo=None))
    assert live.http.post(live.url + "/simulator/api/clock", json={"at": "tomorrow"}).status_code == 400
    r = live.http.post(live.url + "/simulator/api/clock", json={"reset": True})
    assert r.status_code == 200 and not r.json()["frozen"] and not clock.frozen


def test_bank_accounts_beside_the_demo_cards(live: Any) -> None:
    seed_demo(live.app)  # what `cardbot demo` does at start
    page = live.http.get(live.url + "/simulator").text
    assert 'id="bank-accounts"' in page
    for number in DEMO_ACCOUNTS:
        assert number in page


@pytest.mark.browser
def test_clock_control_in_chromium(page: Any, live: Any, tmp_path: Any) -> None:
    expect = playwright().expect
    page.locator("button[data-preset='bank_closed']").click()
    expect(page.locator("#clock-mode")).to_contain_text("set")
    expect(page.locator("#clock")).to_have_text("21:00")  # 20 minutes after bank hours end
    assert live.services.clock.frozen and not live.cfg.autodebit.bank_hours.contains(live.services.clock.now().time().replace(tzinfo=None))
    page.screenshot(path=str(tmp_path / "simulator-clock.png"), full_page=True)
    page.locator("#clock-reset").click()
    expect(page.locator("#clock-mode")).to_contain_text("real")
    assert not live.services.clock.frozen
