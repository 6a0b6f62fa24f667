// The console in headless Chromium (Debian's chromium, driven by playwright-core) against a
// live `vitrina serve` with the demo shop. Each test drives the pages as a person would and
// checks the outcome through the API itself. Screenshots of every page go to
// VITRINA_CONSOLE_SCREENSHOTS (default: target/console-screenshots).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { call, startServer } from "./server.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const SHOTS = resolve(ROOT, process.env.VITRINA_CONSOLE_SCREENSHOTS ?? join("target", "console-screenshots"));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Generous: a debug build on a busy two-core machine. Waits end as soon as the page shows it.
const WAIT = 60_000;

let server;
let browser;
let page;
const problems = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await newPage({ width: 1280, height: 800 });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A page that records every console error and failed request, which the last test checks. */
async function newPage(viewport, { signingIn = false } = {}) {
  const p = await browser.newPage({ viewport });
  p.setDefaultTimeout(WAIT);
  // Signing in, a 401 or 403 is how the page learns that a key is needed or wrong.
  const expected = (text) => signingIn && /status of 40[13]/.test(text);
  p.on("console", (m) => m.type() === "error" && !expected(m.text()) && problems.push(`console: ${m.text()}`));
  p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // A fetch cut short by the test's own navigation (ERR_ABORTED) is not a failure of the page.
  p.on("requestfailed", (r) => r.failure()?.errorText !== "net::ERR_ABORTED" && problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  p.on("request", (r) => !r.url().startsWith(server.base) && !r.url().startsWith("data:") && problems.push(`request elsewhere: ${r.url()}`));
  return p;
}

const open = (hash) => page.goto(`${server.base}/console/${hash}`);
async function shot(name, p = page) {
  // Without the toasts of earlier steps, which would cover the page.
  await p.evaluate(() => document.getElementById("toast").replaceChildren());
  await p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Metric samples from /metrics, read here with a pattern independent of the console's parser. */
async function metric(name, labels = {}) {
  const text = await call(server.base, "/metrics");
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.trim().split(/\s+/).pop());
  }
  return total;
}

const listOf = async (user) =>
  (await call(server.base, `/api/v1/recommendations/recommendations/${user}?limit=10`)).recommendations.map((r) => r.productId);

