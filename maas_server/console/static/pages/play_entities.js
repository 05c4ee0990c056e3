// Named entities: the text with each span highlighted and labelled, and a legend of the labels.

import { call, el } from "../api.js";
import { curl, maasClient, py, showCode } from "../code.js";
import { colourFor } from "../draw.js";
import { field, form } from "./play.js";

const EXAMPLE = "Ada Lovelace met Charles Babbage in London in June 1833.";

export function mount({ model, form: host, result }) {
  const text = el("textarea", { rows: 4, value: EXAMPLE, required: true });
  host.append(form([field("Text", text)], "Find entities", async () => {
    const request = { model: model.id, input: text.value };
    const reply = await call("/v1/entities", request);
    show(result, text.value, reply.data[0].entities);
    showCode({
      curl: curl("/v1/entities", { json: request }),
      maas_client: maasClient(`for entity in client.extract_entities(${py(text.value)}, model=${py(model.id)}).entities:\n    print(entity.label, entity.text)`),
    });
  }));
}

function show(result, text, entities) {
  const marked = el("p", { class: "entities", "data-role": "entities" });
  let at = 0;
  for (const entity of entities) {
    if (entity.start < at) continue;
    marked.append(text.slice(at, entity.start));
    const mark = el("mark", { "data-label": entity.label }, text.slice(entity.start, entity.end),
      el("span", { class: "tag", text: entity.label }));
    mark.style.backgroundColor = `${colourFor(entity.label)}44`;
    mark.style.borderColor = colourFor(entity.label);
    marked.append(mark);
    at = entity.end;
  }
  marked.append(text.slice(at));
  const labels = [...new Set(entities.map((e) => e.label))];
  const legend = el("ul", { class: "legend", "aria-label": "Legend" }, ...labels.map((label) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.backgroundColor = colourFor(label);
    return el("li", {}, swatch, label);
  }));
  result.replaceChildren(el("h2", { text: `${entities.length} entities` }), marked, legend);
}
