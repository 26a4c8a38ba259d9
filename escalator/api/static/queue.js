// The live queue: unclaimed cases of the token's account, nearest deadline first.
// The stream is read with fetch() and a ReadableStream reader, not EventSource, so
// the token goes in an Authorization header (never in a URL, where logs keep it).
// The token is kept in sessionStorage: this tab only, gone when the tab closes.
// Case fields are written with textContent only, never as HTML.
"use strict";

const TOKEN_KEY = "escalator.token";
const MAX_BACKOFF_MS = 30000;
const cases = new Map(); // case_id -> row, every running case of the account
const arrived = new Set(); // case ids to slide in on the next render
let lastEventId = null;
let retryMs = 1000;
let attempt = 0;
let controller = null;
let newWhileHidden = 0;

const $ = (id) => document.getElementById(id);

function isQueued(row) {
  return row && row.status === "open" && !row.assignee;
}

function setStatus(text, state) {
  const status = $("status");
  status.textContent = text;
  status.className = state || "";
}

function timeLeft(deadline, now) {
  if (!deadline) return { text: "no deadline", overdue: false };
  const ms = Date.parse(deadline) - now;
  const abs = Math.abs(ms);
  const h = Math.floor(abs / 3600000);
  const m = Math.floor((abs % 3600000) / 60000);
  const s = Math.floor((abs % 60000) / 1000);
  const span = h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
  return ms >= 0 ? { text: span, overdue: false } : { text: `overdue ${span}`, overdue: true };
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text == null ? "" : String(text);
  return td;
}

function safeLink(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (_) {
    return null;
  }
}

function rowFor(row, now) {
  const tr = document.createElement("tr");
  tr.dataset.caseId = row.case_id;
  tr.appendChild(cell(row.case_id, "case"));
  const sev = cell("", "");
  const badge = document.createElement("span");
  badge.className = "sev sev-" + String(row.severity || "").replace(/[^A-Za-z0-9]/g, "");
  badge.textContent = row.severity || "";
  sev.appendChild(badge);
  tr.appendChild(sev);
  tr.appendChild(cell(row.tier_name ? `L${row.tier} ${row.tier_name}` : row.tier, "tier"));
  tr.appendChild(cell(row.team, "team"));
  const left = timeLeft(row.next_deadline, now);
  const leftCell = cell(left.text, "left");
  if (row.next_deadline) leftCell.dataset.deadline = row.next_deadline;
  tr.appendChild(leftCell);
  if (left.overdue) tr.classList.add("overdue");
  if (row.sla_breached) tr.classList.add("breached");
  const linkCell = document.createElement("td");
  const href = safeLink(row.web_ui);
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = "Open in Temporal";
    linkCell.appendChild(a);
  }
  tr.appendChild(linkCell);
  return tr;
}

function queued() {
  return [...cases.values()].filter(isQueued).sort((a, b) => {
    if (!a.next_deadline) return b.next_deadline ? 1 : a.case_id.localeCompare(b.case_id);
    if (!b.next_deadline) return -1;
    return Date.parse(a.next_deadline) - Date.parse(b.next_deadline);
  });
}

function render() {
  const now = Date.now();
  const rows = queued();
  const body = $("rows");
  const fresh = document.createDocumentFragment();
  for (const row of rows) {
    const tr = rowFor(row, now);
    if (arrived.has(row.case_id)) tr.classList.add("arrived");
    fresh.appendChild(tr);
  }
  arrived.clear();
  body.replaceChildren(fresh);
  $("empty").hidden = rows.length > 0;
  $("count").textContent = `${rows.length} unclaimed`;
  updateTitle(rows.length);
}

function updateTitle(count) {
  if (document.hidden) {
    const extra = newWhileHidden > 0 ? ` · ${newWhileHidden} new` : "";
    document.title = `(${count}${extra}) Escalator queue`;
  } else {
    document.title = "Escalator queue";
  }
}

function tick() {
  const now = Date.now();
  for (const td of document.querySelectorAll("td.left[data-deadline]")) {
    const left = timeLeft(td.dataset.deadline, now);
    td.textContent = left.text;
    td.parentElement.classList.toggle("overdue", left.overdue);
  }
}

function apply(kind, data) {
  if (kind === "snapshot") {
    cases.clear();
    for (const row of data.cases || []) cases.set(row.case_id, row);
    render();
    return;
  }
  const id = data.case_id;
  if (typeof id !== "string") return;
  const wasQueued = isQueued(cases.get(id));
  if (kind === "closed" || !data.case) cases.delete(id);
  else cases.set(id, data.case);
  if (!wasQueued && isQueued(cases.get(id))) {
    arrived.add(id);
    if (document.hidden) newWhileHidden += 1;
  }
  render();
}

// One server-sent-event message: its lines, per the EventSource rules.
function dispatch(lines) {
  let kind = "message";
  let data = [];
  let id = null;
  for (const line of lines) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") kind = value;
    else if (name === "data") data.push(value);
    else if (name === "id") id = value;
    else if (name === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
  }
  if (id !== null) lastEventId = id;
  if (data.length === 0) return;
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch (_) {
    return;
  }
  attempt = 0; // a message arrived: the next drop starts the back-off afresh
  apply(kind, parsed);
}

async function connect() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin();
    return;
  }
  controller = new AbortController();
  const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
  if (lastEventId) headers["Last-Event-ID"] = lastEventId;
  setStatus("connecting…", "");
  let response;
  try {
    response = await fetch("/v1/stream", { headers, cache: "no-store", signal: controller.signal });
  } catch (_) {
    return reconnect();
  }
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    setStatus("the token was refused", "down");
    showLogin();
    return;
  }
  if (!response.ok || !response.body) return reconnect(response.status);
  setStatus("live", "live");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block.split("\n"));
      }
      if (buffer.length > 1048576) break; // a message this long is not ours
    }
  } catch (_) {
    // dropped: reconnect below
  }
  reconnect();
}

function reconnect(status) {
  // Exponential back-off from the server's `retry:` value, with jitter, capped.
  const base = Math.min(MAX_BACKOFF_MS, retryMs * 2 ** attempt);
  const wait = Math.round(base / 2 + Math.random() * (base / 2));
  attempt = Math.min(attempt + 1, 10);
  const why = status ? ` (HTTP ${status})` : "";
  setStatus(`reconnecting in ${Math.ceil(wait / 1000)} s${why}`, "down");
  setTimeout(connect, wait);
}

function showLogin() {
  $("login").hidden = false;
  $("logout").hidden = true;
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    $("login").hidden = true;
    $("logout").hidden = false;
    attempt = 0;
    connect();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    if (controller) controller.abort();
    location.reload();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) newWhileHidden = 0;
    updateTitle(queued().length);
  });
  setInterval(tick, 1000);
  render();
  if (sessionStorage.getItem(TOKEN_KEY)) $("logout").hidden = false;
  connect();
});
