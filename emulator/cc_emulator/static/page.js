// Browser helpers the emulator's agent desk and the local customer chat page share (each server serves this file
// beside its own). What people wrote goes on the page as text nodes, never as HTML.

export const $ = (id) => document.getElementById(id);

// el("li", {class: "msg", "data-author": "user", onclick: fn}, "text", childNode): an element with attributes,
// event listeners (on...) and children; false, null and undefined attributes are left out.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function showError(message) {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
}

// The answer's JSON; an answer that is not 2xx throws an Error with the server's message, the `status`, the `body`,
// and casebridge's `code` and `details` when given.
// The emulator answers {"error": "..."}, casebridge {"error": {"code", "message", "details"?}} or {"message"}.
export async function answered(res, what) {
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const said = typeof data.error === "string" ? data.error : (data.error && data.error.message) || data.message;
    const err = new Error(said || `${what}: ${res.status}`);
    err.status = res.status;
    if (data.error && typeof data.error === "object") {
      err.code = data.error.code;
      err.details = data.error.details;
    }
    err.body = data;
    throw err;
  }
  return data;
}

// A JSON call to this page's own origin.
export async function request(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return answered(await fetch(path, init), `${method} ${path}`);
}

// Enter sends the form, Shift+Enter starts a new line.
export function enterSends(textarea, form) {
  textarea.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
}
