// Operators: usage over time per model or key (requests, tokens, errors, latency), as line charts.

import { call, el, guarded, initKeyForm } from "../api.js";
import { chartLegend, drawLineChart } from "../draw.js";

// title, the row's figure, and whether rows of one bucket are averaged (weighted by requests) or summed.
const CHARTS = [
  ["Requests", (r) => r.requests, false],
  ["Tokens", (r) => r.total_tokens, false],
  ["Errors", (r) => r.errors, false],
  ["Mean latency (ms)", (r) => r.mean_latency_ms, true],
];

/** Rows -> one series per model (or key): [{name, points: [[start, value]]}], one point per bucket. */
export function series(rows, by, value, mean) {
  const groups = new Map();
  for (const r of rows) {
    const name = (by === "key" ? r.key || "(no key)" : r.model || "(no model)");
    const points = groups.get(name) || new Map();
    const [total, weight] = points.get(r.start) || [0, 0];
    const w = mean ? r.requests : 1;
    points.set(r.start, [total + value(r) * w, weight + w]);
    groups.set(name, points);
  }
  return [...groups].map(([name, points]) => ({
    name, points: [...points].map(([t, [total, weight]]) => [t, mean ? total / (weight || 1) : total]),
  }));
}

async function show() {
  const bucket = document.getElementById("usage-bucket").value, by = document.getElementById("usage-by").value;
  const since = document.getElementById("usage-since").value.trim();
  const query = new URLSearchParams({ bucket });
  if (since) query.set("since", since);
  await guarded(document.querySelector("#usage-form button"), async () => {
    const { data, has_more } = await call(`/v1/admin/usage?${query}`);
    const box = document.getElementById("charts");
    box.replaceChildren();
    if (has_more) box.append(el("p", { class: "warn", text: "More rows than one answer holds: narrow the range." }));
    for (const [title, value, mean] of CHARTS) {
      const canvas = el("canvas", { class: "chart", role: "img", "aria-label": `${title} per ${by}` });
      const lines = series(data, by, value, mean);
      box.append(el("figure", {}, canvas, chartLegend(lines),
        el("figcaption", { text: `${title} per ${bucket}, by ${by}` })));
      drawLineChart(canvas, title, lines);
    }
  });
}

initKeyForm();
document.getElementById("usage-form").addEventListener("submit", (event) => { event.preventDefault(); show(); });
document.addEventListener("maas:key", show);
show();
