// The one place that talks to the server: the key (session storage only), calls, streams, errors.
// It also holds el(), the one way pages build DOM: children are nodes or text (textContent), never HTML.

const KEY = "maas.key";

export function getKey() { return sessionStorage.getItem(KEY) || ""; }
export function setKey(key) { key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY); }

/** An element with properties (class, id, for, data-*, aria-*, on*) and children (nodes or strings, as text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name in node && !name.includes("-")) node[name] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An API error: the server's message, its status and code, as the error envelope gives them. */
export class ApiError extends Error {
  constructor(message, status, code) { super(message); this.status = status; this.code = code; }
}

function headers(extra = {}) {
  const key = getKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function raise(response) {
  let message = `${response.status} ${response.statusText}`, code = null;
  try {
    const body = await response.json();
    if (body && body.error) { message = body.error.message || message; code = body.error.code || null; }
  } catch { /* not JSON: keep the status line */ }
  throw new ApiError(message, response.status, code);
}

/** GET or POST JSON (a FormData body goes as multipart); the parsed answer, or an ApiError. */
export async function call(path, body = undefined, { method } = {}) {
  const init = { method: method || (body === undefined ? "GET" : "POST"), headers: headers() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (!response.ok) await raise(response);
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** POST with stream: true; calls onEvent(parsed) for each server-sent event until [DONE]. */
export async function stream(path, body, onEvent) {
  const response = await fetch(path, {
    method: "POST", headers: headers({ "Content-Type": "application/json" }), body: JSON.stringify(body),
  });
  if (!response.ok) await raise(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const parsed = JSON.parse(data);
      if (parsed.error) throw new ApiError(parsed.error.message, response.status, parsed.error.code);
      onEvent(parsed);
    }
  }
}

/** Show an error's message in the page's alert region (or clear it with null). */
export function showError(error) {
  const box = document.getElementById("error");
  if (!box) return;
  box.hidden = !error;
  box.textContent = error ? (error instanceof ApiError ? error.message : String(error.message || error)) : "";
  if (error) box.scrollIntoView({ block: "nearest" });
}

/** Run an async action with errors shown and the button disabled meanwhile. */
export async function guarded(button, action) {
  showError(null);
  if (button) button.disabled = true;
  try { return await action(); } catch (error) { showError(error); return undefined; }
  finally { if (button) button.disabled = false; }
}

/** Wire the header's key form: save to session storage, forget, show the state. */
export function initKeyForm() {
  const form = document.getElementById("key-form");
  if (!form) return;
  const input = document.getElementById("api-key"), state = document.getElementById("key-state");
  const show = () => { state.textContent = getKey() ? "key set for this tab" : "no key"; };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    input.value = "";
    show();
    document.dispatchEvent(new CustomEvent("maas:key"));
  });
  document.getElementById("forget-key").addEventListener("click", () => {
    setKey("");
    show();
    document.dispatchEvent(new CustomEvent("maas:key"));
  });
  show();
}

/** Read a File as a base64 string without its data: prefix. */
export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
