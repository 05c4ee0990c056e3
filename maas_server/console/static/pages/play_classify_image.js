// Image classification: top-k labels as bars and the Grad-CAM heatmap over the photo.

import { call, el } from "../api.js";
import { curl, kwargs, maasClient, py, showCode } from "../code.js";
import { bars, field, form } from "./play.js";

export function mount({ model, form: host, result }) {
  const file = el("input", { type: "file", accept: "image/*", required: true });
  const topK = el("input", { type: "number", min: 1, max: 20, value: 5 });
  const explain = el("input", { type: "checkbox", checked: true });
  host.append(form([
    field("Photo", file), field("Top k", topK),
    el("label", { class: "inline" }, explain, " Show where the model looked (Grad-CAM)"),
  ], "Classify", async () => {
    const image = file.files[0];
    const fields = { model: model.id, top_k: topK.value };
    if (explain.checked) fields.explain_overlay = "true";
    const body = new FormData();
    body.append("image", image, image.name);
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    const reply = await call("/v1/classify/image", body);
    show(result, image, reply.data[0]);
    showCode({
      curl: curl("/v1/classify/image", { form: { fields, files: [["image", image.name]] } }),
      maas_client: maasClient(`result = client.classify_image(${py(image.name)}, ${kwargs({
        top_k: Number(topK.value), model: model.id, explain: explain.checked || undefined,
        overlay: explain.checked || undefined })})\nprint(result.labels)`),
    });
  }));
}

function show(result, image, item) {
  const photo = el("img", { class: "photo", alt: "the photo sent", src: URL.createObjectURL(image) });
  const figures = [el("figure", {}, photo, el("figcaption", { text: "The photo" }))];
  const overlay = item.explanation?.overlay_png;
  if (overlay) {
    figures.push(el("figure", {}, el("img", { class: "photo", "data-role": "gradcam",
      alt: `Grad-CAM heatmap for ${item.explanation.label}`, src: `data:image/png;base64,${overlay}` }),
      el("figcaption", { text: `Where the model looked for “${item.explanation.label}” (as it saw the photo)` })));
  }
  result.replaceChildren(el("h2", { text: "Labels" }), bars(item.labels), el("div", { class: "figures" }, ...figures));
}
