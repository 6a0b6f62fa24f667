// Models: the registry with each version's metrics plotted over time, parameters of two
// versions side by side, and activate / rollback after confirmation.

import { api, enc } from "../api.js";
import { lineChart } from "../charts.js";
import { h, panel, table, fmt, badge, toast, act, confirmAction, errorBox } from "../ui.js";

/** Numeric leaves of a nested object as `a.b.c` → value. */
export function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, name, out);
    else out[name] = v;
  }
  return out;
}

/** Validation quality first (the candidate's, then the active model's), then the rest by name. */
export function byInterest(a, b) {
  const rank = (k) => (/candidate/.test(k) && /ndcg|hr@|recall|precision|map/i.test(k) ? 0 : /ndcg|hr@|recall|precision|map/i.test(k) ? 1 : 2);
  return rank(a) - rank(b) || a.localeCompare(b);
}

export async function render(main) {
  main.append(h("h1", {}, "Models"));
  const body = h("div");
  main.append(body);
  let chart = null;
  async function load() {
    let r;
    try {
      r = await api("/api/v1/training/models");
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const models = r.models;
    const rollback = h("button", {
      class: "quiet",
      "data-testid": "rollback",
      onclick: async (ev) => {
        const button = ev.currentTarget;
        if (!(await confirmAction("Return to the model that was active before the current one? Every list switches at once.", "Roll back"))) return;
        await act(button, async () => {
          const res = await api("/api/v1/training/rollback", { method: "POST" });
          toast(res.message || "rolled back");
          await load();
        });
      },
    }, "Roll back");
    const activate = (m) =>
      h("button", {
        class: "quiet",
        "data-testid": `activate-${m.version}`,
        onclick: async (ev) => {
          const button = ev.currentTarget;
          const force = m.status === "rejected" || m.status === "training" || m.status === "failed";
          if (!(await confirmAction(`Activate ${m.version}${force ? ` although it is ${m.status}` : ""}? Every list switches to it at once.`, "Activate"))) return;
          await act(button, async () => {
            await api(`/api/v1/training/models/${enc(m.version)}/activate${force ? "?force=true" : ""}`, { method: "POST" });
            toast(`${m.version} is active`);
            await load();
          });
        },
      }, "Activate");
    const metricNames = [...new Set(models.flatMap((m) => Object.entries(flatten(m.metrics)).filter(([, v]) => typeof v === "number").map(([k]) => k)))].sort(byInterest);
    const shown = metricNames.slice(0, 4);
    const rows = models.map((m) => {
      const metrics = flatten(m.metrics);
      return h(
        "tr",
        { dataset: { version: m.version, status: m.status } },
        h("td", {}, h("strong", {}, m.version)),
        h("td", {}, badge(m.status), m.statusReason ? h("div", { class: "muted" }, m.statusReason) : null),
        h("td", {}, m.algorithm),
        shown.map((k) => h("td", { class: "num" }, typeof metrics[k] === "number" ? (Number.isInteger(metrics[k]) ? fmt.int(metrics[k]) : fmt.num(metrics[k], 4)) : "–")),
        h("td", {}, `${fmt.int(m.dataRange[0])}–${fmt.int(m.dataRange[1])}`),
        h("td", {}, fmt.time(m.createdAt)),
        h("td", {}, m.status === "active" ? "" : activate(m))
      );
    });
    const plotBox = h("div", { class: "chart" });
    const pick = h("select", { id: "metric", "aria-label": "Metric" }, metricNames.map((k) => h("option", { value: k }, k)));
    const a = h("select", { id: "compare-a", "aria-label": "First version" }, models.map((m) => h("option", { value: m.version }, m.version)));
    const b = h("select", { id: "compare-b", "aria-label": "Second version" }, models.map((m) => h("option", { value: m.version }, m.version)));
    if (models.length > 1) b.value = models[1].version;
    const compared = h("div");
    const compare = () => {
      const [ma, mb] = [a.value, b.value].map((v) => models.find((m) => m.version === v));
      if (!ma || !mb) return compared.replaceChildren();
      const pa = flatten({ parameters: ma.parameters, metrics: ma.metrics });
      const pb = flatten({ parameters: mb.parameters, metrics: mb.metrics });
      const keys = [...new Set([...Object.keys(pa), ...Object.keys(pb)])].sort();
      const show = (v) => (v === undefined ? "–" : typeof v === "number" ? String(Math.round(v * 1e4) / 1e4) : JSON.stringify(v));
      compared.replaceChildren(
        table(["", ma.version, mb.version], keys.map((k) => h("tr", { class: show(pa[k]) !== show(pb[k]) ? "changed" : null }, h("td", {}, k), h("td", {}, show(pa[k])), h("td", {}, show(pb[k])))), { testid: "compare" })
      );
    };
    const plot = () => {
      if (chart) chart.destroy();
      chart = null;
      plotBox.replaceChildren();
      const k = pick.value;
      const points = models
        .map((m) => [Date.parse(m.createdAt) / 1000, flatten(m.metrics)[k]])
        .filter(([, v]) => typeof v === "number")
        .sort((x, y) => x[0] - y[0]);
      if (points.length === 0) return plotBox.append(h("p", { class: "muted" }, "No model has this metric."));
      chart = lineChart(plotBox, `${k} per version, by time trained`, points.map((p) => p[0]), [{ label: k, values: points.map((p) => p[1]) }]);
    };
    pick.addEventListener("change", plot);
    a.addEventListener("change", compare);
    b.addEventListener("change", compare);
    body.replaceChildren(
      h("p", {}, "Active: ", h("strong", { "data-testid": "active-version" }, r.activeVersion || "none"), " ", rollback),
      panel("Registry", table(["version", "status", "algorithm", ...shown, "events", "trained", ""], rows, { testid: "models" })),
      panel("Metrics over time", metricNames.length ? h("label", { for: "metric" }, "Metric", pick) : null, plotBox),
      panel("Side by side", h("div", { class: "row" }, h("label", { for: "compare-a" }, "Version", a), h("label", { for: "compare-b" }, "Version", b)), compared)
    );
    if (metricNames.length) plot();
    compare();
  }
  await load();
  return () => chart && chart.destroy();
}
