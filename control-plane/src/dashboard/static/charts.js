// wisp dashboard charts: every <div data-chart="ID"> is drawn with uPlot from the JSON in
// <script type="application/json" id="ID"> (data, never executed: the CSP allows no
// inline script). Data: {title, unit, x: [unix seconds, or steps with time: false],
// range: [min, max] of x (optional), series: [{label, values}]}.
(function () {
  "use strict";
  var palette = ["#0b57d0", "#a40e26", "#116329", "#7d4e00", "#6f42c1", "#0a7285", "#b35900", "#4f5863"];

  function draw(box) {
    var source = document.getElementById(box.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    if (!data.x || data.x.length === 0) return;
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: false,
        points: { show: data.x.length < 60 } });
      columns.push(s.values);
    });
    var width = Math.max(280, box.clientWidth || 600);
    var options = {
      width: width,
      height: 220,
      series: series,
      axes: [{}, { label: data.unit, size: 60 }],
      scales: { x: data.range
        ? { time: data.time !== false, range: function () { return [data.range[0], data.range[1]]; } }
        : { time: data.time !== false } },
      legend: { live: true },
    };
    box.textContent = "";
    box.setAttribute("data-drawn", "true");
    return new uPlot(options, columns, box);
  }

  function drawAll() {
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      if (box.getAttribute("data-drawn") !== "true") draw(box);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
  // Charts in fragments htmx swaps in later.
  document.addEventListener("htmx:afterSettle", drawAll);
})();
