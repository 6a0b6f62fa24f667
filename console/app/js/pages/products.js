// Product explorer: search the catalogue; a product's details, how often it was shown and
// clicked, and its similar items; hide it or mark it out of stock (after confirmation), which
// takes it out of every list at once.

import { api, withQuery, enc } from "../api.js";
import { h, panel, card, table, fmt, badge, toast, act, confirmAction, errorBox } from "../ui.js";

const PAGE = 1000;

export async function render(main, id) {
  main.append(h("h1", {}, id ? `Product ${id}` : "Products"));
  return id ? product(main, id) : search(main);
}

async function search(main) {
  const text = h("input", { id: "product-search", type: "search", placeholder: "id, name or category", autocomplete: "off", maxlength: 512 });
  const category = h("input", { id: "product-category", placeholder: "any", autocomplete: "off" });
  const results = h("div", {}, h("p", { class: "muted" }, "…"));
  let offset = 0;
  let latest = 0; // the newest request: an older answer (or failure) arriving late is dropped
  let typing = null;
  async function load() {
    clearTimeout(typing); // a search asked for now replaces one still waiting for a pause
    const mine = ++latest;
    try {
      const q = text.value.trim();
      const r = await api(withQuery("/api/v1/catalog/products", { q, category: category.value.trim(), limit: PAGE, offset }));
      if (mine !== latest) return;
      const more = offset + r.products.length < r.total;
      results.replaceChildren(
        h(
          "p",
          { class: "muted", "data-testid": "products-found" },
          r.total === 0
            ? `No product${q ? `'s id, name or category contains “${q}”` : "s"}.`
            : `${fmt.int(r.total)} product${r.total === 1 ? "" : "s"}${q ? ` whose id, name or category contains “${q}”` : ""}; ${fmt.int(offset + 1)}–${fmt.int(offset + r.products.length)} shown.`
        ),
        table(
          ["product", "category", "price", "state"],
          r.products.map((p) => [h("a", { href: `#/products/${enc(p.id)}` }, p.name), p.category, p.price, state(p)]),
          { numeric: [2], testid: "products" }
        ),
        h(
          "div",
          { class: "actions" },
          offset > 0 ? h("button", { class: "quiet", onclick: () => { offset = Math.max(0, offset - PAGE); load(); } }, "Previous page") : null,
          more ? h("button", { class: "quiet", onclick: () => { offset += PAGE; load(); } }, "Next page") : null
        )
      );
    } catch (e) {
      if (mine === latest) results.replaceChildren(errorBox(e));
    }
  }
  main.append(
    h(
      "form",
      { class: "row panel", role: "search", onsubmit: (ev) => { ev.preventDefault(); offset = 0; load(); } },
      h("label", { for: "product-search" }, "Search", text),
      h("label", { for: "product-category" }, "Category", category),
      h("button", { type: "submit" }, "Search")
    ),
    panel("Catalogue", results)
  );
  // One search per pause in typing, not per keystroke.
  text.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { offset = 0; load(); }, 200);
  });
  await load();
}

const state = (p) => (p.hidden ? badge("hidden") : !p.inStock ? badge("out of stock") : badge("listed"));

async function product(main, id) {
  const details = h("div");
  const similar = h("div", {}, h("p", { class: "muted" }, "…"));
  const exposure = h("div", { class: "cards", "data-testid": "exposure" });
  const days = h("select", { id: "exposure-days", "aria-label": "Days" }, [1, 7, 30, 90].map((d) => h("option", { value: d, selected: d === 30 }, d === 1 ? "today" : `last ${d} days`)));
  days.addEventListener("change", () => shown());
  main.append(
    h("div", { class: "grid wide" }, panel("Product", details), h("div", {}, panel("Shown in lists", h("div", { class: "row" }, days), exposure), panel("Similar items", similar)))
  );

  async function shown() {
    try {
      const e = await api(withQuery(`/api/v1/catalog/products/${enc(id)}/exposure`, { days: days.value }));
      exposure.replaceChildren(
        card("Impressions", fmt.int(e.impressions), `since ${fmt.time(e.since)}`, "exposure-impressions"),
        card("Clicks", fmt.int(e.clicks), `CTR ${fmt.pct(e.ctr)}`, "exposure-clicks"),
        card("Add-to-carts", fmt.int(e.addToCarts), null, "exposure-carts"),
        card("Purchases", fmt.int(e.purchases), `revenue ${fmt.num(e.revenue)}`, "exposure-purchases")
      );
    } catch (e) {
      exposure.replaceChildren(errorBox(e));
    }
  }

  async function load() {
    let p;
    try {
      p = (await api(`/api/v1/catalog/products/${enc(id)}`)).product;
    } catch (e) {
      details.replaceChildren(errorBox(e));
      similar.replaceChildren();
      return;
    }
    const change = (label, patch, question) =>
      h("button", {
        class: patch.hidden || patch.inStock === false ? "danger" : "quiet",
        "data-testid": label.toLowerCase().replace(/\W+/g, "-"),
        onclick: async (ev) => {
          const button = ev.currentTarget;
          if (!(await confirmAction(question, label))) return;
          await act(button, async () => {
            await api(`/api/v1/catalog/products/${enc(id)}`, { method: "PATCH", body: patch });
            toast(`${p.name}: ${label.toLowerCase()}`);
            await load();
          });
        },
      }, label);
    details.replaceChildren(
      h("h2", {}, p.name, " ", state(p)),
      table(
        ["field", "value"],
        [
          ["id", p.id],
          ["category", p.category],
          ["price", p.price],
          ["in stock", p.inStock ? "yes" : "no"],
          ["hidden", p.hidden ? "yes" : "no"],
          ["attributes", h("code", {}, JSON.stringify(p.attributes))],
          ["created", fmt.time(p.createdAt)],
          ["updated", fmt.time(p.updatedAt)],
        ]
      ),
      h(
        "div",
        { class: "actions" },
        p.hidden
          ? change("Show again", { hidden: false }, `Put ${p.name} back into visitors' lists?`)
          : change("Hide", { hidden: true }, `Hide ${p.name}? It leaves every visitor's list at once.`),
        p.inStock
          ? change("Mark out of stock", { inStock: false }, `Mark ${p.name} out of stock? It leaves every list at once.`)
          : change("Back in stock", { inStock: true }, `Mark ${p.name} in stock again?`)
      )
    );
    try {
      const r = await api(withQuery(`/api/v1/recommendations/similar/${enc(id)}`, { limit: 10 }));
      similar.replaceChildren(
        table(
          ["product", "source", "reason", "score"],
          r.recommendations.map((x) => [h("a", { href: `#/products/${enc(x.productId)}` }, x.product ? x.product.name : x.productId), badge(x.reason), x.explanation || "", fmt.num(x.score, 3)]),
          { numeric: [3], testid: "similar" }
        )
      );
    } catch (e) {
      similar.replaceChildren(errorBox(e));
    }
  }
  await Promise.all([load(), shown()]);
}
