// Speech: upload (or record) audio -> the transcript with segment times; a segment plays on click.

import { call, el } from "../api.js";
import { curl, maasClient, openaiClient, py, showCode } from "../code.js";
import { field, form } from "./play.js";

export function mount({ model, form: host, result }) {
  const file = el("input", { type: "file", accept: "audio/*" });
  const recorded = { blob: null };
  const controls = [field("Audio file", file)];
  if (window.MediaRecorder && navigator.mediaDevices?.getUserMedia) controls.push(recorder(recorded, file));
  host.append(form(controls, "Transcribe", async () => {
    const audio = file.files[0] || (recorded.blob && new File([recorded.blob], "recording.webm"));
    if (!audio) throw new Error("choose an audio file (or record one) first");
    const fields = { model: model.id, response_format: "verbose_json" };
    const body = new FormData();
    body.append("file", audio, audio.name);
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    const reply = await call("/v1/audio/transcriptions", body);
    show(result, audio, reply);
    showCode({
      curl: curl("/v1/audio/transcriptions", { form: { fields, files: [["file", audio.name]] } }),
      maas_client: maasClient(`result = client.transcribe(${py(audio.name)}, model=${py(model.id)})\nfor segment in result.segments:\n    print(segment.start, segment.end, segment.text)`),
      openai: openaiClient(`with open(${py(audio.name)}, "rb") as audio:\n    reply = client.audio.transcriptions.create(model=${py(model.id)}, file=audio, response_format="verbose_json")\nprint(reply.text)`),
    });
  }));
}

function recorder(recorded, file) {
  const button = el("button", { type: "button", text: "Record from the microphone" });
  const state = el("span", { role: "status", class: "muted" });
  let media = null;
  button.addEventListener("click", async () => {
    if (media) { media.stop(); return; }
    try {
      const chunks = [];
      media = new MediaRecorder(await navigator.mediaDevices.getUserMedia({ audio: true }));
      media.ondataavailable = (event) => chunks.push(event.data);
      media.onstop = () => {
        recorded.blob = new Blob(chunks, { type: media.mimeType });
        media.stream.getTracks().forEach((t) => t.stop());
        media = null;
        file.value = "";
        button.textContent = "Record again";
        state.textContent = "recorded; press Transcribe";
      };
      media.start();
      button.textContent = "Stop recording";
      state.textContent = "recording…";
    } catch (error) { state.textContent = `the browser refused the microphone: ${error.message}`; }
  });
  return el("div", { class: "field" }, button, state);
}

function show(result, audio, reply) {
  const player = el("audio", { controls: true, src: URL.createObjectURL(audio), "aria-label": "the audio sent" });
  let stopAt = null;
  player.addEventListener("timeupdate", () => { if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; } });
  const segments = el("ol", { class: "segments", "data-role": "segments" }, ...reply.segments.map((s) => el("li", {},
    el("button", { type: "button", class: "segment", "data-start": s.start, "data-end": s.end,
      "aria-label": `play ${fmt(s.start)} to ${fmt(s.end)}`,
      onclick: () => { player.currentTime = s.start; stopAt = s.end; player.play(); } },
      el("span", { class: "time", text: `${fmt(s.start)}–${fmt(s.end)}` }), el("span", { text: s.text })))));
  result.replaceChildren(el("h2", { text: "Transcript" }), el("p", { class: "transcript", "data-role": "transcript", text: reply.text }),
    player, el("h3", { text: `Segments (${reply.language}, ${reply.duration.toFixed(1)} s): click one to hear it` }), segments);
}

function fmt(seconds) {
  const m = Math.floor(seconds / 60), s = (seconds % 60).toFixed(2).padStart(5, "0");
  return `${m}:${s}`;
}
