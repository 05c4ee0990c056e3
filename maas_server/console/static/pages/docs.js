// The API reference: every route of /openapi.json, with its summary, parameters and body fields.

import { call, el, guarded, initKeyForm } from "../api.js";

function schemaOf(spec, schema) {
  return schema?.$ref ? spec.components.schemas[schema.$ref.split("/").pop()] : schema;
}

function operation(spec, path, verb, op) {
  const body = op.requestBody?.content || {};
  const json = schemaOf(spec, body["application/json"]?.schema || body["multipart/form-data"]?.schema);
  const fields = Object.entries(json?.properties || {}).map(([name, p]) => el("li", {},
    el("code", { text: name }), (json.required || []).includes(name) ? " (required)" : "",
    ` ${schemaOf(spec, p)?.description || p.description || ""}`));
  const params = (op.parameters || []).map((p) => el("li", {}, el("code", { text: `${p.in}: ${p.name}` }), ` ${p.description || ""}`));
  return el("details", { class: "op", "data-search": `${path} ${op.summary || ""}`.toLowerCase() },
    el("summary", {}, el("span", { class: `verb ${verb}`, text: verb.toUpperCase() }), " ", el("code", { text: path }),
      " ", el("span", { class: "muted", text: op.summary || "" })),
    op.description ? el("p", { text: op.description }) : null,
    params.length ? el("div", {}, el("h4", { text: "Parameters" }), el("ul", {}, ...params)) : null,
    fields.length ? el("div", {}, el("h4", { text: `Body (${Object.keys(body).join(", ")})` }), el("ul", {}, ...fields)) : null,
    el("h4", { text: "Answers" }), el("ul", {}, ...Object.entries(op.responses || {}).map(([status, r]) =>
      el("li", {}, el("code", { text: status }), ` ${r.description || ""}`))));
}

async function show() {
  await guarded(null, async () => {
    const spec = await call("/openapi.json");
    const box = document.getElementById("docs");
    box.replaceChildren(el("p", { text: `${spec.info.title} ${spec.info.version}` }),
      ...Object.entries(spec.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(([verb, op]) => operation(spec, path, verb, op))));
  });
}

initKeyForm();
document.getElementById("docs-filter").addEventListener("input", (event) => {
  const words = event.target.value.toLowerCase();
  for (const op of document.querySelectorAll("#docs details.op")) op.hidden = !op.dataset.search.includes(words);
});
show();
