// Live page updates: one EventSource per page, fed by the server's API server watches. An
// "update" event carries the page's live part, rendered by the server; nothing is written back.
(function () {
  "use strict";
  function fmt(s) {
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d" + Math.floor(s % 86400 / 3600) + "h";
  }
  function ages() {
    const now = Date.now();
    document.querySelectorAll(".age[data-since]").forEach(function (el) {
      const t = Date.parse(el.dataset.since);
      if (!isNaN(t)) el.textContent = fmt(Math.max(0, Math.floor((now - t) / 1000)));
    });
  }
  ages();
  setInterval(ages, 1000);

  const live = document.querySelector("[data-live]");
  const dot = document.getElementById("live-state");
  if (!live || !window.EventSource) return;
  let updates = 0;
  const source = new EventSource(live.dataset.live);
  source.onopen = function () { dot.classList.add("on"); };
  source.onerror = function () { dot.classList.remove("on"); };  // EventSource reconnects by itself
  source.addEventListener("update", function (e) {
    live.innerHTML = e.data;
    updates += 1;
    document.body.dataset.updates = String(updates);
    ages();
    document.dispatchEvent(new CustomEvent("launchgate:update"));
  });
})();
