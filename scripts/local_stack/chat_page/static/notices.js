// The chat page's error line: what stays there, and the words it says. An action's error stays until the customer
// acts again (types, picks a file, sends, opens a case); a failed refresh shows only while refreshing fails and never
// replaces an action's error.
import { showError } from "./page.js";

let errorFrom = null; // "action" | "sync" | null

export function problem(message, from = "action") {
  if (!message) {
    errorFrom = null;
    showError("");
    return;
  }
  if (from === "sync" && errorFrom === "action") return;
  errorFrom = from;
  showError(message);
}

export function acted() {
  if (errorFrom === "action") problem("");
}

function size(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, "")} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}

// Why a message did not go, and what to do, in words: the limit it crossed, never the validator's internals.
export function notSent(err, file, text) {
  const details = err.details || {};
  if (err.stage === "file") {
    const name = `“${file.name}”`;
    if (err.status === 415) {
      const allowed = details.allowedTypes ? `this chat accepts only ${details.allowedTypes.join(", ")}` : err.message;
      return `${name} was not sent: ${allowed}. Choose another file.`;
    }
    if (err.status === 413) {
      const limit = details.maxBytes ? `files may be at most ${size(details.maxBytes)}` : err.message;
      return `${name} (${size(file.size)}) was not sent: ${limit}. Choose a smaller file.`;
    }
    return `${name} was not sent: ${err.message}.`;
  }
  const field = Array.isArray(details) && details[0] ? details[0].field : null;
  if (field === "text" && /at most/.test(err.message)) {
    return `Your message was not sent: ${err.message}; yours has ${text.length}. Shorten it and send again.`;
  }
  return `Your message was not sent: ${err.message}.`;
}

// A refresh worked again: its error goes (an action's stays).
export function syncRecovered() {
  if (errorFrom === "sync") problem("");
}
