// Small DOM helpers shared by the pages: element building, tables, confirmation, toasts and
// number formats. No framework; every page builds its DOM with `h`.

/** `h("div", {class: "x", onclick}, child, "text", [more])`: an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the console's content security policy refuses inline style attributes.
    else if (k === "style") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A table with a header row; `rows` are arrays of cells (strings or nodes). */
export function table(headers, rows, { numeric = [], testid } = {}) {
  const num = new Set(numeric);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { "data-testid": testid },
      h("thead", {}, h("tr", {}, headers.map((t, i) => h("th", { class: num.has(i) ? "num" : null, scope: "col" }, t)))),
      h(
        "tbody",
        {},
        rows.length === 0
          ? h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing yet."))
          : rows.map((r) =>
              (r instanceof Node ? r : h("tr", {}, r.map((c, i) => h("td", { class: num.has(i) ? "num" : null }, c))))
            )
      )
    )
  );
}

export function panel(title, ...children) {
  return h("section", { class: "panel" }, title ? h("h2", {}, title) : null, ...children);
}

export function card(label, value, sub, testid) {
  return h(
    "div",
    { class: "card" },
    h("div", { class: "label" }, label),
    h("div", { class: "value", "data-testid": testid }, value),
    sub ? h("div", { class: "sub" }, sub) : null
  );
}

export const badge = (text) => h("span", { class: `badge ${String(text).toLowerCase()}` }, text);

/** Asks before something that changes what visitors see; resolves to true on "Confirm". */
export function confirmAction(text, okLabel = "Confirm") {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true })
  );
}

export function toast(message, bad = false) {
  const box = document.getElementById("toast");
  const item = h("div", { class: bad ? "bad" : "" }, message);
  box.append(item);
  setTimeout(() => item.remove(), bad ? 8000 : 4000);
}

/** Runs an action from a button: disables it meanwhile, reports failure as a toast. */
export async function act(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    toast(e.message, true);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export const fmt = {
  int: (n) => (n === undefined || n === null ? "–" : Math.round(n).toLocaleString("en")),
  num: (n, d = 2) => (n === undefined || n === null || !isFinite(n) ? "–" : Number(n).toFixed(d)),
  pct: (n, d = 1) => (n === undefined || n === null || !isFinite(n) ? "–" : `${(n * 100).toFixed(d)} %`),
  ms: (s) => (s === undefined || s === null || !isFinite(s) ? "–" : `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`),
  time: (t) => (t ? new Date(t).toLocaleString("en-GB") : "–"),
};

/**
 * `container.replaceChildren(...children)` for a part of the page that a poll redraws,
 * keeping the keyboard focus: if it was on an element inside that has an `id` or a
 * `data-testid`, the new element with the same one gets it back.
 */
export function redraw(container, ...children) {
  const was = document.activeElement;
  const inside = was && was !== container && container.contains(was);
  const key = !inside ? null : was.id ? `#${CSS.escape(was.id)}` : was.dataset.testid ? `[data-testid="${CSS.escape(was.dataset.testid)}"]` : null;
  container.replaceChildren(...children);
  if (key) container.querySelector(key)?.focus();
}

export const errorBox = (e) => h("p", { class: "error", role: "alert" }, e.message || String(e));
