// Operators: create a key (its secret shown once), see scopes and limits, revoke.

import { call, el, guarded, initKeyForm } from "../api.js";

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

async function refresh() {
  const body = document.querySelector("#keys-table tbody");
  await guarded(null, async () => {
    const { data } = await call("/v1/admin/keys");
    body.replaceChildren(...data.slice().reverse().map(row));
  });
}

function row(key) {
  const scopes = [key.admin ? "admin" : null, key.models ? `models: ${key.models.join(", ")}` : null,
    key.tasks ? `tasks: ${key.tasks.join(", ")}` : null].filter(Boolean).join("; ") || "every model";
  const limits = [key.rpm && `${key.rpm} rpm`, key.tpm && `${key.tpm} tpm`, key.cpm && `${key.cpm} cpm`]
    .filter(Boolean).join(", ") || "none";
  const revoke = key.status === "active" ? el("button", { type: "button", class: "danger",
    "aria-label": `Revoke ${key.name}`, text: "Revoke",
    onclick: (event) => guarded(event.currentTarget, async () => {
      if (!window.confirm(`Revoke the key ${key.name}? Calls with it are refused from now on.`)) return;
      await call(`/v1/admin/keys/${key.id}`, undefined, { method: "DELETE" });
      await refresh();
    }) }) : null;
  return el("tr", { "data-key": key.name },
    el("th", { scope: "row", text: key.name }), el("td", { class: "mono", text: key.prefix }),
    el("td", { "data-role": "status", class: key.status === "active" ? "ok" : "warn", text: key.status }),
    el("td", { text: scopes }), el("td", { text: limits }),
    el("td", { text: new Date(key.created_at * 1000).toLocaleString() }), el("td", {}, revoke));
}

function request() {
  const value = (id) => document.getElementById(id).value.trim();
  const body = { name: value("key-name") };
  for (const limit of ["rpm", "tpm"]) if (value(`key-${limit}`)) body[limit] = Number(value(`key-${limit}`));
  for (const scope of ["models", "tasks"]) if (value(`key-${scope}`)) body[scope] = list(value(`key-${scope}`));
  if (document.getElementById("key-admin").checked) body.admin = true;
  return body;
}

function showOnce(secret) {
  const box = document.getElementById("new-key"), output = document.getElementById("new-key-value");
  output.textContent = secret;
  box.hidden = false;
  document.getElementById("dismiss-key").focus();
}

initKeyForm();
document.getElementById("create-key").addEventListener("submit", (event) => {
  event.preventDefault();
  guarded(event.submitter, async () => {
    const created = await call("/v1/admin/keys", request());
    event.target.reset();
    showOnce(created.key);
    await refresh();
  });
});
document.getElementById("dismiss-key").addEventListener("click", () => {
  document.getElementById("new-key-value").textContent = "";  // gone from the page: it was shown once
  document.getElementById("new-key").hidden = true;
});
document.addEventListener("maas:key", refresh);
refresh();
