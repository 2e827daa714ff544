/* trainhub: the compare page's overlay chart (data embedded by the server). Our own code. */
(function () {
  "use strict";
  const el = document.getElementById("compare-chart");
  const data = document.getElementById("compare-data");
  if (!el || !data) return;
  const series = JSON.parse(data.textContent);
  const lines = series.map((s) => ({ label: s.name + " (" + s.id.slice(0, 6) + ")", steps: s.steps, values: s.values }));
  window.TrainhubChart.draw(el, lines, { title: el.dataset.metric, height: 300 });
  const select = document.getElementById("metric");
  if (select) select.addEventListener("change", () => select.form.submit());
})();
