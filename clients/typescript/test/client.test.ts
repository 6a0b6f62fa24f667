// The TypeScript client against a live `vitrina serve` (a fresh data directory with the demo
// shop), and its retry rules against a scripted fetch. A port of the Python client's suite
// (clients/python/tests), test for test, in the same order; one file, so that one server
// serves the whole run (node's test runner runs each file in its own process).
//
//     npx tsc -p . && node --test --test-concurrency=1 dist/test/
//
// VITRINA_BIN names another server binary (default: target/debug/vitrina of the repository).

import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  MAX_BATCH,
  OPERATIONS,
  type RecommendAnswer,
  type RetryPolicy,
  type Score,
  type SessionFeedback,
  type TrackRequest,
  Tracker,
  VitrinaClient,
  VitrinaError,
} from "../src/index.js";
import { newEventId } from "../src/client.js";

// ---------------------------------------------------------------- the server (conftest.py)

/** The package root (the directory holding package.json), from test/ or from dist/test/. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("no package.json above " + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

const ROOT = packageRoot();
const BINARY = process.env.VITRINA_BIN ?? resolve(ROOT, "..", "..", "target", "debug", "vitrina");
const GENERATE = resolve(ROOT, "..", "generate.py");

/** Operation id -> statuses the live server answered, over the whole run. */
const EXERCISED = new Map<string, Set<number>>();

function record(operation: string, status: number): void {
  if (status !== 0) {
    const seen = EXERCISED.get(operation) ?? new Set<number>();
    seen.add(status);
    EXERCISED.set(operation, seen);
  }
}

let server = ""; // the base URL, e.g. http://127.0.0.1:40123
let adminKey = "";
let client: VitrinaClient;
let proc: ChildProcess | undefined;
let work = "";
let logFd: number | undefined;

async function startServer(): Promise<string> {
  if (!existsSync(BINARY)) assert.fail(`${BINARY} is missing: run \`cargo build --bin vitrina\` first`);
  work = mkdtempSync(join(tmpdir(), "vitrina-ts-tests-"));
  logFd = openSync(join(work, "server.log"), "w");
  const child = spawn(BINARY, ["serve", "--addr", "127.0.0.1:0", "--data-dir", join(work, "data")], {
    stdio: ["ignore", "pipe", logFd],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  proc = child;
  return new Promise((resolveBase, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let base: string | undefined;
    lines.on("line", (line) => {
      // Read every line (a full pipe would stall the server); the first match is the address.
      const m = /^vitrina listening on (\S+)/.exec(line);
      if (m && base === undefined) {
        base = m[1];
        resolveBase(base);
      }
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (base === undefined) {
        reject(new Error(`the server exited (${code ?? signal}) before listening: ${readFileSync(join(work, "server.log"), "utf8")}`));
      }
    });
  });
}

async function stopServer(): Promise<void> {
  const child = proc;
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((done) => child.once("exit", () => done()));
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((done) => (timer = setTimeout(done, 30_000, false)))]);
    clearTimeout(timer);
    if (!stopped) {
      child.kill("SIGKILL");
      await exited;
      assert.fail("the server did not stop within 30 s of SIGTERM");
    }
  }
  if (logFd !== undefined) closeSync(logFd);
  if (!work) return;
  const log = readFileSync(join(work, "server.log"), "utf8");
  rmSync(work, { recursive: true, force: true });
  const errors = log.split("\n").filter((l) => l.includes('"level":"ERROR"'));
  assert.deepEqual(errors.slice(0, 20), [], "the server logged errors");
}

/** Polls `check` until it returns a truthy value (the server applies some changes after it
 * answers, e.g. a training job); fails after `timeoutMs`. */
