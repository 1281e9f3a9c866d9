// The customer chat page. It talks only to its own origin (/api/...): the helper there holds the business API key
// and forwards to casebridge. Agent messages, routing events and typing are pushed on casebridge's channel WebSocket
// (channel.js: no polling; reconnects and resumes from its cursor). The customer's own messages are kept in this
// browser, as a real channel keeps its own transcript. `page.js` is the emulator's (cc_emulator/static), shared with
// its agent desk.
import { openChannel } from "./channel.js";
import { acted, notSent, problem, syncRecovered } from "./notices.js";
import { $, answered, el, enterSends, request } from "./page.js";

const TYPING_EVERY_MS = 2500;
const AGENT_TYPING_MAX_MS = 15000;

let caseId = null;
let events = [];
let seen = new Set();
let caseView = null;
let channel = null;
let syncing = null;
let agentTyping = false;
let agentTypingTimer = 0;
let lastTypingSent = 0;
function casePath(suffix) {
  return `/api/cases/${encodeURIComponent(caseId)}${suffix || ""}`;
}

// -- the customer's own messages, kept in this browser --------------------------------------------

function mine() {
  try {
    return JSON.parse(localStorage.getItem(`cb.mine.${caseId}`) || "[]");
  } catch {
    return [];
  }
}

function remember(entry) {
  const list = mine();
  list.push(entry);
  localStorage.setItem(`cb.mine.${caseId}`, JSON.stringify(list));
}

// -- state ----------------------------------------------------------------------------------------

// "about 4 min" from seconds (8x8 gives no expected wait: casebridge estimates it, docs/escalation.md).
function about(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return "less than a minute";
  return `about ${Math.round(seconds / 60)} min`;
}

// The latest wait figures while queued (WaitUpdate events on the timeline).
function latestWait() {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.type === "WaitUpdate") return e;
    if (e.type === "AgentJoined") return null;
  }
  return null;
}

function waitText() {
  const w = latestWait();
  if (!w) return "";
  const parts = [];
  if (w.estimatedWaitSeconds !== null && w.estimatedWaitSeconds !== undefined) parts.push(`wait ${about(w.estimatedWaitSeconds)}`);
  // 8x8 counts everyone waiting, ahead and behind (no position exists); figures may be a few seconds old.
  if (w.waiting) parts.push(`${w.waiting} waiting`);
  return parts.length ? ` · ${parts.join(", ")}` : "";
}

const STATE_TEXT = {
  open: () => "Connecting you to an agent…",
  queued: (c) => (c.transferPending ? "Queued · transferring" : "Queued") + (c.queue ? ` · ${c.queue.name || c.queue.id}` : "") + waitText(),
  with_agent: (c) => `With agent · ${c.agent ? c.agent.name || c.agent.id : ""}`,
  agent_left: () => "Agent left · write to reopen",
  closed: () => "Closed · write to reopen",
};

function renderState() {
  const box = $("state");
  box.hidden = !caseView;
  if (!caseView) return;
  const text = STATE_TEXT[caseView.state];
  box.dataset.state = caseView.state;
  box.textContent = text ? text(caseView) : caseView.state;
  $("leave").disabled = caseView.state === "closed";
}

// -- the transcript -------------------------------------------------------------------------------

function fileLinks(files) {
  return el("div", { class: "files" }, ...files.map((f) =>
    el("a", { href: casePath(`/attachments/${encodeURIComponent(f.attachmentId || f.id)}`), target: "_blank", rel: "noopener" },
      `File: ${f.fileName || f.name || "file"}`)));
}

function agentLabel(e) {
  return e.agentName || e.agentId || "Agent";
}

const HANDED_BACK = {
  "agent-ended": "The agent finished: you are back with the assistant",
  "queue-timeout": "Nobody could take the chat in time: you are back with the assistant",
};

const EVENT_TEXT = {
  ConversationOpened: () => "Chat opened",
  Queued: (e) => `Waiting in queue ${e.queueName || e.queueId || ""}`.trim(),
  AgentJoined: (e) => `${agentLabel(e)} joined`,
  AgentLeft: (e) => `${agentLabel(e)} left the chat`,
  Transferred: () => "Transferring you to another team",
  CustomerLeft: () => "You left the chat",
  MessageFailed: () => "A message could not be delivered",
  WaitUpdate: (e) => `Still waiting${e.estimatedWaitSeconds != null ? `: ${about(e.estimatedWaitSeconds)}` : ""}${e.waiting ? ` (${e.waiting} waiting)` : ""}`,
  QueueTimeout: () => "Nobody is free to answer right now",
  CustomerIdle: () => "Are you still there? The chat closes soon unless you write",
  HandedBack: (e) => HANDED_BACK[e.reason] || "You are back with the assistant",
  TranscriptReady: () => "A transcript of this chat is ready",
};

