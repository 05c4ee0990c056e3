// Objects or faces: boxes (and landmarks) drawn over the photo, with readable labels and a list.

import { call, el } from "../api.js";
import { curl, kwargs, maasClient, py, showCode } from "../code.js";
import { drawDetections, loadImage } from "../draw.js";
import { field, form } from "./play.js";

export function mount({ model, form: host, result }) {
  const faces = model.task === "face-detection";
  const path = faces ? "/v1/detect/faces" : "/v1/detect/objects";
  const file = el("input", { type: "file", accept: "image/*", required: true });
  const threshold = el("input", { type: "number", min: 0, max: 1, step: 0.05, value: faces ? 0.7 : 0.25 });
  host.append(form([field("Photo", file), field("Score threshold", threshold)], "Detect", async () => {
    const image = file.files[0];
    const fields = { model: model.id, score_threshold: threshold.value };
    const body = new FormData();
    body.append("image", image, image.name);
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    const reply = await call(path, body);
    const found = reply.data[0];
    const items = faces ? found.faces.map((f) => ({ ...f, label: "face" })) : found.objects;
    await show(result, image, items);
    const method = faces ? "detect_faces" : "detect_objects";
    showCode({
      curl: curl(path, { form: { fields, files: [["image", image.name]] } }),
      maas_client: maasClient(`result = client.${method}(${py(image.name)}, ${kwargs({
        score_threshold: Number(threshold.value), model: model.id })})\nfor item in result.${faces ? "faces" : "objects"}:\n    print(item)`),
    });
  }));
}

async function show(result, file, items) {
  const canvas = el("canvas", { class: "photo", "data-role": "detections", role: "img",
    "aria-label": `${items.length} found: ${items.map((i) => i.label).join(", ")}` });
  const list = el("ol", { class: "found" }, ...items.map((i) => el("li", {
    text: `${i.label} ${(i.score * 100).toFixed(1)}% at (${i.box.x1.toFixed(0)}, ${i.box.y1.toFixed(0)})–(${i.box.x2.toFixed(0)}, ${i.box.y2.toFixed(0)})` })));
  result.replaceChildren(el("h2", { text: `${items.length} found` }), canvas, list);
  drawDetections(canvas, await loadImage(file), items);
}
