// Experiments: create one with variants; start, stop, step and revert it; results per variant
// with their 95 % intervals drawn; traffic allocation over time; the bandit and weight-tuning
// history.

import { api, enc } from "../api.js";
import { lineChart } from "../charts.js";
import { h, panel, table, fmt, badge, toast, act, confirmAction, errorBox, redraw } from "../ui.js";

const GOALS = ["ctr", "add_to_cart_rate", "conversion_rate", "revenue_per_mille"];
const RATE = { ctr: "ctr", add_to_cart_rate: "addToCartRate", conversion_rate: "conversionRate", revenue_per_mille: "revenuePerMille" };

export async function render(main, id) {
  main.append(h("h1", {}, id ? "Experiment" : "Experiments"));
  return id ? detail(main, id) : list(main);
}

/** The create request from the form's rows; throws with a readable message on bad JSON. */
export function createBody({ name, goal, mode, variants }) {
  return {
    name,
    goal,
    mode,
    variants: variants.map((v, i) => {
      const out = { name: v.name };
      if (v.traffic !== "") out.traffic = Number(v.traffic);
      if (v.modelVersion !== "") {
        out.modelVersion = Number(String(v.modelVersion).replace(/^v/, ""));
        if (!Number.isInteger(out.modelVersion)) throw new Error(`variant ${i + 1}: the model version is a number like 3 or v3, not “${v.modelVersion}”`);
      }
      if (v.ranking.trim() !== "") {
        try {
          out.ranking = JSON.parse(v.ranking);
        } catch (e) {
          throw new Error(`variant ${i + 1}: the ranking is not JSON (${e.message})`);
        }
      }
      return out;
    }),
  };
}

async function list(main) {
  const box = h("div");
  const name = h("input", { id: "exp-name", required: true, autocomplete: "off", placeholder: "trending-boost" });
  const goal = h("select", { id: "exp-goal" }, GOALS.map((g) => h("option", { value: g }, g)));
  const mode = h("select", { id: "exp-mode" }, ["fixed", "bandit"].map((m) => h("option", { value: m }, m)));
  const rows = h("div", { "data-testid": "variants" });
  const addVariant = (preset = {}) => {
    const n = rows.children.length + 1;
    const field = (key, label, attrs) => h("label", {}, label, h("input", { name: key, autocomplete: "off", ...attrs }));
    rows.append(
      h(
        "fieldset",
        { class: "row" },
        h("legend", {}, `Variant ${n}`),
        field("name", "Name", { required: true, value: preset.name || "" }),
        field("traffic", "Traffic share", { type: "number", step: "any", min: 0, value: preset.traffic ?? "", placeholder: "even", size: 6 }),
        field("modelVersion", "Model version", { placeholder: "active", size: 8 }),
        field("ranking", "Ranking (JSON)", { placeholder: '{"weights":{"trending":2}}', size: 28, value: preset.ranking || "" })
      )
    );
  };
  addVariant({ name: "control" });
  addVariant({ name: "trending", ranking: '{"weights":{"trending":2}}' });
  const create = h("button", { type: "submit", "data-testid": "create-experiment" }, "Create");
  const form = h(
    "form",
    {
      "aria-label": "Create an experiment",
      onsubmit: (ev) => {
        ev.preventDefault();
        act(create, async () => {
          const variants = [...rows.children].map((fs) => Object.fromEntries([...fs.querySelectorAll("input")].map((i) => [i.name, i.value.trim()])));
          const r = await api("/api/v1/experiments", { method: "POST", body: createBody({ name: name.value.trim(), goal: goal.value, mode: mode.value, variants }) });
          const created = r.experiment || r;
          toast(`experiment ${created.id} created`);
          location.hash = `#/experiments/${enc(created.id)}`;
        });
      },
    },
    h("div", { class: "row" }, h("label", { for: "exp-name" }, "Name", name), h("label", { for: "exp-goal" }, "Goal", goal), h("label", { for: "exp-mode" }, "Mode", mode)),
    rows,
    h("div", { class: "actions" }, h("button", { type: "button", class: "quiet", onclick: () => addVariant() }, "Add variant"), create)
  );
  main.append(panel("Experiments", box), panel("New experiment", form));
  try {
    const r = await api("/api/v1/experiments");
    box.append(
      table(
        ["name", "status", "mode", "goal", "variants", "created"],
        r.experiments.map((x) => [h("a", { href: `#/experiments/${enc(x.id)}` }, x.name), badge(x.status), x.mode, x.goal, x.variants.map((v) => v.name).join(", "), fmt.time(x.createdAt)]),
        { testid: "experiments" }
      )
    );
  } catch (e) {
    box.append(errorBox(e));
  }
}

