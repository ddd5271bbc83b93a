/*
 * Kefu chat widget (plain JS, no build step; a later issue replaces it with the TypeScript front end).
 *
 * Embed on any page:
 *   <script src="https://KEFU_HOST/static/widget.js" data-inbox="inb_..." async></script>
 * Optional attributes: data-identity-token (signed by the shop's backend for a logged-in customer),
 * data-locale ("zh" | "en", default: the browser language).
 *
 * How it stays correct across reloads, reconnects and server restarts:
 *  - the visitor token lives in localStorage, so a reload resumes the same visitor and conversation;
 *  - every message gets a client message id before it is sent; unacknowledged messages (also kept in
 *    localStorage) are resent with the same id, which the server stores only once;
 *  - the WebSocket registers first and loads history second, and reconnects with resume_from=<last event
 *    id>, so nothing falls in a gap; messages are keyed by id, so nothing is shown twice;
 *  - when WebSockets do not work, the same events come from the HTTP long-poll and sends go over POST.
 * Message text is only ever inserted with textContent.
 */
(function () {
  "use strict";

  if (window.__kefuWidget) return;
  var script = document.currentScript || document.querySelector("script[data-inbox][src*='widget.js']");
  if (!script || !script.getAttribute("data-inbox")) return;
  window.__kefuWidget = true;

  var SRC = new URL(script.src, location.href);
  var ORIGIN = SRC.origin;
  var STATIC_BASE = SRC.href.replace(/widget\.js(\?.*)?$/, "");
  var INBOX = script.getAttribute("data-inbox");
  var identityToken = script.getAttribute("data-identity-token") || null;

  var TEXTS = {
    zh: {
      title: "在线客服", open: "联系客服", close: "关闭", placeholder: "请输入消息…", send: "发送",
      connecting: "正在连接…", online: "在线", offline: "正在重新连接…", polling: "在线（兼容模式）",
      sending: "发送中…", retrying: "未发送，正在重试…", failed: "发送失败", earlier: "查看更早的消息",
      unavailable: "暂时无法连接客服，请稍后再试。", greeting: "您好！请问有什么可以帮您？", attachment: "附件",
      read: "已读", typing: "客服正在输入…", attach: "发送图片或文件", uploading: "正在上传…",
      uploadFailed: "上传失败", csatTitle: "请为本次服务评分", csatComment: "留言（可选）", csatSubmit: "提交评价",
      csatThanks: "感谢您的评价！", csatFailed: "评价未提交，请重试", stars: " 星",
    },
    en: {
      title: "Chat with us", open: "Open chat", close: "Close", placeholder: "Type a message…", send: "Send",
      connecting: "Connecting…", online: "Online", offline: "Reconnecting…", polling: "Online (compatibility mode)",
      sending: "Sending…", retrying: "Not sent yet, retrying…", failed: "Could not be sent", earlier: "Earlier messages",
      unavailable: "Chat is unavailable right now. Please try again later.",
      greeting: "Hi! How can we help you today?", attachment: "Attachment", read: "Read",
      typing: "Agent is typing…", attach: "Send an image or file", uploading: "Uploading…",
      uploadFailed: "Upload failed", csatTitle: "How did we do?", csatComment: "Comment (optional)",
      csatSubmit: "Send rating", csatThanks: "Thanks for your feedback!", csatFailed: "Rating not sent, try again",
      stars: " stars",
    },
  };

  function pickLocale() {
    var forced = (script.getAttribute("data-locale") || "").toLowerCase();
    if (forced === "zh" || forced === "en") return forced;
    var langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
    for (var i = 0; i < langs.length; i++) {
      var tag = String(langs[i]).toLowerCase();
      if (tag.indexOf("zh") === 0) return "zh";
      if (tag.indexOf("en") === 0) return "en";
    }
    return "en";
  }

  var LOCALE = pickLocale();
  var T = TEXTS[LOCALE];

  // ---- persistence ------------------------------------------------------------------------------------
  var STORE_KEY = "kefu.v1." + INBOX;

  function load() {
    try {
      return JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
    } catch (e) {
      return {};
    }
  }

  var stored = load();

  function save() {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify({
        visitor_token: stored.visitor_token || null,
        expires_at: stored.expires_at || null,
        pending: pending.map(function (p) { return { cid: p.cid, body: p.body, ts: p.ts, attachments: p.attachments || [] }; }),
      }));
    } catch (e) { /* storage disabled: the widget still works for this page view */ }
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // ---- state --------------------------------------------------------------------------------------------
  var session = null;          // answer of POST /widget/sessions
  var sessionPromise = null;
  var lastEventId = null;      // newest event id seen, for resume_from / after
  var messages = {};           // message id -> element
  var pending = (stored.pending || []).filter(function (p) { return p && p.cid && typeof p.body === "string"; });
  var ws = null;
  var wsRegistered = false;
  var wsFailures = 0;          // consecutive failures to open a WebSocket
  var mode = "ws";             // "ws" or "poll"
  var polling = false;
  var reconnectTimer = null;
  var reconnectDelay = 500;
  var historyLoaded = false;
  var oldestId = null;
  var unread = 0;
  var isOpen = false;
  var ackTimer = null;

  // ---- DOM ----------------------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-kefu-widget", "");
  host.style.display = "none"; // until the stylesheet is in, so the page never flashes unstyled parts
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;

  function el(tag, cls, attrs) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  var css = el("link", null, { rel: "stylesheet", href: STATIC_BASE + "widget.css" });
  var panel = el("section", "kefu-panel", { "data-kefu": "panel", role: "dialog", "aria-label": T.title });
  panel.hidden = true;
  var header = el("header", "kefu-header");
  var heading = el("div", "kefu-heading");
  var title = el("div", "kefu-title", { "data-kefu": "title" });
  title.textContent = T.title;
  var status = el("div", "kefu-status", { "data-kefu": "status", "aria-live": "polite" });
  heading.appendChild(title);
  heading.appendChild(status);
  var closeBtn = el("button", "kefu-close", { type: "button", "aria-label": T.close, title: T.close });
  closeBtn.textContent = "×";
  header.appendChild(heading);
  header.appendChild(closeBtn);

  var list = el("div", "kefu-messages", { "data-kefu": "messages", role: "log", "aria-live": "polite" });
  var earlier = el("button", "kefu-earlier", { type: "button", "data-kefu": "earlier" });
  earlier.textContent = T.earlier;
  earlier.hidden = true;
  var greeting = el("div", "kefu-msg kefu-greeting", { "data-kefu": "greeting" });
  var greetingBubble = el("div", "kefu-bubble");
  greetingBubble.textContent = T.greeting;
  greeting.appendChild(greetingBubble);
  list.appendChild(earlier);
  list.appendChild(greeting);

  var typingLine = el("div", "kefu-typing", { "data-kefu": "typing", "aria-live": "polite" });
  var form = el("form", "kefu-form");
  var attachLabel = el("label", "kefu-attach", { title: T.attach, "data-kefu": "attach-label" });
  var attachInput = el("input", null, { type: "file", accept: "image/*,application/pdf", "data-kefu": "attach",
    "aria-label": T.attach });
  var attachIcon = el("span", null, { "aria-hidden": "true" });
  attachIcon.innerHTML = '<svg viewBox="0 0 24 24"><path d="M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z"/></svg>';
  attachLabel.appendChild(attachIcon);
  attachLabel.appendChild(attachInput);
  var input = el("textarea", "kefu-input", { "data-kefu": "input", rows: "1", placeholder: T.placeholder,
    "aria-label": T.placeholder, maxlength: "10000" });
  var sendBtn = el("button", "kefu-send", { type: "submit", "data-kefu": "send" });
  sendBtn.textContent = T.send;
  form.appendChild(attachLabel);
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(header);
  panel.appendChild(list);
  panel.appendChild(typingLine);
  panel.appendChild(form);

  var launcher = el("button", "kefu-launcher", { type: "button", "data-kefu": "launcher", "aria-label": T.open,
    title: T.open });
  launcher.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 3C6.5 3 2 6.9 2 11.7c0 2.6 1.3 4.9 3.4 6.5L4.6 22l4.1-2.2c1 .3 2.1.4 3.3.4 5.5 0 10-3.9 10-8.7S17.5 3 12 3z"/></svg>';
  var badge = el("span", "kefu-badge", { "data-kefu": "badge" });
  badge.hidden = true;
  launcher.appendChild(badge);

  root.appendChild(css);
  root.appendChild(panel);
  root.appendChild(launcher);
  function reveal() { host.style.display = ""; }
  css.addEventListener("load", reveal);
  css.addEventListener("error", reveal);
  setTimeout(reveal, 3000);

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  function setStatus(key) { status.textContent = key ? T[key] : ""; }

  function formatTime(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) return "";
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  function scrollToEnd() { list.scrollTop = list.scrollHeight; }

  function bubble(body, attachments, mine, metaText) {
    var wrap = el("div", "kefu-msg" + (mine ? " kefu-mine" : ""));
    var b = el("div", "kefu-bubble");
    b.textContent = body || "";
    (attachments || []).forEach(function (a) { b.appendChild(attachmentNode(a)); });
    var meta = el("div", "kefu-meta");
    meta.textContent = metaText || "";
    wrap.appendChild(b);
    wrap.appendChild(meta);
    return wrap;
  }

  /** A file in a message: images show inline through a short-lived signed link, other files as a link. */
  function attachmentNode(a) {
    var name = String((a && a.name) || T.attachment);
    var isImage = a && /^image\//.test(String(a.content_type || ""));
    var node = el(isImage ? "img" : "a", "kefu-attachment", isImage ? { alt: name } : { target: "_blank", rel: "noopener" });
    if (!isImage) node.textContent = name;
    var signed = a && a.url && a.url.indexOf("sig=") !== -1 ? a.url : null;
    var setUrl = function (url) {
      var abs = /^https?:/.test(url) ? url : ORIGIN + url;
      if (isImage) node.setAttribute("src", abs); else node.setAttribute("href", abs);
    };
    if (signed) setUrl(signed);
    else if (a && a.id && session) {
      api("POST", "/api/v1/widget/attachment-links", { attachment_ids: [a.id] }).then(function (page) {
        var link = (page.data || [])[0];
        if (link && link.url) setUrl(link.url);
      }, function () {});
    }
    return node;
  }

  function firstPendingNode() { return list.querySelector(".kefu-pending"); }

  /** Insert or refresh a stored message, in id order, before any still-pending messages. */
  function showMessage(m) {
    if (!m || !m.id) return;
    if (m.client_message_id && m.sender_kind === "customer") dropPending(m.client_message_id);
    if (messages[m.id]) return;
    var mine = m.sender_kind === "customer";
    var node = bubble(m.body, m.attachments, mine, formatTime(m.created_at));
    if (mine && m.delivery_status === "read") markReadNode(node);
    node.setAttribute("data-message-id", m.id);
    node.setAttribute("data-sender", m.sender_kind || "");
    messages[m.id] = node;
    var before = firstPendingNode();
    var nodes = list.querySelectorAll("[data-message-id]");
    for (var i = nodes.length - 1; i >= 0; i--) {
      if (nodes[i].getAttribute("data-message-id") < m.id) { before = nodes[i].nextSibling; break; }
      before = nodes[i];
    }
    list.insertBefore(node, before || null);
    if (!oldestId || m.id < oldestId) oldestId = m.id;
    if (m.sender_kind !== "customer" && !isOpen && historyLoaded) {
      unread += 1;
      badge.textContent = String(unread);
      badge.hidden = false;
    }
    scrollToEnd();
    if (!mine) scheduleRead();
  }

  // ---- read receipts ------------------------------------------------------------------------------------
  var readUpTo = null;
  var readTimer = null;

  function markReadNode(node) {
    var meta = node.querySelector(".kefu-meta");
    if (meta && !node.hasAttribute("data-read")) {
      node.setAttribute("data-read", "true");
      meta.textContent = meta.textContent + " · " + T.read;
    }
  }

  /** Tell the shop the customer has seen its messages: only while the panel is open and the page visible. */
  function scheduleRead() {
    if (readTimer || !isOpen || !session || document.visibilityState === "hidden") return;
    readTimer = setTimeout(function () {
      readTimer = null;
      var nodes = list.querySelectorAll("[data-message-id]:not([data-sender='customer'])");
      if (!nodes.length) return;
      var last = nodes[nodes.length - 1].getAttribute("data-message-id");
      if (readUpTo !== null && last <= readUpTo) return;
      api("POST", "/api/v1/widget/read", { up_to_message_id: last }).then(function () { readUpTo = last; },
                                                                           function () {});
    }, 800);
  }

  function applyReceipt(read) {
    if (!read || read.by !== "agent" || !read.message_ids) return;
    read.message_ids.forEach(function (id) { if (messages[id]) markReadNode(messages[id]); });
  }

  // ---- sending ------------------------------------------------------------------------------------------
  function renderPending(p) {
    if (p.node) return;
    p.node = bubble(p.body, p.attachments, true, T.sending);
    p.node.classList.add("kefu-pending");
    p.node.setAttribute("data-client-id", p.cid);
    list.appendChild(p.node);
    scrollToEnd();
  }

  function dropPending(cid) {
    for (var i = 0; i < pending.length; i++) {
      if (pending[i].cid === cid) {
        if (pending[i].node && pending[i].node.parentNode) pending[i].node.parentNode.removeChild(pending[i].node);
        pending.splice(i, 1);
        save();
        return;
      }
    }
  }

  function failPending(cid) {
    pending.forEach(function (p) {
      if (p.cid !== cid || !p.node) return;
      p.node.classList.add("kefu-failed");
      p.node.querySelector(".kefu-meta").textContent = T.failed;
    });
    pending = pending.filter(function (p) { return p.cid !== cid; });
    save();
  }

  function flushPending() {
    var now = Date.now();
    pending.forEach(function (p) {
      renderPending(p);
      if (p.inflightSince && now - p.inflightSince < 15000) return; // wait for its ack a while
      if (p.inflightSince) p.node.querySelector(".kefu-meta").textContent = T.retrying;
      if (mode === "ws" && ws && wsRegistered) {
        p.inflightSince = now;
        ws.send(JSON.stringify({ type: "message.send", id: p.cid, data: { body: p.body, attachments: refs(p) } }));
      } else if (mode === "poll" && session) {
        p.inflightSince = now;
        api("POST", "/api/v1/widget/messages", { body: p.body, client_message_id: p.cid, attachments: refs(p) }).then(function (m) {
          showMessage(m);
        }, function (err) {
          if (err && (err.status === 422 || err.status === 400)) { failPending(p.cid); return; }
          p.inflightSince = 0; // retried by the timer below, with the same client id
          if (err && err.status === 401) restartSession();
        });
      }
    });
  }

  function refs(p) { return (p.attachments || []).map(function (a) { return { id: a.id }; }); }

  setInterval(function () { if (pending.length) flushPending(); }, 5000);

  // ---- uploads ------------------------------------------------------------------------------------------
  attachInput.addEventListener("change", function () {
    var file = attachInput.files && attachInput.files[0];
    attachInput.value = "";
    if (!file) return;
    ensureStarted();
    setStatus("uploading");
    (sessionPromise || startSession()).then(function () {
      return fetch(ORIGIN + "/api/v1/widget/attachments?filename=" + encodeURIComponent(file.name), {
        method: "POST", body: file, credentials: "omit",
        headers: { "Authorization": "Bearer " + session.visitor_token, "Accept-Language": LOCALE },
      });
    }).then(function (res) {
      if (!res.ok) throw new Error("http_" + res.status);
      return res.json();
    }).then(function (stored) {
      setStatus(mode === "poll" ? "polling" : "online");
      pending.push({ cid: newClientId(), body: "", ts: Date.now(), attachments: [{
        id: stored.id, name: stored.filename, content_type: stored.content_type, url: stored.url }] });
      save();
      flushPending();
    }, function () {
      setStatus("uploadFailed");
    });
  });

  // ---- typing -------------------------------------------------------------------------------------------
  var typingSentAt = 0;
  var typingTimer = null;
  function sendTyping(on) {
    if (!ws || !wsRegistered) return;
    var now = Date.now();
    if (on && now - typingSentAt < 3000) return;
    if (!on && !typingSentAt) return;
    typingSentAt = on ? now : 0;
    ws.send(JSON.stringify({ type: "typing", data: { typing: on } }));
  }
  input.addEventListener("input", function () { if (input.value) sendTyping(true); });
  input.addEventListener("blur", function () { sendTyping(false); });

  function showAgentTyping(on) {
    typingLine.textContent = on ? T.typing : "";
    if (typingTimer) clearTimeout(typingTimer);
    typingTimer = on ? setTimeout(function () { typingLine.textContent = ""; }, 6000) : null;
  }

  // ---- satisfaction rating (CSAT) -----------------------------------------------------------------------
  var csatEnabled = true;
  var csatNode = null;
  function showCsat(conversationId) {
    if (!csatEnabled || !conversationId) return;
    if (csatNode && csatNode.getAttribute("data-conversation-id") === conversationId) return;
    hideCsat();
    var box = el("form", "kefu-csat", { "data-kefu": "csat", "data-conversation-id": conversationId });
    var heading = el("div", "kefu-csat-title");
    heading.textContent = T.csatTitle;
    var stars = el("div", "kefu-stars", { role: "radiogroup", "aria-label": T.csatTitle });
    var rating = 0;
    var buttons = [];
    for (var n = 1; n <= 5; n++) {
      (function (value) {
        var star = el("button", "kefu-star", { type: "button", role: "radio", "aria-checked": "false",
          "aria-label": value + T.stars, "data-kefu": "star-" + value });
        star.textContent = "★";
        star.addEventListener("click", function () {
          rating = value;
          buttons.forEach(function (btn, i) {
            btn.classList.toggle("kefu-on", i < value);
            btn.setAttribute("aria-checked", i === value - 1 ? "true" : "false");
          });
          submit.disabled = false;
        });
        buttons.push(star);
        stars.appendChild(star);
      })(n);
    }
    var comment = el("textarea", "kefu-csat-comment", { "data-kefu": "csat-comment", rows: "2", maxlength: "1000",
      placeholder: T.csatComment, "aria-label": T.csatComment });
    var submit = el("button", "kefu-send", { type: "submit", "data-kefu": "csat-submit" });
    submit.textContent = T.csatSubmit;
    submit.disabled = true;
    var note = el("div", "kefu-meta", { "aria-live": "polite" });
    box.appendChild(heading);
    box.appendChild(stars);
    box.appendChild(comment);
    box.appendChild(submit);
    box.appendChild(note);
    box.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!rating) return;
      submit.disabled = true;
      api("POST", "/api/v1/widget/csat", { conversation_id: conversationId, rating: rating,
                                           comment: comment.value.trim() || null }).then(function () {
        box.textContent = "";
        var thanks = el("div", "kefu-csat-title", { "data-kefu": "csat-thanks" });
        thanks.textContent = T.csatThanks;
        box.appendChild(thanks);
      }, function (err) {
        submit.disabled = false;
        note.textContent = T.csatFailed;
        if (err && (err.code === "csat_disabled" || err.code === "conversation_not_resolved")) hideCsat();
      });
    });
    csatNode = box;
    list.appendChild(box);
    scrollToEnd();
  }

  function hideCsat() {
    if (csatNode && csatNode.parentNode) csatNode.parentNode.removeChild(csatNode);
    csatNode = null;
  }

  function csatThanked() { return !!(csatNode && csatNode.querySelector("[data-kefu=csat-thanks]")); }

  /**
   * Ask the server whether a rating is wanted now: the visitor's latest conversation is resolved and its
   * current resolution has no rating. Runs after the history loads (so a reload after the resolution still
   * asks) and when a resolution arrives live (so an unrelated update of a rated conversation never asks
   * twice). If the question cannot be answered, a live resolution still shows the form.
   */
  function checkCsat(liveConversationId) {
    if (!csatEnabled) return;
    api("GET", "/api/v1/widget/csat/prompt").then(function (p) {
      if (p && p.ask && p.conversation_id) showCsat(p.conversation_id);
      else if (csatNode && !csatThanked()) hideCsat();
    }, function () {
      if (liveConversationId) showCsat(liveConversationId);
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = input.value;
    if (!body.trim()) return;
    input.value = "";
    sendTyping(false);
    pending.push({ cid: newClientId(), body: body, ts: Date.now() });
    save();
    ensureStarted();
    flushPending();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (form.requestSubmit) form.requestSubmit(); else sendBtn.click();
    }
  });

  // ---- HTTP ---------------------------------------------------------------------------------------------
  function api(method, path, body) {
    var headers = { "Accept": "application/json", "Accept-Language": LOCALE };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (session) headers["Authorization"] = "Bearer " + session.visitor_token;
    return fetch(ORIGIN + path, {
      method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error((data && data.error && data.error.code) || ("http_" + res.status));
          err.status = res.status;
          err.code = data && data.error && data.error.code;
          throw err;
        }
        return data;
      });
    });
  }

  // ---- session ------------------------------------------------------------------------------------------
  function startSession() {
    if (sessionPromise) return sessionPromise;
    setStatus("connecting");
    var attempt = function (delay) {
      var payload = { inbox_id: INBOX, locale: LOCALE };
      if (stored.visitor_token) payload.visitor_token = stored.visitor_token;
      if (identityToken) payload.identity_token = identityToken;
      return api("POST", "/api/v1/widget/sessions", payload).catch(function (err) {
        if (identityToken && err && /^(invalid_identity_token|identity_token_)/.test(err.code || "")) {
          identityToken = null; // single-use and short-lived: carry on with the visitor token we have
          return attempt(delay);
        }
        if (err && err.status >= 400 && err.status < 500 && err.status !== 429) {
          setStatus("unavailable");
          throw err;
        }
        return new Promise(function (resolve) { setTimeout(resolve, delay); }).then(function () {
          return attempt(Math.min(delay * 2, 15000));
        });
      });
    };
    sessionPromise = attempt(1000).then(function (s) {
      identityToken = null;
      session = s;
      stored.visitor_token = s.visitor_token;
      stored.expires_at = s.expires_at;
      save();
      applyConfig(s.widget || {});
      return s;
    }, function (err) {
      sessionPromise = null;
      throw err;
    });
    return sessionPromise;
  }

  var restartTimer = null;
  var restartDelay = 1000;
  /** The visitor token was refused: get a fresh session (backing off, in case the server keeps refusing). */
  function restartSession() {
    if (restartTimer) return;
    stored.visitor_token = null; // refused: this visitor is gone (expired, or the secret was rotated)
    save();
    session = null;
    sessionPromise = null;
    restartTimer = setTimeout(function () {
      restartTimer = null;
      startSession().then(function () { restartDelay = 1000; connect(); }, function () {});
    }, restartDelay);
    restartDelay = Math.min(restartDelay * 2, 30000);
  }

  function applyConfig(w) {
    if (w.csat_enabled === false) csatEnabled = false;
    if (w.launcher_label) {
      launcher.setAttribute("aria-label", w.launcher_label);
      launcher.setAttribute("title", w.launcher_label);
    }
    if (w.color && /^#[0-9a-fA-F]{6}$/.test(w.color)) host.style.setProperty("--kefu-color", w.color);
    host.classList.toggle("kefu-left", w.position === "left");
    if (w.greeting) greetingBubble.textContent = w.greeting;
  }

  var started = false;
  function ensureStarted() {
    if (started) return;
    started = true;
    pending.forEach(renderPending);
    startSession().then(connect, function () { started = false; });
  }

  // ---- events (same frames from the WebSocket and the long-poll) ---------------------------------------
  function noteEventId(id) {
    if (typeof id === "number" && (lastEventId === null || id > lastEventId)) lastEventId = id;
  }

  function handleFrame(f) {
    if (!f || typeof f.type !== "string") return;
    switch (f.type) {
      case "registered":
        wsRegistered = true;
        wsFailures = 0;
        reconnectDelay = 500;
        if (f.data && typeof f.data.last_event_id === "number") noteEventId(f.data.last_event_id);
        setStatus("online");
        if (!historyLoaded) loadHistory();
        flushPending();
        return;
      case "message.ack":
        if (f.data && f.data.message) showMessage(f.data.message);
        return;
      case "error":
        var code = f.data && f.data.code;
        if (f.id && (code === "validation_error" || code === "empty_message" || code === "conversation_closed")) {
          failPending(f.id);
        }
        return;
      case "resync_required":
        if (f.data) noteEventId(f.data.last_event_id);
        loadHistory();
        return;
      case "message.created":
      case "message.updated":
        noteEventId(f.id);
        if (f.data && f.data.read) applyReceipt(f.data.read);
        if (f.data && f.data.message && !f.data.message.private) {
          if (f.data.message.sender_kind === "agent") showAgentTyping(false);
          showMessage(f.data.message);
        }
        scheduleAck();
        return;
      case "conversation.typing":
        if (f.data && f.data.sender_kind !== "customer") showAgentTyping(!!f.data.typing);
        return;
      case "conversation.updated":
        noteEventId(f.id);
        var conv = f.data && f.data.conversation;
        if (conv && conv.status === "resolved") checkCsat(conv.id);
        else if (conv && conv.status === "open" && csatNode) hideCsat(); // reopened: its next resolution asks anew
        scheduleAck();
        return;
      default:
        noteEventId(f.id);
        scheduleAck();
    }
  }

  function scheduleAck() {
    if (ackTimer || mode !== "ws") return;
    ackTimer = setTimeout(function () {
      ackTimer = null;
      if (ws && wsRegistered && lastEventId !== null) ws.send(JSON.stringify({ type: "ack", last_event_id: lastEventId }));
    }, 500);
  }

  function loadHistory(before) {
    var path = "/api/v1/widget/messages?limit=50" + (before ? "&before=" + encodeURIComponent(before) : "");
    return api("GET", path).then(function (page) {
      (page.data || []).forEach(showMessage);
      if (!before || page.data && page.data.length) earlier.hidden = !page.has_more;
      historyLoaded = true;
      if (!before) {
        scrollToEnd();
        checkCsat(null);
      }
    }, function (err) {
      if (err && err.status === 401) restartSession();
    });
  }

  earlier.addEventListener("click", function () { if (oldestId) loadHistory(oldestId); });

  // ---- WebSocket with reconnect + resume ----------------------------------------------------------------
  function connect() {
    if (!session || ws) return;
    if (!("WebSocket" in window) || typeof window.WebSocket !== "function") { startPolling(); return; }
    var url = ORIGIN.replace(/^http/, "ws") + "/api/v1/widget/ws";
    var opened = false;
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      wsFailures += 1;
      scheduleReconnect();
      return;
    }
    ws = socket;
    socket.onopen = function () {
      opened = true;
      socket.send(JSON.stringify({ type: "register", id: "register", data: {
        visitor_token: session.visitor_token, resume_from: lastEventId } }));
    };
    socket.onmessage = function (e) {
      var frame;
      try { frame = JSON.parse(e.data); } catch (err) { return; }
      if (frame.type === "registered") { mode = "ws"; polling = false; }
      handleFrame(frame);
    };
    socket.onclose = function (e) {
      if (ws === socket) ws = null;
      wsRegistered = false;
      pending.forEach(function (p) { p.inflightSince = 0; }); // resend unacknowledged ones after reconnect
      if (!opened) wsFailures += 1;
      if (e.code === 4401) { restartSession(); return; }
      if (mode === "poll") return;
      setStatus("offline");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    if (wsFailures >= 3) { startPolling(); return; }
    var delay = reconnectDelay + Math.floor(Math.random() * 300);
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
    reconnectTimer = setTimeout(function () { reconnectTimer = null; connect(); }, delay);
  }

  // ---- HTTP long-poll fallback --------------------------------------------------------------------------
  function startPolling() {
    mode = "poll";
    if (polling) return;
    polling = true;
    setStatus("polling");
    if (!historyLoaded) loadHistory();
    flushPending();
    var delay = 1000;
    var loop = function () {
      if (!polling || mode !== "poll") { polling = false; return; }
      if (!session) { setTimeout(loop, delay); return; }
      api("GET", "/api/v1/widget/events?after=" + (lastEventId || 0) + "&wait=25").then(function (page) {
        delay = 1000;
        setStatus("polling");
        (page.events || []).forEach(handleFrame);
        noteEventId(page.last_event_id);
        loop();
      }, function (err) {
        setStatus("offline");
        if (err && err.status === 401) restartSession();
        setTimeout(loop, delay);
        delay = Math.min(delay * 2, 15000);
      });
    };
    loop();
    // Networks that blocked WebSockets sometimes stop doing so: try again now and then.
    setTimeout(function retryWs() {
      if (mode !== "poll") return;
      wsFailures = 0;
      connect();
      setTimeout(retryWs, 60000);
    }, 60000);
  }

  window.addEventListener("online", function () {
    if (session && !ws && mode === "ws") { reconnectDelay = 500; connect(); }
  });

  // ---- open / close -------------------------------------------------------------------------------------
  function setOpen(open) {
    isOpen = open;
    panel.hidden = !open;
    host.classList.toggle("kefu-open", open);
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      unread = 0;
      badge.hidden = true;
      ensureStarted();
      scrollToEnd();
      input.focus();
      scheduleRead();
    }
  }
  launcher.addEventListener("click", function () { setOpen(!isOpen); });
  document.addEventListener("visibilitychange", scheduleRead);
  closeBtn.addEventListener("click", function () { setOpen(false); });

  // Returning visitors (or a logged-in customer) reconnect at once so replies arrive while the panel is
  // closed; first-time anonymous visitors get a contact only when they open the chat.
  if (stored.visitor_token || identityToken || pending.length) ensureStarted();
})();
