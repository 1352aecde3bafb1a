// Charts over the data each page already shows in its tables (progressive: without JavaScript
// the tables are the page). Each `.chart` element carries its data in `data-chart`.
(function () {
  "use strict";
  var palette = ["#2d5bd3", "#d3542d", "#2da35b", "#8a4bd3", "#d3a32d", "#2db8d3", "#777"];

  function width(el) { return Math.max(320, Math.min(el.clientWidth || 800, 900)); }

  function timeChart(el, spec) {
    // spec.series: {name: [[iso time, value], ...]} -> one line per name over the union of times
    var names = Object.keys(spec.series);
    var times = {};
    names.forEach(function (n) { spec.series[n].forEach(function (p) { times[Date.parse(p[0]) / 1000] = true; }); });
    var xs = Object.keys(times).map(Number).sort(function (a, b) { return a - b; });
    var data = [xs];
    names.forEach(function (n) {
      var at = {};
      spec.series[n].forEach(function (p) { at[Date.parse(p[0]) / 1000] = p[1]; });
      data.push(xs.map(function (x) { return x in at ? at[x] : null; }));
    });
    var series = [{}].concat(names.map(function (n, i) {
      return { label: n, stroke: palette[i % palette.length], width: 2, spanGaps: true, points: { show: true } };
    }));
    // one load (a new shop): uPlot would spread a lone time over years; show the day around it
    var scales = xs.length < 2 && xs.length ? { x: { time: true, range: function () { return [xs[0] - 43200, xs[0] + 43200]; } } } : {};
    new uPlot({ width: width(el), height: 220, series: series, scales: scales,
      // (wide enough for "100.0%": the default clipped the labels' first digits)
      axes: [{}, { size: 64, values: function (u, v) { return v.map(function (x) { return (100 * x).toFixed(1) + "%"; }); } }] }, data, el);
  }

  function whiskers(ci) {
    // a 95% interval per bar (spec.ci: [[lo, hi], ...]) drawn over it: a difference between two
    // variants reads as one only where their intervals do not overlap
    return function (u) {
      var c = u.ctx;
      c.save();
      c.strokeStyle = "#1d2330";
      c.lineWidth = 1.5 * devicePixelRatio;
      ci.forEach(function (b, i) {
        if (!b) { return; }
        var x = u.valToPos(i, "x", true), lo = u.valToPos(b[0], "y", true), hi = u.valToPos(b[1], "y", true);
        var cap = 6 * devicePixelRatio;
        c.beginPath();
        c.moveTo(x, lo); c.lineTo(x, hi);
        c.moveTo(x - cap, lo); c.lineTo(x + cap, lo);
        c.moveTo(x - cap, hi); c.lineTo(x + cap, hi);
        c.stroke();
      });
      c.restore();
    };
  }

  function barChart(el, spec) {
    var xs = spec.labels.map(function (_, i) { return i; });
    var bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 60] }) : undefined;
    var top = Math.max.apply(null, spec.values.concat((spec.ci || []).map(function (b) { return b ? b[1] : 0; })));
    new uPlot({ width: width(el), height: 220,
      hooks: spec.ci ? { draw: [whiskers(spec.ci)] } : {},
      // a bar's height is its value: the y axis starts at zero (uPlot would start it near the
      // smallest value, drawing 196 at an eighth of 330); it reaches the highest whisker
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] },
        y: { range: function (u, min, max) { var m = Math.max(max, top); return [Math.min(0, min), m > 0 ? m * 1.1 : 1]; } } },
      axes: [{ values: function (u, v) { return v.map(function (i) { return spec.labels[i] === undefined ? "" : String(spec.labels[i]).slice(0, 14); }); }, rotate: -30, size: 60 }, {}],
      series: [{}, { label: spec.label || "value", stroke: palette[0], fill: "rgba(45,91,211,0.35)", paths: bars, points: { show: false } }] },
      [xs, spec.values], el);
  }

  function draw() {
    if (typeof uPlot === "undefined") { return; }
    document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      el.dataset.drawn = "1";
      var spec = JSON.parse(el.dataset.chart);
      if (spec.kind === "time") { timeChart(el, spec); } else if (spec.kind === "bars" && spec.values.length) { barChart(el, spec); }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
