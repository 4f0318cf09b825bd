/* rhip charts: each element with data-chart="<kind>" is drawn from the page's JSON
   (<script type="application/json" id="chart-data">) with the locally served ECharts. */
(function () {
  "use strict";
  var FONT = '"Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif';
  var dataEl = document.getElementById("chart-data");
  if (!dataEl || !window.echarts) { return; }
  var D = JSON.parse(dataEl.textContent);
  var wall = document.body.classList.contains("wall");
  var ink = wall ? "#e8eef5" : "#1d2733";
  var base = { animation: false, textStyle: { fontFamily: FONT, color: ink },
    grid: { left: 50, right: 20, top: 40, bottom: 40, containLabel: true },
    tooltip: { trigger: "axis" }, legend: { top: 0, textStyle: { color: ink } } };

  function merge(extra) { return Object.assign({}, base, extra); }

  var builders = {
    daily: function (d) {
      var series = [
        { name: d.labels.lab, type: "bar", stack: "r", data: d.lab },
        { name: d.labels.exam, type: "bar", stack: "r", data: d.exam }];
      if (d.views) { series.push({ name: d.labels.views, type: "line", data: d.views }); }
      return merge({ xAxis: { type: "category", data: d.days }, yAxis: { type: "value" }, series: series });
    },
    types: function (d) {
      return merge({ xAxis: { type: "category", data: d.names, axisLabel: { interval: 0, rotate: 20 } },
        yAxis: { type: "log", min: 1 },
        series: [{ name: d.labels.total, type: "bar", data: d.total },
                 { name: d.labels.connected, type: "bar", data: d.connected }] });
    },
    quality: function (d) {
      return merge({ grid: { left: 10, right: 30, top: 10, bottom: 20, containLabel: true },
        legend: { show: false }, xAxis: { type: "value", min: d.min, max: 100 },
        yAxis: { type: "category", data: d.names, inverse: true, axisLabel: { width: 220, overflow: "truncate" } },
        series: [{ type: "bar", data: d.rates, label: { show: true, position: "right", formatter: "{c}%" } }] });
    },
    trend: function (d) {
      return merge({ tooltip: { trigger: "item" }, xAxis: { type: "time" },
        yAxis: { type: "value", name: d.unit, scale: true },
        series: d.series.map(function (s) {
          return { name: s.name, type: "line", data: s.points, symbolSize: 8,
            markArea: d.low !== null && d.high !== null ? { silent: true, itemStyle: { color: "rgba(26,127,75,0.08)" },
              data: [[{ yAxis: d.low }, { yAxis: d.high }]] } : undefined };
        }) });
    },
    indexBar: function (d) {
      return merge({ legend: { show: false }, grid: { left: 10, right: 20, top: 10, bottom: 10, containLabel: true },
        xAxis: { type: "value" }, yAxis: { type: "category", data: d.names, inverse: true },
        series: [{ type: "bar", data: d.scores }] });
    },
    radar: function (d) {
      var unit = d.units[d.selected] || d.units[0];
      return merge({ tooltip: {}, radar: { indicator: d.axes.map(function (a) { return { name: a, max: d.max, min: d.min }; }) },
        series: [{ type: "radar", data: [{ name: unit.name, value: unit.radar, areaStyle: { opacity: 0.2 } },
                                        { name: d.medianLabel, value: d.median }] }] });
    },
    intervals: function (d) {
      return merge({ legend: { show: false }, grid: { left: 10, right: 20, top: 10, bottom: 10, containLabel: true },
        xAxis: { type: "value", min: 1, inverse: false }, yAxis: { type: "category", data: d.names, inverse: true },
        series: [{ type: "bar", stack: "i", data: d.low, itemStyle: { color: "transparent" } },
                 { type: "bar", stack: "i", data: d.span },
                 { type: "scatter", data: d.nominal, symbolSize: 7 }] });
    }
  };

  var charts = {};
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var kind = el.getAttribute("data-chart");
    var key = el.getAttribute("data-key") || kind;
    if (!builders[kind] || !D[key]) { return; }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption(builders[kind](D[key]));
    charts[key] = chart;
  });
  var pick = document.getElementById("radar-unit");
  if (pick && charts.radar) {
    pick.addEventListener("change", function () {
      D.radar.selected = Number(pick.value);
      charts.radar.setOption(builders.radar(D.radar), true);
    });
  }
  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (k) { charts[k].resize(); });
  });
  window.rhipCharts = charts;
  document.body.setAttribute("data-charts-ready", String(Object.keys(charts).length));
})();
