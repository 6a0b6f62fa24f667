// Training: start a job from a form (event weights, time decay, algorithms), follow its
// progress and log live, cancel it.

import { api, enc } from "../api.js";
import { h, panel, table, fmt, badge, toast, act, errorBox, redraw } from "../ui.js";

const TYPES = ["view", "click", "like", "add_to_cart", "remove_from_cart", "purchase", "rating", "search"];
const ALGORITHMS = ["als", "item-knn", "ease", "transitions", "popularity"];
const EVERY_MS = 1000;

/** The request body from the form's values: only what was filled in (the rest: defaults). */
export function trainBody({ weights, timeDecay, algorithms, tolerance = "" }) {
  const config = {};
  const w = Object.fromEntries(Object.entries(weights).filter(([, v]) => v !== "").map(([k, v]) => [k, Number(v)]));
  if (Object.keys(w).length) config.weights = w;
  if (timeDecay !== "") config.timeDecay = Number(timeDecay);
  if (algorithms) config.algorithms = algorithms;
  if (tolerance !== "") config.tolerance = Number(tolerance);
  return { config };
}

export async function render(main) {
  main.append(h("h1", {}, "Training"));
  const status = await api("/api/v1/training/status");
  const last = status.current || status.lastFinished || status.queued[0];
  const defaults = last ? last.config : {};
  const weights = Object.fromEntries(
    TYPES.map((t) => [t, h("input", { id: `w-${t}`, type: "number", step: "any", min: -100, max: 100, value: defaults.weights?.[t] ?? "", placeholder: "default", size: 6 })])
  );
  const decay = h("input", { id: "time-decay", type: "number", step: "any", min: 0, max: 1, value: defaults.timeDecay ?? "", placeholder: "default", size: 6 });
  const tolerance = h("input", { id: "tolerance", type: "number", step: "any", min: 0, value: "", placeholder: String(defaults.tolerance ?? "default"), size: 6 });
  const chosen = new Set(defaults.algorithms || ALGORITHMS);
  const algos = Object.fromEntries(ALGORITHMS.map((a) => [a, h("input", { id: `a-${a}`, type: "checkbox", checked: chosen.has(a) })]));
  const start = h("button", { type: "submit", "data-testid": "start-training" }, "Start training");
  const form = h(
    "form",
    {
      "aria-label": "Start a training job",
      onsubmit: (ev) => {
        ev.preventDefault();
        act(start, async () => {
          const body = trainBody({
            weights: Object.fromEntries(TYPES.map((t) => [t, weights[t].value])),
            timeDecay: decay.value,
            algorithms: ALGORITHMS.filter((a) => algos[a].checked),
            tolerance: tolerance.value,
          });
          const r = await api("/api/v1/training/train", { method: "POST", body });
          toast(`job ${r.job.jobId} queued`);
          await poll();
        });
      },
    },
    h("fieldset", {}, h("legend", {}, "Event weights"), h("div", { class: "row" }, TYPES.map((t) => h("label", { for: `w-${t}` }, t, weights[t])))),
    h("fieldset", {}, h("legend", {}, "Algorithms"), h("div", { class: "row" }, ALGORITHMS.map((a) => h("label", { class: "inline", for: `a-${a}` }, algos[a], a)))),
    h(
      "div",
      { class: "row" },
      h("label", { for: "time-decay" }, "Time decay (0–1)", decay),
      h("label", { for: "tolerance", title: "how much worse than the active model on validation a new model may be and still be promoted" }, "Promotion tolerance", tolerance)
    ),
    h("div", { class: "actions" }, start)
  );
  const live = h("div", { "data-testid": "job" });
  const history = h("div");
  main.append(h("div", { class: "grid wide" }, panel("New job", form), panel("Running", live)), panel("Recent jobs", history));

  const cancel = (job) =>
    h("button", {
      class: "danger",
      "data-testid": `cancel-${job.jobId}`,
      onclick: (ev) =>
        act(ev.currentTarget, async () => {
          await api(`/api/v1/training/jobs/${enc(job.jobId)}/cancel`, { method: "POST" });
          toast(`cancelling ${job.jobId}`);
          await poll();
        }),
    }, "Cancel");

  async function poll() {
    try {
      const s = await api("/api/v1/training/status");
      const c = s.current;
      redraw(
        live,
        c
          ? h(
              "div",
              { dataset: { job: c.jobId, phase: c.phase } },
              h("p", {}, h("strong", {}, c.jobId), " ", badge(c.status), " ", badge(c.phase), " ", cancel(c)),
              h("div", { class: "progress", role: "progressbar", "aria-label": "progress", "aria-valuenow": Math.round(c.progress * 100), "aria-valuemin": 0, "aria-valuemax": 100 }, h("div", { style: { width: `${c.progress * 100}%` } })),
              h("pre", { class: "log", "aria-label": "log" }, c.log.join("\n"))
            )
          : h("p", { class: "muted" }, "No job running. Active model: ", h("strong", {}, s.activeModelVersion)),
        s.queued.length ? table(["queued", ""], s.queued.map((j) => [j.jobId, cancel(j)])) : null
      );
      const recent = s.recent || [];
      redraw(
        history,
        table(
          ["job", "status", "model", "started", "finished", "error"],
          recent.map((j) => h("tr", { dataset: { job: j.jobId, status: j.status } }, h("td", {}, j.jobId), h("td", {}, badge(j.status)), h("td", {}, j.modelVersion ? h("a", { href: "#/models" }, j.modelVersion) : "–"), h("td", {}, fmt.time(j.startedAt)), h("td", {}, fmt.time(j.finishedAt)), h("td", { class: "error" }, j.error || ""))),
          { testid: "jobs" }
        )
      );
    } catch (e) {
      live.replaceChildren(errorBox(e));
    }
  }
  await poll();
  const timer = setInterval(poll, EVERY_MS);
  return () => clearInterval(timer);
}