test("GET / sends a browser to the console, whose files come with a strict content policy", async () => {
  const r = await fetch(`${server.base}/`, { redirect: "manual" });
  assert.equal(r.status, 303);
  assert.equal(r.headers.get("location"), "/console/");
  const index = await fetch(`${server.base}/console/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /text\/html/);
  assert.match(index.headers.get("content-security-policy"), /default-src 'self'/);
  const again = await fetch(`${server.base}/console/`, { headers: { "if-none-match": index.headers.get("etag") } });
  assert.equal(again.status, 304);
  const missing = await fetch(`${server.base}/console/nope.js`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error, "not_found");
});

test("the overview's figures agree with /metrics", async () => {
  for (const [type, n] of [["view", 3], ["click", 2]])
    for (let i = 0; i < n; i++)
      await call(server.base, "/api/v1/activity/track", { method: "POST", body: { userId: `overview-${i}`, activityType: type, productId: "product-2" } });
  await call(server.base, "/api/v1/recommendations/recommendations/user-2");
  await call(server.base, "/api/v1/recommendations/recommendations/user-2");
  await open("#/overview");
  await page.locator('[data-testid="events-view"]').waitFor();
  // The overview polls; read /metrics and the page until both stand still (nothing else writes).
  const views = await metric("vitrina_activity_events_ingested_total", { type: "view" });
  const clicks = await metric("vitrina_activity_events_ingested_total", { type: "click" });
  const hits = await metric("vitrina_recommendations_served_total", { cache: "hit" });
  const misses = await metric("vitrina_recommendations_served_total", { cache: "miss" });
  assert.ok(views >= 3 && clicks >= 2 && hits >= 1, `metrics: ${views} views, ${clicks} clicks, ${hits} hits`);
  const shown = async (id) => (await page.locator(`[data-testid="${id}"]`).innerText()).trim();
  const number = (s) => Number(s.replace(/[^0-9.]/g, ""));
  await page.waitForFunction(
    ([v, c]) => document.querySelector('[data-testid="events-view"]')?.textContent.replace(/\D/g, "") === String(v) && document.querySelector('[data-testid="events-click"]')?.textContent.replace(/\D/g, "") === String(c),
    [views, clicks]
  );
  assert.equal(number(await shown("events-view")), views);
  assert.equal(number(await shown("events-click")), clicks);
  assert.equal(number(await shown("lists-total")), hits + misses);
  assert.equal(await shown("cache-hit-rate"), `${((hits / (hits + misses)) * 100).toFixed(1)} %`);
  assert.equal(await shown("active-model"), (await call(server.base, "/api/v1/training/status")).activeModelVersion);
  // Every chart has drawn rates from two readings at least.
  await page.waitForFunction(() => [...document.querySelectorAll(".chart")].filter((c) => Number(c.dataset.points) >= 2).length === 4);
  await shot("overview");
});

test("a test event sent from the visitor explorer changes the shown list", async () => {
  // Looking from the console logs no impression: the first item's count stays what the
  // list served through the API made it.
  const served = await listOf("user-1");
  const exposure = async () => (await call(server.base, `/api/v1/catalog/products/${served[0]}/exposure?days=2`)).impressions;
  const counted = await exposure();
  assert.ok(counted >= 1);
  await open("#/visitors/user-1");
  const rows = page.locator('[data-testid="visitor-list"] tbody tr[data-product]');
  await rows.first().waitFor();
  const before = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.product));
  assert.deepEqual(before, served);
  assert.equal(await exposure(), counted);
  await shot("visitors");
  // A purchase of the first item: what a visitor has bought leaves their list.
  await page.selectOption("#event-type", "purchase");
  await page.fill("#event-product", before[0]);
  await page.click('[data-testid="send-event"]');
  await page.waitForFunction((first) => {
    const ids = [...document.querySelectorAll('[data-testid="visitor-list"] tbody tr[data-product]')].map((tr) => tr.dataset.product);
    return ids.length > 0 && !ids.includes(first);
  }, before[0]);
  const after = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.product));
  assert.notDeepEqual(after, before);
  assert.ok(!after.includes(before[0]));
  // The event is stored: the visitor's history shows it, and the page's timeline too.
  const history = await call(server.base, "/api/v1/recommendations/activity/user-1?limit=1");
  assert.equal(history.activities[0].activityType, "purchase");
  assert.equal(history.activities[0].productId, before[0]);
  assert.equal(history.activities[0].metadata.source, "console");
  await page.locator('[data-testid="timeline"] li').first().filter({ hasText: before[0] }).waitFor();
  await page.setViewportSize({ width: 390, height: 844 });
  await shot("visitors-phone");
  await page.setViewportSize({ width: 1280, height: 800 });
});

test("a product's page counts how often it was shown, and hiding it removes it from the visitor's list", async () => {
  const list = await listOf("user-3");
  const target = list[0];
  await open(`#/products/${target}`);
  await page.locator('[data-testid="similar"]').waitFor();
  // The list just served showed it: the page counts that impression as the API does.
  const exposure = await call(server.base, `/api/v1/catalog/products/${target}/exposure?days=30`);
  assert.ok(exposure.impressions >= 1);
  await page.locator('[data-testid="exposure-impressions"]', { hasText: String(exposure.impressions) }).waitFor();
  await shot("product");
  await page.click('[data-testid="hide"]');
  // The confirmation comes first; nothing changed yet.
  await page.locator("dialog#confirm[open]").waitFor();
  assert.equal((await call(server.base, `/api/v1/catalog/products/${target}`)).product.hidden, false);
  await page.click("#confirm-ok");
  await page.locator('[data-testid="show-again"]').waitFor();
  assert.equal((await call(server.base, `/api/v1/catalog/products/${target}`)).product.hidden, true);
  assert.ok(!(await listOf("user-3")).includes(target));
  await open("#/products");
  await page.locator('[data-testid="products"] tbody tr').first().waitFor();
  // The search runs on the server: its name in capitals finds it, hidden as it now is, and
  // the page shows the hits the API finds.
  const name = (await call(server.base, `/api/v1/catalog/products/${target}`)).product.name;
  const found = await call(server.base, `/api/v1/catalog/products?q=${encodeURIComponent(name.toUpperCase())}`);
  assert.ok(found.products.some((p) => p.id === target && p.hidden));
  await page.fill("#product-search", name.toUpperCase());
  await page.locator('[data-testid="products-found"]', { hasText: new RegExp(`^${found.total} products? whose`) }).waitFor();
  const shown = await page.locator('[data-testid="products"] tbody tr').evaluateAll((trs) => trs.map((tr) => tr.textContent));
  assert.equal(shown.length, found.products.length);
  assert.ok(shown.some((row) => row.includes(name) && row.includes("hidden")));
  await page.fill("#product-search", "");
  await page.locator('[data-testid="products-found"]', { hasText: /^\d+ products?;/ }).waitFor();
  await shot("products");
});

test("a training job started from the page finishes and the Models page shows the new active version", async () => {
  const earlier = await call(server.base, "/api/v1/training/status");
  const before = earlier.activeModelVersion;
  const known = [earlier.current, ...earlier.queued, ...(earlier.recent || [])].filter(Boolean).map((j) => j.jobId);
  await open("#/training");
  await page.locator('[data-testid="start-training"]').waitFor();
  // Five demo visitors cannot judge a model: promote whatever trains.
  await page.fill("#tolerance", "1");
  await page.fill("#w-purchase", "5");
  await page.click('[data-testid="start-training"]');
  // The page lists the new job as succeeded once it has finished.
  const jobId = await page.waitForFunction(
    (known) => [...document.querySelectorAll('[data-testid="jobs"] tr[data-status="succeeded"]')].map((tr) => tr.dataset.job).find((j) => !known.includes(j)),
    known
  );
  const id = await jobId.jsonValue();
  await shot("training");
  const status = await call(server.base, "/api/v1/training/status");
  const job = status.recent.find((j) => j.jobId === id);
  const version = job.modelVersion;
  assert.equal(job.config.weights.purchase, 5);
  assert.equal(job.config.tolerance, 1);
  assert.notEqual(version, before);
  assert.equal(status.activeModelVersion, version);
  await open("#/models");
  await page.locator(`[data-testid="models"] tr[data-version="${version}"][data-status="active"]`).waitFor();
  assert.equal((await page.locator('[data-testid="active-version"]').innerText()).trim(), version);
  await page.locator(".uplot").first().waitFor();
  await shot("models");
});

test("an experiment created and started from the page shows results once it has traffic", async () => {
  await open("#/experiments");
  await page.locator('[data-testid="create-experiment"]').waitFor();
  await page.fill("#exp-name", "console-trending");
  await page.click('[data-testid="create-experiment"]');
  await page.waitForURL(/#\/experiments\/.+/);
  const id = decodeURIComponent(page.url().split("#/experiments/")[1]);
  await page.click('[data-testid="exp-start"]');
  await page.locator('[data-testid="exp-status"]', { hasText: "running" }).waitFor();
  // Traffic: twenty visitors are served lists while it runs.
  for (let i = 0; i < 20; i++) await call(server.base, `/api/v1/recommendations/recommendations/exp-visitor-${i}`);
  const { results } = await call(server.base, `/api/v1/experiments/${id}/results`);
  const served = results.variants.reduce((a, v) => a + v.lists, 0);
  assert.equal(served, 20);
  await page.reload();
  for (const v of results.variants) {
    await page.locator(`[data-testid="lists-${v.name}"]`, { hasText: String(v.lists) }).waitFor();
  }
  assert.equal(await page.locator("svg.intervals circle").count(), results.variants.length);
  // The page redraws itself every few seconds; a keyboard user's focus stays on its button.
  await page.focus('[data-testid="exp-step"]');
  const drawn = await page.locator('[data-testid="exp-status"]').elementHandle();
  await page.waitForFunction((el) => !el.isConnected, drawn);
  assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), "exp-step");
  await shot("experiment");
  await open("#/experiments");
  await page.locator('[data-testid="experiments"] tbody tr').first().waitFor();
  await shot("experiments");
});

