// The front page: the server's models, each linking to its playground.

import { call, el, guarded, initKeyForm } from "../api.js";

async function list() {
  const box = document.getElementById("models");
  await guarded(null, async () => {
    const { data } = await call("/v1/models");
    box.replaceChildren(...data.map((m) => el("li", { class: "card" },
      el("a", { href: `/console/play/${encodeURIComponent(m.id)}`, text: m.id }),
      el("span", { class: "task", text: m.task }),
      el("span", { class: m.ready ? "ok" : "warn", text: m.ready ? "ready" : "loading" }))));
  });
}

initKeyForm();
document.addEventListener("maas:key", list);
list();
