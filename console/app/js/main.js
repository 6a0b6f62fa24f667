// The console's shell: sign-in, the page router (`#/page/argument`) and the menu. Each page
// module exports `render(main, arg)`, which may return a function that stops its timers.

import { api, ApiError, key, setKey } from "./api.js";
import { h, errorBox } from "./ui.js";
import * as overview from "./pages/overview.js";
import * as visitors from "./pages/visitors.js";
import * as products from "./pages/products.js";
import * as models from "./pages/models.js";
import * as training from "./pages/training.js";
import * as experiments from "./pages/experiments.js";

const pages = { overview, visitors, products, models, training, experiments };
const main = document.getElementById("main");
let stop = null;
// Each navigation's number: a page that finishes rendering after the next navigation began
// is stopped at once and its content dropped.
let navigation = 0;
let signingIn = false;

/** Whether the API answers this browser: no keys yet (the demo), or a signed-in admin key. */
async function signedIn() {
  try {
    await api("/api/v1/keys", { quiet: true });
    return true;
  } catch (e) {
    // 403 without a key: a keyless server refusing a non-local address; its message says so.
    if (e instanceof ApiError && (e.status === 401 || (e.status === 403 && key()))) return false;
    throw e;
  }
}

function signInPage(message) {
  if (stop) stop();
  stop = null;
  navigation += 1;
  signingIn = true;
  const input = h("input", { id: "key", type: "password", autocomplete: "off", required: true, size: 40 });
  const status = h("p", { class: "error", role: "alert" }, message || "");
  const form = h(
    "form",
    {
      class: "panel",
      "aria-labelledby": "sign-in-title",
      onsubmit: async (ev) => {
        ev.preventDefault();
        setKey(input.value.trim());
        status.textContent = "";
        try {
          if (await signedIn()) {
            signingIn = false;
            return route();
          }
          status.textContent = "That key is unknown, revoked, or not an admin key.";
        } catch (e) {
          status.textContent = e.message;
        }
        setKey(null);
        input.focus();
      },
    },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", { class: "muted" }, "This server has API keys. Sign in with an admin key (vitrina keys create --scope admin); it is kept for this tab only."),
    h("label", { for: "key" }, "Admin key", input),
    status,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in"))
  );
  main.replaceChildren(form);
  input.focus();
}

async function route() {
  // Only `#/page/...` hashes are pages (the skip link's `#main` is not).
  if (location.hash && !location.hash.startsWith("#/")) return;
  if (stop) stop();
  stop = null;
  const mine = ++navigation;
  const [, name = "overview", ...rest] = (location.hash || "#/overview").split("/");
  const page = pages[name] ? name : "overview";
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.getElementById("nav").classList.remove("open");
  document.getElementById("menu").setAttribute("aria-expanded", "false");
  document.getElementById("sign-out").hidden = !key();
  try {
    const ok = await signedIn();
    if (mine !== navigation) return;
    if (!ok) return signInPage(key() ? "That key no longer works; sign in again." : "");
    signingIn = false;
    // Each page renders into a container of its own, shown only while it is current.
    const view = document.createElement("div");
    main.replaceChildren(view);
    document.title = `${page[0].toUpperCase()}${page.slice(1)} · Vitrina Console`;
    const done = (await pages[page].render(view, rest.map(decodeURIComponent).join("/"))) || null;
    if (mine !== navigation) {
      if (done) done();
      return;
    }
    stop = done;
  } catch (e) {
    if (mine === navigation) main.replaceChildren(errorBox(e));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("vitrina:unauthorized", () => {
  // Once: the page's polls stop here, and the sign-in form is not rebuilt under the typist.
  if (!signingIn) signInPage("The server asked for a key.");
});
document.getElementById("skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  main.focus();
});
document.getElementById("menu").addEventListener("click", (ev) => {
  const open = document.getElementById("nav").classList.toggle("open");
  ev.currentTarget.setAttribute("aria-expanded", String(open));
});
document.getElementById("sign-out").addEventListener("click", () => {
  setKey(null);
  route();
});
route();
