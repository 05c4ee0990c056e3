// Any other task: a JSON form for each of the model's endpoints, built from /openapi.json.

import { call, el } from "../api.js";
import { curl, py, showCode } from "../code.js";
import { field, form } from "./play.js";

export async function mount({ model, form: host, result }) {
  const spec = await call("/openapi.json");
  for (const path of model.endpoints) {
    const operation = spec.paths[path]?.post;
    const content = operation?.requestBody?.content?.["application/json"];
    const schema = resolve(spec, content?.schema);
    if (!schema) continue;
    const text = el("textarea", { rows: 8, class: "mono",
      value: JSON.stringify(example(spec, schema, model.id, content.examples), null, 2) });
    const fieldsList = el("ul", { class: "muted" }, ...Object.entries(schema.properties || {}).map(([name, p]) =>
      el("li", {}, el("code", { text: name }), ` ${(schema.required || []).includes(name) ? "(required) " : ""}${resolve(spec, p)?.description || ""}`)));
    host.append(el("h2", { text: `${operation.summary || "POST"} ${path}` }), form([field(`Request body for ${path} (JSON)`, text), fieldsList], "Send", async () => {
      let body;
      try { body = JSON.parse(text.value); } catch (error) { throw new Error(`the body is not valid JSON: ${error.message}`); }
      const reply = await call(path, body);
      result.replaceChildren(el("h2", { text: "Answer" }), el("pre", { "data-role": "answer", text: JSON.stringify(reply, null, 2) }));
      showCode({ curl: curl(path, { json: body }),
        python: `import os\n\nimport requests\n\nreply = requests.post(${JSON.stringify(location.origin + path)}, json=${py(body)},\n                      headers={"Authorization": f"Bearer {os.environ['MAAS_API_KEY']}"})\nprint(reply.json())` });
    }));
  }
}

function resolve(spec, schema) {
  if (schema?.$ref) return resolve(spec, spec.components.schemas[schema.$ref.split("/").pop()]);
  return schema;
}

/** The endpoint's first documented example with the model, else every required field as a placeholder. */
function example(spec, schema, model, examples) {
  const documented = Object.values(examples || {})[0]?.value;
  if (documented) return { model, ...documented };
  const body = {};
  for (const name of schema.required || []) body[name] = placeholder(resolve(spec, schema.properties[name]));
  if (schema.properties?.model) body.model = model;
  return body;
}

function placeholder(schema) {
  const type = schema?.type || schema?.anyOf?.[0]?.type;
  return { string: "", integer: 1, number: 1, boolean: false, array: [], object: {} }[type] ?? "";
}