async function eventually<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`still not true after ${timeoutMs / 1000} s: ${check}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

// ---------------------------------------------------------------- helpers

/** The error a call rejects with (failing when it resolves), like `pytest.raises`. */
async function raises(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (error) {
    return error;
  }
  return assert.fail("expected the call to fail");
}

/** The `VitrinaError` a call rejects with. */
async function refused(call: Promise<unknown>): Promise<VitrinaError> {
  const error = await raises(call);
  assert.ok(error instanceof VitrinaError, `not a VitrinaError: ${error}`);
  return error;
}

/** The indexes of a 400's `details.errors`. */
function errorIndexes(e: VitrinaError): number[] {
  const errors = (e.details as { errors?: Array<{ index: number }> }).errors ?? [];
  return errors.map((x) => x.index);
}

/** A deliberately invalid event, for the server to refuse (the types would not allow it). */
function invalid(event: Record<string, unknown>): TrackRequest {
  return event as unknown as TrackRequest;
}

function allStrings(answer: RecommendAnswer): answer is string[] {
  return answer.every((x: string | Score) => typeof x === "string");
}

function allScores(answer: RecommendAnswer): answer is Score[] {
  return answer.every((x: string | Score) => typeof x === "object" && typeof x.Id === "string");
}

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

const NO_RETRY: Partial<RetryPolicy> = { attempts: 1 };

// ---------------------------------------------------------------- the suite

describe("VitrinaClient against a live server", () => {
  before(async () => {
    server = await startServer();
    // The first key closes the open server: from then on every request needs one.
    const open = new VitrinaClient(server, { onRequest: record });
    const created = await open.keysCreate({ scope: "admin", name: "ts-tests" });
    assert.ok(created.key);
    assert.equal(created.apiKey.scope, "admin");
    adminKey = created.key;
    client = new VitrinaClient(server, { apiKey: adminKey, onRequest: record });
  });

  after(stopServer);

  // -------------------------------------------------------- test_activity_and_lists.py

  describe("tracking and the lists it changes", () => {
    test("a tracked view is in the history and leaves the next list", async () => {
      const before = await client.recommendations("user-2", { limit: 10 });
      assert.equal(before.success, true);
      assert.equal(before.userId, "user-2");
      const shown = before.recommendations.map((r) => r.productId);
      assert.ok(shown.length > 0, JSON.stringify(before));
      const target = shown[0];

      const stored = await client.activityTrack({ userId: "user-2", productId: target, activityType: "purchase" });
      assert.equal(stored.success, true);
      assert.equal(stored.duplicate, false);
      assert.equal(stored.event, "UserPurchasedProduct");
      assert.ok(stored.eventId, "the client gives every event an id, so a retry is a duplicate");

      const again = await client.activityTrack({
        userId: "user-2",
        productId: target,
        activityType: "purchase",
        eventId: stored.eventId,
      });
      assert.equal(again.duplicate, true);
      assert.equal(again.sequence, stored.sequence);

      const history = await client.recommendationsHistory("user-2", { limit: 5 });
      assert.equal(history.activities[0].eventId, stored.eventId);
      const after = await client.recommendations("user-2", { limit: 10 });
      assert.equal(after.fromCache, false, "the visitor's event drops the cached list");
      assert.ok(!after.recommendations.map((r) => r.productId).includes(target), "a purchased item is not offered again");

      const refreshed = await client.recommendationsRefresh("user-2", { limit: 3 });
      assert.equal(refreshed.fromCache, false);
      assert.ok(refreshed.recommendations.length <= 3);

      const stats = await client.recommendationsStats("user-2", { days: 30 });
      assert.equal(stats.success, true);
      assert.equal(stats.userId, "user-2");
    });

    test("a batch is all or nothing and says what was wrong", async () => {
      const good: TrackRequest = { userId: "ts-batch-user", productId: "product-1", activityType: "view" };
      const liked: TrackRequest = { userId: "ts-batch-user", productId: "product-2", activityType: "like" };
      const bad = invalid({ ...liked, activityType: "teleport" });
      const e = await refused(client.activityTrackBatch({ events: [good, bad] }));
      assert.deepEqual([e.status, e.error, e.operation], [400, "validation_failed", "activity_track_batch"]);
      assert.deepEqual(errorIndexes(e), [1]);
      assert.equal((await client.recommendationsHistory("ts-batch-user")).count, 0, "nothing of the refused batch was stored");

      const answer = await client.activityTrackBatch({ events: [good, liked] });
      assert.deepEqual([answer.stored, answer.duplicates], [2, 0]);
    });

    test("the tracker sends full batches and the rest on flush", async () => {
      const tracker = new Tracker(client, { batchSize: 3 });
      const ids: string[] = [];
      for (let i = 1; i <= 7; i++) {
        ids.push(await tracker.track({ userId: "ts-tracked", productId: `product-${i}`, activityType: "view" }));
      }
      assert.equal(tracker.results.length, 2);
      assert.equal(tracker.pending.length, 1);
      await tracker.flush();
      assert.deepEqual(tracker.results.map((r) => r.stored), [3, 3, 1]);
      assert.equal(tracker.pending.length, 0);
      const history = await client.recommendationsHistory("ts-tracked", { limit: 10 });
      assert.deepEqual(sorted(history.activities.map((a) => a.eventId)), sorted(ids));

      assert.throws(() => new Tracker(client, { batchSize: MAX_BATCH + 1 }), RangeError);
    });

    test("refused events are set aside and the rest is sent", async () => {
      const tracker = new Tracker(client, { batchSize: 10 });
      await tracker.track({ userId: "ts-queued", productId: "product-1", activityType: "view" });
      await tracker.track(invalid({ userId: "ts-queued", activityType: "search" })); // a search needs metadata.query
      await tracker.track({ userId: "ts-queued", productId: "product-2", activityType: "view" });
      await tracker.flush();
      assert.deepEqual(tracker.rejected.map((r) => r.event.activityType), ["search"]);
      assert.ok(tracker.rejected[0].errors[0].field?.includes("query"), JSON.stringify(tracker.rejected));
      assert.deepEqual(tracker.results.map((r) => r.stored), [2]);
      assert.equal(tracker.pending.length, 0);
      const history = await client.recommendationsHistory("ts-queued");
      assert.deepEqual(sorted(history.activities.map((a) => a.productId ?? "")), ["product-1", "product-2"]);

      // An event the server cannot even parse is named by its field (`events[1].userId`).
      await tracker.track({ userId: "ts-queued", productId: "product-3", activityType: "view" });
      await tracker.track(invalid({ userId: 42, productId: "product-4", activityType: "view" }));
      await tracker.flush();
      assert.deepEqual(tracker.rejected.map((r) => r.event.userId as unknown), ["ts-queued", 42], "oldest refusal first");
      assert.ok(tracker.rejected[1].errors[0].field?.startsWith("events[1]"), JSON.stringify(tracker.rejected[1]));
      assert.deepEqual(tracker.results.map((r) => r.stored), [2, 1]);
      assert.equal(tracker.pending.length, 0);
    });

    test("similar, popular and session lists", async () => {
      const similar = await client.recommendationsSimilar("product-1", { limit: 5, exclude: ["product-2"] });
      const ids = similar.recommendations.map((r) => r.productId);
      assert.ok(ids.length > 0);
      assert.ok(!ids.includes("product-1") && !ids.includes("product-2"), JSON.stringify(ids));
      const popular = await client.recommendationsPopular({ limit: 3, window: "week" });
      assert.ok(popular.recommendations.length >= 1 && popular.recommendations.length <= 3);
      const session = await client.recommendationsSession({
        sessionId: "ts-s-1",
        events: [{ activityType: "view", productId: "product-4" }],
        limit: 4,
      });
      assert.ok(session.recommendations.length > 0);
      assert.ok(!session.recommendations.map((r) => r.productId).includes("product-4"));
    });

    test("errors carry the error shape", async () => {
      const missing = await refused(client.catalogGet("no-such-product"));
      assert.deepEqual([missing.status, missing.error], [404, "not_found"]);
      const anonymous = new VitrinaClient(server, { onRequest: record, retry: NO_RETRY });
      const closed = await refused(anonymous.recommendations("user-1"));
      assert.deepEqual([closed.status, closed.error], [401, "unauthorized"]);
      const invalidLimit = await refused(client.recommendations("user-1", { limit: 1000 }));
      assert.equal(invalidLimit.status, 400);
      assert.ok(invalidLimit.serverMessage.includes("limit"), invalidLimit.serverMessage);
      assert.equal(invalidLimit.message, `recommendations: 400 validation_failed: ${invalidLimit.serverMessage}`);
    });
  });

  // -------------------------------------------------------- test_async_and_retries.py

  describe("concurrency and the retry rules", () => {
    test("concurrent calls: the tracker batches and two reads run together", async () => {
      const concurrent = new VitrinaClient(server, { apiKey: adminKey, onRequest: record });
      const tracker = new Tracker(concurrent, { batchSize: 2 });
      for (const i of [5, 6, 7]) {
        await tracker.track({ userId: "ts-async-user", productId: `product-${i}`, activityType: "click" });
      }
      assert.deepEqual(tracker.results.map((r) => r.stored), [2]);
      await tracker.flush();
      assert.deepEqual(tracker.results.map((r) => r.stored), [2, 1]);
      const [history, listed] = await Promise.all([
        concurrent.recommendationsHistory("ts-async-user"),
        concurrent.recommendations("ts-async-user", { limit: 5 }),
      ]);
      assert.deepEqual(new Set(history.activities.map((a) => a.productId)), new Set(["product-5", "product-6", "product-7"]));
      assert.equal(listed.userId, "ts-async-user");
      assert.ok(listed.recommendations.length > 0);
      const missing = await refused(concurrent.usersGet("ts-async-nobody"));
      assert.equal(missing.status, 404);
    });

    // A fetch that answers each request with the next of `answers` (a response, or an error to
    // throw as fetch does when the connection fails) and records what it was sent.
    interface Sent {
      url: URL;
      method: string;
      headers: Headers;
      body: string | undefined;
    }
    type Answer = Response | Error;

    function scripted(answers: Answer[], seen: Sent[]): typeof fetch {
      return async (input, init = {}) => {
        seen.push({
          url: new URL(String(input)),
          method: init.method ?? "GET",
          headers: new Headers(init.headers),
          body: typeof init.body === "string" ? init.body : undefined,
        });
        const answer = answers.shift();
        if (answer === undefined) throw new Error("the script has no more answers");
        if (answer instanceof Error) throw answer;
        return answer;
      };
    }

    const FAST: Partial<RetryPolicy> = { attempts: 4, backoffMs: 1, maxWaitMs: 10 };
    const BUSY = { success: false, error: "rate_limited", message: "slow down", code: 429, details: {} };

    function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
      return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
    }

    /** What real fetch throws when the connection fails: it cannot tell whether the request left. */
    function networkError(): TypeError {
      return new TypeError("fetch failed", { cause: new Error("read ECONNRESET") });
    }

    function clientOver(answers: Answer[], seen: Sent[], retry: Partial<RetryPolicy> = FAST): VitrinaClient {
      return new VitrinaClient("http://vitrina.test", { retry, fetch: scripted(answers, seen) });
    }

    test("429 and 503 are retried and Retry-After is honoured", async () => {
      const seen: Sent[] = [];
      const answers = [
        json(429, BUSY, { "retry-after": "0.01" }),
        json(503, { ...BUSY, error: "unavailable", code: 503 }),
        json(200, { success: true, recommendations: [] }),
      ];
      const retrying = clientOver(answers, seen, { attempts: 4, backoffMs: 1, maxWaitMs: 20 });
      // The waits, as the client asks setTimeout for them (the port of patching Retry.delay);
      // only the client's own calls count (fetch's keep-alive timers use setTimeout too).
      const waits: number[] = [];
      const original = globalThis.setTimeout;
      globalThis.setTimeout = ((handler: () => void, ms?: number) => {
        if (new Error().stack?.includes("/src/client.js")) waits.push(ms ?? 0);
        return original(handler, ms);
      }) as typeof setTimeout;
      try {
        assert.equal((await retrying.recommendationsPopular({ limit: 2 })).success, true);
      } finally {
        globalThis.setTimeout = original;
      }
      assert.equal(seen.length, 3);
      assert.equal(waits.length, 2, `waits: ${waits}`);
      assert.equal(waits[0], 10, "Retry-After: 0.01 s");
      // No Retry-After: the backoff, 1 ms doubled once, with jitter (0.5 to 1 of it).
      assert.ok(waits[1] >= 1 && waits[1] <= 2, `waits: ${waits}`);
      assert.equal(seen[0].url.searchParams.get("limit"), "2");
    });

    test("retries stop after the last attempt with the server's error", async () => {
      const seen: Sent[] = [];
      const answers = [1, 2, 3, 4].map(() => json(429, BUSY));
      const busy = await refused(clientOver(answers, seen).recommendationsPopular());
      assert.equal(busy.status, 429);
      assert.equal(busy.error, "rate_limited");
      assert.equal(seen.length, 4);
    });

    test("a failed connection is retried only where a repeat cannot double", async () => {
      let seen: Sent[] = [];
      await clientOver([networkError(), json(201, { success: true })], seen).activityTrack({
        userId: "u",
        productId: "p",
        activityType: "view",
      });
      assert.equal(seen.length, 2);
      assert.ok(seen[0].body?.includes('"eventId"'), seen[0].body);
      assert.equal(seen[1].body, seen[0].body, "the repeat carries the same eventId");

      // fetch cannot tell "never sent" from "answer lost": a create is not sent again.
      seen = [];
      const lost = await raises(
        clientOver([networkError(), json(201, { success: true })], seen).experimentsCreate({ name: "x", variants: [{ name: "A" }] }),
      );
      assert.ok(lost instanceof TypeError, `not the fetch error: ${lost}`);
      assert.equal(seen.length, 1, "a create whose answer may have been lost is not sent again");

      // A read is.
      seen = [];
      const read = await clientOver([networkError(), json(200, { success: true, recommendations: [] })], seen).recommendationsPopular();
      assert.equal(read.success, true);
      assert.equal(seen.length, 2, "a GET is sent again");
    });

    test("a 503 is retried only where a second try cannot double", async () => {
      const down = { ...BUSY, error: "unavailable", code: 503 };
      const cases: [string, (c: VitrinaClient) => Promise<unknown>, number][] = [
        ["a read", (c) => c.recommendationsPopular(), 2],
        ["tracking", (c) => c.activityTrack({ userId: "u", productId: "p", activityType: "view" }), 2],
        ["a create", (c) => c.experimentsCreate({ name: "x", variants: [{ name: "A" }] }), 1],
        ["Gorse feedback with its time", (c) => c.gorseFeedbackUpsert([{ FeedbackType: "like", UserId: "u", ItemId: "i", Timestamp: "2024-01-01T00:00:00Z" }]), 2],
        ["Gorse feedback without a time", (c) => c.gorseFeedbackUpsert([{ FeedbackType: "like", UserId: "u", ItemId: "i" }]), 1],
        ["Gorse feedback at Gorse's zero time", (c) => c.gorseFeedbackInsert([{ FeedbackType: "like", UserId: "u", ItemId: "i", Timestamp: "0001-01-01T00:00:00Z" }]), 1],
        ["a Gorse list that writes back", (c) => c.gorseListsRecommend("u", { "write-back-type": "read" }), 1],
        ["a health check (its 503 is the answer)", (c) => c.healthEngine(), 1],
      ];
      for (const [what, call, tries] of cases) {
        const seen: Sent[] = [];
        try {
          await call(clientOver([json(503, down), json(200, { success: true })], seen));
        } catch (e) {
          assert.ok(e instanceof VitrinaError && e.status === 503, `${what}: ${e}`);
        }
        assert.equal(seen.length, tries, what);
      }
      const seen: Sent[] = [];
      await clientOver([json(429, BUSY), json(201, { success: true })], seen).experimentsCreate({ name: "x", variants: [{ name: "A" }] });
      assert.equal(seen.length, 2, "a 429 was refused before anything was done: any request is sent again");
    });

    test("the key goes in the bearer header and path parameters are escaped", async () => {
      const seen: Sent[] = [];
      const keyed = new VitrinaClient("http://vitrina.test", { apiKey: "vk_secret", fetch: scripted([json(200, {})], seen) });
      await keyed.usersGet("a/b c");
      assert.equal(seen[0].url.pathname, "/api/v1/users/a%2Fb%20c");
      assert.equal(seen[0].headers.get("authorization"), "Bearer vk_secret");
      // The TypeScript client sets no User-Agent (browsers do not let it); it asks for JSON.
      assert.equal(seen[0].headers.get("accept"), "application/json");
    });

    test("the README's examples type-check against the client", () => {
      const readme = readFileSync(join(ROOT, "README.md"), "utf8");
      const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
      assert.ok(blocks.length >= 2, "the README shows the client in ts blocks");
      const index = join(ROOT, "src", "index.js");
      const code = [
        "declare const clickstream: { user: string; sku: string }[];",
        ...blocks.map((b) => b.replaceAll('from "@vitrina/client"', `from ${JSON.stringify(index)}`)),
      ].join("\n");
      const dir = mkdtempSync(join(tmpdir(), "vitrina-readme-"));
      try {
        writeFileSync(join(dir, "readme.mts"), code);
        const tsc = spawnSync(
          process.execPath,
          [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "--strict", "--skipLibCheck",
            "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--lib", "es2022,dom",
            join(dir, "readme.mts")],
          { encoding: "utf8" },
        );
        assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("a retry option left undefined keeps its default, and event ids are version-4 UUIDs", () => {
      const client = new VitrinaClient("http://vitrina.test", { retry: { attempts: undefined, backoffMs: 5 } });
      assert.deepEqual(client.retry, { attempts: 4, backoffMs: 5, maxWaitMs: 10_000 });
      const ids = new Set(Array.from({ length: 100 }, () => newEventId()));
      assert.equal(ids.size, 100);
      for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.throws(() => new Tracker(client, { batchSize: 2.5 }), RangeError);
    });
  });

  // -------------------------------------------------------- test_catalog_users_keys.py

  describe("the catalogue, users, keys and health", () => {
    test("a product is created, changed, replaced, listed and deleted", async () => {
      const created = await client.catalogCreate({
        id: "sku-ts-1",
        name: "Desk lamp",
        category: "lighting",
        price: "29.90",
        attributes: { color: "black" },
      });
      assert.equal(created.product.id, "sku-ts-1");
      const twice = await refused(client.catalogCreate({ id: "sku-ts-1", name: "Desk lamp", category: "lighting", price: "29.90" }));
      assert.equal(twice.status, 409);

      const patched = await client.catalogPatch("sku-ts-1", { inStock: false });
      assert.equal(patched.product.inStock, false);
      assert.equal(patched.product.name, "Desk lamp");
      const replaced = await client.catalogPut("sku-ts-1", { name: "Desk lamp II", category: "lighting", price: "24.90" });
      assert.equal(replaced.product.name, "Desk lamp II");
      assert.deepEqual(replaced.product.attributes, {});
      assert.equal((await client.catalogGet("sku-ts-1")).product.price, "24.90");
      // A product no list has shown yet: nothing counted, over the days asked for.
      const exposure = await client.catalogExposure("sku-ts-1", { days: 7 });
      assert.deepEqual([exposure.impressions, exposure.clicks, exposure.days], [0, 0, 7]);

      const bulk = await client.catalogBulk({
        products: [2, 3].map((i) => ({ id: `sku-ts-${i}`, name: `Shade ${i}`, category: "lighting", price: "9.90" })),
      });
      assert.equal(bulk.upserted, 2);
      const page = await client.catalogList({ category: "lighting", limit: 10 });
      assert.deepEqual(sorted(page.products.map((p) => p.id)), ["sku-ts-1", "sku-ts-2", "sku-ts-3"]);
      assert.equal(page.total, 3);

      await client.catalogDelete("sku-ts-3");
      const gone = await refused(client.catalogGet("sku-ts-3"));
      assert.equal(gone.status, 404);
    });

    test("a user is stored, read, listed, exported and erased", async () => {
      const stored = await client.usersUpsert({ id: "ts-user", name: "Ada", attributes: { segment: "returning" } });
      assert.deepEqual(stored.user.attributes, { segment: "returning" });
      await client.activityTrack({ userId: "ts-user", productId: "product-1", activityType: "view" });
      assert.equal((await client.usersGet("ts-user")).user.name, "Ada");
      const listed = await client.usersList({ limit: 100 });
      assert.ok(listed.users.map((u) => u.id).includes("ts-user"));
      assert.ok(listed.total >= 6, `total: ${listed.total}`);

      const exported = await client.usersExport("ts-user");
      assert.equal(exported.user?.id, "ts-user");
      assert.deepEqual(exported.events.map((e) => e.productId), ["product-1"]);

      await client.usersDelete("ts-user");
      const erased = await refused(client.usersExport("ts-user"));
      assert.equal(erased.status, 404);
      assert.equal((await client.recommendationsHistory("ts-user")).count, 0);
    });

    test("keys are created with a scope, listed and revoked", async () => {
      const made = await client.keysCreate({ scope: "read", name: "storefront" });
      const keyId = made.apiKey.id;
      assert.ok(made.key);
      assert.ok((await client.keysList()).keys.map((k) => k.id).includes(keyId));
      const reader = new VitrinaClient(server, { apiKey: made.key, onRequest: record, retry: NO_RETRY });
      assert.equal((await reader.recommendationsPopular({ limit: 2 })).success, true);
      const scope = await refused(reader.activityTrack({ userId: "u", productId: "product-1", activityType: "view" }));
      assert.deepEqual([scope.status, scope.error], [403, "forbidden"]);
      await client.keysRevoke(keyId);
      const revoked = await refused(reader.recommendationsPopular({ limit: 2 }));
      assert.equal(revoked.status, 401);
    });

    test("every health endpoint reports healthy", async () => {
      const overall = await client.health();
      assert.equal(overall.status, "healthy");
      const services = new Set(overall.checks.map((c) => c.service));
      for (const s of ["activity", "engine", "recommendations", "training"]) assert.ok(services.has(s), `no ${s} check`);
      const each: Array<[string, () => ReturnType<VitrinaClient["health"]>]> = [
        ["activity", () => client.healthActivity()],
        ["engine", () => client.healthEngine()],
        ["recommendations", () => client.healthRecommendations()],
        ["training", () => client.healthTraining()],
      ];
      for (const [service, call] of each) {
        const answer = await call();
        assert.equal(answer.status, "healthy", service);
        assert.deepEqual(answer.checks.map((c) => c.service), [service]);
      }
      const state = await client.healthState();
      assert.ok(state.appliedSequence >= state.events && state.events > 0, JSON.stringify(state));
      assert.equal(state.digest.length, 16);
    });
  });

  // -------------------------------------------------------- test_gorse_api.py

  describe("the Gorse-compatible API", () => {
    const T = "2026-01-01T00:00:00Z";

    test("Gorse items, users and feedback", async () => {
      assert.equal((await client.gorseItemsInsert({ ItemId: "g-ts-1", Categories: ["books"], Timestamp: T })).RowAffected, 1);
      const many = [2, 3, 4].map((i) => ({ ItemId: `g-ts-${i}`, Categories: ["books", "paper"], Labels: ["x"], Timestamp: T }));
      assert.equal((await client.gorseItemsInsertMany(many)).RowAffected, 3);
      assert.deepEqual((await client.gorseItemsGet("g-ts-2")).Labels, ["x"]);
      await client.gorseItemsPatch("g-ts-2", { Comment: "second" });
      assert.equal((await client.gorseItemsGet("g-ts-2")).Comment, "second");
      await client.gorseItemsAddCategory("g-ts-1", "gifts");
      assert.deepEqual((await client.gorseItemsGet("g-ts-1")).Categories, ["books", "gifts"]);
      await client.gorseItemsRemoveCategory("g-ts-1", "gifts");
      assert.deepEqual((await client.gorseItemsGet("g-ts-1")).Categories, ["books"]);
      const first = await client.gorseItemsPage({ n: 2 });
      assert.equal(first.Items.length, 2);
      assert.ok(first.Cursor);
      assert.deepEqual((await client.gorseItemsPage({ n: 10, q: "second" })).Items.map((i) => i.ItemId), ["g-ts-2"]);

      assert.equal((await client.gorseUsersInsert({ UserId: "gu-ts-1", Labels: ["new"] })).RowAffected, 1);
      assert.equal((await client.gorseUsersInsertMany([{ UserId: "gu-ts-2" }, { UserId: "gu-ts-3" }])).RowAffected, 2);
      await client.gorseUsersPatch("gu-ts-1", { Comment: "first" });
      assert.equal((await client.gorseUsersGet("gu-ts-1")).Comment, "first");
      assert.equal((await client.gorseUsersPage({ n: 3 })).Users.length, 3);

      const feedback = [
        { FeedbackType: "like", UserId: "gu-ts-1", ItemId: "g-ts-1", Timestamp: T },
        { FeedbackType: "read", UserId: "gu-ts-1", ItemId: "g-ts-2", Timestamp: T },
      ];
      assert.equal((await client.gorseFeedbackInsert(feedback)).RowAffected, 2);
      const upserted = await client.gorseFeedbackUpsert([{ FeedbackType: "like", UserId: "gu-ts-2", ItemId: "g-ts-3", Timestamp: T }]);
      assert.equal(upserted.RowAffected, 1);
      assert.deepEqual(new Set((await client.gorseFeedbackOfUser("gu-ts-1")).map((f) => f.ItemId)), new Set(["g-ts-1", "g-ts-2"]));
      assert.deepEqual((await client.gorseFeedbackOfUserTyped("gu-ts-1", "like")).map((f) => f.ItemId), ["g-ts-1"]);
      assert.deepEqual((await client.gorseFeedbackBetween("gu-ts-1", "g-ts-2")).map((f) => f.FeedbackType), ["read"]);
      assert.equal((await client.gorseFeedbackOne("like", "gu-ts-1", "g-ts-1")).ItemId, "g-ts-1");
      const page = new Set((await client.gorseFeedbackPage({ n: 1000 })).Feedback.map((f) => f.ItemId));
      for (const id of ["g-ts-1", "g-ts-2", "g-ts-3"]) assert.ok(page.has(id), `${id} not in the feedback page`);
      const likers = new Set((await client.gorseFeedbackPageTyped("like", { n: 1000 })).Feedback.map((f) => f.UserId));
      for (const id of ["gu-ts-1", "gu-ts-2"]) assert.ok(likers.has(id), `${id} not in the like page`);
      assert.equal((await client.gorseFeedbackDeleteOne("like", "gu-ts-2", "g-ts-3")).RowAffected, 1);
      assert.deepEqual(await client.gorseFeedbackOfUser("gu-ts-2"), []);
      assert.equal((await client.gorseFeedbackDeleteBetween("gu-ts-1", "g-ts-2")).RowAffected, 1);
      assert.deepEqual((await client.gorseFeedbackOfUser("gu-ts-1")).map((f) => f.ItemId), ["g-ts-1"]);
      const liked = await client.gorseFeedbackInsert([{ FeedbackType: "like", UserId: "gu-ts-2", ItemId: "g-ts-1", Timestamp: T }]);
      assert.equal(liked.RowAffected, 1);
      assert.deepEqual((await client.gorseFeedbackOfItem("g-ts-1")).map((f) => f.UserId), ["gu-ts-1", "gu-ts-2"]);
      assert.deepEqual((await client.gorseFeedbackOfItemTyped("g-ts-1", "like")).map((f) => f.FeedbackType), ["like", "like"]);
      assert.deepEqual(await client.gorseUsersNeighbors("gu-ts-1", { n: 5 }), [{ Id: "gu-ts-2", Score: 1 }]);

      assert.equal((await client.gorseItemsDelete("g-ts-4")).RowAffected, 1);
      const gone = await refused(client.gorseItemsGet("g-ts-4"));
      assert.equal(gone.status, 404);
      assert.equal((await client.gorseUsersDelete("gu-ts-3")).RowAffected, 1);
    });

    test("Gorse lists", async () => {
      const plain = await client.gorseListsRecommend("user-1", { n: 3 });
      assert.ok(plain.length >= 1 && plain.length <= 3, JSON.stringify(plain));
      assert.ok(allStrings(plain), JSON.stringify(plain));
      const scored = await client.gorseListsRecommend("user-1", { n: 3, "X-API-Version": "2" });
      assert.ok(allScores(scored), JSON.stringify(scored));
      assert.deepEqual(scored.map((s) => s.Id), plain);
      const phones = new Set(["product-1", "product-2"]); // the demo's "Смартфоны"
      const inPhones = await client.gorseListsRecommendIn("user-1", "Смартфоны", { n: 5 });
      assert.ok(allStrings(inPhones), JSON.stringify(inPhones));
      for (const id of inPhones) assert.ok(phones.has(id), `${id} is not a phone`);
      const neighbors = await client.gorseListsNeighbors("product-1", { n: 3 });
      assert.ok(neighbors.length > 0);
      assert.ok(!neighbors.map((n) => n.Id).includes("product-1"));
      assert.deepEqual((await client.gorseListsNeighborsIn("product-1", "Смартфоны", { n: 3 })).map((n) => n.Id), ["product-2"]);
      assert.equal((await client.gorseListsPopular({ n: 3 })).length, 3);
      assert.deepEqual(new Set((await client.gorseListsPopularIn("Смартфоны", { n: 3 })).map((p) => p.Id)), phones);
      const latest = new Set((await client.gorseListsLatest({ n: 100 })).map((i) => i.Id));
      for (const id of ["product-1", "g-ts-1"]) assert.ok(latest.has(id), `${id} not among the latest`);
      assert.deepEqual(new Set((await client.gorseListsLatestIn("Смартфоны", { n: 3 })).map((p) => p.Id)), phones);
      const liked: SessionFeedback[] = [{ FeedbackType: "like", UserId: "", ItemId: "product-1", Timestamp: T }];
      const session = await client.gorseListsSession(liked, { n: 3 });
      assert.ok(session.length > 0);
      assert.ok(!session.map((s) => s.Id).includes("product-1"));
      assert.deepEqual((await client.gorseListsSessionIn("Смартфоны", liked, { n: 3 })).map((s) => s.Id), ["product-2"]);
      assert.equal((await client.gorseListsLive()).Ready, true);
      assert.equal((await client.gorseListsReady()).Ready, true);
    });
  });

  // -------------------------------------------------------- test_training_and_experiments.py

  describe("training, the model registry and experiments", () => {
    test("a training job registers a model that can be activated and rolled back", async () => {
      const before = (await client.trainingStatus()).activeModelVersion;
      const queued = await client.trainingTrain({ config: { algorithms: ["popularity", "transitions"], timeDecay: 0.9 } });
      const job = queued.job.jobId;
      assert.equal(queued.job.status, "queued");

      const done = await eventually(async () => {
        const last = (await client.trainingStatus()).lastFinished;
        return last && last.jobId === job ? last : null;
      }, 120_000);
      assert.ok(done.status === "succeeded" || done.status === "rejected", JSON.stringify(done));
      const version = done.modelVersion;
      assert.ok(version, JSON.stringify(done));
      const models = await client.trainingModels();
      assert.ok(models.models.map((m) => m.version).includes(version));
      assert.equal((await client.trainingModel(version)).model.parameters.timeDecay, 0.9);

      // A promoted model is active already; activating it again keeps what it rolls back to.
      const activated = await client.trainingActivate(version, { force: true });
      assert.equal(activated.model.status, "active");
      assert.equal((await client.trainingStatus()).activeModelVersion, version);
      await client.trainingRollback();
      assert.equal((await client.trainingModels()).activeVersion, before);

      const none = await refused(client.trainingCancel("job-that-never-was"));
      assert.deepEqual([none.status, none.error], [404, "not_found"]);
    });

    test("an experiment runs, serves its variants and stops", async () => {
      const created = (
        await client.experimentsCreate({
          name: "ts-trending",
          variants: [{ name: "A" }, { name: "B", ranking: { weights: { trending: 2.0 } } }],
        })
      ).experiment;
      assert.equal(typeof created.id, "string");
      const exp = String(created.id);
      assert.equal(created.status, "draft");
      assert.equal((await client.experimentsGet(exp)).experiment.name, "ts-trending");
      assert.ok((await client.experimentsList()).experiments.map((e) => e.id).includes(exp));

      assert.equal((await client.experimentsStart(exp)).experiment.status, "running");
      const served = await client.recommendations("user-3", { limit: 5 });
      assert.ok([`${exp}/A`, `${exp}/B`].includes(served.variant), served.variant);
      // `results` is free-form in the spec: the fields this test reads.
      const results = (await client.experimentsResults(exp)).results as { variants: Array<{ name: string }>; control: string };
      assert.deepEqual(results.variants.map((v) => v.name), ["A", "B"]);
      assert.equal(results.control, "A");
      const stepped = (await client.experimentsStep(exp)).experiment;
      assert.deepEqual(stepped.traffic, [0.5, 0.5], "no list is old enough to judge, so the step changes nothing");

      assert.equal((await client.experimentsStop(exp)).experiment.status, "stopped");
      const reverted = (await client.experimentsRevert(exp)).experiment;
      const log = reverted.allocationLog as Array<{ reason: string }>;
      assert.ok(log[log.length - 1].reason.startsWith("reverted"), JSON.stringify(log));
      assert.equal((await client.recommendations("user-3", { limit: 5 })).variant, "default");
    });
  });

  // -------------------------------------------------------- test_spec_coverage.py (last)

  describe("the client against the server's /openapi.json (last)", () => {
    /** generate.py's `camel()`: `gorse_lists_recommend` -> `gorseListsRecommend` (its `snake()`
     * marks a Python keyword with a trailing `_` that `camel()` strips again: left out). */
    function camel(name: string): string {
      const snake = name
        .replace(/[^0-9a-zA-Z]+/g, "_")
        .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
        .toLowerCase()
        .replace(/^_+|_+$/g, "");
      const [head, ...rest] = snake.split("_");
      return head + rest.map((p) => p.slice(0, 1).toUpperCase() + p.slice(1)).join("");
    }

    async function specOperations(): Promise<Set<string>> {
      const response = await fetch(`${server}/openapi.json`);
      assert.equal(response.status, 200);
      const spec = (await response.json()) as { paths: Record<string, Record<string, unknown>> };
      const ids = new Set<string>();
      for (const item of Object.values(spec.paths)) {
        for (const op of Object.values(item)) {
          if (op && typeof op === "object" && "operationId" in op) ids.add(String(op.operationId));
        }
      }
      return ids;
    }

    test("the generated code matches the server's spec", () => {
      const check = spawnSync("python3", [GENERATE, "--check", "--spec", `${server}/openapi.json`], { encoding: "utf8" });
      assert.equal(check.error, undefined);
      assert.equal(check.status, 0, check.stderr);
    });

    test("every operation is a method of the client", async () => {
      const operations = await specOperations();
      assert.ok(operations.size > 50, `${operations.size} operations`);
      assert.deepEqual(sorted(Object.keys(OPERATIONS)), sorted(operations));
      assert.equal(camel("gorse_lists_recommend"), "gorseListsRecommend");
      for (const id of operations) {
        assert.equal(typeof Reflect.get(VitrinaClient.prototype, camel(id)), "function", `${id}: no method ${camel(id)}`);
      }
    });

    test("the tests drove every operation", async () => {
      const missing = sorted([...(await specOperations())].filter((id) => !EXERCISED.has(id)));
      assert.deepEqual(missing, [], `operations no test called: ${missing.join(", ")}`);
    });
  });
});
