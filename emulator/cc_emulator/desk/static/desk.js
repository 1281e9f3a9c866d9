// The agent desk: short-polls /desk/api/snapshot, acts through the control API (/_emulator/agents/...).
// Everything the customer wrote is put on the page with textContent, never as HTML.
import { $, el, enterSends, request, showError } from "./page.js";

const POLL_MS = 700;
const TYPING_IDLE_MS = 3000;
const params = new URLSearchParams(location.search);
const agentId = params.get("agent");

let etag = "";
let snap = null;
let lastConversation = null;
let typingSent = false;
let typingTimer = 0;
let pollTimer = 0;
let heartbeatTimer = 0;
let readSent = 0;

async function act(path, body) {
  try {
    await request("POST", `/_emulator/agents/${encodeURIComponent(agentId)}/${path}`, body || {});
    showError("");
  } catch (err) {
    showError(err.message);
  }
  refresh();
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function waited(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

// -- sign in ------------------------------------------------------------------------------------

function renderSignin() {
  $("signin").hidden = false;
  $("desk").hidden = true;
  const list = $("agent-list");
  list.replaceChildren(
    ...snap.agents.map((a) =>
      el("li", {}, el("button", {
        type: "button",
        onclick: () => { location.search = `?agent=${encodeURIComponent(a.id)}`; },
      }, `${a.name} — queues ${a.queues.join(", ")}${a.signedIn ? " (signed in elsewhere)" : ""}`)),
    ),
  );
}

// The sign-in is repeated as a heartbeat: when this tab goes, the emulator signs the agent out after
// `deskSignInTtl` seconds (30 by default) and its script takes the queue again.
async function heartbeat() {
  clearTimeout(heartbeatTimer);
  let every = 10;
  try {
    const answer = await request("POST", `/desk/api/agents/${encodeURIComponent(agentId)}/signin`);
    every = answer.heartbeatSeconds || every;
  } catch (err) {
    showError(`sign-in: ${err.message}`);
  }
  heartbeatTimer = setTimeout(heartbeat, every * 1000);
}

// -- the desk -----------------------------------------------------------------------------------

function me() {
  return snap.agents.find((a) => a.id === agentId);
}

function renderWho() {
  const agent = me();
  const who = $("who");
  if (!agent) {
    who.replaceChildren(`Unknown agent ${agentId}`);
    return;
  }
  who.replaceChildren(
    el("strong", {}, agent.name),
    el("span", { class: `badge ${agent.state}`, id: "agent-state" }, agent.state),
    el("button", { type: "button", class: "secondary", id: "signout", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  clearTimeout(heartbeatTimer);
  try {
    await request("POST", `/desk/api/agents/${encodeURIComponent(agentId)}/signout`);
    location.search = "";
  } catch (err) {
    showError(err.message);
    heartbeat(); // still signed in
  }
}

function renderQueues() {
  const agent = me();
  const free = agent && agent.state === "free";
  $("queues").replaceChildren(
    ...snap.queues.map((q) => {
      const mine = agent && agent.queues.includes(q.id);
      const items = q.waiting.map((w) =>
        el("li", { "data-conversation": w.conversationId },
          el("div", { class: "name" }, w.customerName, w.transferred ? " (transferred)" : "",
            w.interactions > 1 ? " (returning)" : ""),
          el("div", { class: "preview" }, w.lastText || "—"),
          el("div", { class: "row" },
            el("span", { class: "note", "data-since": w.since }, `waiting ${waited(w.since)}`),
            el("button", {
              type: "button",
              disabled: !(mine && free),
              "aria-label": `Accept ${w.customerName}`,
              onclick: () => act("accept", { conversationId: w.conversationId }),
            }, "Accept"))));
      const status = QUEUE_STATUS[q.status] || "";
      return el("section", { class: `queue ${q.status}`, "data-queue": q.id, "data-status": q.status },
        el("h3", {}, el("span", {}, q.name + (mine ? "" : " (not yours)") + status), el("span", { class: "note" }, `${q.waiting.length} waiting`)),
        items.length ? el("ul", { class: "waiting" }, ...items) : el("p", { class: "empty" }, "Nobody waiting"));
    }),
  );
  $("agents").replaceChildren(
    ...snap.agents.map((a) => el("li", {}, `${a.name}: ${a.state}${a.signedIn ? " · at a desk" : " · scripted"}`)),
  );
}

// A queue's staffing (the emulator's queueStatus setting): nobody takes its conversations unless it is open.
const QUEUE_STATUS = { closed: " · closed (agents logged out)", empty: " · no agents (all on break)" };

function renderWrapUp(conv) {
  const select = $("wrap-up");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "No wrap-up code"),
    ...conv.wrapUpCodes.map((c) => el("option", { value: c.id }, c.name)));
  if (conv.wrapUpCodes.some((c) => c.id === chosen)) select.value = chosen;
}

// The agent reads what is on screen, a moment after it shows: tell 8x8 "read up to now" (the emulator sends a read
// receipt where the setting says so). A person takes that moment to read, and the customer's side has by then
// heard that 8x8 took the message, so "read" never comes before "delivered".
const READING_MS = 1500;
let readTimer = 0;

function markRead(conv) {
  if (conv.lastCustomerAt <= Math.max(conv.agentReadAt, readSent) || readTimer) return;
  const upTo = conv.lastCustomerAt;
  readTimer = setTimeout(() => {
    readTimer = 0;
    if (document.visibilityState !== "visible" || !snap || !snap.conversation) return;
    readSent = upTo;
    request("POST", `/_emulator/agents/${encodeURIComponent(agentId)}/read`, {}).catch(() => {});
  }, READING_MS);
}

function renderFiles(files) {
  return el("div", { class: "files" }, ...files.map((f) =>
    el("a", { href: f.url, target: "_blank", rel: "noopener", download: f.filename }, `File: ${f.filename} (${f.size} bytes)`)));
}

function renderConversation() {
  const conv = snap.conversation;
  $("conversation").hidden = !conv;
  $("idle").hidden = !!conv;
  if (!conv) {
    if (lastConversation) {
      const note = $("last-ended");
      note.hidden = false;
      note.textContent = `Your interaction with ${lastConversation.customerName} ended.`;
    }
    lastConversation = null;
    return;
  }
  lastConversation = conv;
  $("last-ended").hidden = true;
  $("conv-title").textContent = `${conv.customerName} · ${conv.queueName}`;
  $("customer-data").replaceChildren(
    ...Object.entries(conv.customer).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
  );
  const select = $("transfer-queue");
  const chosen = select.value;
  select.replaceChildren(...snap.queues.filter((q) => q.id !== conv.queueId)
    .map((q) => el("option", { value: q.id }, q.name)));
  if (chosen) select.value = chosen;
  $("transfer").disabled = select.options.length === 0;
  renderWrapUp(conv);

  const list = $("transcript");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const inters = new Map(conv.interactions.map((i, n) => [i.id, { ...i, n: n + 1 }]));
  const rows = [];
  let group = null;
  for (const m of conv.messages) {
    const key = m.history ? "history" : m.interactionId;
    if (key !== group) {
      group = key;
      const i = inters.get(m.interactionId);
      const label = m.history ? "Bot history (before the customer asked for an agent)"
        : i ? `Interaction ${i.n} · ${i.queueNames.join(" → ")}${i.agentNames.length ? " · " + i.agentNames.join(" → ") : ""}${i.endTime ? " · ended" : ""}`
          : m.interactionId === "post-agent" ? "With the bot (after the agent)" : "Waiting for an assignment";
      rows.push(el("li", { class: "divider" }, label));
    }
    const who = m.authorType === "user" ? conv.customerName : m.authorType === "bot" ? "Bot" : m.author;
    rows.push(el("li", { class: `msg ${m.authorType}`, "data-author": m.authorType },
      el("div", { class: "meta" }, `${who} · ${time(m.timestamp)}`, m.seen ? el("span", { class: "seen", title: "The customer's side read it" }, " · Seen") : ""),
      m.text ? el("div", { class: "text" }, m.text) : "",
      m.attachments.length ? renderFiles(m.attachments) : ""));
  }
  list.replaceChildren(...rows);
  if (atBottom) list.scrollTop = list.scrollHeight;
  const notes = [];
  if (conv.customerTyping) notes.push(`${conv.customerName} is typing…`);
  if (conv.botThinking) notes.push("Bot is thinking…");
  if (conv.customerIdle) notes.push(`${conv.customerName} has gone quiet`);
  $("customer-typing").textContent = notes.join(" · ");
  markRead(conv);
}

function render() {
  // Redrawn buttons are new nodes: give the keyboard focus back to the one that had it.
  const focused = document.activeElement && document.activeElement.getAttribute("aria-label");
  draw();
  if (focused) {
    const again = [...document.querySelectorAll("[aria-label]")].find((n) => n.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
}

function draw() {
  if (!agentId) {
    renderSignin();
    return;
  }
  $("signin").hidden = true;
  $("desk").hidden = false;
  renderWho();
  renderQueues();
  renderConversation();
}

async function refresh() {
  clearTimeout(pollTimer);
  try {
    const q = new URLSearchParams({ etag });
    if (agentId) q.set("agent", agentId);
    const data = await request("GET", `/desk/api/snapshot?${q}`);
    etag = data.etag;
    if (!data.unchanged) {
      snap = data;
      render();
    } else {
      // Only the waiting times move on: redrawing would take the keyboard focus away.
      for (const span of document.querySelectorAll("[data-since]")) span.textContent = `waiting ${waited(Number(span.dataset.since))}`;
    }
  } catch (err) {
    showError(`desk: ${err.message}`);
  }
  pollTimer = setTimeout(refresh, POLL_MS);
}

// -- composing ----------------------------------------------------------------------------------

function setTyping(on) {
  clearTimeout(typingTimer);
  if (on) typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
  if (on === typingSent) return;
  typingSent = on;
  request("POST", `/_emulator/agents/${encodeURIComponent(agentId)}/typing`, { typing: on }).catch(() => {});
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function send(event) {
  event.preventDefault();
  const text = $("reply-text").value.trim();
  const input = $("reply-file");
  const file = input.files && input.files[0];
  if (!text && !file) return;
  const body = { text };
  if (file) {
    body.attachments = [{ name: file.name, contentType: file.type || "application/octet-stream", content: await readFile(file) }];
  }
  $("send").disabled = true;
  clearTimeout(typingTimer);
  typingSent = false; // a reply ends typing on the emulator's side
  await act("reply", body);
  $("send").disabled = false;
  $("reply-text").value = "";
  input.value = "";
  $("file-name").textContent = "";
  $("reply-text").focus();
}

function init() {
  $("composer").addEventListener("submit", send);
  $("reply-text").addEventListener("input", (e) => setTyping(e.target.value.length > 0));
  enterSends($("reply-text"), $("composer"));
  $("reply-file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    $("file-name").textContent = f ? `${f.name} will be sent with the reply` : "";
  });
  $("transfer").addEventListener("click", () => act("transfer", { queueId: $("transfer-queue").value }));
  $("end").addEventListener("click", () => {
    const code = $("wrap-up").value;
    act("leave", code ? { wrapUpCode: code } : {});
  });
  if (agentId) {
    document.title = `${agentId} · Agent desk`;
    heartbeat();
  }
  refresh();
}

init();