async function detail(main, id) {
  const body = h("div");
  let chart = null;
  main.append(body);
  async function load() {
    let x;
    let results = null;
    try {
      const r = await api(`/api/v1/experiments/${enc(id)}`);
      x = r.experiment || r;
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    let resultsError = null;
    try {
      results = await api(`/api/v1/experiments/${enc(id)}/results`);
      results = results.results || results;
    } catch (e) {
      resultsError = e;
    }
    const action = (label, path, question) =>
      h("button", {
        class: question ? "danger" : "quiet",
        "data-testid": `exp-${path}`,
        onclick: async (ev) => {
          const button = ev.currentTarget;
          if (question && !(await confirmAction(question, label))) return;
          await act(button, async () => {
            await api(`/api/v1/experiments/${enc(id)}/${path}`, { method: "POST" });
            toast(`${x.name}: ${label.toLowerCase()}`);
            await load();
          });
        },
      }, label);
    const buttons = [];
    if (x.status === "draft") buttons.push(action("Start", "start"));
    if (x.status === "running") {
      buttons.push(action("Stop", "stop", `Stop ${x.name}? Every visitor returns to the default lists.`));
      buttons.push(action("Step now", "step"));
    }
    const weightLog = x.weightLog || [];
    if (x.allocationLog.length > 1 || weightLog.length > 0) buttons.push(action("Revert automation", "revert", `Undo the bandit and weight-tuning changes of ${x.name}?`));
    const allocation = h("div", { class: "chart" });
    redraw(
      body,
      h("h2", {}, x.name, " ", h("span", { "data-testid": "exp-status" }, badge(x.status))),
      h("p", { class: "muted" }, `goal ${x.goal} · ${x.mode} · control ${x.control} · created ${fmt.time(x.createdAt)}${x.startedAt ? ` · started ${fmt.time(x.startedAt)}` : ""}`),
      h("div", { class: "actions", style: { justifyContent: "flex-start" } }, buttons),
      panel("Results", resultsError ? errorBox(resultsError) : resultsView(x, results)),
      h(
        "div",
        { class: "grid wide" },
        panel("Traffic allocation over time", allocation),
        panel(
          "Bandit and weight-tuning history",
          table(["when", "traffic", "why"], [...x.allocationLog].reverse().map((c) => [fmt.time(c.at), c.traffic.map((t, i) => `${x.variants[i]?.name ?? i}: ${fmt.pct(t, 0)}`).join(", "), c.reason]), { testid: "allocation-log" }),
          x.autoTuneWeights || weightLog.length
            ? table(
                ["when", "variant", "source weights (before → after)", "why"],
                [...weightLog].reverse().map((w) => [fmt.time(w.at), w.variant, weightChanges(w.before, w.after), w.reason]),
                { testid: "weight-log" }
              )
            : null
        )
      )
    );
    if (chart) chart.destroy();
    chart = allocationChart(allocation, x);
  }
  await load();
  const timer = setInterval(() => {
    if (!document.querySelector("dialog[open]")) load();
  }, 5000);
  return () => {
    clearInterval(timer);
    if (chart) chart.destroy();
  };
}

function resultsView(x, r) {
  const goalKey = RATE[r.goal] || "ctr";
  const rows = r.variants.map((v) => {
    const m = v.metrics;
    const c = v.vsControl;
    return h(
      "tr",
      { dataset: { variant: v.name } },
      h("td", {}, h("strong", {}, v.name)),
      h("td", { class: "num" }, fmt.pct(v.traffic, 0)),
      h("td", { class: "num", "data-testid": `lists-${v.name}` }, fmt.int(v.lists)),
      h("td", { class: "num", "data-testid": `impressions-${v.name}` }, fmt.int(m.impressions)),
      h("td", { class: "num" }, fmt.int(m.clicks)),
      h("td", { class: "num" }, rate(m.ctr)),
      h("td", { class: "num" }, rate(m.addToCartRate)),
      h("td", { class: "num" }, rate(m.conversionRate)),
      h("td", { class: "num" }, fmt.num(m.revenuePerMille.value)),
      h("td", { class: "num" }, c ? fmt.num(c.pValue, 3) : "control"),
      h("td", { class: "num" }, c ? fmt.pct(c.probabilityToBeatControl, 0) : "")
    );
  });
  return h(
    "div",
    {},
    table(["variant", "traffic", "lists", "impressions", "clicks", "CTR", "add-to-cart", "conversion", "revenue / 1000", "p (vs control)", "P(beat control)"], rows, { numeric: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], testid: "results" }),
    h("h3", {}, `${r.goal} per variant, with 95 % intervals`),
    intervals(r.variants.map((v) => ({ name: v.name, ...v.metrics[goalKey] })), r.goal === "revenue_per_mille")
  );
}

