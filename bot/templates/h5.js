// Shared by the H5 pages (included inline by their templates): the page's data, JSON calls to its API with the
// session's CSRF token, and the WeChat pay sheet. ES5 on purpose: older WeChat web views run these pages.
var H5 = (function () {
  "use strict";
  var csrf = "";

  function data(id) {
    var d = JSON.parse(document.getElementById(id).textContent);
    csrf = d.csrf || csrf;
    return d;
  }
  function send(method, path, body) {
    var headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b }; }); });
  }
  // Resolves to {ok, status, body}; rejects only when the network or the JSON failed. A money action from a browser
  // this account has not verified (428 reverify) asks for the card password once, then is sent again.
  function call(method, path, body) {
    return send(method, path, body).then(function (res) {
      if (res.status !== 428 || !res.body || res.body.error !== "reverify") return res;
      return reverify(res).then(function (done) { return done ? send(method, path, body) : res; });
    });
  }
  // The password sheet: resolves true once the card system accepted the password, false when the student cancels
  // or is locked out (the refusal's message stays on the sheet until then).
  function reverify(res) {
    var p = res.body.prompt || {};
    var sheet = document.createElement("div");
    sheet.id = "reverify";
    sheet.setAttribute("role", "dialog");
    sheet.style.cssText = "position:fixed;top:0;left:0;right:0;bottom:0;background:rgba(0,0,0,.45);display:flex;align-items:flex-end;z-index:99";
    sheet.innerHTML = '<form style="background:#fff;width:100%;padding:16px;box-sizing:border-box;border-radius:12px 12px 0 0">' +
      '<h3 style="margin:0 0 8px"></h3><p id="reverify-msg" style="color:#555;font-size:14px"></p>' +
      '<input id="reverify-password" type="password" inputmode="numeric" autocomplete="off" maxlength="6" ' +
      'style="width:100%;font-size:18px;padding:8px;box-sizing:border-box">' +
      '<div style="display:flex;gap:8px;margin-top:12px"><button type="button" id="reverify-cancel" style="flex:1;padding:10px"></button>' +
      '<button type="submit" id="reverify-ok" style="flex:1;padding:10px;background:#07c160;color:#fff;border:0"></button></div></form>';
    sheet.querySelector("h3").textContent = p.title || "";
    sheet.querySelector("#reverify-msg").textContent = res.body.message || "";
    sheet.querySelector("#reverify-password").placeholder = p.placeholder || "";
    sheet.querySelector("#reverify-ok").textContent = p.ok || "OK";
    sheet.querySelector("#reverify-cancel").textContent = p.cancel || "Cancel";
    document.body.appendChild(sheet);
    var input = sheet.querySelector("#reverify-password");
    input.focus();
    return new Promise(function (resolve) {
      function close(done) { document.body.removeChild(sheet); resolve(done); }
      sheet.querySelector("#reverify-cancel").onclick = function () { close(false); };
      sheet.querySelector("form").onsubmit = function (e) {
        e.preventDefault();
        send("POST", "/api/device/verify", { password: input.value }).then(function (r) {
          if (r.ok) { close(true); return; }
          sheet.querySelector("#reverify-msg").textContent = (r.body && r.body.message) || "";
          input.value = "";
          if (r.status === 423) sheet.querySelector("#reverify-ok").disabled = true;
        });
      };
    });
  }
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, k) { return values[k] !== undefined ? values[k] : m; });
  }
  // WeixinJSBridge exists only inside WeChat, and only after WeixinJSBridgeReady: ``waiting`` says so meanwhile.
  // ``done`` gets "ok", "cancel" or "fail" and the reason WeChat gave.
  function pay(params, waiting, ready, done) {
    function invoke() {
      window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, function (r) {
        var msg = (r && r.err_msg) || "";
        if (msg === "get_brand_wcpay_request:ok") done("ok", "");
        else if (msg === "get_brand_wcpay_request:cancel") done("cancel", "");
        else done("fail", (r && (r.err_desc || r.errMsg)) || msg);
      });
    }
    if (typeof window.WeixinJSBridge !== "undefined") { invoke(); return; }
    waiting();
    document.addEventListener("WeixinJSBridgeReady", function () { ready(); invoke(); }, { once: true });
  }

  return { data: data, get: function (path) { return call("GET", path); }, post: function (path, body) { return call("POST", path, body); },
           fill: fill, pay: pay };
})();
