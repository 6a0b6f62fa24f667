// Overview: live traffic from /metrics (events/s by type, lists/s, latency, cache hit rate,
// errors), with the totals as /metrics states them, and the active model and running job.

import { api } from "../api.js";
import { parseMetrics, totals, rates } from "../metrics.js";
import { liveChart } from "../charts.js";
import { h, panel, card, fmt, badge, errorBox } from "../ui.js";

const EVERY_MS = 2000;

export async function render(main) {
  const cards = h("div", { class: "cards", "data-testid": "overview-cards" });
  const byType = h("div", { "data-testid": "events-by-type" });
  const job = h("div", {}, h("p", { class: "muted" }, "…"));
  const charts = {
    events: h("div", { class: "chart" }),
    lists: h("div", { class: "chart" }),
    latency: h("div", { class: "chart" }),
    errors: h("div", { class: "chart" }),
  };
  const problem = h("div");
  main.append(
    h("h1", {}, "Overview"),
    problem,
    cards,
    h(
      "div",
      { class: "grid wide" },
      panel("Events per second", charts.events),
      panel("Lists per second and cache hit rate", charts.lists),
      panel("Request latency of each interval (p50, p99)", charts.latency),
      panel("Errors per second (5xx) and refusals (4xx)", charts.errors)
    ),
    h("div", { class: "grid wide" }, panel("Events stored, by type", byType), panel("Model and training", job))
  );

  let types = [];
  let eventsChart = null;
  const listsChart = liveChart(charts.lists, "", ["lists/s", "cache hit rate"]);
  const latencyChart = liveChart(charts.latency, "", ["p50", "p99"], { unit: " ms" });
  const errorsChart = liveChart(charts.errors, "", ["5xx/s", "4xx/s"]);
  let last = null;

  async function tick() {
    try {
      const now = Date.now() / 1000;
      const t = totals(parseMetrics(await api("/metrics", { text: true })));
      const r = last ? rates(last.t, t, now - last.at) : null;
      const rejectedRate = last ? Math.max(0, (t.rejected - last.t.rejected) / (now - last.at)) : 0;
      last = { t, at: now };
      problem.replaceChildren();
      cards.replaceChildren(
        card("Events stored", fmt.int(t.eventsTotal), "since start", "events-total"),
        card("Lists served", fmt.int(t.lists), `${fmt.int(t.hits)} from cache`, "lists-total"),
        card("Cache hit rate", fmt.pct(t.hitRate), "since start", "cache-hit-rate"),
        card("Latency p50 / p99", `${fmt.ms(t.latency.p50)} / ${fmt.ms(t.latency.p99)}`, "all routes, since start", "latency"),
        card("Server errors", fmt.int(t.errors), `${fmt.int(t.rejected)} refused (4xx)`, "errors-total"),
        card("Online visitors", fmt.int(t.onlineVisitors), "in memory", "online-visitors")
      );
      const names = Object.keys(t.events).sort();
      byType.replaceChildren(
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", {}, "type"), h("th", { class: "num" }, "stored"), h("th", { class: "num" }, "per second"))),
          h(
            "tbody",
            {},
            names.map((n) =>
              h(
                "tr",
                { dataset: { type: n } },
                h("td", {}, n),
                h("td", { class: "num", "data-testid": `events-${n}` }, fmt.int(t.events[n])),
                h("td", { class: "num" }, r ? fmt.num(r.events[n] || 0) : "–")
              )
            )
          )
        )
      );
      if (names.join() !== types.join()) {
        types = names;
        if (eventsChart) eventsChart.destroy();
        charts.events.replaceChildren();
        eventsChart = liveChart(charts.events, "", names.length ? names : ["events"]);
      }
      if (r) {
        eventsChart.push(now, types.map((n) => r.events[n] || 0));
        listsChart.push(now, [r.lists, r.hitRate]);
        // The requests of the last interval, not since start: a slow minute shows at once.
        const ms = (seconds) => (seconds == null ? null : seconds * 1000); // no request: a gap
        latencyChart.push(now, [ms(r.latency.p50), ms(r.latency.p99)]);
        errorsChart.push(now, [r.errors, rejectedRate]);
      }
      const status = await api("/api/v1/training/status");
      const current = status.current;
      job.replaceChildren(
        h("p", {}, "Active model: ", h("strong", { "data-testid": "active-model" }, status.activeModelVersion || "none"), " · ", h("a", { href: "#/models" }, "registry")),
        current
          ? h(
              "div",
              {},
              h("p", {}, "Running job ", h("strong", {}, current.jobId), " ", badge(current.phase)),
              h("div", { class: "progress", role: "progressbar", "aria-valuenow": Math.round(current.progress * 100), "aria-valuemin": 0, "aria-valuemax": 100 }, h("div", { style: { width: `${current.progress * 100}%` } }))
            )
          : h("p", { class: "muted" }, status.queued.length ? `${status.queued.length} job(s) queued` : "No job running. ", h("a", { href: "#/training" }, "Start one"))
      );
    } catch (e) {
      problem.replaceChildren(errorBox(e));
    }
  }
  await tick();
  // A second reading soon after the first, so the charts have a rate to draw at once.
  const soon = setTimeout(tick, 500);
  const timer = setInterval(tick, EVERY_MS);
  return () => {
    clearTimeout(soon);
    clearInterval(timer);
    [eventsChart, listsChart, latencyChart, errorsChart].forEach((c) => c && c.destroy());
  };
}
