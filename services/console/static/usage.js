// The usage page's charts: one per group, cost and requests per bucket, drawn with the vendored uPlot from the JSON
// the server put in the page (the same answer as /api/usage). Values only ever reach the chart as numbers.
(function () {
  "use strict";
  const source = document.getElementById("usage-data");
  if (!source || typeof uPlot === "undefined") return;
  const usage = JSON.parse(source.textContent);
  const sections = document.querySelectorAll(".usage-group");
  usage.groups.forEach(function (group, index) {
    const target = sections[index] && sections[index].querySelector(".usage-chart");
    if (!target) return;
    const times = group.buckets.map(function (b) { return Date.parse(b.start) / 1000; });
    const cost = group.buckets.map(function (b) { return Number(b.cost_usd); });
    const requests = group.buckets.map(function (b) { return Number(b.requests); });
    const options = {
      width: Math.max(320, Math.min(960, target.clientWidth || 960)),
      height: 180,
      scales: { x: { time: true }, usd: {}, n: {} },
      series: [
        {},
        { label: "cost (USD)", scale: "usd", stroke: "#b5422b", width: 2, value: function (u, v) { return v == null ? "—" : "$" + v.toFixed(6); } },
        { label: "requests", scale: "n", stroke: "#2b6cb5", width: 1 },
      ],
      axes: [{}, { scale: "usd", label: "USD" }, { scale: "n", side: 1, label: "requests", grid: { show: false } }],
    };
    new uPlot(options, [times, cost, requests], target);
  });
})();