// Delivery ticks on the customer's own messages: ✓ 8x8 took it (MessageDelivered), ✓✓ the agent read it
// (MessageRead: everything 8x8 had by then). A message is matched by the clientMessageId the page sent.
function deliveryMarks() {
  const delivered = new Map();
  let readAt = 0;
  for (const e of events) {
    if (e.type === "MessageDelivered" && e.clientMessageId) delivered.set(e.clientMessageId, e.occurredAt || e.receivedAt || 0);
    if (e.type === "MessageRead") readAt = Math.max(readAt, e.readAt || e.occurredAt || 0);
  }
  return { delivered, readAt };
}

function tick(m, marks) {
  if (!m.clientMessageId || !marks.delivered.has(m.clientMessageId)) return "";
  const read = marks.readAt && marks.readAt >= marks.delivered.get(m.clientMessageId);
  return el("span", { class: `tick${read ? " read" : ""}`, "data-tick": read ? "read" : "delivered",
    title: read ? "Read by the agent" : "Delivered to 8x8" }, read ? " ✓✓" : " ✓");
}

// The customer read what the agent wrote (the page shows it): 8x8's read receipt, through casebridge (Gateway only).
let sendsReadReceipts = false;
let readUpTo = 0;

function readAgentMessages() {
  if (!sendsReadReceipts || !caseId || document.visibilityState !== "visible") return;
  const latest = Math.max(0, ...events.filter((e) => e.type === "AgentMessage").map((e) => e.occurredAt || 0));
  if (latest <= readUpTo) return;
  readUpTo = latest;
  request("POST", casePath("/read"), { authorType: "user" }).catch(() => {});
}

// The customer went quiet while with an agent (CustomerIdle): a warning until the customer writes again.
function idleWarning() {
  for (let i = events.length - 1; i >= 0; i--) {
    const t = events[i].type;
    if (t === "CustomerIdle") return mine().every((m) => m.at <= (events[i].receivedAt || events[i].occurredAt || 0));
    if (["AgentLeft", "HandedBack", "CustomerLeft", "AgentJoined"].includes(t)) return false;
  }
  return false;
}

