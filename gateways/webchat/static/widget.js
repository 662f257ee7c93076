/* Usher web chat widget. Embedded with one tag:
 *   <script src="https://GATEWAY/TENANT/CHANNEL/widget.js" async></script>
 * Plain JavaScript, no build step. Everything it draws lives in a shadow root, so the host
 * page's styles do not leak in. Protocol: gateways/webchat/frames.py. */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script) {
    var tags = document.querySelectorAll('script[src*="/widget.js"]');
    script = tags[tags.length - 1];
  }
  if (!script) return;
  var base = script.src.replace(/\/widget\.js(\?.*)?$/, "");
  window.__usherWebChat = window.__usherWebChat || {};
  if (window.__usherWebChat[base]) return;

  var STORE = "usher:" + base;
  var TYPING_EVERY = 3000;
  var TYPING_IDLE = 4000;
  var AGENT_TYPING_EXPIRES = 10000;

  function load(key) {
    try { return window.localStorage.getItem(STORE + ":" + key); } catch (e) { return null; }
  }
  function save(key, value) {
    try { window.localStorage.setItem(STORE + ":" + key, value); } catch (e) { /* private mode */ }
  }
  function uid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function clipIcon() {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "20");
    svg.setAttribute("height", "20");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "1.6");
    path.setAttribute("stroke-linecap", "round");
    svg.appendChild(path);
    return svg;
  }
  function messageNumber(name) {
    var m = /\/messages\/(\d+)$/.exec(name || "");
    return m ? parseInt(m[1], 10) : -1;
  }
  function conversationOf(name) {
    return (name || "").split("/messages/")[0];
  }

  // The QR code's or campaign link's reference: the embedding page's (`data-ref` on the script
  // tag), else the page URL's `ref` (a QR code's web chat link), else the one an earlier page of
  // this visit had. The gateway checks it; a conversation the visitor starts carries it.
  function pageReference() {
    var given = script.getAttribute("data-ref") || "";
    if (!given) {
      try { given = new URL(window.location.href).searchParams.get("ref") || ""; } catch (e) { given = ""; }
    }
    try {
      if (given) window.sessionStorage.setItem(STORE + ":ref", given);
      else given = window.sessionStorage.getItem(STORE + ":ref") || "";
    } catch (e) { /* private mode */ }
    return given.slice(0, 64);
  }

  var state = {
    config: null,
    reference: pageReference(),
    visitor: load("visitor") || "",
    profile: JSON.parse(load("profile") || "null"),
    lastSeq: 0,
    ready: false,
    socket: null,
    retry: 0,
    pending: {},        // widget id -> outgoing frame, until acknowledged
    bubbles: {},        // widget id -> own bubble
    conversation: "",
    agentJoined: false,
    waiting: false,
    lastAgentMessage: "",
    reportedRead: "",
    typingSentAt: 0,
    typingTimer: null,
    agentTypingTimer: null,
    open: false,
    unread: 0,
    offlineCard: null,
    offlineDone: {},
    ratingCards: {}
  };
  window.__usherWebChat[base] = state;

  // --- the page ------------------------------------------------------------------------------

  var host = el("div");
  host.id = "usher-webchat";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = el("link");
  style.rel = "stylesheet";
  style.href = base + "/widget.css";
  root.appendChild(style);

  var launcher = el("button", "usher-launcher", "Chat");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open chat");
  var badge = el("span", "usher-badge", "");
  launcher.appendChild(badge);

  var panel = el("section", "usher-panel");
  panel.setAttribute("role", "dialog");
  panel.hidden = true;
  var header = el("header", "usher-header");
  var title = el("span", "usher-title", "Chat");
  var endButton = el("button", "usher-end", "End chat");
  endButton.type = "button";
  endButton.hidden = true;
  var closeButton = el("button", "usher-close", "\u00d7");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  header.appendChild(title);
  header.appendChild(endButton);
  header.appendChild(closeButton);

  var log = el("div", "usher-log");
  log.setAttribute("aria-live", "polite");
  var greeting = el("div", "usher-greeting");
  log.appendChild(greeting);
  var typing = el("div", "usher-typing", "Agent is typing\u2026");
  typing.hidden = true;
  var status = el("div", "usher-status", "");

  var prechat = el("form", "usher-prechat");
  prechat.hidden = true;

  var composer = el("form", "usher-composer");
  var input = el("textarea", "usher-input");
  input.rows = 2;
  input.placeholder = "Type your message\u2026";
  var attach = el("input", "usher-file");
  attach.type = "file";
  attach.accept = "image/*,application/pdf,text/plain";
  var attachLabel = el("label", "usher-attach");
  attachLabel.title = "Attach a file";
  attachLabel.appendChild(clipIcon());
  attachLabel.appendChild(attach);
  var send = el("button", "usher-send", "Send");
  send.type = "submit";
  composer.appendChild(attachLabel);
  composer.appendChild(input);
  composer.appendChild(send);

  var leaveLink = el("button", "usher-leave-link", "No answer? Leave a message");
  leaveLink.type = "button";
  leaveLink.hidden = true;

  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(status);
  panel.appendChild(leaveLink);
  panel.appendChild(prechat);
  panel.appendChild(composer);
  root.appendChild(panel);
  root.appendChild(launcher);

  function scrollDown() { log.scrollTop = log.scrollHeight; }
  function setStatus(text) { status.textContent = text || ""; }

  function toggle(open) {
    state.open = open;
    panel.hidden = !open;
    launcher.hidden = open;
    if (open) {
      state.unread = 0;
      badge.textContent = "";
      reportRead();
      scrollDown();
      if (!prechat.hidden) {
        var first = prechat.querySelector("input");
        if (first) first.focus();
      } else {
        input.focus();
      }
    }
  }
  launcher.addEventListener("click", function () { toggle(true); });
  closeButton.addEventListener("click", function () { toggle(false); });
  endButton.addEventListener("click", function () {
    sendFrame({ type: "leave" });
    endButton.hidden = true;
  });
  leaveLink.addEventListener("click", function () { showOfflineForm(""); });
  document.addEventListener("visibilitychange", reportRead);

  // --- the transcript ------------------------------------------------------------------------

  function attachmentsInto(node, attachments) {
    (attachments || []).forEach(function (a) {
      if (!/^https?:\/\//.test(a.url || "")) return;
      var link = el("a", "usher-attachment", a.name || "attachment");
      link.href = a.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      if (/^image\//.test(a.content_type || "")) {
        var img = el("img");
        img.src = a.url;
        img.alt = a.name || "";
        link.textContent = "";
        link.appendChild(img);
      }
      node.appendChild(link);
    });
  }

  function bubble(sender, text, attachments) {
    var node = el("div", "usher-msg " + sender);
    if (text) node.appendChild(el("div", "usher-text", text));
    attachmentsInto(node, attachments);
    var meta = el("div", "usher-meta", "");
    node.appendChild(meta);
    log.appendChild(node);
    scrollDown();
    return node;
  }

  // --- choices: an agent's or bot's options as buttons; a click sends the option's id -------

  function settleChoices() {
    // any later message closes the choices offered before it
    if (!state.choices) return;
    var buttons = state.choices.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
    state.choices = null;
  }

  function choicesInto(node, choices) {
    var meta = node.querySelector(".usher-meta");
    if (choices.header) {
      node.insertBefore(el("div", "usher-choices-header", choices.header), node.firstChild);
    }
    var box = el("div", "usher-choices " + (choices.style === "list" ? "list" : "buttons"));
    (choices.options || []).forEach(function (option) {
      var button = el("button", "usher-choice");
      button.type = "button";
      button.dataset.option = option.id;
      button.appendChild(el("span", "usher-choice-title", option.title));
      if (option.description) {
        button.appendChild(el("span", "usher-choice-description", option.description));
      }
      button.addEventListener("click", function () {
        if (button.disabled) return;
        settleChoices();
        button.classList.add("chosen");
        sendMessage(option.title, [], option.id);
      });
      box.appendChild(button);
    });
    node.insertBefore(box, meta);
    if (choices.footer) node.insertBefore(el("div", "usher-choices-footer", choices.footer), meta);
    state.choices = box;
  }

  function systemLine(text, kind) {
    var node = el("div", "usher-system" + (kind ? " " + kind : ""), text);
    log.appendChild(node);
    scrollDown();
    return node;
  }

  function markOwn(node, text) {
    var meta = node.querySelector(".usher-meta");
    if (meta) meta.textContent = text;
  }

  function ownMessage(frame) {
    var node = frame.id && state.bubbles[frame.id];
    if (!node) {
      node = bubble("customer", frame.text, frame.attachments);
      if (frame.id) state.bubbles[frame.id] = node;
    }
    node.dataset.message = frame.message || "";
    if (frame.id) delete state.pending[frame.id];
    if (node.dataset.status !== "read") {
      node.dataset.status = "sent";
      markOwn(node, "Sent");
    }
  }

  function receipt(frame) {
    var upTo = messageNumber(frame.message);
    var conversation = conversationOf(frame.message);
    var own = log.querySelectorAll(".usher-msg.customer");
    for (var i = 0; i < own.length; i++) {
      var name = own[i].dataset.message;
      if (!name || conversationOf(name) !== conversation || messageNumber(name) > upTo) continue;
      if (frame.status === "read") {
        own[i].dataset.status = "read";
        markOwn(own[i], "Read");
      } else if (own[i].dataset.status !== "read") {
        own[i].dataset.status = "delivered";
        markOwn(own[i], "Delivered");
      }
    }
  }

  function agentTyping(active) {
    clearTimeout(state.agentTypingTimer);
    typing.hidden = !active;
    if (active) {
      state.agentTypingTimer = setTimeout(function () { typing.hidden = true; }, AGENT_TYPING_EXPIRES);
    }
  }

  function setWaiting(waiting) {
    state.waiting = waiting;
    leaveLink.hidden = !(waiting && !state.agentJoined && !state.offlineCard);
  }

  function reportRead() {
    if (!state.open || document.visibilityState === "hidden" || !state.ready) return;
    if (state.lastAgentMessage && state.lastAgentMessage !== state.reportedRead) {
      state.reportedRead = state.lastAgentMessage;
      sendFrame({ type: "read", message: state.lastAgentMessage });
    }
  }

  // --- forms ---------------------------------------------------------------------------------

  var LABELS = { name: "Name", phone: "Phone", email: "E-mail", text: "Message" };
  var TYPES = { name: "text", phone: "tel", email: "email" };

  function field(form, key, required, value) {
    var label = el("label", "usher-field");
    label.appendChild(el("span", "", LABELS[key] + (required ? " *" : "")));
    var control = key === "text" ? el("textarea") : el("input");
    if (key !== "text") control.type = TYPES[key];
    control.name = key;
    control.required = !!required;
    control.value = value || "";
    label.appendChild(control);
    form.appendChild(label);
    return control;
  }

  function showPrechat() {
    var config = state.config;
    prechat.textContent = "";
    prechat.appendChild(el("p", "usher-note", "Tell us who you are, then start the chat."));
    config.prechat_fields.forEach(function (key) {
      field(prechat, key, config.prechat_required.indexOf(key) >= 0, "");
    });
    var start = el("button", "usher-start", "Start chat");
    start.type = "submit";
    prechat.appendChild(start);
    prechat.hidden = false;
    composer.hidden = true;
  }

  prechat.addEventListener("submit", function (event) {
    event.preventDefault();
    var profile = {};
    state.config.prechat_fields.forEach(function (key) {
      profile[key] = prechat.elements[key].value.trim();
    });
    state.profile = profile;
    save("profile", JSON.stringify(profile));
    sendFrame({ type: "profile", name: profile.name || "", phone: profile.phone || "", email: profile.email || "" });
    prechat.hidden = true;
    composer.hidden = false;
    input.focus();
  });

  function showOfflineForm(text) {
    if (state.offlineCard) return;
    var card = el("form", "usher-card usher-offline");
    card.appendChild(el("p", "usher-note", text || "Leave us a message and we will get back to you."));
    var profile = state.profile || {};
    field(card, "name", false, profile.name);
    field(card, "email", false, profile.email);
    field(card, "phone", false, profile.phone);
    field(card, "text", true, "");
    var error = el("p", "usher-error", "");
    card.appendChild(error);
    var submit = el("button", "usher-offline-send", "Send message");
    submit.type = "submit";
    card.appendChild(submit);
    var id = uid();
    card.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = { visitor: state.visitor, id: id, language: navigator.language || "" };
      ["name", "email", "phone", "text"].forEach(function (key) {
        body[key] = card.elements[key].value.trim();
      });
      if (!body.email && !body.phone) {
        error.textContent = "Please leave an e-mail address or a phone number.";
        return;
      }
      submit.disabled = true;
      error.textContent = "";
      fetch(base + "/offline-message", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) throw new Error(data.error || "not sent");
          offlineSent({ conversation: data.conversation });
        });
      }).catch(function (e) {
        submit.disabled = false;
        error.textContent = "Your message was not sent: " + e.message;
      });
    });
    state.offlineCard = card;
    log.appendChild(card);
    leaveLink.hidden = true;
    composer.hidden = true;
    scrollDown();
  }

  function offlineSent(frame) {
    if (state.offlineCard) {
      state.offlineCard.remove();
      state.offlineCard = null;
    }
    if (!state.offlineDone[frame.conversation]) {
      state.offlineDone[frame.conversation] = true;
      systemLine("Thank you, your message was sent. We will get back to you.", "usher-offline-done");
    }
    composer.hidden = false;
    setWaiting(false);
  }

  function showRating(conversation) {
    if (state.ratingCards[conversation]) return;
    var card = el("form", "usher-card usher-rating");
    card.appendChild(el("p", "usher-note", "How did we do?"));
    var stars = el("div", "usher-stars");
    var chosen = 0;
    for (var i = 1; i <= 5; i++) {
      (function (score) {
        var star = el("button", "usher-star", "\u2605");
        star.type = "button";
        star.dataset.score = String(score);
        star.setAttribute("aria-label", score + " star" + (score > 1 ? "s" : ""));
        star.addEventListener("click", function () {
          chosen = score;
          var all = stars.querySelectorAll(".usher-star");
          for (var j = 0; j < all.length; j++) all[j].classList.toggle("on", j < score);
        });
        stars.appendChild(star);
      })(i);
    }
    card.appendChild(stars);
    var comment = el("textarea", "usher-comment");
    comment.placeholder = "Anything to add? (optional)";
    card.appendChild(comment);
    var submit = el("button", "usher-rate", "Rate");
    submit.type = "submit";
    card.appendChild(submit);
    card.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!chosen) return;
      sendFrame({ type: "rate", conversation: conversation, score: chosen, comment: comment.value.trim() });
      submit.disabled = true;
    });
    state.ratingCards[conversation] = card;
    log.appendChild(card);
    scrollDown();
  }

  function rated(frame) {
    var card = state.ratingCards[frame.conversation];
    if (card && card.parentNode) {
      card.textContent = "";
      card.appendChild(el("p", "usher-note usher-rated", "Thank you for your rating (" + frame.score + "/5)."));
    } else if (!card) {
      state.ratingCards[frame.conversation] = systemLine("You rated this chat " + frame.score + "/5.", "usher-rated");
    }
  }

  // --- frames from the gateway ---------------------------------------------------------------

  function handle(frame) {
    if (frame.seq) {
      if (frame.seq <= state.lastSeq) return;
      state.lastSeq = frame.seq;
    }
    if (frame.conversation && frame.type !== "rated" && frame.type !== "offline_sent") {
      if (frame.conversation !== state.conversation) {
        state.conversation = frame.conversation;
        state.agentJoined = false;
      }
    }
    switch (frame.type) {
      case "welcome":
        state.visitor = frame.visitor;
        save("visitor", frame.visitor);
        break;
      case "ready":
        state.ready = true;
        state.retry = 0;
        setStatus("");
        Object.keys(state.pending).forEach(function (id) { sendFrame(state.pending[id]); });
        if (state.config.offline_only && !state.offlineCard && !log.querySelector(".usher-offline-done")) {
          showOfflineForm("");
        } else if (state.config.prechat_fields.length && !state.profile &&
                   !log.querySelector(".usher-msg")) {
          showPrechat();
        }
        reportRead();
        break;
      case "ack":
        if (state.bubbles[frame.id]) ownMessage({ id: frame.id, message: frame.message });
        delete state.pending[frame.id];
        endButton.hidden = false;
        break;
      case "message":
        settleChoices();
        if (frame.sender === "customer") {
          ownMessage(frame);
          endButton.hidden = false;
          break;
        }
        agentTyping(false);
        var shown = bubble(frame.sender, frame.text, frame.attachments);
        if (frame.choices) choicesInto(shown, frame.choices);
        if (frame.sender === "agent") {
          state.agentJoined = true;
          setWaiting(false);
        }
        state.lastAgentMessage = frame.message;
        if (!state.open) {
          state.unread += 1;
          badge.textContent = String(state.unread);
        }
        reportRead();
        break;
      case "system":
        systemLine(frame.text, "usher-kind-" + frame.kind);
        if (frame.kind === "leave_message") showOfflineForm(frame.text);
        if (frame.kind === "waiting") setWaiting(true);
        if (frame.kind === "agent_joined") { state.agentJoined = true; setWaiting(false); }
        break;
      case "state":
        if (frame.state === "queued") setWaiting(true);
        if (frame.state === "active") { state.agentJoined = true; setWaiting(false); }
        if (frame.state === "closed" || frame.state === "abandoned") {
          agentTyping(false);
          setWaiting(false);
          endButton.hidden = true;
          if (frame.state === "closed" && frame.reason !== "left_message") {
            showRating(frame.conversation);
          }
        }
        break;
      case "receipt":
        receipt(frame);
        break;
      case "typing":
        agentTyping(frame.active);
        break;
      case "rated":
        rated(frame);
        break;
      case "offline_sent":
        offlineSent(frame);
        break;
      case "error":
        if (frame.id && state.bubbles[frame.id]) {
          markOwn(state.bubbles[frame.id], frame.retry ? "Not sent yet, retrying\u2026" : "Not sent: " + frame.error);
          if (!frame.retry) delete state.pending[frame.id];
          else setTimeout(function () {
            if (state.pending[frame.id]) sendFrame(state.pending[frame.id]);
          }, 2000);
        } else {
          setStatus(frame.error);
        }
        break;
    }
  }

  // --- the socket ----------------------------------------------------------------------------

  function sendFrame(frame) {
    if (state.socket && state.socket.readyState === 1 && state.ready) {
      state.socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    var url = base.replace(/^http/, "ws") + "/ws";
    var socket = new WebSocket(url);
    state.socket = socket;
    state.ready = false;
    socket.onopen = function () {
      var profile = state.profile || {};
      socket.send(JSON.stringify({
        type: "hello",
        visitor: state.visitor,
        after: state.lastSeq,
        ref: state.reference,
        page: String(window.location.href).slice(0, 2000),
        referrer: String(document.referrer || "").slice(0, 2000),
        title: String(document.title || "").slice(0, 2000),
        language: navigator.language || "",
        name: profile.name || "",
        phone: profile.phone || "",
        email: profile.email || ""
      }));
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handle(frame);
    };
    socket.onclose = function () {
      if (state.socket !== socket) return;
      state.ready = false;
      state.socket = null;
      setStatus("Reconnecting\u2026");
      var wait = Math.min(30000, 1000 * Math.pow(2, state.retry++));
      setTimeout(connect, wait);
    };
  }

  function sendMessage(text, attachments, option) {
    var frame = { type: "message", id: uid(), text: text, attachments: attachments || [] };
    if (option) frame.option = option;
    state.pending[frame.id] = frame;
    var node = bubble("customer", text, (attachments || []).map(function (a) {
      return { name: a.name, url: a.url, content_type: a.content_type };
    }));
    node.dataset.status = "sending";
    markOwn(node, "Sending\u2026");
    state.bubbles[frame.id] = node;
    delete frame.attachments;
    frame.attachments = (attachments || []).map(function (a) { return { sha256: a.sha256, name: a.name }; });
    sendFrame(frame);
    stopTyping();
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typingSentAt) {
      state.typingSentAt = 0;
      sendFrame({ type: "typing", active: false });
    }
  }

  input.addEventListener("input", function () {
    var now = Date.now();
    if (input.value && now - state.typingSentAt > TYPING_EVERY) {
      if (sendFrame({ type: "typing", active: true })) state.typingSentAt = now;
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, TYPING_IDLE);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : composer.dispatchEvent(new Event("submit"));
    }
  });
  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendMessage(text, []);
  });
  attach.addEventListener("change", function () {
    var file = attach.files && attach.files[0];
    attach.value = "";
    if (!file) return;
    if (file.size > state.config.max_attachment_bytes) {
      setStatus("That file is too large.");
      return;
    }
    setStatus("Uploading " + file.name + "\u2026");
    fetch(base + "/upload?visitor=" + encodeURIComponent(state.visitor), {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) },
      body: file
    }).then(function (response) {
      if (!response.ok) throw new Error("upload failed (" + response.status + ")");
      return response.json();
    }).then(function (uploaded) {
      setStatus("");
      sendMessage(input.value.trim(), [uploaded]);
      input.value = "";
    }).catch(function (e) { setStatus(e.message); });
  });

  function start(config) {
    state.config = config;
    title.textContent = config.title;
    greeting.textContent = config.greeting || "";
    greeting.hidden = !config.greeting;
    host.style.setProperty("--usher-color", config.color || "#2563eb");
    document.body.appendChild(host);
    connect();
  }

  function boot() {
    fetch(base + "/config").then(function (r) {
      if (!r.ok) throw new Error("config " + r.status);
      return r.json();
    }).then(start).catch(function (e) {
      if (window.console) window.console.warn("usher web chat unavailable:", e.message);
    });
  }

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
