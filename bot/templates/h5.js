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
  // Resolves to {ok, status, body}; rejects only when the network or the JSON failed.
  function call(method, path, body) {
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
