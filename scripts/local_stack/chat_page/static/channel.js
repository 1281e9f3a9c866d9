// The chat page's live transport: casebridge's channel WebSocket. The page's helper asks the business API for a
// short-lived channel token (POST /cases/{id}/channel-tokens: the API key stays server-side) and the page connects
// to the URL it names. casebridge pushes the case's timeline events in order, each with its `sequence` and
// `cursor`, then live ones; AgentTyping comes the same way (no sequence: it is not on the timeline).
//
// Nothing is missed: the page keeps the cursor of the last event it took. When the socket drops it reconnects
// (backoff, a new token each time) with ?after=<cursor>, and casebridge pushes what followed before anything newer.
// An event that arrives ahead of one it follows waits for it; a gap that does not fill in reconnects from the cursor.
import { request } from "./page.js";

const RECONNECT_MS = [250, 500, 1000, 2000, 4000, 8000];
const GAP_MS = 1500;

export function openChannel(tokenPath, { onEvent, onTyping, onOpen, onTrouble }) {
  let socket = null;
  let closed = false;
  let attempt = 0;
  let timer = 0;
  let gapTimer = 0;
  let lastSeq = 0;
  let cursor = null;
  const ahead = new Map(); // sequence → event that came before its predecessor

  function retry() {
    if (closed) return;
    timer = setTimeout(connect, RECONNECT_MS[Math.min(attempt++, RECONNECT_MS.length - 1)]);
  }

  async function connect() {
    if (closed) return;
    let url;
    try {
      url = (await request("POST", tokenPath)).url;
    } catch (err) {
      onTrouble(err);
      retry();
      return;
    }
    if (closed) return;
    const ws = new WebSocket(cursor ? `${url}&after=${encodeURIComponent(cursor)}` : url);
    socket = ws;
    ws.onopen = () => {
      attempt = 0;
      ws.send(JSON.stringify({ action: "resume" })); // what followed the cursor now, without waiting for news
      onOpen();
    };
    ws.onmessage = (msg) => take(ws, JSON.parse(msg.data));
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      clearTimeout(gapTimer);
      ahead.clear();
      retry();
    };
  }

  function take(ws, frame) {
    if (!frame.eventId) {
      // An answer to an action; a refused resume means the connection is not known any more: connect again.
      if (frame.action === "resume" && frame.status >= 400) ws.close();
      return;
    }
    if (frame.type === "AgentTyping") return onTyping(frame);
    if (!frame.sequence) return onEvent(frame); // written before timelines had sequences
    if (frame.sequence <= lastSeq) return; // had it already (a resume may repeat)
    ahead.set(frame.sequence, frame);
    while (ahead.has(lastSeq + 1)) {
      const next = ahead.get(lastSeq + 1);
      ahead.delete(lastSeq + 1);
      lastSeq = next.sequence;
      cursor = next.cursor;
      onEvent(next);
    }
    clearTimeout(gapTimer);
    if (ahead.size) gapTimer = setTimeout(() => ws.close(), GAP_MS); // reconnects from the cursor
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(gapTimer);
      if (socket) socket.close();
      socket = null;
    },
  };
}
