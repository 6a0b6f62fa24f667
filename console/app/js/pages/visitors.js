// Visitor explorer: find a visitor; their event timeline; their current list with each item's
// source, reason and score; send a test event and watch the list change.

import { api, withQuery, enc } from "../api.js";
import { h, panel, table, fmt, badge, toast, act, errorBox } from "../ui.js";

const TYPES = ["view", "click", "like", "add_to_cart", "purchase"];

export async function render(main, id) {
  const input = h("input", { id: "visitor-id", name: "visitor", required: true, value: id || "", placeholder: "user-1", autocomplete: "off" });
  main.append(
    h("h1", {}, id ? `Visitor ${id}` : "Visitors"),
    h(
      "form",
      { class: "row panel", role: "search", onsubmit: (ev) => { ev.preventDefault(); location.hash = `#/visitors/${enc(input.value.trim())}`; } },
      h("label", { for: "visitor-id" }, "Visitor id", input),
      h("button", { type: "submit" }, "Open")
    )
  );
  if (!id) return known(main);
  return visitor(main, id);
}

/** The registered users, as links (visitors who only sent events are found by id). */
async function known(main) {
  const box = panel("Registered users");
  main.append(box);
  try {
    const r = await api(withQuery("/api/v1/users", { limit: 100 }));
    box.append(
      h("p", { class: "muted" }, `${fmt.int(r.total)} registered; any visitor id that sent events can be opened above.`),
      table(["id", "name", "since"], r.users.map((u) => [h("a", { href: `#/visitors/${enc(u.id)}` }, u.id), u.name || "", fmt.time(u.createdAt)]))
    );
  } catch (e) {
    box.append(errorBox(e));
  }
}

async function visitor(main, id) {
  const listBox = h("div", {}, h("p", { class: "muted" }, "…"));
  const timeline = h("div", {}, h("p", { class: "muted" }, "…"));
  const type = h("select", { id: "event-type", name: "activityType" }, TYPES.map((t) => h("option", { value: t }, t)));
  const product = h("input", { id: "event-product", name: "productId", required: true, list: "product-ids", autocomplete: "off", placeholder: "product-2" });
  const ids = h("datalist", { id: "product-ids" });
  const send = h("button", { type: "submit", "data-testid": "send-event" }, "Send event");
  let shown = [];

  async function loadList(highlight) {
    try {
      // a preview: looking from the console is not an impression of the visitor's
      const r = await api(withQuery(`/api/v1/recommendations/recommendations/${enc(id)}`, { limit: 10, preview: true }));
      const before = new Set(shown);
      shown = r.recommendations.map((x) => x.productId);
      const rows = r.recommendations.map((x, i) =>
        h(
          "tr",
          { class: highlight && !before.has(x.productId) ? "changed" : null, dataset: { product: x.productId } },
          h("td", { class: "num" }, i + 1),
          h("td", {}, h("a", { href: `#/products/${enc(x.productId)}` }, x.product ? x.product.name : x.productId), h("div", { class: "muted" }, x.productId)),
          h("td", {}, badge(x.reason)),
          h("td", {}, x.explanation || ""),
          h("td", { class: "num" }, fmt.num(x.score, 3))
        )
      );
      listBox.replaceChildren(
        h("p", { class: "muted" }, `model ${r.modelVersion} · variant ${r.variant} · ${r.fromCache ? "from cache" : "computed now"} · ${fmt.time(r.generatedAt)}`),
        table(["#", "product", "source", "reason", "score"], rows, { numeric: [0, 4], testid: "visitor-list" })
      );
    } catch (e) {
      listBox.replaceChildren(errorBox(e));
    }
  }

  async function loadTimeline() {
    try {
      const r = await api(withQuery(`/api/v1/recommendations/activity/${enc(id)}`, { limit: 50 }));
      timeline.replaceChildren(
        r.activities.length === 0
          ? h("p", { class: "muted" }, "No events yet.")
          : h(
              "ol",
              { class: "timeline", "data-testid": "timeline" },
              r.activities.map((a) =>
                h(
                  "li",
                  {},
                  h("time", { datetime: a.timestamp }, fmt.time(a.timestamp)),
                  h("span", {}, badge(a.activityType), " ", a.productId ? h("a", { href: `#/products/${enc(a.productId)}` }, a.productId) : a.metadata.query ? `“${a.metadata.query}”` : "")
                )
              )
            )
      );
    } catch (e) {
      timeline.replaceChildren(errorBox(e));
    }
  }

  const form = h(
    "form",
    {
      class: "row",
      "aria-label": "Send a test event",
      onsubmit: (ev) => {
        ev.preventDefault();
        act(send, async () => {
          const body = { userId: id, activityType: type.value, productId: product.value.trim(), metadata: { source: "console" } };
          await api("/api/v1/activity/track", { method: "POST", body });
          toast(`${type.value} of ${body.productId} stored`);
          await Promise.all([loadList(true), loadTimeline()]);
        });
      },
    },
    h("label", { for: "event-type" }, "Event", type),
    h("label", { for: "event-product" }, "Product", product, ids),
    send
  );

  main.append(
    h(
      "div",
      { class: "grid wide" },
      h("div", {}, panel("Current list", h("p", { class: "muted" }, "As the visitor would be served it; looking here logs no impression."), listBox), panel("Send a test event", h("p", { class: "muted" }, "Stored like any tracked event; the list below is recomputed."), form)),
      panel("Latest events", timeline)
    )
  );
  await Promise.all([loadList(false), loadTimeline()]);
  api(withQuery("/api/v1/catalog/products", { limit: 1000 }))
    .then((r) => ids.replaceChildren(...r.products.map((p) => h("option", { value: p.id }, p.name))))
    .catch(() => {});
}
