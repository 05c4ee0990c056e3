// Operators: the latest changes to keys, newest first.

import { call, el, guarded, initKeyForm } from "../api.js";

async function refresh() {
  await guarded(null, async () => {
    const { data } = await call("/v1/admin/audit?limit=100");
    document.querySelector("#audit-table tbody").replaceChildren(...data.map((e) => el("tr", {},
      el("td", { text: new Date(e.at * 1000).toLocaleString() }), el("td", { text: e.actor }),
      el("td", { text: e.source }), el("td", { text: e.action }), el("td", { text: e.key_name || "–" }),
      el("td", { class: "mono small", text: JSON.stringify(e.changes) }))));
  });
}

initKeyForm();
document.addEventListener("maas:key", refresh);
refresh();
