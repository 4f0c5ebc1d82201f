// Each blocker's value over the rollout's time (uPlot): the value, the target as a dashed line,
// and the phase changes (promotions, rollbacks) as vertical marks. Data from /api/plots/..., which
// asks Prometheus through the operator's own query code; refreshed as the rollout changes.
(function () {
  "use strict";
  const box = document.getElementById("plots");
  if (!box || !box.dataset.plots || !window.uPlot) return;
  const charts = {};
  let markers = [];

  function markerPlugin() {
    return {
      hooks: {
        draw: function (u) {
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#7b61ff";
          ctx.fillStyle = "#7b61ff";
          ctx.setLineDash([2, 3]);
          ctx.font = (10 * devicePixelRatio) + "px system-ui";
          markers.forEach(function (m, i) {
            const x = Math.round(u.valToPos(m.at, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            // Labels step down, so phase changes close together stay readable.
            ctx.fillText(m.label, x + 3, u.bbox.top + (10 + 11 * (i % 4)) * devicePixelRatio);
          });
          ctx.restore();
        },
      },
    };
  }

  function chart(p) {
    const key = p.gate + "/" + p.blocker;
    let el = box.querySelector('[data-plot="' + CSS.escape(key) + '"]');
    if (!el) {
      el = document.createElement("div");
      el.className = "plot";
      el.dataset.plot = key;
      el.dataset.blocker = p.blocker;
      const h = document.createElement("h3");
      h.innerHTML = "<span></span> <code></code>";
      h.querySelector("span").textContent = p.gate + " / " + p.blocker;
      h.querySelector("code").textContent = "target " + p.target;
      const q = document.createElement("div");
      q.className = "query";
      q.textContent = p.query;
      const note = document.createElement("div");
      note.className = "note dim";
      el.append(h, q, note);
      box.append(el);
    }
    el.dataset.points = String(p.points);
    el.querySelector(".note").textContent = p.note || "";
    const data = [p.times, p.values, p.targetLine];
    if (charts[key]) {
      charts[key].setData(data);
      return;
    }
    const opts = {
      width: Math.max(320, box.clientWidth - 24), height: 180,
      scales: { x: { time: true } },
      series: [
        {},
        { label: p.blocker, stroke: "#f2994a", width: 2, points: { show: true, size: 4 }, spanGaps: false },
        { label: "target", stroke: "#c62828", width: 1, dash: [6, 4], points: { show: false } },
      ],
      plugins: [markerPlugin()],
    };
    charts[key] = new uPlot(opts, data, el);
  }

  let busy = false;
  function refresh() {
    if (busy) return;
    busy = true;
    fetch(box.dataset.plots, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.error) { box.dataset.error = d.error; box.textContent = d.error; return; }
        markers = d.markers || [];
        (d.plots || []).forEach(chart);
        (d.problems || []).forEach(function (pr) {
          const p = document.createElement("p");
          p.className = "error";
          p.textContent = pr.gate + ": " + pr.note;
          box.append(p);
        });
        box.dataset.loaded = String(Number(box.dataset.loaded || 0) + 1);
      })
      .catch(function () {})
      .finally(function () { busy = false; });
  }
  refresh();
  setInterval(refresh, 10000);
  // A phase change redraws at once, so its mark appears with it.
  let lastMarkers = null;
  document.addEventListener("launchgate:update", function () {
    const s = document.querySelector("[data-markers]");
    const m = s ? s.dataset.markers : null;
    if (m !== lastMarkers) { lastMarkers = m; refresh(); }
  });
})();
