/* trainhub: the model page's live updates and Stop button. Our own code.
 *
 * While the run is active it polls, every data-poll-ms:
 *   - /models/<id>/panel: the header, epochs, checkpoints and events re-rendered by the server;
 *     a slot is replaced only when its HTML changed (ages are ticked locally, see app.js);
 *   - /api/v1/models/<id>/charts: every series, downsampled by the server, with an ETag (304
 *     when nothing changed).
 * A finished run is polled 8 times less often (it may be resumed).
 */
(function () {
  "use strict";
  const page = document.getElementById("model-page");
  if (!page) return;
  const id = page.dataset.modelId;
  const maxPoints = page.dataset.maxPoints || "1500";
  const pollMs = Number(page.dataset.pollMs) || 2000;
  const chartsEl = document.getElementById("charts");
  const stateEl = document.getElementById("charts-state");
  const cards = new Map();
  const lastHtml = new Map();
  let etag = null;

  const PREFIXES = ["train/", "val/", "metrics/", "lr/"];
  function shortLabel(name) {
    for (const p of PREFIXES) if (name.startsWith(p)) return name.slice(p.length);
    return name;
  }

  function renderCharts(data) {
    const empty = document.getElementById("charts-empty");
    if (!data.groups.length) {
      if (empty) empty.textContent = "No metrics yet: the charts appear with the first epoch.";
      return;
    }
    if (empty) empty.remove();
    const seen = new Set();
    data.groups.forEach((group) => {
      seen.add(group.id);
      let card = cards.get(group.id);
      if (!card) {
        card = document.createElement("div");
        card.className = "chart-card";
        card.id = "chart-" + group.id;
        const h = document.createElement("h3");
        h.textContent = group.title;
        card.appendChild(h);
        const body = document.createElement("div");
        body.className = "chart-body";
        card.appendChild(body);
        chartsEl.appendChild(card);
        cards.set(group.id, card);
      }
      const lines = group.names.map((name) => {
        const s = data.series[name];
        return {
          label: shortLabel(name),
          steps: s.steps,
          values: s.values,
          count: s.count,
          downsampled: s.downsampled,
        };
      });
      window.TrainhubChart.draw(card.querySelector(".chart-body"), lines, { title: group.title });
      card.dataset.lastStep = card.querySelector(".chart-body").dataset.lastStep;
    });
    cards.forEach((card, gid) => {
      if (!seen.has(gid)) {
        card.remove();
        cards.delete(gid);
      }
    });
    chartsEl.dataset.lastStep = data.last_step === null ? "" : String(data.last_step);
    chartsEl.dataset.version = data.version;
  }

  async function pollCharts() {
    const headers = etag ? { "If-None-Match": etag } : {};
    const r = await fetch("/api/v1/models/" + id + "/charts?max_points=" + maxPoints, {
      headers: headers,
      cache: "no-store",
      credentials: "same-origin",
    });
    if (r.status === 304) return;
    if (!r.ok) throw new Error("charts: HTTP " + r.status);
    etag = r.headers.get("etag");
    renderCharts(await r.json());
  }

  // Ages tick locally, so they are left out when deciding whether a slot changed.
  function stable(html) {
    return html.replace(/(<time[^>]*>)[^<]*(<\/time>)/g, "$1$2");
  }

  async function pollPanel() {
    const r = await fetch("/models/" + id + "/panel", { cache: "no-store", credentials: "same-origin" });
    if (r.status === 401) {
      window.location.reload(); // the session ended: the page itself redirects to the login
      return;
    }
    if (!r.ok) throw new Error("panel: HTTP " + r.status);
    const tpl = document.createElement("template");
    tpl.innerHTML = await r.text();
    tpl.content.querySelectorAll("[data-slot]").forEach((fresh) => {
      const slot = fresh.dataset.slot;
      const key = stable(fresh.outerHTML);
      if (lastHtml.get(slot) === key) return;
      lastHtml.set(slot, key);
      const current = document.querySelector('[data-slot="' + slot + '"]');
      if (current) current.replaceWith(fresh);
    });
    window.Trainhub.refreshAges();
  }

  function active() {
    const head = document.querySelector('[data-slot="head"]');
    return !head || head.dataset.active === "true";
  }

  async function tick() {
    try {
      await Promise.all([pollPanel(), pollCharts()]);
      stateEl.textContent = active() ? "live" : "";
      stateEl.classList.remove("error");
    } catch (err) {
      stateEl.textContent = "hub unreachable, retrying";
      stateEl.classList.add("error");
    }
    setTimeout(tick, active() ? pollMs : pollMs * 8);
  }

  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("#stop-button");
    if (!button) return;
    if (!window.confirm("Stop this training run? It stops at its next heartbeat.")) return;
    button.disabled = true;
    button.textContent = "Stopping…";
    const r = await window.Trainhub.post(button.dataset.url);
    if (!r.ok) {
      button.disabled = false;
      button.textContent = "Stop training";
      window.alert("Could not request the stop (HTTP " + r.status + ").");
      return;
    }
    await pollPanel();
  });

  document.querySelectorAll("[data-slot]").forEach((el) => lastHtml.set(el.dataset.slot, null));
  tick();
})();