function renderMessages() {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  // The timeline keeps its own order; the customer's messages go in by when casebridge received the events around them.
  const own = mine().sort((a, b) => a.at - b.at);
  const marks = deliveryMarks();
  const ownIds = new Set(own.map((m) => m.clientMessageId).filter(Boolean));
  // The open's history is on the timeline too ({history: true}); a browser that opened the case shows its own copy.
  const ownHistory = own.some((m) => m.history);
  const nodes = [];
  let i = 0;
  for (const e of events) {
    const at = e.receivedAt || e.occurredAt || 0;
    while (i < own.length && own[i].at <= at) nodes.push(ownNode(own[i++], marks));
    const node = e.type === "CustomerMessage" ? timelineOwnNode(e, ownIds, ownHistory, marks) : eventNode(e);
    if (node) nodes.push(node);
  }
  while (i < own.length) nodes.push(ownNode(own[i++], marks));
  list.replaceChildren(...nodes);
  if (atBottom) list.scrollTop = list.scrollHeight;
  $("idle-warning").hidden = !idleWarning();
  readAgentMessages();
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function ownNode(m, marks) {
  const who = m.authorType === "bot" ? "Bot" : "You";
  return el("li", { class: `msg ${m.authorType === "bot" ? "bot" : "me"}`, "data-author": m.authorType || "user" },
    el("div", { class: "meta" }, `${who} · ${time(m.at)}`, tick(m, marks)),
    m.text ? el("div", { class: "text" }, m.text) : "",
    m.files && m.files.length ? fileLinks(m.files) : "");
}

// The customer's or bot's accepted message from the timeline (CustomerMessage): what another browser, or this one
// after its storage was cleared, shows; one this browser sent itself is already on the page.
function timelineOwnNode(e, ownIds, ownHistory, marks) {
  if (e.clientMessageId && ownIds.has(e.clientMessageId)) return null;
  if (e.history && ownHistory) return null;
  const m = { text: e.text || "", at: e.occurredAt || e.receivedAt || 0, authorType: e.authorType || "user",
    files: e.attachments || [], clientMessageId: e.clientMessageId };
  return ownNode(m, marks);
}

function eventNode(e) {
  if (e.type === "AgentMessage") {
    return el("li", { class: "msg agent", "data-author": "agent" },
      el("div", { class: "meta" }, `${agentLabel(e)} · ${time(e.occurredAt)}`),
      e.text ? el("div", { class: "text" }, e.text) : "",
      e.attachments && e.attachments.length ? fileLinks(e.attachments) : "");
  }
  const text = EVENT_TEXT[e.type];
  return text ? el("li", { class: "event", "data-event": e.type }, text(e)) : null;
}

function renderTyping() {
  $("agent-typing").textContent = agentTyping ? "The agent is typing…" : "";
}

// -- talking to casebridge ------------------------------------------------------------------------

// A pushed timeline event (in order, once): on the transcript; the badge is read again when the case may have moved.
const STATE_KEEPS = new Set(["AgentMessage", "CustomerMessage", "MessageDelivered", "MessageRead", "WaitUpdate"]);

function takeEvent(e) {
  if (seen.has(e.eventId)) return; // at least once: drop repeats
  seen.add(e.eventId);
  events.push(e);
  if (e.type === "AgentMessage") setAgentTyping(false);
  if (!STATE_KEEPS.has(e.type)) sync();
  renderState();
  renderMessages();
}

// The case itself (state, queue, agent): on open and when an event may have changed it. Never on a timer.
function sync() {
  // One read at a time; a request for another while one runs is served by a second pass.
  if (syncing) {
    syncing.again = true;
    return syncing.done;
  }
  const run = { again: false };
  run.done = (async () => {
    do {
      run.again = false;
      try {
        caseView = await request("GET", casePath());
        syncRecovered();
      } catch (err) {
        if (err.status !== 404) problem(`Cannot refresh the chat: ${err.message}`, "sync");
      }
    } while (run.again);
    syncing = null;
    renderState();
    renderMessages();
    renderTyping();
  })();
  syncing = run;
  return run.done;
}

function setAgentTyping(on) {
  clearTimeout(agentTypingTimer);
  agentTyping = on;
  if (on) agentTypingTimer = setTimeout(() => setAgentTyping(false), AGENT_TYPING_MAX_MS);
  renderTyping();
}

function listen() {
  if (channel) channel.close();
  channel = openChannel(casePath("/channel-tokens"), {
    onEvent: takeEvent,
    onTyping: (e) => setAgentTyping(!!e.typing),
    onOpen: () => sync(),
    onTrouble: (err) => problem(`Cannot connect the chat: ${err.message}`, "sync"),
  });
}

async function sendFile(file) {
  try {
    const res = await fetch(casePath("/files"), {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) },
      body: file,
    });
    return (await answered(res, "file upload")).attachmentId;
  } catch (err) {
    err.stage = "file";
    throw err;
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  const file = $("file").files[0];
  if (!text && !file) return;
  problem("");
  $("send").disabled = true;
  try {
    const body = { authorType: "user", clientMessageId: crypto.randomUUID() };
    if (text) body.text = text;
    const files = [];
    if (file) {
      const id = await sendFile(file);
      body.attachments = [id];
      files.push({ id, fileName: file.name });
    }
    await request("POST", casePath("/messages"), body);
    remember({ text, at: Date.now(), files, authorType: "user", clientMessageId: body.clientMessageId });
    $("text").value = "";
    $("file").value = "";
  } catch (err) {
    problem(notSent(err, file, text));
  }
  $("send").disabled = false;
  $("text").focus();
  sync();
}

function typing() {
  // The Gateway's typing has no "stopped": one call per few seconds while the customer types.
  if (!$("text").value || Date.now() - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = Date.now();
  request("POST", casePath("/typing"), { authorType: "user" }).catch(() => {});
}

function parseHistory(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean).map((line) => {
    const m = /^(bot|user)\s*:\s*(.*)$/i.exec(line);
    return m ? { authorType: m[1].toLowerCase(), text: m[2] } : { authorType: "bot", text: line };
  });
}

