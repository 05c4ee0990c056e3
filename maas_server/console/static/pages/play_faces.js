// Face embeddings: two photos -> the distance between their best faces and a verdict.

import { call, el } from "../api.js";
import { curl, maasClient, py, showCode } from "../code.js";
import { drawDetections, loadImage } from "../draw.js";
import { field, form } from "./play.js";

const SAME_PERSON = 0.6;  // the default model's threshold (dlib): closer than this is one person

export function mount({ model, form: host, result }) {
  const first = el("input", { type: "file", accept: "image/*", required: true });
  const second = el("input", { type: "file", accept: "image/*", required: true });
  host.append(form([field("First photo", first), field("Second photo", second)], "Compare faces", async () => {
    const [a, b] = [first.files[0], second.files[0]];
    const body = new FormData();
    body.append("image", a, a.name);
    body.append("image", b, b.name);
    body.append("model", model.id);
    const reply = await call("/v1/faces/embeddings", body);
    await show(result, [a, b], reply.data);
    showCode({
      curl: curl("/v1/faces/embeddings", { form: { fields: { model: model.id }, files: [["image", a.name], ["image", b.name]] } }),
      maas_client: maasClient(`result = client.compare_faces(${py(a.name)}, ${py(b.name)}, model=${py(model.id)})\nprint(result.distance, result.same_person)`),
    });
  }));
}

function distance(a, b) { return Math.sqrt(a.reduce((sum, x, i) => sum + (x - b[i]) ** 2, 0)); }

async function show(result, files, data) {
  const canvases = files.map((_, i) => el("canvas", { class: "photo half", role: "img", "aria-label": `photo ${i + 1}` }));
  const best = data.map((d) => d.faces[0]);
  const verdict = el("p", { class: "verdict", "data-role": "verdict" });
  if (best.some((f) => !f)) verdict.textContent = `No face found in photo ${best.findIndex((f) => !f) + 1}.`;
  else {
    const d = distance(best[0].embedding, best[1].embedding);
    verdict.textContent = `Distance ${d.toFixed(3)}: ${d < SAME_PERSON ? "the same person" : "different people"} (threshold ${SAME_PERSON}).`;
  }
  result.replaceChildren(el("h2", { text: "Comparison" }), verdict, el("div", { class: "figures" }, ...canvases));
  for (const [i, file] of files.entries()) {
    drawDetections(canvases[i], await loadImage(file), data[i].faces.map((f) => ({ ...f, label: "face" })));
  }
}
