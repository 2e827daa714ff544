/* trainhub: a small SVG line chart (our own code, no library).
 *
 * TrainhubChart.draw(container, lines, options) draws lines = [{label, steps, values}] (values may
 * hold null: the line breaks there) with axes, grid, a legend and a hover read-out. The server
 * already downsampled every series to at most ~1,500 points, so drawing is one path per line.
 * The container keeps its data and redraws itself when its width changes.
 * After drawing, container.dataset.lastStep is the largest step drawn and .points the point count
 * (the browser tests wait on them).
 */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = 8;

  function svg(tag, attrs, parent) {
    const el = document.createElementNS(NS, tag);
    for (const k in attrs) el.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(el);
    return el;
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return nice * mag;
  }

  function ticks(lo, hi, count, integer) {
    if (!(hi > lo)) return [lo];
    let step = niceStep(hi - lo, count);
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "-";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toPrecision(4));
  }

  function fmtStep(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
    if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
    return String(Math.round(v));
  }

  // Index of the point of `steps` (sorted) nearest to `x`.
  function nearest(steps, x) {
    let lo = 0;
    let hi = steps.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (steps[mid] < x) lo = mid;
      else hi = mid;
    }
    return Math.abs(steps[lo] - x) <= Math.abs(steps[hi] - x) ? lo : hi;
  }

  function draw(container, lines, options) {
    const opts = options || {};
    container.__chart = { lines: lines, opts: opts };
    container.classList.add("chart");
    container.textContent = "";
    let xmin = Infinity;
    let xmax = -Infinity;
    let ymin = Infinity;
    let ymax = -Infinity;
    let points = 0;
    let lastStep = -Infinity;
    lines.forEach((line) => {
      line.steps.forEach((s, i) => {
        const v = line.values[i];
        points += 1;
        lastStep = Math.max(lastStep, s);
        if (v === null || !isFinite(v)) return;
        xmin = Math.min(xmin, s);
        xmax = Math.max(xmax, s);
        ymin = Math.min(ymin, v);
        ymax = Math.max(ymax, v);
      });
    });
    container.dataset.points = String(points);
    container.dataset.lastStep = lastStep === -Infinity ? "" : String(lastStep);
    if (xmin === Infinity) {
      const p = document.createElement("p");
      p.className = "muted chart-empty";
      p.textContent = "No values yet.";
      container.appendChild(p);
      return;
    }
    if (xmax === xmin) {
      xmin -= 1;
      xmax += 1;
    }
    if (ymax === ymin) {
      const pad = Math.abs(ymax) * 0.05 || 1;
      ymin -= pad;
      ymax += pad;
    } else {
      const pad = (ymax - ymin) * 0.06;
      ymin -= pad;
      ymax += pad;
    }

    const width = Math.max(220, Math.floor(container.clientWidth || 600));
    const height = opts.height || (width < 420 ? 180 : 220);
    const m = { l: 50, r: 10, t: 8, b: 24 };
    const iw = width - m.l - m.r;
    const ih = height - m.t - m.b;
    const X = (s) => m.l + ((s - xmin) / (xmax - xmin)) * iw;
    const Y = (v) => m.t + (1 - (v - ymin) / (ymax - ymin)) * ih;

    const root = svg("svg", {
      viewBox: "0 0 " + width + " " + height,
      width: width,
      height: height,
      role: "img",
      "aria-label": opts.title || "chart",
    });
    const grid = svg("g", { class: "grid" }, root);
    ticks(ymin, ymax, height < 200 ? 4 : 5, false).forEach((v) => {
      svg("line", { x1: m.l, x2: width - m.r, y1: Y(v), y2: Y(v) }, grid);
      svg("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, grid).textContent = fmt(v);
    });
    ticks(xmin, xmax, Math.max(2, Math.floor(iw / 90)), true).forEach((s) => {
      svg("line", { x1: X(s), x2: X(s), y1: m.t, y2: m.t + ih, class: "v" }, grid);
      svg("text", { x: X(s), y: height - 6, "text-anchor": "middle" }, grid).textContent = fmtStep(s);
    });
    svg("rect", { x: m.l, y: m.t, width: iw, height: ih, class: "frame" }, root);

    lines.forEach((line, li) => {
      let d = "";
      let pen = false;
      for (let i = 0; i < line.steps.length; i++) {
        const v = line.values[i];
        if (v === null || !isFinite(v)) {
          pen = false;
          continue;
        }
        d += (pen ? "L" : "M") + X(line.steps[i]).toFixed(1) + " " + Y(v).toFixed(1);
        pen = true;
      }
      const cls = "line c" + (li % COLORS);
      svg("path", { d: d, class: cls, "data-label": line.label }, root);
      if (line.steps.length === 1 && line.values[0] !== null) {
        svg("circle", { cx: X(line.steps[0]), cy: Y(line.values[0]), r: 3, class: "dot c" + (li % COLORS) }, root);
      }
    });

    // Hover: a guide line and the values nearest the pointer.
    const guide = svg("line", { y1: m.t, y2: m.t + ih, class: "guide", visibility: "hidden" }, root);
    const hit = svg("rect", { x: m.l, y: m.t, width: iw, height: ih, class: "hit" }, root);
    container.appendChild(root);
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    container.appendChild(tip);
    hit.addEventListener("pointermove", (ev) => {
      const box = root.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * width;
      const x = xmin + ((px - m.l) / iw) * (xmax - xmin);
      let step = null;
      const rows = [];
      lines.forEach((line, li) => {
        if (!line.steps.length) return;
        const i = nearest(line.steps, x);
        if (step === null || Math.abs(line.steps[i] - x) < Math.abs(step - x)) step = line.steps[i];
        rows.push([li, line.label, line.values[i]]);
      });
      if (step === null) return;
      guide.setAttribute("x1", X(step));
      guide.setAttribute("x2", X(step));
      guide.setAttribute("visibility", "visible");
      tip.textContent = "";
      const head = document.createElement("div");
      head.textContent = (opts.xLabel || "epoch") + " " + step;
      tip.appendChild(head);
      rows.forEach(([li, label, v]) => {
        const row = document.createElement("div");
        const sw = document.createElement("i");
        sw.className = "swatch c" + (li % COLORS);
        row.appendChild(sw);
        row.appendChild(document.createTextNode(label + ": " + fmt(v)));
        tip.appendChild(row);
      });
      tip.hidden = false;
      tip.style.left = Math.min(Math.max(0, (X(step) / width) * box.width + 12), box.width - tip.offsetWidth) + "px";
    });
    hit.addEventListener("pointerleave", () => {
      guide.setAttribute("visibility", "hidden");
      tip.hidden = true;
    });

    const legend = document.createElement("ul");
    legend.className = "legend";
    lines.forEach((line, li) => {
      const item = document.createElement("li");
      const sw = document.createElement("i");
      sw.className = "swatch c" + (li % COLORS);
      item.appendChild(sw);
      let last = null;
      for (let i = line.values.length - 1; i >= 0; i--) {
        if (line.values[i] !== null) {
          last = line.values[i];
          break;
        }
      }
      item.appendChild(document.createTextNode(line.label + " " + fmt(last)));
      if (line.downsampled) item.title = "downsampled to " + line.steps.length + " of " + line.count + " points";
      legend.appendChild(item);
    });
    container.appendChild(legend);
  }

  // Redraw a chart when its width changes (phone rotation, window resize).
  const widths = new WeakMap();
  const observer =
    typeof ResizeObserver === "undefined"
      ? null
      : new ResizeObserver((entries) => {
          entries.forEach((entry) => {
            const el = entry.target;
            const w = Math.floor(entry.contentRect.width);
            if (el.__chart && widths.get(el) !== w) {
              widths.set(el, w);
              draw(el, el.__chart.lines, el.__chart.opts);
            }
          });
        });

  function watch(container) {
    if (observer && !container.__watched) {
      container.__watched = true;
      widths.set(container, Math.floor(container.clientWidth));
      observer.observe(container);
    }
  }

  window.TrainhubChart = {
    draw: function (container, lines, options) {
      draw(container, lines, options);
      watch(container);
    },
  };
})();
