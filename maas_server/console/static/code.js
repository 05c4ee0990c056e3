// "The same call in code": curl, maas_client and openai for exactly what the playground just ran.

import { el } from "./api.js";

/** A JSON value as a Python literal (True/False/None, strings quoted as JSON quotes them). */
export function py(value, indent = 0) {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string" || typeof value === "number") return JSON.stringify(value);
  const pad = " ".repeat(indent + 4), end = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + py(v, indent + 4)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${py(v, indent + 4)}`).join(",\n")},\n${end}}`;
}

/** Keyword arguments from an object, skipping undefined: `a=1, b="x"`. */
export function kwargs(options) {
  return Object.entries(options).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${py(v)}`).join(", ");
}

function shellQuote(text) { return `'${text.replaceAll("'", "'\\''")}'`; }

/** curl for a JSON body or a multipart form ({fields: {...}, files: [[field, filename], ...]}). */
export function curl(path, { json, form } = {}) {
  const lines = [`curl ${location.origin}${path}`, '  -H "Authorization: Bearer $MAAS_API_KEY"'];
  if (json !== undefined) {
    lines.push('  -H "Content-Type: application/json"', `  -d ${shellQuote(JSON.stringify(json))}`);
  }
  for (const [name, value] of Object.entries(form?.fields || {})) lines.push(`  -F ${shellQuote(`${name}=${value}`)}`);
  for (const [name, file] of form?.files || []) lines.push(`  -F ${shellQuote(`${name}=@${file}`)}`);
  return lines.join(" \\\n");
}

/** The maas_client preamble and one call. */
export function maasClient(call) {
  return `from maas_client import Client\n\nclient = Client(${JSON.stringify(location.origin)})  # the key: MAAS_API_KEY\n${call}`;
}

/** The openai package pointed at this server, and one call. */
export function openaiClient(call) {
  return `from openai import OpenAI\n\nclient = OpenAI(base_url=${JSON.stringify(location.origin + "/v1")}, api_key=os.environ["MAAS_API_KEY"])\n${call}`
    .replace("from openai", "import os\n\nfrom openai");
}

/** Show the three versions in the page's code section, as tabs (arrow keys move between them). */
export function showCode(versions) {
  const section = document.getElementById("code"), tabs = document.getElementById("code-tabs");
  const text = document.getElementById("code-text");
  const names = Object.keys(versions).filter((n) => versions[n]);
  tabs.replaceChildren();
  const select = (name) => {
    for (const tab of tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.name === name));
    text.textContent = versions[name];
    section.dataset.shown = name;
  };
  names.forEach((name, i) => tabs.append(el("button", {
    type: "button", role: "tab", "data-name": name, text: name,
    onclick: () => select(name),
    onkeydown: (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs.children[(i + step + names.length) % names.length];
      next.focus();
      select(next.dataset.name);
    },
  })));
  section.hidden = false;
  select(names[0]);
}
