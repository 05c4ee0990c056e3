// Embeddings: several sentences -> their cosine similarities as a heatmap.

import { call, el } from "../api.js";
import { curl, maasClient, openaiClient, py, showCode } from "../code.js";
import { drawHeatmap } from "../draw.js";
import { mount as mountZeroShot } from "./play_classify_text.js";
import { field, form } from "./play.js";

const EXAMPLE = "A cat sits on the mat.\nA kitten rests on a rug.\nThe stock market fell today.\nShares dropped sharply.";

export function mount({ model, form: host, result }) {
  const text = el("textarea", { rows: 5, value: EXAMPLE, required: true });
  host.append(form([field("Sentences, one per line", text)], "Compare", async () => {
    const input = text.value.split("\n").map((s) => s.trim()).filter(Boolean);
    const reply = await call("/v1/embeddings", { model: model.id, input });
    show(result, input, reply.data.map((d) => d.embedding));
    showCode({
      curl: curl("/v1/embeddings", { json: { model: model.id, input } }),
      maas_client: maasClient(`vectors = client.embed(${py(input)}, model=${py(model.id)}).vectors`),
      openai: openaiClient(`reply = client.embeddings.create(model=${py(model.id)}, input=${py(input)})`),
    });
  }));
  if (model.endpoints.includes("/v1/classify/text")) {  // the same vectors label texts zero-shot
    host.append(el("h2", { text: "Zero-shot labels" }));
    mountZeroShot({ model, form: host, result, zeroShot: true });
  }
}

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  a.forEach((x, i) => { dot += x * b[i]; na += x * x; nb += b[i] * b[i]; });
  return dot / Math.sqrt(na * nb || 1);
}

function show(result, input, vectors) {
  const matrix = vectors.map((a) => vectors.map((b) => cosine(a, b)));
  const canvas = el("canvas", { class: "heatmap", role: "img",
    "aria-label": `cosine similarity of ${input.length} sentences` });
  result.replaceChildren(el("h2", { text: "Similarity" }), canvas,
    el("ol", { class: "sentences" }, ...input.map((s) => el("li", { text: s }))),
    el("p", { class: "muted", text: `${vectors[0].length} dimensions; row i, column j: sentence i against sentence j.` }));
  drawHeatmap(canvas, matrix);
}
