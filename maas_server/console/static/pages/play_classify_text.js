// Text classification: the labels as bars; with explain, each token coloured by its weight.

import { call, el } from "../api.js";
import { curl, kwargs, maasClient, py, showCode } from "../code.js";
import { weightColour } from "../draw.js";
import { bars, field, form } from "./play.js";

/**
 * A classifier's own labels (text-classification), or labels the user names, scored zero-shot by an
 * embeddings model (`zeroShot`): the server routes a named model to what it does, so each page asks
 * only for what its model uses.
 */
export function mount({ model, form: host, result, zeroShot = false }) {
  const text = el("textarea", { rows: 3, value: "The food was wonderful but the service was painfully slow.", required: true });
  const labels = el("input", { value: zeroShot ? "food, service, price" : "", required: zeroShot });
  const explain = el("input", { type: "checkbox", checked: !zeroShot });
  host.append(form([
    field(zeroShot ? "Text to label" : "Text", text),
    zeroShot ? field("Labels (comma-separated)", labels, "Any labels: scored by similarity to the text.")
      : el("p", { class: "muted", text: `Its labels: ${(model.labels || []).join(", ") || "the model's own"}.` }),
    el("label", { class: "inline" }, explain, " Explain: weigh each token for the top label"),
  ], "Classify", async () => {
    const request = { model: model.id, input: text.value };
    const names = labels.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (names.length) request.labels = names;
    if (explain.checked) request.explain = true;
    const reply = await call("/v1/classify/text", request);
    show(result, text.value, reply.data[0]);
    showCode({
      curl: curl("/v1/classify/text", { json: request }),
      maas_client: maasClient(`result = client.classify_text(${py(request.input)}, ${kwargs({
        labels: request.labels, model: model.id, explain: request.explain })})\nprint(result.labels)`),
    });
  }));
}

function show(result, text, item) {
  result.replaceChildren(el("h2", { text: "Labels" }), bars(item.labels));
  const tokens = item.explanation?.tokens;
  if (!tokens) return;
  result.append(el("h2", { text: `Why “${item.explanation.label}”` }), weighted(text, tokens),
    el("p", { class: "muted", text: "Green speaks for the label, red against it; hover a token for its weight." }));
}

/** The input text with each explained token in a span coloured by its weight (text nodes only). */
export function weighted(text, tokens) {
  const box = el("p", { class: "weighted", "data-role": "tokens" });
  let at = 0;
  for (const token of tokens) {
    if (token.start < at) continue;
    box.append(text.slice(at, token.start));
    const span = el("span", { class: "token", title: token.weight.toFixed(3), "data-weight": token.weight,
      text: text.slice(token.start, token.end) });
    span.style.backgroundColor = weightColour(token.weight);
    box.append(span);
    at = token.end;
  }
  box.append(text.slice(at));
  return box;
}
