/*
 * realtime-agent chat widget: plain JavaScript, no build step, nothing fetched
 * from outside the server it talks to.
 *
 * It speaks only the public wire protocol, version 1 (docs/protocol.md):
 * POST /agent/sessions to create a session, GET /agent/session/{id} once per
 * connection for the autonomy level (shown in the header; hidden when that
 * read fails, e.g. another origin without CORS), and the session's websocket
 * GET /agent/ws/{id}?token=T[&after=N] for everything else, approvals
 * included (approve / reject frames from the .ra-approval prompt).
 *
 * Embedding: one <script src="<server>/static/widget.js" defer></script>
 * and one or more containers
 *   <div data-realtime-agent
 *        data-server="https://host"        (default: this page's origin)
 *        data-session="sess-..."           (absent: create a session)
 *        data-token="..."                  (owner or viewer token of the session)
 *        data-viewer-token="..."           (optional: enables "Share as viewer")
 *        data-title="Agent chat"           (optional heading)
 *        data-character-id="1"             (optional: for a created session)
 *        data-hash></div>                  (optional: keep session and tokens in
 *                                           location.hash: the full-page mode)
 *
 * Safety: every piece of text that comes from the model, a tool or a user is
 * put into the page with textContent / createTextNode only. The Markdown
 * renderer below builds DOM nodes itself; innerHTML is never used.
 *
 * Test hook (it does not bypass the protocol): window.realtimeAgentWidgets is
 * the array of mounted widgets; each has .socket (the live WebSocket),
 * .lastSeq (the last session event seq it has applied) and .approval (the
 * pending approval it shows, {approval_id, calls}, or null).
 */