/** `source: before → after` for every source whose weight changed. */
export function weightChanges(before = {}, after = {}) {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .sort()
    .filter((k) => before[k] !== after[k])
    .map((k) => `${k}: ${before[k] ?? "–"} → ${after[k] ?? "–"}`)
    .join(", ");
}

const rate = (r) => (r ? `${fmt.pct(r.value)} [${fmt.pct(r.low)}, ${fmt.pct(r.high)}]` : "–");

/** Each variant's estimate as a dot on a bar spanning its interval (SVG, no library). */
export function intervals(rows, money) {
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const max = Math.max(1e-9, ...rows.map((r) => (isFinite(r.high) ? r.high : r.value || 0)));
  const W = 560;
  const left = 120;
  const rowH = 30;
  const svg = el("svg", { class: "intervals", viewBox: `0 0 ${W} ${rows.length * rowH + 24}`, width: "100%", role: "img", "aria-label": "estimates with 95 % intervals" });
  const x = (v) => left + ((W - left - 70) * Math.max(0, v)) / max;
  rows.forEach((r, i) => {
    const y = 14 + i * rowH;
    const show = money ? fmt.num(r.value) : fmt.pct(r.value);
    svg.append(el("text", { x: 0, y: y + 4 }, r.name));
    if (isFinite(r.low) && isFinite(r.high)) svg.append(el("line", { x1: x(r.low), x2: x(r.high), y1: y, y2: y, stroke: "#3454d1", "stroke-width": 4, "stroke-linecap": "round" }));
    svg.append(el("circle", { cx: x(r.value || 0), cy: y, r: 5, fill: "#161b2e" }));
    svg.append(el("text", { x: W - 64, y: y + 4 }, show));
  });
  return svg;
}

/** Each variant's share as a step line from the allocation log to now. */
function allocationChart(container, x) {
  const log = x.allocationLog;
  if (log.length === 0) {
    container.append(h("p", { class: "muted" }, "No allocation yet."));
    return null;
  }
  const times = log.map((c) => Date.parse(c.at) / 1000);
  times.push(Date.now() / 1000);
  const series = x.variants.map((v, i) => ({ label: v.name, values: [...log.map((c) => c.traffic[i] ?? 0), (x.traffic[i] ?? 0)] }));
  return lineChart(container, "", times, series);
}
