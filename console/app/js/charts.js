// Time-series charts through uPlot (vendored in vendor/, loaded before the modules).

/** A live line chart: `push(t, values)` appends a point per series and keeps the last `keep`. */
export function liveChart(container, title, seriesNames, { keep = 150, unit = "" } = {}) {
  const data = [[], ...seriesNames.map(() => [])];
  const colors = ["#3454d1", "#1a7f4b", "#c0362c", "#a66300", "#7a3fc0", "#0f8a9d", "#555"];
  const width = () => Math.max(260, container.clientWidth - 4);
  const plot = new window.uPlot(
    {
      title,
      width: width(),
      height: 200,
      series: [
        {},
        ...seriesNames.map((label, i) => ({ label, stroke: colors[i % colors.length], width: 2, value: (u, v) => (v == null ? "–" : `${v.toFixed(2)}${unit}`) })),
      ],
      axes: [{}, { size: 56 }],
      scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    },
    data,
    container
  );
  const resize = () => plot.setSize({ width: width(), height: 200 });
  window.addEventListener("resize", resize);
  return {
    push(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v));
      if (data[0].length > keep) data.forEach((s) => s.shift());
      plot.setData(data);
      container.dataset.points = String(data[0].length);
    },
    destroy() {
      window.removeEventListener("resize", resize);
      plot.destroy();
    },
  };
}

/** A static line chart of `xs` (seconds) against named series, e.g. a metric per model version. */
export function lineChart(container, title, xs, series) {
  const colors = ["#3454d1", "#1a7f4b", "#c0362c", "#a66300", "#7a3fc0", "#0f8a9d"];
  return new window.uPlot(
    {
      title,
      width: Math.max(260, container.clientWidth - 4),
      height: 220,
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, points: { show: true, size: 7 } }))],
      axes: [{}, { size: 60 }],
    },
    [xs, ...series.map((s) => s.values)],
    container
  );
}