test("the pages are usable with the keyboard", async () => {
  await open("#/overview");
  await page.reload();
  await page.locator('[data-testid="events-view"]').waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  // Tab to the Models link and follow it with Enter.
  for (let i = 0; i < 10; i++) {
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement.textContent)) === "Models") break;
  }
  await page.keyboard.press("Enter");
  await page.locator('[data-testid="models"]').waitFor();
  assert.equal(await page.evaluate(() => location.hash), "#/models");
  // The skip link moves focus to the content and stays on the page.
  await page.reload();
  await page.locator('[data-testid="models"]').waitFor();
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  assert.equal(await page.evaluate(() => location.hash), "#/models");
});

test("once a key exists the console asks for an admin key, and refuses a read key", async () => {
  const admin = (await call(server.base, "/api/v1/keys", { method: "POST", body: { scope: "admin", name: "console" } })).key;
  const read = (await call(server.base, "/api/v1/keys", { method: "POST", body: { scope: "read" }, key: admin })).key;
  const p = await newPage({ width: 1280, height: 800 }, { signingIn: true });
  await p.goto(`${server.base}/console/#/overview`);
  await p.locator("#key").waitFor();
  await p.fill("#key", read);
  await p.click('form button[type="submit"]');
  await p.locator("p.error", { hasText: "not an admin key" }).waitFor();
  // An unknown key is refused on the same form (a 401, not a new form).
  await p.fill("#key", "vk_unknown");
  await p.click('form button[type="submit"]');
  await p.locator("p.error", { hasText: "unknown, revoked" }).waitFor();
  await p.fill("#key", read);
  await p.click('form button[type="submit"]');
  await p.locator("p.error", { hasText: "not an admin key" }).waitFor();
  await shot("sign-in", p);
  await p.fill("#key", admin);
  await p.click('form button[type="submit"]');
  await p.locator('[data-testid="events-view"]').waitFor();
  await p.close();
});

test("no page logged an error or fetched anything from elsewhere", () => {
  assert.deepEqual(problems, []);
});
