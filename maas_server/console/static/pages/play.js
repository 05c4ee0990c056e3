// A model's playground: read its task from the server, then load the view made for that task
// (or the generic form, built from /openapi.json, for a task this console has no view for).

import { call, el, guarded, initKeyForm } from "../api.js";

// task -> the module that draws its playground. A task not named here gets play_generic.js.
const VIEWS = {
  "text-generation": "play_chat.js",
  "embeddings": "play_embeddings.js",
  "text-classification": "play_classify_text.js",
  "token-classification": "play_entities.js",
  "image-classification": "play_classify_image.js",
  "object-detection": "play_detect.js",
  "face-detection": "play_detect.js",
  "face-embedding": "play_faces.js",
  "speech-recognition": "play_speech.js",
};

async function open() {
  const form = document.getElementById("playground"), result = document.getElementById("result");
  const name = form.dataset.model;
  await guarded(null, async () => {
    const model = await call(`/v1/models/${encodeURIComponent(name)}`);
    document.getElementById("model-task").textContent =
      `${model.task} · ${model.ready ? "ready" : "loading"} · ${model.endpoints.join(", ")}`;
    const view = await import(`./${VIEWS[model.task] || "play_generic.js"}`);
    form.replaceChildren();
    result.replaceChildren();
    await view.mount({ model, form, result });  // the generic view reads /openapi.json first
  });
}

/** A labelled field: the label, then the control (an input, textarea or select). */
export function field(label, control, hint) {
  const id = control.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  control.id = id;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), control,
    hint ? el("small", { class: "muted", text: hint }) : null);
}

/** A form with these fields and a submit button; onSubmit(button) runs guarded. */
export function form(fields, submitText, onSubmit) {
  const button = el("button", { type: "submit", text: submitText });
  const node = el("form", { class: "stack" }, ...fields, button);
  node.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(button, () => onSubmit(button));
  });
  return node;
}

/** Label/score rows as <meter> bars, best first. */
export function bars(labels) {
  return el("ul", { class: "bars" }, ...labels.map(({ label, score }) => el("li", {},
    el("span", { class: "bar-label", text: label }),
    el("meter", { min: 0, max: 1, value: score, "aria-label": label }),
    el("span", { class: "bar-value", text: `${(score * 100).toFixed(1)}%` }))));
}

initKeyForm();
document.addEventListener("maas:key", open);
open();
