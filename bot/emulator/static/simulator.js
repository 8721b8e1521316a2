/* The chat simulator: a phone's WeChat chat with the official account. Every action goes through
   /simulator/api/..., whose server side plays WeChat (signed pushes to /wechat, OAuth, pay confirmation). */
(() => {
  "use strict";
  const boot = JSON.parse(document.getElementById("boot").textContent);
  const $ = (id) => document.getElementById(id);
  const API = "/simulator/api/";
  const state = { user: "", lastId: 0, seen: new Set(), polling: false, following: true, menuJson: "" };

  // --- helpers -------------------------------------------------------------
  async function api(path, body) {
    const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const r = await fetch(API + path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    return { status: r.status, data };
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function yuan(fen) {
    const sign = fen < 0 ? "-" : "";
    const a = Math.abs(fen);
    return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, "0")}`;
  }
  // The phone is in China: times are Beijing time whatever the developer's machine uses.
  const beijing = (opts) => new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour12: false, ...opts });
  const dayFmt = beijing({ month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const clockFmt = beijing({ hour: "numeric", minute: "2-digit" });
  function when(seconds) {
    const p = Object.fromEntries(dayFmt.formatToParts(new Date(seconds * 1000)).map((x) => [x.type, x.value]));
    return `${p.month}月${p.day}日 ${p.hour}:${p.minute}`;
  }
  // Text as WeChat shows it: plain text, <a href="...">links</a> and bare URLs become tappable; nothing else is HTML.
  function richText(container, text) {
    const re = /<a\s+href=["']([^"']+)["'][^>]*>([\s\S]*?)<\/a>|(https?:\/\/[^\s<>"']+)/g;
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      container.appendChild(document.createTextNode(text.slice(last, m.index)));
      const url = m[1] || m[3];
      const a = el("a", "", m[1] ? m[2] : m[3]);
      a.href = url;
      a.addEventListener("click", (ev) => { ev.preventDefault(); openWebview(url); });
      container.appendChild(a);
      last = re.lastIndex;
    }
    container.appendChild(document.createTextNode(text.slice(last)));
  }

  // --- the message list ----------------------------------------------------------
  const list = $("messages");
  function bubble(side, text) {
    const row = el("div", `msg ${side}`);
    row.appendChild(el("div", `avatar ${side === "user" ? "me" : "bot"}`, side === "user" ? "我" : "卡"));
    const b = el("div", "bubble");
    richText(b, text);
    row.appendChild(b);
    return row;
  }
  function articleCard(a) {
    const row = el("div", "msg bot");
    row.appendChild(el("div", "avatar bot", "卡"));
    const card = el("button", "article");
    card.type = "button";
    card.appendChild(el("div", "title", a.Title || a.title || ""));
    const body = el("div", "body");
    body.appendChild(el("p", "", a.Description || a.description || ""));
    body.appendChild(el("div", "thumb", "¥"));
    card.appendChild(body);
    const url = a.Url || a.url || "";
    card.addEventListener("click", () => url && openWebview(url));
    row.appendChild(card);
    return row;
  }
  function notice(m) {
    const box = el("div", "notice");
    box.dataset.kind = "template";
    box.appendChild(el("div", "when", when(m.at)));
    box.appendChild(el("div", "title", m.title));
    for (const r of m.rows || []) {
      const row = el("div", "row");
      row.appendChild(el("span", "label", r.label));
      row.appendChild(el("span", "value", r.value));
      box.appendChild(row);
    }
    if (m.url) {
      const d = el("div", "detail", "详情 Details");
      d.addEventListener("click", () => openWebview(m.url));
      box.appendChild(d);
    }
    box.appendChild(el("div", "from", "模板消息 · " + boot.account));
    return box;
  }
  function system(text, warn) {
    const row = el("div", warn ? "system warn" : "system");
    row.appendChild(el("span", "", text));
    return row;
  }
  function render(m) {
    let node = null;
    if (m.kind === "user") node = bubble("user", m.content);
    else if (m.kind === "system") node = system(m.content, true);
    else if (m.kind === "template") node = notice(m);
    else if (m.kind === "reply" || m.kind === "customer_service") {
      const articles = m.kind === "reply" ? m.articles : (m.content && m.content.articles);
      if (m.msgtype === "news" && articles && articles.length) {
        node = document.createDocumentFragment();
        for (const a of articles) node.appendChild(articleCard(a));
      } else {
        const text = m.kind === "reply" ? m.content : (m.content && m.content.content) || "[" + m.msgtype + "]";
        node = bubble("bot", text);
      }
    }
    if (node) {
      if (node.nodeType === 1) node.dataset.id = m.id;
      list.appendChild(node);
      list.scrollTop = list.scrollHeight;
    }
  }
  // Fetch and show what is new for the current user; returns whether they follow the account (null if stale).
  async function fetchNew() {
    const user = state.user;
    const { status, data } = await api(`messages?openid=${encodeURIComponent(user)}&since=${state.lastId}`);
    if (status !== 200 || user !== state.user) return null;
    state.following = data.following;
    for (const m of data.messages) {
      if (state.seen.has(m.id)) continue;
      state.seen.add(m.id);
      state.lastId = Math.max(state.lastId, m.id);
      render(m);
    }
    return data.following;
  }
  async function poll() {
    if (state.polling || !state.user) return;
    state.polling = true;
    try {
      await fetchNew();
    } catch (e) {
      /* the server restarts in the demo; the next poll catches up */
    } finally {
      state.polling = false;
    }
  }

  // --- sending as the user ---------------------------------------------------------
  async function push(body) {
    const early = setTimeout(poll, 150); // shows the user's own bubble while the bot thinks
    try {
      await api("send", { ...body, openid: state.user, mode: $("mode").value });
    } finally {
      clearTimeout(early);
      await fetchNew().catch(() => null);
      refreshMenu().catch(() => null);
    }
  }
  async function refreshMenu() {
    // the menu this user sees: an English user's tag picks the conditional menu (like WeChat's menu/trymatch)
    const { status, data } = await api(`menu?openid=${encodeURIComponent(state.user)}`);
    const json = JSON.stringify(data);
    if (status === 200 && json !== state.menuJson) {
      state.menuJson = json; // rebuilt only when it changed: an open sub-menu stays put
      buildMenu(data);
    }
  }
  $("input-bar").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    $("send").disabled = true;
    try { await push({ type: "text", content: text }); } finally { $("send").disabled = false; input.focus(); }
  });
  $("to-keyboard").addEventListener("click", () => { $("menu-bar").hidden = true; $("input-bar").hidden = false; $("text").focus(); closeSubmenus(); });
  $("to-menu").addEventListener("click", () => { $("input-bar").hidden = true; $("menu-bar").hidden = false; });

  // --- the custom menu --------------------------------------------------------------
  function closeSubmenus() {
    document.querySelectorAll(".submenu").forEach((s) => s.remove());
    document.querySelectorAll(".menu-btn.open").forEach((b) => b.classList.remove("open"));
  }
  function act(b) {
    closeSubmenus();
    if (b.type === "view") {
      openWebview(b.url);
      push({ type: "view", url: b.url });
    } else if (b.key) {
      push({ type: "click", key: b.key });
    }
  }
  function buildMenu(menu) {
    const nav = $("menu");
    nav.textContent = "";
    for (const top of menu.button || []) {
      const item = el("div", "menu-item");
      const btn = el("button", "menu-btn", top.name);
      btn.type = "button";
      const subs = top.sub_button || [];
      if (subs.length) {
        btn.classList.add("has-sub");
        btn.addEventListener("click", (ev) => {
          ev.stopPropagation();
          const open = btn.classList.contains("open");
          closeSubmenus();
          if (open) return;
          btn.classList.add("open");
          const pop = el("div", "submenu");
          pop.setAttribute("role", "menu");
          for (const s of subs) {
            const sb = el("button", "", s.name);
            sb.type = "button";
            sb.setAttribute("role", "menuitem");
            sb.addEventListener("click", (e) => { e.stopPropagation(); act(s); });
            pop.appendChild(sb);
          }
          item.appendChild(pop);
        });
      } else {
        btn.addEventListener("click", () => act(top));
      }
      item.appendChild(btn);
      nav.appendChild(item);
    }
  }
  document.addEventListener("click", closeSubmenus);

  // --- the in-phone web view and its WeixinJSBridge --------------------------------------
  const frame = $("webview-frame");
  let bridgeTimer = null;
  function openWebview(url) {
    $("webview").hidden = false;
    $("webview-title").textContent = "加载中…";
    frame.src = url;
    clearInterval(bridgeTimer);
    bridgeTimer = setInterval(injectBridge, 50);
  }
  function closeWebview() {
    $("webview").hidden = true;
    $("paysheet").hidden = true;
    clearInterval(bridgeTimer);
    frame.src = "about:blank";
  }
  $("webview-close").addEventListener("click", closeWebview);
  $("webview-reload").addEventListener("click", () => { try { frame.contentWindow.location.reload(); } catch (e) { frame.src = frame.src; } });
  frame.addEventListener("load", () => {
    injectBridge();
    try { $("webview-title").textContent = frame.contentDocument.title || ""; } catch (e) { $("webview-title").textContent = ""; }
  });
  function injectBridge() {
    let w, doc;
    try { w = frame.contentWindow; doc = frame.contentDocument; } catch (e) { return; } // another origin: no bridge
    if (!w || !doc || doc.readyState === "uninitialized" || w.location.href === "about:blank" || w.WeixinJSBridge) return;
    w.WeixinJSBridge = {
      invoke(name, params, cb) { invoke(name, params || {}, typeof cb === "function" ? cb : () => {}, w); },
      call(name) { if (name === "closeWindow") closeWebview(); },
      on() {},
    };
    doc.dispatchEvent(new w.Event("WeixinJSBridgeReady"));
  }
  function answer(w, cb, res) {
    try { cb(w.JSON.parse(JSON.stringify(res))); } catch (e) { console.error(e); }
  }
  function invoke(name, params, cb, w) {
    if (name === "getBrandWCPayRequest") paySheet(params, cb, w);
    else if (name === "closeWindow") { answer(w, cb, { err_msg: "close_window:ok" }); closeWebview(); }
    else answer(w, cb, { err_msg: `${name}:fail_not_supported` });
  }
  async function paySheet(params, cb, w) {
    $("pay-amount").textContent = "¥ —";
    $("pay-payee").textContent = boot.account;
    const finish = async (outcome) => {
      $("pay-confirm").onclick = $("pay-cancel").onclick = $("pay-cancel-2").onclick = null;
      $("paysheet").hidden = true;
      let res = { err_msg: `get_brand_wcpay_request:${outcome === "success" ? "fail" : "cancel"}` };
      try {
        const r = await fetch("/emulator/pay/confirm", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ ...params, openid: state.user, outcome }),
        });
        const data = await r.json();
        if (data && data.err_msg) res = data;
      } catch (e) { /* the pay emulator is not there: report a failure as WeChat would */ }
      answer(w, cb, res);
    };
    // Cancel answers from the moment the sheet shows; paying waits until the sheet shows what it pays.
    $("pay-cancel").onclick = $("pay-cancel-2").onclick = () => finish("cancel");
    $("pay-confirm").disabled = true;
    $("paysheet").hidden = false;
    const info = await api(`prepay?package=${encodeURIComponent(params.package || "")}`);
    if ($("paysheet").hidden) return;
    if (info.status === 200) {
      $("pay-amount").textContent = "¥" + yuan(info.data.total_fen);
      $("pay-payee").textContent = info.data.payee;
    }
    $("pay-confirm").onclick = () => finish("success");
    $("pay-confirm").disabled = false;
  }

  // --- users, follow, encryption, the canteen terminal --------------------------------------
  async function switchUser(openid) {
    closeWebview();
    state.user = openid;
    state.lastId = 0;
    state.seen = new Set();
    list.textContent = "";
    localStorage.setItem("sim_user", openid);
    await api("user", { openid });
    refreshMenu().catch(() => null);
    if ((await fetchNew()) === false) await push({ type: "event", event: "subscribe" });
  }
  const users = $("user");
  for (const u of boot.users) {
    const o = el("option", "", `${u.name} · ${u.role}`);
    o.value = u.openid;
    users.appendChild(o);
  }
  users.addEventListener("change", () => switchUser(users.value));
  $("follow").addEventListener("click", () => push({ type: "event", event: "subscribe" }));
  $("unfollow").addEventListener("click", async () => {
    await push({ type: "event", event: "unsubscribe" });
    list.appendChild(system("你已取消关注 You unfollowed the account"));
  });
  $("mode").value = boot.mode;
  $("mode").addEventListener("change", () => api("mode", { mode: $("mode").value }));
  for (const m of boot.merchants) {
    const o = el("option", "", m);
    o.value = m;
    $("merchant").appendChild(o);
  }
  $("swipe").addEventListener("click", async () => {
    const out = $("swipe-result");
    out.textContent = "…";
    const { status, data } = await api("swipe", { openid: state.user, amount: $("swipe-amount").value, merchant: $("merchant").value });
    if (status !== 200) { out.textContent = data.message || `HTTP ${status}`; return; }
    const r = data.response || {};
    if (data.status === 200 && typeof r.balance_fen === "number") {
      out.textContent = `已扣款 Paid ${yuan(-data.entry.amount_fen)} 元，余额 Balance ${yuan(r.balance_fen)} 元` + (r.autodebit ? `\n自动充值 Auto top-up: ${JSON.stringify(r.autodebit)}` : "");
    } else {
      out.textContent = `卡系统答复 Card system: HTTP ${data.status} ${typeof r === "string" ? r : (r.message || r.error || "")}`;
    }
    out.dataset.status = String(data.status);
    setTimeout(poll, 300);
  });
  $("open-topup").addEventListener("click", () => openWebview(boot.topupUrl));
  $("open-power").addEventListener("click", () => openWebview(boot.powerUrl));
  $("open-alerts").addEventListener("click", () => openWebview(boot.topupUrl.replace(/\/topup$/, "/alerts")));

  // the school's kiosk, at the emulator's card system (shown only when the bot uses a remote card system)
  async function kiosk(what, body) {
    const out = $("kiosk-result");
    out.textContent = "…";
    let status = 0, data = {};
    try {
      const r = await fetch(`/emulator/cardsys/kiosk/${what}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      status = r.status;
      data = await r.json();
    } catch (e) { data = { message: String(e) }; }
    if (status === 200 && what === "password") out.textContent = "密码已修改 Password changed";
    else if (status === 200) out.textContent = `已挂失 Reported lost（${data.status}）`;
    else if (data.result === "mismatch") out.textContent = "学号或原密码不对 Wrong student no. or old password";
    else out.textContent = `卡务系统答复 Card system: HTTP ${status} ${data.message || data.error || ""}`;
    out.dataset.status = String(status);
  }
  if (boot.remote) {
    $("kiosk-password").addEventListener("click", () => kiosk("password", { student_no: $("kiosk-no").value.trim(), old_password: $("kiosk-old").value.trim(), new_password: $("kiosk-new").value.trim() }));
    $("kiosk-loss").addEventListener("click", () => kiosk("loss", { student_no: $("kiosk-no").value.trim() }));
  }

  // the demo's business clock: set, preset or back to real time; the phone's status bar shows it
  let business = boot.clock;
  function showClock(c) {
    business = c;
    $("clock-now").textContent = c.now.replace("T", " ");
    $("clock-mode").textContent = c.frozen ? "（已设定 set）" : "（真实时间 real）";
    $("clock-at").value = c.now;
    tick();
  }
  async function setClock(body) {
    const { status, data } = await api("clock", body);
    if (status === 200) showClock(data);
  }
  for (const p of boot.clock.presets) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = p.label;
    b.dataset.preset = p.key;
    b.addEventListener("click", () => setClock({ at: p.at }));
    $("clock-presets").appendChild(b);
  }
  $("clock-set").addEventListener("click", () => setClock({ at: $("clock-at").value }));
  $("clock-reset").addEventListener("click", () => setClock({ reset: true }));

  const tick = () => { $("clock").textContent = business && business.frozen ? business.now.slice(11) : clockFmt.format(new Date()); };
  showClock(boot.clock);
  setInterval(tick, 30000);
  state.menuJson = JSON.stringify(boot.menu);
  buildMenu(boot.menu);
  const saved = localStorage.getItem("sim_user");
  const first = boot.users.some((u) => u.openid === saved) ? saved : boot.users[0].openid;
  users.value = first;
  switchUser(first);
  setInterval(poll, 1000);
})();
