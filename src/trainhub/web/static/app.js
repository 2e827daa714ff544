/* trainhub: helpers shared by the pages (ages that tick, CSRF-protected posts). Our own code. */
(function () {
  "use strict";

  function meta(name) {
    const el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute("content") : "";
  }

  // Ages are computed against the server's clock, so a skewed laptop clock does not lie.
  const serverNow = Date.parse(meta("server-now"));
  const skew = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function now() {
    return Date.now() + skew;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = (n) => String(n).padStart(2, "0");
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + pad(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + pad(Math.floor((s % 3600) / 60)) + " min";
    return Math.floor(s / 86400) + " d " + pad(Math.floor((s % 86400) / 3600)) + " h";
  }

  function refreshAges(root) {
    const scope = root || document;
    scope.querySelectorAll("time.age").forEach((t) => {
      const at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) t.textContent = duration((now() - at) / 1000) + " ago";
    });
    scope.querySelectorAll('time.elapsed[data-live="true"]').forEach((t) => {
      const at = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(at)) t.textContent = duration((now() - at) / 1000);
    });
  }

  /** POST to our API with the session cookie and the session's CSRF token. */
  function post(url, body) {
    const headers = { "content-type": "application/json" };
    headers[meta("csrf-header") || "x-trainhub-csrf"] = meta("csrf-token");
    return fetch(url, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
  }

  window.Trainhub = { duration: duration, now: now, post: post, refreshAges: refreshAges };
  document.addEventListener("DOMContentLoaded", () => {
    refreshAges();
    setInterval(refreshAges, 1000);
  });
})();