(function () {
  "use strict";

  var STATUS_WORDS = {
    idle: "Idle",
    planning: "Thinking…",
    executing: "Running tools…",
    executing_queued: "Starting queued message…",
    waiting_approval: "Waiting for your approval",
    completed: "Done",
    completed_with_errors: "Done (with tool errors)",
    error: "Error",
    interrupted: "Interrupted",
  };
  var RUNNING = new Set(["planning", "executing", "executing_queued", "waiting_approval"]);
  /* The session's autonomy level (docs/protocol.md, "Autonomy levels"). */
  var AUTONOMY = [
    { name: "read_only", label: "Read only", about: "tools that change something never run" },
    { name: "recommendations", label: "Ask before changes", about: "tools that change something wait for the owner's approval" },
    { name: "assisted", label: "Ask for big plans", about: "plans of 3 or more tool calls wait for the owner's approval" },
    { name: "autonomous", label: "Autonomous", about: "every tool call runs without asking" },
  ];
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 15000;
  var HANDSHAKE_FAILURES_BEFORE_PROBE = 3;
  var DEFAULT_CHARACTER_ID = 1;

  var currentScript = document.currentScript;
  var scriptSrc = currentScript && currentScript.src ? currentScript.src : null;
  var widgets = (window.realtimeAgentWidgets = window.realtimeAgentWidgets || []);
  var widgetCounter = 0;

  /* ------------------------------------------------------------------ DOM */

  function h(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeHttpUrl(raw) {
    try {
      var url = new URL(String(raw).trim());
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_err) {
      return null;
    }
  }

  function makeLink(href) {
    var a = h("a");
    a.href = href;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    return a;
  }

  /* ------------------------------------------------------------- Markdown */
  /*
   * A small, safe Markdown subset: paragraphs (single newlines are line
   * breaks), **bold**, *italic* / _italic_, `inline code`, fenced code blocks,
   * bullet and numbered lists (nested by indentation), block quotes, headings
   * (rendered as bold lines), horizontal rules, backslash escapes, and links
   * [text](url) or bare URLs for http/https only. Anything else stays text.
   */

  var FENCE_RE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
  var HEADING_RE = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
  var HR_RE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var QUOTE_RE = /^ {0,3}> ?(.*)$/;
  var BULLET_RE = /^( {0,3})([-*+])([ \t]+)(.*)$/;
  var ORDERED_RE = /^( {0,3})(\d{1,9})([.)])([ \t]+)(.*)$/;
  var ESCAPABLE = "\\`*_{}[]()#+-.!<>~|&\"'";
  var LANG_RE = /^[\w+#.-]{1,32}$/;

  function isBlank(line) {
    return /^\s*$/.test(line);
  }

  function indentOf(line) {
    var n = 0;
    for (var i = 0; i < line.length; i++) {
      if (line[i] === " ") n += 1;
      else if (line[i] === "\t") n += 4 - (n % 4);
      else break;
    }
    return n;
  }

  function dedent(line, width) {
    var n = 0;
    var i = 0;
    while (i < line.length && n < width && (line[i] === " " || line[i] === "\t")) {
      n += line[i] === "\t" ? 4 - (n % 4) : 1;
      i++;
    }
    return line.slice(i);
  }

  function listItem(line) {
    var m = BULLET_RE.exec(line);
    if (m && !HR_RE.test(line)) {
      return {
        ordered: false,
        kind: m[2],
        start: 1,
        offset: m[1].length + 1 + Math.min(m[3].length, 4),
        text: m[4],
      };
    }
    m = ORDERED_RE.exec(line);
    if (m) {
      return {
        ordered: true,
        kind: m[3],
        start: parseInt(m[2], 10),
        offset: m[1].length + m[2].length + 1 + Math.min(m[4].length, 4),
        text: m[5],
      };
    }
    return null;
  }

  function startsBlock(line) {
    return (
      FENCE_RE.test(line) ||
      HEADING_RE.test(line) ||
      HR_RE.test(line) ||
      QUOTE_RE.test(line) ||
      listItem(line) !== null
    );
  }

  function renderMarkdown(source, target) {
    target.replaceChildren();
    var lines = String(source).replace(/\r\n?/g, "\n").split("\n");
    renderBlocks(lines, target, 0);
  }

  function renderBlocks(lines, target, depth) {
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      if (isBlank(line)) {
        i++;
        continue;
      }
      var fence = FENCE_RE.exec(line);
      if (fence) {
        i = renderFence(lines, i, fence, target);
        continue;
      }
      var heading = HEADING_RE.exec(line);
      if (heading) {
        var hp = h("p", "ra-md-heading ra-md-h" + heading[1].length);
        var strong = h("strong");
        renderInline(heading[2] || "", strong, true);
        hp.appendChild(strong);
        target.appendChild(hp);
        i++;
        continue;
      }
      if (HR_RE.test(line)) {
        target.appendChild(h("hr"));
        i++;
        continue;
      }
      if (QUOTE_RE.test(line) && depth < 8) {
        var quoted = [];
        while (i < lines.length && !isBlank(lines[i])) {
          var q = QUOTE_RE.exec(lines[i]);
          quoted.push(q ? q[1] : lines[i]);
          i++;
        }
        var blockquote = h("blockquote");
        renderBlocks(quoted, blockquote, depth + 1);
        target.appendChild(blockquote);
        continue;
      }
      if (listItem(line) && depth < 8) {
        i = renderList(lines, i, target, depth);
        continue;
      }
      var para = [];
      while (i < lines.length && !isBlank(lines[i]) && (para.length === 0 || !startsBlock(lines[i]))) {
        para.push(lines[i].trim());
        i++;
      }
      var p = h("p");
      para.forEach(function (text, n) {
        if (n > 0) p.appendChild(h("br"));
        renderInline(text, p, true);
      });
      target.appendChild(p);
    }
  }

  function renderFence(lines, i, fence, target) {
    var marker = fence[1];
    var lang = fence[2];
    var body = [];
    i++;
    while (i < lines.length) {
      var close = lines[i].trim();
      if (close.length >= marker.length && close === marker[0].repeat(close.length)) {
        i++;
        break;
      }
      body.push(lines[i]);
      i++;
    }
    var pre = h("pre", "ra-md-code");
    var code = h("code", null, body.join("\n"));
    if (lang && LANG_RE.test(lang)) {
      code.className = "language-" + lang;
      pre.setAttribute("data-lang", lang);
    }
    pre.appendChild(code);
    target.appendChild(pre);
    return i;
  }

  function sameList(a, b) {
    return b !== null && a.ordered === b.ordered && a.kind === b.kind;
  }

  function renderList(lines, i, target, depth) {
    var first = listItem(lines[i]);
    var list = h(first.ordered ? "ol" : "ul");
    if (first.ordered && first.start !== 1) list.start = first.start;
    while (i < lines.length) {
      var item = listItem(lines[i]);
      if (!sameList(first, item)) break;
      var body = [item.text];
      i++;
      while (i < lines.length) {
        var line = lines[i];
        if (isBlank(line)) {
          var j = i + 1;
          while (j < lines.length && isBlank(lines[j])) j++;
          if (j < lines.length && indentOf(lines[j]) >= item.offset) {
            for (; i < j; i++) body.push("");
            continue;
          }
          break;
        }
        if (indentOf(line) >= Math.min(item.offset, 2)) {
          body.push(dedent(line, item.offset));
          i++;
          continue;
        }
        if (startsBlock(line)) break;
        body.push(line.trim());
        i++;
      }
      var next = i;
      while (next < lines.length && isBlank(lines[next])) next++;
      if (next > i && next < lines.length && sameList(first, listItem(lines[next]))) {
        list.classList.add("ra-md-loose");
        i = next;
      }
      var li = h("li");
      renderBlocks(body, li, depth + 1);
      list.appendChild(li);
    }
    target.appendChild(list);
    return i;
  }

  function runLength(text, at, ch) {
    var n = 0;
    while (text[at + n] === ch) n++;
    return n;
  }

  function isWordChar(ch) {
    return ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
  }

  function isSpace(ch) {
    return ch === undefined || /\s/.test(ch);
  }

  /* The end of the code span opened by `n` backticks before `from`, or -1. */
  function findBackticks(text, from, n) {
    var at = from;
    while (at < text.length) {
      var found = text.indexOf("`", at);
      if (found < 0) return -1;
      var run = runLength(text, found, "`");
      if (run === n) return found;
      at = found + run;
    }
    return -1;
  }

  /* Where the emphasis opened at `from` (width `w` of char `ch`) closes, or -1. */
  function findCloser(text, from, ch, w) {
    var i = from;
    while (i < text.length) {
      var c = text[i];
      if (c === "\\") {
        i += 2;
        continue;
      }
      if (c === "`") {
        var n = runLength(text, i, "`");
        var end = findBackticks(text, i + n, n);
        i = end < 0 ? i + n : end + n;
        continue;
      }
      if (c === ch) {
        var run = runLength(text, i, ch);
        if (run === w && i > from && !isSpace(text[i - 1]) && (ch === "*" || !isWordChar(text[i + run]))) {
          return i;
        }
        i += run;
        continue;
      }
      i++;
    }
    return -1;
  }

  /* The closing bracket of a link label opened at `at`, or -1. */
  function findLabelEnd(text, at) {
    var depth = 0;
    for (var i = at; i < text.length; i++) {
      var c = text[i];
      if (c === "\\") i++;
      else if (c === "[") depth++;
      else if (c === "]") {
        depth--;
        if (depth === 0) return i;
      }
    }
    return -1;
  }

  /* The closing parenthesis of a link destination opened at `at`, or -1. */
  function findDestinationEnd(text, at) {
    var depth = 0;
    for (var i = at; i < text.length; i++) {
      var c = text[i];
      if (c === "\\") i++;
      else if (c === "(") depth++;
      else if (c === ")") {
        depth--;
        if (depth === 0) return i;
      } else if (c === "\n") return -1;
    }
    return -1;
  }

  function renderInline(text, parent, allowLinks) {
    var buffer = "";
    var i = 0;
    function flush() {
      if (buffer) {
        parent.appendChild(document.createTextNode(buffer));
        buffer = "";
      }
    }
    while (i < text.length) {
      var c = text[i];
      if (c === "\\" && i + 1 < text.length && ESCAPABLE.indexOf(text[i + 1]) >= 0) {
        buffer += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "`") {
        var ticks = runLength(text, i, "`");
        var close = findBackticks(text, i + ticks, ticks);
        if (close >= 0) {
          flush();
          var inner = text.slice(i + ticks, close);
          if (inner.length > 2 && inner[0] === " " && inner[inner.length - 1] === " " && inner.trim()) {
            inner = inner.slice(1, -1);
          }
          parent.appendChild(h("code", null, inner));
          i = close + ticks;
          continue;
        }
        buffer += text.slice(i, i + ticks);
        i += ticks;
        continue;
      }
      if (c === "*" || c === "_") {
        var run = runLength(text, i, c);
        var canOpen = !isSpace(text[i + run]) && (c === "*" || !isWordChar(text[i - 1]));
        var matched = false;
        if (canOpen) {
          var widths = run >= 3 ? [3, 2, 1] : run === 2 ? [2, 1] : [1];
          for (var k = 0; k < widths.length && !matched; k++) {
            var w = widths[k];
            var end = findCloser(text, i + run, c, w);
            if (end < 0) continue;
            // Extra delimiters of the opening run stay literal text.
            buffer += c.repeat(run - w);
            flush();
            var body = text.slice(i + run, end);
            var node;
            if (w === 3) {
              node = h("strong");
              var em3 = h("em");
              renderInline(body, em3, allowLinks);
              node.appendChild(em3);
            } else {
              node = h(w === 2 ? "strong" : "em");
              renderInline(body, node, allowLinks);
            }
            parent.appendChild(node);
            i = end + w;
            matched = true;
          }
        }
        if (!matched) {
          buffer += text.slice(i, i + run);
          i += run;
        }
        continue;
      }
      if (c === "[" && allowLinks) {
        var labelEnd = findLabelEnd(text, i);
        if (labelEnd > i && text[labelEnd + 1] === "(") {
          var destEnd = findDestinationEnd(text, labelEnd + 1);
          if (destEnd > 0) {
            flush();
            var label = text.slice(i + 1, labelEnd);
            var destination = text.slice(labelEnd + 2, destEnd).trim().split(/\s+/)[0] || "";
            if (destination[0] === "<" && destination[destination.length - 1] === ">") {
              destination = destination.slice(1, -1);
            }
            var href = safeHttpUrl(destination);
            if (href) {
              var a = makeLink(href);
              renderInline(label || href, a, false);
              parent.appendChild(a);
            } else {
              // Not http/https (javascript:, data:, relative...): the label as plain text.
              renderInline(label, parent, false);
            }
            i = destEnd + 1;
            continue;
          }
        }
      }
      if ((c === "h" || c === "H") && allowLinks && !isWordChar(text[i - 1]) && text[i - 1] !== "/") {
        var auto = /^https?:\/\/[^\s<>"'`]+/i.exec(text.slice(i));
        if (auto) {
          var raw = auto[0].replace(/[.,:;!?'"\])}*_]+$/, "");
          var autoHref = raw.length > 8 ? safeHttpUrl(raw) : null;
          if (autoHref) {
            flush();
            var autoLink = makeLink(autoHref);
            autoLink.textContent = raw;
            parent.appendChild(autoLink);
            i += raw.length;
            continue;
          }
        }
      }
      buffer += c;
      i++;
    }
    flush();
  }

  /* --------------------------------------------------------------- widget */

  function parseHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return {
      session: params.get("session"),
      token: params.get("token"),
      viewer: params.get("viewer"),
      view: params.get("view") === "1",
    };
  }

  function ensureStylesheet() {
    if (!scriptSrc) return;
    var links = document.querySelectorAll('link[rel~="stylesheet"]');
    for (var i = 0; i < links.length; i++) {
      if (/(^|\/)widget\.css(\?|#|$)/.test(links[i].getAttribute("href") || "")) return;
    }
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = new URL("widget.css", scriptSrc).href;
    document.head.appendChild(link);
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // crypto.randomUUID exists only in secure contexts (https, localhost).
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return (b + 0x100).toString(16).slice(1);
      })
      .join("");
  }

  function Widget(root) {
    this.root = root;
    this.n = ++widgetCounter;
    var data = root.dataset;
    this.useHash = root.hasAttribute("data-hash");
    var fromHash = this.useHash ? parseHash() : {};
    this.server = (safeHttpUrl(data.server || location.origin) || location.href).replace(/\/+$/, "");
    this.sessionId = fromHash.session || data.session || null;
    this.token = fromHash.token || data.token || null;
    this.viewerToken = fromHash.viewer || data.viewerToken || null;
    this.viewHint = Boolean(fromHash.view) || data.view === "1";
    this.characterId = parseInt(data.characterId || String(DEFAULT_CHARACTER_ID), 10);
    this.title = data.title || "Agent chat";

    this.socket = null;
    this.lastSeq = 0;
    this.role = null;
    this.status = null;
    this.live = false;
    this.synced = false;
    this.catchUpTo = 0;
    this.awaitingSnapshot = false;
    this.stopped = false;
    this.attempt = 0;
    this.handshakeFailures = 0;
    this.retryTimer = null;
    this.outbox = [];
    this.messages = new Map();
    this.tools = new Map();
    this.userByClientId = new Map();
    this.queuedOrder = [];
    this.approval = null; // {approval_id, calls} while the owner's answer is awaited
    this.approvalAnswer = null; // {ref, approved} once the owner has sent an answer
    this.approvalProblem = null; // why the last answer did not go out
    this.approvalRefs = new Set(); // ids of approve / reject frames sent, for their errors
    this.approvalFromHello = null; // {value}: hello's pending_approval, applied once caught up
    this.frameCounter = 0;
    this.autonomyFetches = 0;
    this.autonomyEvents = 0;

    this.build();
    this.render();
    root.realtimeAgent = this;
    widgets.push(this);
    var self = this;
    window.addEventListener("online", function () {
      if (self.retryTimer !== null) self.connect();
    });
    if (this.useHash) {
      window.addEventListener("hashchange", function () {
        var now = parseHash();
        if (now.session !== self.sessionId || now.token !== self.token) location.reload();
      });
    }
    this.start();
  }

  Widget.prototype.build = function () {
    var id = "ra-" + this.n;
    var root = this.root;
    root.classList.add("ra-widget");
    root.replaceChildren();

    var header = h("header", "ra-header");
    // A full page has one h1; an embedded widget must not add another to its host.
    header.appendChild(h(this.useHash ? "h1" : "h2", "ra-title", this.title));
    this.statusEl = h("span", "ra-status", "Connecting…");
    this.statusEl.setAttribute("role", "status");
    this.statusEl.setAttribute("aria-live", "polite");
    header.appendChild(this.statusEl);
    this.viewOnlyEl = h("span", "ra-badge ra-view-only", "View only");
    this.viewOnlyEl.hidden = true;
    header.appendChild(this.viewOnlyEl);
    this.watchersEl = h("span", "ra-watchers");
    this.watchersEl.hidden = true;
    header.appendChild(this.watchersEl);
    this.autonomyEl = h("span", "ra-autonomy");
    this.autonomyEl.hidden = true;
    header.appendChild(this.autonomyEl);
    this.shareButton = h("button", "ra-button ra-share-button", "Share as viewer");
    this.shareButton.type = "button";
    this.shareButton.setAttribute("aria-controls", id + "-share");
    this.shareButton.setAttribute("aria-expanded", "false");
    header.appendChild(this.shareButton);
    if (this.useHash) {
      var fresh = h("a", "ra-button ra-new", "New chat");
      fresh.href = this.server + "/";
      header.appendChild(fresh);
    }
    root.appendChild(header);

    this.shareEl = h("div", "ra-share");
    this.shareEl.id = id + "-share";
    this.shareEl.hidden = true;
    var shareLabel = h("label", "ra-share-label", "Viewer link (read-only)");
    shareLabel.htmlFor = id + "-share-link";
    this.shareInput = h("input", "ra-share-link");
    this.shareInput.id = id + "-share-link";
    this.shareInput.type = "text";
    this.shareInput.readOnly = true;
    this.shareInput.spellcheck = false;
    this.shareNote = h("span", "ra-share-note");
    this.shareNote.setAttribute("aria-live", "polite");
    this.shareEl.append(shareLabel, this.shareInput, this.shareNote);
    root.appendChild(this.shareEl);

    this.connEl = h("div", "ra-conn", "Connecting…");
    this.connEl.setAttribute("role", "status");
    root.appendChild(this.connEl);

    this.list = h("div", "ra-messages");
    this.list.id = id + "-messages";
    this.list.setAttribute("role", "log");
    this.list.setAttribute("aria-live", "polite");
    this.list.setAttribute("aria-label", "Conversation");
    this.list.tabIndex = 0;
    root.appendChild(this.list);

    // The pending approval (`approval_required`, or `pending_approval` of
    // hello / snapshot): the calls, and Approve / Reject for the owner.
    this.approvalEl = h("section", "ra-approval");
    this.approvalEl.id = id + "-approval";
    this.approvalEl.hidden = true;
    this.approvalEl.setAttribute("aria-labelledby", id + "-approval-title");
    root.appendChild(this.approvalEl);
    // Always in the page (a live region must exist before its text changes).
    this.announceEl = h("div", "ra-visually-hidden ra-announce");
    this.announceEl.setAttribute("aria-live", "assertive");
    this.announceEl.setAttribute("aria-atomic", "true");
    root.appendChild(this.announceEl);

    var form = h("form", "ra-composer");
    form.noValidate = true;
    var label = h("label", "ra-visually-hidden", "Message");
    label.htmlFor = id + "-input";
    this.input = h("textarea", "ra-input");
    this.input.id = id + "-input";
    this.input.rows = 2;
    this.input.placeholder = "Write a message… (Enter sends, Shift+Enter for a new line)";
    this.input.setAttribute("aria-describedby", id + "-hint");
    var hint = h("span", "ra-visually-hidden", "Enter sends, Shift+Enter adds a new line.");
    hint.id = id + "-hint";
    this.sendButton = h("button", "ra-button ra-send", "Send");
    this.sendButton.type = "submit";
    this.interruptButton = h("button", "ra-button ra-interrupt", "Interrupt");
    this.interruptButton.type = "button";
    this.interruptButton.hidden = true;
    this.interruptButton.disabled = true;
    var buttons = h("div", "ra-composer-buttons");
    buttons.append(this.sendButton, this.interruptButton);
    this.steerEl = h("label", "ra-steer");
    this.steerEl.hidden = true;
    this.steerEl.title =
      "Your next message joins the run in progress (the agent reads it at its next step) " +
      "instead of waiting for the run to end";
    this.steerBox = h("input", "ra-steer-box");
    this.steerBox.type = "checkbox";
    this.steerEl.append(this.steerBox, document.createTextNode(" Steer the current run"));
    form.append(label, hint, this.input, buttons, this.steerEl);
    root.appendChild(form);

    var self = this;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.sendFromInput();
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        self.sendFromInput();
      }
    });
    this.interruptButton.addEventListener("click", function () {
      self.sendFrame({ type: "interrupt" });
    });
    this.shareButton.addEventListener("click", function () {
      self.share();
    });
    this.shareInput.addEventListener("focus", function () {
      self.shareInput.select();
    });
  };

  /* Everything that depends on role, status and connection. */
  Widget.prototype.render = function () {
    var viewer = this.role === "viewer" || (this.role === null && this.viewHint);
    var running = this.status !== null && RUNNING.has(this.status);
    var word = STATUS_WORDS[this.status] || this.status;
    if (this.status === "waiting_approval" && viewer) word = "Waiting for approval";
    this.statusEl.textContent = this.status === null ? "Connecting…" : word;
    this.statusEl.setAttribute("data-status", this.status || "");
    this.root.setAttribute("data-role", viewer ? "viewer" : "owner");
    this.viewOnlyEl.hidden = !viewer;
    this.input.disabled = viewer || this.stopped;
    this.sendButton.disabled = viewer || this.stopped;
    if (viewer) this.input.placeholder = "View only: you are watching this session live";
    this.interruptButton.hidden = viewer || !running || this.stopped;
    this.interruptButton.disabled = this.interruptButton.hidden || !this.live;
    this.steerEl.hidden = this.interruptButton.hidden;
    if (this.steerEl.hidden) this.steerBox.checked = false;
    this.shareButton.hidden = this.shareToken() === null;
    this.renderApprovalButtons();
  };

  Widget.prototype.shareToken = function () {
    if (this.viewerToken) return this.viewerToken;
    if (this.role === "viewer") return this.token;
    return null;
  };

  Widget.prototype.share = function () {
    var token = this.shareToken();
    if (token === null || this.sessionId === null) return;
    var link =
      this.server +
      "/#session=" +
      encodeURIComponent(this.sessionId) +
      "&token=" +
      encodeURIComponent(token) +
      "&view=1";
    this.shareInput.value = link;
    this.shareEl.hidden = false;
    this.shareButton.setAttribute("aria-expanded", "true");
    var self = this;
    var fallback = function () {
      self.shareInput.focus();
      self.shareInput.select();
      self.shareNote.textContent = "Select the link and copy it (Ctrl+C).";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(link).then(function () {
        self.shareNote.textContent = "Link copied.";
      }, fallback);
    } else {
      fallback();
    }
  };

  Widget.prototype.writeHash = function () {
    if (!this.useHash) return;
    var hash =
      "#session=" + encodeURIComponent(this.sessionId) + "&token=" + encodeURIComponent(this.token);
    if (this.viewerToken) hash += "&viewer=" + encodeURIComponent(this.viewerToken);
    if (this.viewHint) hash += "&view=1";
    history.replaceState(history.state, "", hash);
  };

  Widget.prototype.start = function () {
    if (this.sessionId && this.token) {
      this.connect();
    } else if (this.sessionId) {
      this.stop("This link has no access token.");
    } else {
      this.createSession();
    }
  };

  Widget.prototype.createSession = function () {
    var self = this;
    this.showConn("Creating a session…");
    fetch(this.server + "/agent/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ character_id: this.characterId }),
      credentials: "omit",
    })
      .then(function (response) {
        return response.json().then(
          function (body) {
            return { ok: response.status === 201, status: response.status, body: body };
          },
          function () {
            return { ok: false, status: response.status, body: {} };
          }
        );
      })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status + (answer.body.error ? ": " + answer.body.error : ""));
        }
        self.sessionId = answer.body.session_id;
        self.token = answer.body.owner_token;
        self.viewerToken = answer.body.viewer_token;
        self.writeHash();
        self.render();
        self.connect();
      })
      .catch(function (err) {
        self.showConn("Could not create a session (" + err.message + ").");
        var retry = h("button", "ra-button ra-retry", "Try again");
        retry.type = "button";
        retry.addEventListener("click", function () {
          self.createSession();
        });
        self.connEl.appendChild(document.createTextNode(" "));
        self.connEl.appendChild(retry);
      });
  };

  Widget.prototype.socketUrl = function () {
    var base = this.server.replace(/^http/, "ws");
    var url =
      base +
      "/agent/ws/" +
      encodeURIComponent(this.sessionId) +
      "?token=" +
      encodeURIComponent(this.token);
    if (this.synced) url += "&after=" + this.lastSeq;
    return url;
  };

  Widget.prototype.connect = function () {
    if (this.stopped) return;
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    var self = this;
    var ws;
    try {
      ws = new WebSocket(this.socketUrl());
    } catch (_err) {
      this.scheduleReconnect();
      return;
    }
    this.socket = ws;
    this.live = false;
    this.greeted = false;
    ws.addEventListener("message", function (event) {
      if (ws === self.socket) self.onFrame(event.data);
    });
    ws.addEventListener("close", function (event) {
      if (ws === self.socket) self.onClose(event);
    });
  };

  Widget.prototype.onClose = function (event) {
    var wasGreeted = this.greeted;
    this.live = false;
    this.greeted = false;
    if (event.code === 4404) {
      this.stop("This session was deleted.");
      return;
    }
    if (event.code === 1008) {
      this.stop("Access to this session was revoked.");
      return;
    }
    if (event.code === 1009) this.notice("A message was too big for the server.", "error");
    this.showConn(this.synced ? "Reconnecting…" : "Connecting…");
    this.render();
    if (!wasGreeted) {
      this.handshakeFailures++;
      if (this.handshakeFailures % HANDSHAKE_FAILURES_BEFORE_PROBE === 0) this.probe();
    }
    this.scheduleReconnect();
  };

  /* Jittered exponential backoff: uniform in [0, min(max, base * 2^attempt)). */
  Widget.prototype.scheduleReconnect = function () {
    if (this.stopped || this.retryTimer !== null) return;
    var cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
    this.attempt = Math.min(this.attempt + 1, 16);
    var self = this;
    this.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      self.connect();
    }, Math.random() * cap);
  };

  /*
   * A browser hides a refused handshake's HTTP status, so after a few failed
   * handshakes ask the REST API: 404 means the session is gone, 401/403 that
   * the token no longer works. A network error (server down, or another
   * origin without CORS) says nothing: keep retrying.
   */
  Widget.prototype.probe = function () {
    var self = this;
    fetch(this.server + "/agent/session/" + encodeURIComponent(this.sessionId), {
      headers: { Authorization: "Bearer " + this.token },
      credentials: "omit",
    }).then(
      function (response) {
        if (response.status === 404) self.stop("This session was deleted.");
        else if (response.status === 401 || response.status === 403) {
          self.stop("Access to this session was revoked or has expired.");
        }
      },
      function () {}
    );
  };

  Widget.prototype.stop = function (why) {
    this.stopped = true;
    this.live = false;
    this.dropOutbox("not sent");
    this.hideApproval();
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.showConn(why, "error");
    this.render();
  };

  Widget.prototype.showConn = function (text, kind) {
    this.connEl.textContent = text;
    this.connEl.className = "ra-conn" + (kind ? " ra-conn-" + kind : "");
    this.connEl.hidden = false;
  };

  Widget.prototype.hideConn = function () {
    this.connEl.hidden = true;
    this.connEl.textContent = "";
  };

  Widget.prototype.sendFrame = function (frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || !this.live) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  };

  /* ------------------------------------------------------------ frames in */

  Widget.prototype.onFrame = function (raw) {
    var frame;
    try {
      frame = JSON.parse(raw);
    } catch (_err) {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    if (typeof frame.seq === "number") {
      if (this.awaitingSnapshot || frame.seq <= this.lastSeq) return;
      this.lastSeq = frame.seq;
      this.keepScroll(function () {
        this.applyEvent(frame);
      });
      this.caughtUp();
      return;
    }
    switch (frame.type) {
      case "hello":
        this.onHello(frame);
        break;
      case "snapshot":
        this.onSnapshot(frame);
        break;
      case "presence":
        this.setViewers(frame.viewers);
        break;
      case "error":
        this.onConnectionError(frame);
        break;
      default:
        break; // pong and frames this version does not know
    }
  };

  Widget.prototype.onHello = function (hello) {
    this.greeted = true;
    this.attempt = 0;
    this.handshakeFailures = 0;
    this.role = hello.role;
    this.setViewers(hello.viewers);
    this.catchUpTo = hello.last_seq;
    this.approvalAnswer = null; // an answer lost with the old socket may be sent again
    // hello tells the pending approval as of last_seq: apply it once the replay is in.
    this.approvalFromHello = "pending_approval" in hello ? { value: hello.pending_approval } : null;
    if (!hello.resumed) this.fetchAutonomy(); // events we missed may have changed it
    if (hello.resumed) {
      // Every event after lastSeq follows: when none is missing the status is current.
      if (hello.last_seq <= this.lastSeq) this.status = hello.status;
      this.live = true;
      this.hideConn();
      this.render();
      this.caughtUp();
    } else {
      this.awaitingSnapshot = true;
    }
    if (this.role === "viewer") this.dropOutbox("view only: not sent");
  };

  Widget.prototype.onSnapshot = function (snapshot) {
    var self = this;
    this.awaitingSnapshot = false;
    this.keepScroll(function () {
      self.rebuild(snapshot.messages || []);
    });
    this.lastSeq = snapshot.last_seq;
    if ("pending_approval" in snapshot) this.approvalFromHello = { value: snapshot.pending_approval };
    this.synced = true;
    this.status = snapshot.status;
    this.live = true;
    this.hideConn();
    this.render();
    this.caughtUp();
  };

  /* Once every missed event is applied, (re)send what waits in the outbox. */
  Widget.prototype.caughtUp = function () {
    if (!this.live || this.lastSeq < this.catchUpTo) return;
    if (this.approvalFromHello) {
      var told = this.approvalFromHello.value;
      this.approvalFromHello = null;
      if (told && told.approval_id) this.showApproval(told);
      else this.hideApproval();
    }
    var socket = this.socket;
    for (var i = 0; i < this.outbox.length; i++) {
      var entry = this.outbox[i];
      if (entry.sentOn === socket) continue;
      var frame = { type: "message", content: entry.content, client_id: entry.clientId, id: entry.clientId };
      if (entry.onBusy) frame.on_busy = entry.onBusy;
      if (this.sendFrame(frame)) {
        entry.sentOn = socket;
      }
    }
  };

  Widget.prototype.onConnectionError = function (frame) {
    if (typeof frame.ref === "string" && this.approvalRefs.has(frame.ref)) {
      this.approvalRefs.delete(frame.ref);
      var answer = this.approvalAnswer;
      // The prompt is gone already (approval_resolved came first): nothing to add.
      if (!answer || answer.ref !== frame.ref) return;
      this.approvalAnswer = null;
      if (frame.code === "unknown_approval") {
        // Answered elsewhere, or withdrawn: approval_resolved tells which.
        this.hideApproval();
        this.notice("That approval request is no longer pending.");
      } else {
        this.approvalProblem = "Not sent: " + (frame.message || frame.code);
        this.renderApprovalButtons();
      }
      return;
    }
    var entry = null;
    for (var i = 0; i < this.outbox.length; i++) {
      if (this.outbox[i].clientId === frame.ref) entry = this.outbox[i];
    }
    if (entry) {
      this.outbox.splice(this.outbox.indexOf(entry), 1);
      this.setMarker(entry, "not sent: " + (frame.message || frame.code), "ra-failed");
    } else {
      this.notice("The server refused a request: " + (frame.message || frame.code), "error");
    }
  };

  Widget.prototype.applyEvent = function (event) {
    switch (event.type) {
      case "message":
        this.onMessage(event.message);
        break;
      case "delta":
        this.onDelta(event);
        break;
      case "status":
        this.status = event.status;
        if (event.status !== "waiting_approval" && this.approval) this.hideApproval();
        if (event.status === "executing_queued") {
          var next = this.queuedOrder.shift();
          if (next) this.setMarker(next, null);
        }
        this.render();
        break;
      case "tool_call":
        this.toolCall({ call_id: event.call_id, name: event.name, input: event.input }, null, true);
        break;
      case "tool_result":
        this.toolResult(event.call_id, event.output, event.is_error, null);
        break;
      case "queued":
        var queued = this.userByClientId.get(event.client_id);
        if (queued) {
          this.setMarker(queued, "queued (position " + event.position + ")", "ra-queued");
          this.queuedOrder.push(queued);
        }
        break;
      case "error":
        this.notice("Error: " + (event.message || event.code), "error");
        break;
      case "approval_required":
        this.showApproval(event);
        break;
      case "approval_resolved":
        this.resolveApproval(event);
        break;
      case "autonomy":
        this.autonomyEvents++;
        this.setAutonomy(event.autonomy_level);
        var level = AUTONOMY[event.autonomy_level];
        this.notice("Autonomy level: " + (level ? level.name : String(event.autonomy_level)));
        break;
      default:
        break; // event types this version does not know
    }
  };

  /* ------------------------------------------------------------ approvals */

  function callNames(calls) {
    var names = [];
    for (var i = 0; i < calls.length; i++) {
      var name = calls[i] && typeof calls[i].name === "string" ? calls[i].name : "tool";
      if (names.indexOf(name) < 0) names.push(name);
    }
    return names.join(", ");
  }

  function prettyJson(value) {
    try {
      var text = JSON.stringify(value === undefined ? {} : value, null, 2);
      return text === undefined ? String(value) : text;
    } catch (_err) {
      return String(value);
    }
  }

  /* Show a pending approval; the same one again only refreshes the buttons. */
  Widget.prototype.showApproval = function (pending) {
    if (!pending || typeof pending.approval_id !== "string") return;
    if (this.approval && this.approval.approval_id === pending.approval_id) {
      this.renderApprovalButtons();
      return;
    }
    var calls = Array.isArray(pending.calls) ? pending.calls : [];
    this.approval = { approval_id: pending.approval_id, calls: calls };
    this.approvalAnswer = null;
    this.approvalProblem = null;
    var owner = this.role === "owner";
    var titleId = this.approvalEl.getAttribute("aria-labelledby");
    var el = this.approvalEl;
    el.replaceChildren();
    // One level below the widget's title (h1 on the full page, h2 embedded).
    var title = h(this.useHash ? "h2" : "h3", "ra-approval-title", owner ? "Approval needed" : "Approval pending");
    title.id = titleId;
    var lead = h(
      "p",
      "ra-approval-lead",
      owner
        ? "The agent wants to run " + (calls.length === 1 ? "this tool:" : "these tools:")
        : "The agent wants to run " + (calls.length === 1 ? "this tool." : "these tools.")
    );
    var list = h("ul", "ra-approval-calls");
    for (var i = 0; i < calls.length; i++) {
      var item = h("li", "ra-approval-call");
      var name = h("code", "ra-approval-tool", calls[i] && calls[i].name ? calls[i].name : "tool");
      var input = h("pre", "ra-approval-input", prettyJson(calls[i] ? calls[i].input : {}));
      input.setAttribute("aria-label", "Input of " + name.textContent);
      item.append(name, input);
      list.appendChild(item);
    }
    el.append(title);
    this.approvalNote = h("p", "ra-approval-note");
    this.approvalNote.setAttribute("role", "status");
    if (!owner) el.append(this.approvalNote); // first: the prompt may scroll on small screens
    el.append(lead, list);
    this.approveButton = null;
    this.rejectButton = null;
    this.reasonInput = null;
    if (owner) {
      var self = this;
      var actions = h("div", "ra-approval-actions");
      this.approveButton = h("button", "ra-button ra-approve", "Approve");
      this.approveButton.type = "button";
      var reasonId = el.id + "-reason";
      var reasonLabel = h("label", "ra-approval-reason-label", "Reason (optional)");
      reasonLabel.htmlFor = reasonId;
      this.reasonInput = h("input", "ra-approval-reason");
      this.reasonInput.id = reasonId;
      this.reasonInput.type = "text";
      this.reasonInput.maxLength = 10000;
      this.reasonInput.autocomplete = "off";
      this.rejectButton = h("button", "ra-button ra-reject", "Reject");
      this.rejectButton.type = "button";
      var reasonBox = h("div", "ra-approval-reason-box");
      reasonBox.append(reasonLabel, this.reasonInput);
      // The reason and Reject stay together when the row wraps.
      var rejectGroup = h("div", "ra-approval-reject");
      rejectGroup.append(reasonBox, this.rejectButton);
      actions.append(this.approveButton, rejectGroup);
      el.append(actions, this.approvalNote);
      this.approveButton.addEventListener("click", function () {
        self.answerApproval(true);
      });
      this.rejectButton.addEventListener("click", function () {
        self.answerApproval(false);
      });
      this.reasonInput.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.isComposing) {
          event.preventDefault();
          self.answerApproval(false);
        }
      });
    }
    el.hidden = false;
    this.renderApprovalButtons();
    var names = callNames(calls);
    this.announce(
      owner
        ? "Approval needed: the agent wants to run " + names + ". Approve or reject."
        : "The agent is waiting for the owner's approval to run " + names + "."
    );
    // Move focus to Approve, unless the user is busy elsewhere on the host page.
    var active = document.activeElement;
    var ours = !active || active === document.body || this.root.contains(active);
    if (owner && ours && !this.approveButton.disabled) this.approveButton.focus();
  };

  /* The buttons' state and the line under them (role, connection, answer sent). */
  Widget.prototype.renderApprovalButtons = function () {
    if (!this.approval) return;
    var note = "";
    if (!this.approveButton) {
      note = "Waiting for the owner's approval";
    } else {
      var blocked = !this.live || this.stopped || this.approvalAnswer !== null;
      this.approveButton.disabled = blocked;
      this.rejectButton.disabled = blocked;
      this.reasonInput.disabled = blocked;
      if (this.approvalAnswer !== null) note = this.approvalAnswer.approved ? "Approving…" : "Rejecting…";
      else if (this.stopped) note = "";
      else if (!this.live) note = "Reconnecting: you can answer once the connection is back.";
      else if (this.approvalProblem) note = this.approvalProblem;
    }
    this.approvalNote.textContent = note;
    this.approvalNote.hidden = note === "";
  };

  Widget.prototype.answerApproval = function (approved) {
    if (!this.approval || this.approvalAnswer !== null || this.role !== "owner") return;
    var ref = "ra-approval-" + ++this.frameCounter;
    var frame = { type: approved ? "approve" : "reject", approval_id: this.approval.approval_id, id: ref };
    var reason = approved || !this.reasonInput ? "" : this.reasonInput.value.trim();
    if (reason) frame.reason = reason.slice(0, 10000);
    if (!this.sendFrame(frame)) {
      this.approvalProblem = "Not connected: try again once the connection is back.";
      this.renderApprovalButtons();
      return;
    }
    this.approvalProblem = null;
    this.approvalRefs.add(ref);
    var hadFocus = this.approvalEl.contains(document.activeElement);
    this.approvalAnswer = { ref: ref, approved: approved };
    this.renderApprovalButtons();
    // The focused button is now disabled: keep focus on the prompt itself.
    if (hadFocus) {
      this.approvalEl.tabIndex = -1;
      this.approvalEl.focus();
    }
  };

  Widget.prototype.resolveApproval = function (event) {
    var calls = this.approval && this.approval.approval_id === event.approval_id ? this.approval.calls : [];
    var names = callNames(calls);
    var text = (event.approved ? "Approved" : "Rejected") + (names ? ": " + names : "");
    if (!event.approved && event.reason) text += " (" + event.reason + ")";
    this.notice(text, event.approved ? "approved" : "rejected");
    this.announce(text);
    if (!this.approval || this.approval.approval_id === event.approval_id) this.hideApproval();
  };

  Widget.prototype.hideApproval = function () {
    if (!this.approval && this.approvalEl.hidden) return;
    var hadFocus = this.approvalEl.contains(document.activeElement);
    this.approval = null;
    this.approvalAnswer = null;
    this.approvalProblem = null;
    this.approveButton = this.rejectButton = this.reasonInput = null;
    this.approvalEl.hidden = true;
    this.approvalEl.removeAttribute("tabindex");
    this.approvalEl.replaceChildren();
    if (hadFocus && !this.input.disabled) this.input.focus();
  };

  Widget.prototype.announce = function (text) {
    this.announceEl.textContent = text;
  };

  /* ------------------------------------------------------------- autonomy */

  /*
   * The level is not in hello: read it once per (non-resumed) connection from
   * GET /agent/session/{id}, then follow `autonomy` events. An event that
   * arrives while the read is under way is newer than (or as new as) its
   * answer, so the answer is then dropped. A failed read hides the level.
   */
  Widget.prototype.fetchAutonomy = function () {
    var self = this;
    var mark = ++this.autonomyFetches;
    var events = this.autonomyEvents;
    var stale = function () {
      return mark !== self.autonomyFetches || events !== self.autonomyEvents;
    };
    fetch(this.server + "/agent/session/" + encodeURIComponent(this.sessionId), {
      headers: { Authorization: "Bearer " + this.token },
      credentials: "omit",
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(
        function (body) {
          if (!stale()) self.setAutonomy(body && body.autonomy_level);
        },
        function () {
          if (!stale()) self.setAutonomy(null);
        }
      );
  };

  Widget.prototype.setAutonomy = function (levelNumber) {
    var level = typeof levelNumber === "number" ? AUTONOMY[levelNumber] : undefined;
    if (!level) {
      this.autonomyEl.hidden = true;
      this.autonomyEl.replaceChildren();
      this.autonomyEl.removeAttribute("title");
      this.autonomyEl.removeAttribute("data-level");
      return;
    }
    this.autonomyEl.replaceChildren(
      h("span", "ra-visually-hidden", "Autonomy level: "),
      document.createTextNode(level.label)
    );
    this.autonomyEl.title = "Autonomy level " + levelNumber + " (" + level.name + "): " + level.about;
    this.autonomyEl.setAttribute("data-level", String(levelNumber));
    this.autonomyEl.hidden = false;
  };

  /* ------------------------------------------------------------ transcript */

  Widget.prototype.keepScroll = function (fn) {
    var list = this.list;
    var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    fn.call(this);
    if (atBottom) list.scrollTop = list.scrollHeight;
  };

  Widget.prototype.rebuild = function (messages) {
    this.list.replaceChildren();
    this.messages.clear();
    this.tools.clear();
    this.userByClientId.clear();
    this.queuedOrder = [];
    for (var i = 0; i < messages.length; i++) this.onMessage(messages[i]);
    for (var j = 0; j < this.outbox.length; j++) this.list.appendChild(this.outbox[j].el);
  };

  Widget.prototype.bubble = function (role, who) {
    var el = h("article", "ra-msg ra-" + role);
    var meta = h("div", "ra-meta");
    meta.appendChild(h("span", "ra-who", who));
    var marker = h("span", "ra-marker");
    marker.hidden = true;
    meta.appendChild(marker);
    var body = h("div", "ra-body");
    el.append(meta, body);
    return { el: el, body: body, marker: marker, role: role, text: "", final: false, tools: null };
  };

  Widget.prototype.setMarker = function (entry, text, kind) {
    entry.marker.textContent = text || "";
    entry.marker.className = "ra-marker" + (kind ? " " + kind : "");
    entry.marker.hidden = !text;
  };

  Widget.prototype.userBubble = function (content) {
    var entry = this.bubble("user", this.role === "viewer" ? "User" : "You");
    entry.body.textContent = content;
    entry.text = content;
    return entry;
  };

  Widget.prototype.assistantEntry = function (id) {
    var entry = this.messages.get(id);
    if (!entry) {
      entry = this.bubble("assistant", "Assistant");
      entry.el.setAttribute("data-message-id", id);
      this.messages.set(id, entry);
      this.list.appendChild(entry.el);
    }
    return entry;
  };

  Widget.prototype.onMessage = function (message) {
    if (!message || typeof message.id !== "string") return;
    if (message.role === "user") {
      if (this.messages.has(message.id)) return;
      var entry = null;
      for (var i = 0; i < this.outbox.length; i++) {
        if (this.outbox[i].clientId === message.client_id) entry = this.outbox[i];
      }
      if (entry) {
        this.outbox.splice(this.outbox.indexOf(entry), 1);
        this.setMarker(entry, null);
        entry.el.classList.remove("ra-pending");
      } else {
        entry = this.userBubble(message.content);
      }
      entry.el.setAttribute("data-message-id", message.id);
      if (message.steered === true) {
        entry.el.classList.add("ra-steered");
        this.setMarker(entry, "steered", "ra-steered-marker");
        entry.marker.title = "Sent into the run in progress";
      }
      this.messages.set(message.id, entry);
      if (message.client_id) this.userByClientId.set(message.client_id, entry);
      this.list.appendChild(entry.el);
    } else if (message.role === "assistant") {
      var reply = this.assistantEntry(message.id);
      reply.final = true;
      reply.renderPending = false;
      reply.text = message.content || "";
      reply.el.classList.remove("ra-streaming");
      renderMarkdown(reply.text, reply.body);
      reply.body.hidden = reply.text === "";
      var calls = message.tool_calls || [];
      for (var k = 0; k < calls.length; k++) this.toolCall(calls[k], reply, false);
    } else if (message.role === "tool") {
      this.toolResult(message.call_id, message.content, message.is_error, message.name);
    }
  };

  Widget.prototype.onDelta = function (event) {
    var entry = this.assistantEntry(event.message_id);
    if (entry.final) return;
    entry.text += event.text;
    entry.el.classList.add("ra-streaming");
    entry.body.hidden = false;
    this.scheduleRender(entry);
  };

  /*
   * Streaming text is re-rendered at most once per frame (a timer stands in
   * where frames are throttled, as in a background tab); the final message
   * renders at once and cancels what is pending.
   */
  Widget.prototype.scheduleRender = function (entry) {
    if (entry.renderPending) return;
    entry.renderPending = true;
    var self = this;
    var run = function () {
      if (!entry.renderPending) return;
      entry.renderPending = false;
      if (entry.final) return;
      self.keepScroll(function () {
        renderMarkdown(entry.text, entry.body);
      });
    };
    requestAnimationFrame(run);
    setTimeout(run, 100);
  };

  Widget.prototype.toolCall = function (call, owner, started) {
    var tool = this.tools.get(call.call_id);
    if (!tool) {
      var details = h("details", "ra-tool");
      var summary = h("summary", "ra-tool-summary");
      var name = h("span", "ra-tool-name", call.name || "tool");
      var state = h("span", "ra-tool-state", "requested");
      summary.append(h("span", "ra-tool-kind", "Tool"), name, state);
      var input = h("pre", "ra-tool-input");
      var output = h("pre", "ra-tool-output", "(no result yet)");
      details.append(
        summary,
        h("div", "ra-tool-label", "Input"),
        input,
        h("div", "ra-tool-label", "Output"),
        output
      );
      tool = { details: details, state: state, input: input, output: output, done: false };
      this.tools.set(call.call_id, tool);
      var host = owner;
      if (!host) {
        host = this.lastAssistant();
      }
      if (host) {
        if (!host.tools) {
          host.tools = h("div", "ra-tools");
          host.el.appendChild(host.tools);
        }
        host.tools.appendChild(details);
      } else {
        this.list.appendChild(details);
      }
    }
    if (call.input !== undefined) tool.input.textContent = JSON.stringify(call.input, null, 2);
    if (started && !tool.done) tool.state.textContent = "running…";
    return tool;
  };

  Widget.prototype.lastAssistant = function () {
    var last = this.list.lastElementChild;
    if (!last || !last.classList.contains("ra-assistant")) return null;
    var id = last.getAttribute("data-message-id");
    return id ? this.messages.get(id) || null : null;
  };

  Widget.prototype.toolResult = function (callId, output, isError, name) {
    var tool = this.tools.get(callId) || this.toolCall({ call_id: callId, name: name }, null, false);
    tool.done = true;
    tool.output.textContent =
      typeof output === "string" ? output : JSON.stringify(output === undefined ? null : output, null, 2);
    tool.state.textContent = isError ? "failed" : "done";
    tool.details.classList.toggle("ra-tool-error", Boolean(isError));
  };

  Widget.prototype.notice = function (text, kind) {
    var self = this;
    this.keepScroll(function () {
      self.list.appendChild(h("div", "ra-notice" + (kind ? " ra-notice-" + kind : ""), text));
    });
  };

  Widget.prototype.setViewers = function (count) {
    if (typeof count !== "number") return;
    this.watchersEl.textContent = count + " watching";
    this.watchersEl.hidden = false;
  };

  Widget.prototype.dropOutbox = function (why) {
    while (this.outbox.length) this.setMarker(this.outbox.shift(), why, "ra-failed");
  };

  /* ------------------------------------------------------------- sending */

  Widget.prototype.sendFromInput = function () {
    if (this.input.disabled) return;
    var content = this.input.value;
    if (!content.trim()) return;
    this.input.value = "";
    var entry = this.userBubble(content);
    entry.clientId = newClientId();
    entry.content = content;
    entry.sentOn = null;
    // "Steer the current run": this one message joins the run in progress.
    if (!this.steerEl.hidden && this.steerBox.checked) {
      entry.onBusy = "steer";
      this.steerBox.checked = false;
    }
    entry.el.classList.add("ra-pending");
    this.setMarker(entry, "sending…", "ra-sending");
    this.outbox.push(entry);
    var self = this;
    this.keepScroll(function () {
      self.list.appendChild(entry.el);
    });
    this.list.scrollTop = this.list.scrollHeight;
    this.caughtUp();
    if (!this.live && this.retryTimer !== null) this.connect();
  };

  /* --------------------------------------------------------------- mount */

  function mount(root) {
    if (root.realtimeAgent) return root.realtimeAgent;
    return new Widget(root);
  }

  function boot() {
    ensureStylesheet();
    var roots = document.querySelectorAll("[data-realtime-agent]");
    for (var i = 0; i < roots.length; i++) mount(roots[i]);
  }

  window.RealtimeAgent = { mount: mount, renderMarkdown: renderMarkdown };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
