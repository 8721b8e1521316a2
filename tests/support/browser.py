"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (which cannot download
browsers here), launched one way for every module, and the pages and scripts the browser fixtures load."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15_000
PHONE_OPENID = "oTopupBrowserUser0000001"


def playwright() -> ModuleType:
    """``playwright.sync_api``; skips the calling module (or fixture) when Debian's chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def launch(p: Any) -> Any:
    """The one way a test starts Chromium (``p``: a started ``sync_playwright()``)."""
    return p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


# The shim a phone's WeChat web view gets on /topup: WeixinJSBridge paying through the emulator, like the simulator's.
BRIDGE = """
document.addEventListener("DOMContentLoaded", () => {
  setTimeout(() => {
    window.WeixinJSBridge = {
      invoke(name, params, cb) {
        if (window.__outcome === "fail") { cb({err_msg: "get_brand_wcpay_request:fail", err_desc: "网络异常"}); return; }
        fetch("/emulator/pay/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({...params, openid: "__OPENID__", outcome: window.__outcome || "success"})})
          .then(r => r.json()).then(cb);
      }
    };
    document.dispatchEvent(new Event("WeixinJSBridgeReady"));
  }, 100);
});
""".replace("__OPENID__", PHONE_OPENID)

PAY_TEST_PAGE = """<!doctype html><meta charset="utf-8"><title>付款测试 Pay test</title>
<p id="who">{openid}</p><button id="pay" type="button">支付 Pay</button><p id="out"></p>
<script>
document.getElementById("pay").onclick = () => {{
  const go = () => WeixinJSBridge.invoke("getBrandWCPayRequest",
    {{appId: "wx", timeStamp: "1", nonceStr: "n", package: "prepay_id=none", signType: "RSA", paySign: "bogus"}},
    (r) => {{ document.getElementById("out").textContent = r.err_msg; }});
  if (typeof WeixinJSBridge === "undefined") document.addEventListener("WeixinJSBridgeReady", go); else go();
}};
</script>"""
