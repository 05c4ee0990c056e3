// Operators: each model's state, replicas, queue depth, device and endpoints.

import { call, el, guarded, initKeyForm } from "../api.js";

/** maas_queue_depth per model from the Prometheus text (summed over workers); null when /metrics is closed. */
async function queueDepths() {
  try {
    const text = await call("/metrics");
    const depths = {};
    for (const match of String(text).matchAll(/^maas_queue_depth\{[^}]*model="([^"]+)"[^}]*\}\s+([0-9.eE+-]+)$/gm)) {
      depths[match[1]] = (depths[match[1]] || 0) + Number(match[2]);
    }
    return depths;
  } catch { return null; }
}

async function readiness() {
  const response = await fetch("/ready");  // 503 while loading or draining still carries each model's state
  return (await response.json()).models || {};
}

async function refresh() {
  const body = document.querySelector("#models-table tbody");
  await guarded(document.getElementById("refresh"), async () => {
    const [{ data }, states, depths] = await Promise.all([call("/v1/models"), readiness(), queueDepths()]);
    body.replaceChildren(...data.map((m) => el("tr", { "data-model": m.id },
      el("th", { scope: "row" }, el("a", { href: `/console/play/${encodeURIComponent(m.id)}`, text: m.id })),
      el("td", { text: m.task }),
      el("td", { class: states[m.id] === "ready" ? "ok" : "warn", text: states[m.id] || (m.ready ? "ready" : "loading") }),
      el("td", { text: m.replicas ? `${m.replicas.running} / ${m.replicas.target}` : "in process" }),
      el("td", { "data-role": "queue", text: depths ? String(depths[m.id] || 0) : "–" }),
      el("td", { text: [m.device, m.dtype].filter(Boolean).join(" ") || "–" }),
      el("td", { class: "mono small", text: m.endpoints.join(" ") }))));
  });
}

initKeyForm();
document.getElementById("refresh").addEventListener("click", refresh);
document.addEventListener("maas:key", refresh);
refresh();