async function start(event) {
  event.preventDefault();
  const form = new FormData($("start-form"));
  const id = String(form.get("caseId") || "").trim() || `web-${crypto.randomUUID().slice(0, 8)}`;
  const customer = { name: String(form.get("name")).trim() };
  const email = String(form.get("email") || "").trim();
  if (email) customer.email = email;
  const history = parseHistory(String(form.get("history") || ""));
  problem("");
  $("start-button").disabled = true;
  try {
    caseId = id;
    const opened = Date.now();
    // A person asked for a person: when nobody can answer (closed, or no agent), say so instead of queueing.
    await request("POST", casePath("/conversation"), { customer, history, whenUnavailable: "refuse" });
    showClosed(null);
    // The bot's chat came before the conversation opened.
    history.forEach((h, n) => remember({ ...h, at: opened - 60000 + n, history: true }));
    const clientMessageId = crypto.randomUUID();
    await request("POST", casePath("/messages"), {
      text: String(form.get("question")).trim(), authorType: "user", clientMessageId,
    });
    remember({ text: String(form.get("question")).trim(), at: Date.now(), authorType: "user", clientMessageId });
    $("start-form").reset();
    problem("");
    openCase(id);
  } catch (err) {
    if (err.status === 409 && err.body && err.body.availability) showClosed(err.body.availability);
    else problem(`The chat did not start: ${err.message}.`);
  }
  $("start-button").disabled = false;
}

const DAY_NAMES = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

// The queue's week as lines "Mon 09:00–17:30" (days left out are closed).
function hoursLines(hours) {
  if (!hours || !hours.weekly) return [];
  return Object.entries(DAY_NAMES)
    .filter(([day]) => (hours.weekly[day] || []).length)
    .map(([day, name]) => `${name} ${hours.weekly[day].map(([a, b]) => `${a}–${b}`).join(", ")}`);
}

// A refused open (409 QueueUnavailable): "we're closed" with the hours, or nobody free right now.
function showClosed(availability) {
  const box = $("closed");
  box.hidden = !availability;
  if (!availability) return;
  const closed = availability.reason === "closed";
  const hours = availability.hours;
  box.dataset.reason = availability.reason;
  box.replaceChildren(
    el("strong", {}, closed ? "We're closed" : "Nobody is free to answer right now"),
    el("p", {}, closed ? "Our team answers chats during these hours" + (hours && hours.timeZone ? ` (${hours.timeZone} time):` : ":")
      : "Please try again in a little while."),
    ...(closed ? [el("ul", { class: "hours" }, ...hoursLines(hours).map((line) => el("li", {}, line)))] : []),
    ...(closed && hours && hours.holidays && hours.holidays.length ? [el("p", { class: "note" }, `Closed on ${hours.holidays.join(", ")}`)] : []),
  );
}

async function leave() {
  try {
    caseView = await request("DELETE", casePath("/conversation"));
    problem("");
  } catch (err) {
    problem(`Could not leave the chat: ${err.message}.`);
  }
  sync();
}

function openCase(id) {
  caseId = id;
  localStorage.setItem("cb.case", id);
  events = [];
  readUpTo = 0;
  seen = new Set();
  caseView = null;
  $("case-label").textContent = id;
  $("start").hidden = true;
  $("chat").hidden = false;
  listen();
  sync();
  $("text").focus();
}

// A case the customer comes back to must exist: an unknown id opens nothing (writing there would open a new,
// nameless case).
async function comeBack(id, remembered) {
  try {
    await request("GET", `/api/cases/${encodeURIComponent(id)}`);
  } catch (err) {
    showStart();
    if (err.status === 404) {
      problem(remembered ? `Case “${id}” no longer exists. Start a new chat.`
        : `There is no case “${id}”. Check the id, or start a new chat.`);
    } else {
      problem(`Could not open case “${id}”: ${err.message}.`);
    }
    return;
  }
  problem("");
  openCase(id);
}

function showStart() {
  if (channel) channel.close();
  channel = null;
  caseId = null;
  caseView = null;
  localStorage.removeItem("cb.case");
  $("chat").hidden = true;
  $("start").hidden = false;
  renderState();
  $("name").focus();
}

function init() {
  $("start-form").addEventListener("submit", start);
  $("resume-form").addEventListener("submit", (e) => {
    e.preventDefault();
    comeBack($("resume-id").value.trim(), false);
  });
  $("composer").addEventListener("submit", send);
  $("text").addEventListener("input", () => {
    acted();
    typing();
  });
  $("file").addEventListener("change", acted);
  $("resume-id").addEventListener("input", acted);
  enterSends($("text"), $("composer"));
  $("leave").addEventListener("click", leave);
  $("new-case").addEventListener("click", showStart);
  document.addEventListener("visibilitychange", readAgentMessages);
  // Files work on the Chat Gateway only: the page offers them where they can be sent.
  request("GET", "/api/config").then((config) => {
    $("attach").hidden = !config.attachments;
    sendsReadReceipts = !!config.readReceipts;
  }).catch(() => {});
  const saved = new URLSearchParams(location.search).get("case") || localStorage.getItem("cb.case");
  if (saved) comeBack(saved, true);
  else showStart();
}

init();
