// The console's pure parts (no DOM, no server): reading /metrics, quantiles from histogram
// buckets, and the request bodies the forms build.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseMetrics, totals, fromBuckets, rates } from "../../app/js/metrics.js";
import { trainBody } from "../../app/js/pages/training.js";
import { createBody } from "../../app/js/pages/experiments.js";
import { flatten } from "../../app/js/pages/models.js";

const TEXT = `# HELP vitrina_activity_events_ingested_total Events stored in the log, by activity type
# TYPE vitrina_activity_events_ingested_total counter
vitrina_activity_events_ingested_total{type="view"} 7
vitrina_activity_events_ingested_total{type="purchase"} 2
vitrina_recommendations_served_total{cache="hit"} 3
vitrina_recommendations_served_total{cache="miss"} 1
vitrina_http_requests_total{method="GET",route="/a",status="200"} 10
vitrina_http_requests_total{method="GET",route="/a",status="503"} 1
vitrina_http_requests_total{method="POST",route="/b",status="400"} 2
vitrina_http_request_duration_seconds_bucket{route="/a",le="0.01"} 5
vitrina_http_request_duration_seconds_bucket{route="/a",le="0.1"} 9
vitrina_http_request_duration_seconds_bucket{route="/a",le="+Inf"} 10
vitrina_http_request_duration_seconds_bucket{route="/b",le="0.01"} 5
vitrina_http_request_duration_seconds_bucket{route="/b",le="0.1"} 10
vitrina_http_request_duration_seconds_bucket{route="/b",le="+Inf"} 10
vitrina_active_model_version 3
`;

test("totals read counters by label and sum buckets across routes", () => {
  const t = totals(parseMetrics(TEXT));
  assert.deepEqual(t.events, { view: 7, purchase: 2 });
  assert.equal(t.eventsTotal, 9);
  assert.equal(t.lists, 4);
  assert.equal(t.hitRate, 0.75);
  assert.equal(t.errors, 1);
  assert.equal(t.rejected, 2);
  assert.equal(t.activeModel, 3);
  // 20 requests: the 10th is the last of the first bucket's 10; the 20th lies in +Inf.
  assert.equal(t.latency.p50, 0.01);
  assert.equal(t.latency.p99, 0.1);
});

test("label values keep escaped quotes and commas", () => {
  const [s] = parseMetrics('m{a="x,\\"y\\"",b="z"} 1.5e3');
  assert.deepEqual(s.labels, { a: 'x,"y"', b: "z" });
  assert.equal(s.value, 1500);
});

test("quantiles interpolate inside a bucket and handle an empty histogram", () => {
  assert.deepEqual(fromBuckets([]), { p50: null, p99: null });
  const q = fromBuckets([[1, 0], [2, 100], [Infinity, 100]]);
  assert.equal(q.p50, 1.5);
  assert.ok(Math.abs(q.p99 - 1.99) < 1e-9);
});

test("rates are per second and never negative", () => {
  const a = totals(parseMetrics(TEXT));
  const b = totals(parseMetrics(TEXT.replace('type="view"} 7', 'type="view"} 17').replace('cache="hit"} 3', 'cache="hit"} 5')));
  const r = rates(a, b, 2);
  assert.equal(r.events.view, 5);
  assert.equal(r.events.purchase, 0);
  assert.equal(r.lists, 1);
  assert.equal(r.hitRate, 1);
  assert.equal(rates(b, a, 2).events.view, 0);
  assert.equal(rates(null, a, 2), null);
});

test("an interval's latency counts only the requests that ended in it", () => {
  const a = totals(parseMetrics(TEXT));
  // Ten more requests on /a, all slower than 0.1 s: since start the p50 moves only to
  // 0.06 s, but every request of the interval lies past 0.1.
  const slow = TEXT.replace('route="/a",le="+Inf"} 10', 'route="/a",le="+Inf"} 20');
  const b = totals(parseMetrics(slow));
  assert.ok(Math.abs(b.latency.p50 - 0.06) < 1e-9, String(b.latency.p50));
  const r = rates(a, b, 2);
  assert.equal(r.latency.p50, 0.1, "past the last finite bound: that bound");
  assert.equal(r.latency.p99, 0.1);
  // Ten more in the first bucket: the interval's quantiles lie inside it.
  const fast = TEXT.replace(/route="\/a",le="(0\.01|0\.1|\+Inf)"\} (\d+)/g, (_, le, n) => `route="/a",le="${le}"} ${Number(n) + 10}`);
  const q = rates(a, totals(parseMetrics(fast)), 2).latency;
  assert.ok(q.p50 > 0 && q.p50 <= 0.01 && q.p99 <= 0.01, JSON.stringify(q));
  // No request ended: no quantile to draw.
  assert.deepEqual(rates(a, a, 2).latency, { p50: null, p99: null });
  // A restarted server counts from zero: the interval is what it counted since.
  assert.deepEqual(rates(totals(parseMetrics(fast)), a, 2).latency, a.latency);
});

test("the training form sends only what was filled in", () => {
  assert.deepEqual(trainBody({ weights: { view: "", purchase: "5" }, timeDecay: "", algorithms: ["als"], tolerance: "" }), {
    config: { weights: { purchase: 5 }, algorithms: ["als"] },
  });
  assert.deepEqual(trainBody({ weights: {}, timeDecay: "0.9", algorithms: undefined, tolerance: "1" }), { config: { timeDecay: 0.9, tolerance: 1 } });
});

test("the experiment form's variants become the create request, and bad JSON is named", () => {
  const body = createBody({
    name: "x",
    goal: "ctr",
    mode: "fixed",
    variants: [
      { name: "a", traffic: "", modelVersion: "", ranking: "" },
      { name: "b", traffic: "0.3", modelVersion: "v2", ranking: '{"weights":{"trending":2}}' },
    ],
  });
  assert.deepEqual(body.variants, [{ name: "a" }, { name: "b", traffic: 0.3, modelVersion: 2, ranking: { weights: { trending: 2 } } }]);
  assert.throws(() => createBody({ name: "x", goal: "ctr", mode: "fixed", variants: [{ name: "a", traffic: "", modelVersion: "", ranking: "{" }] }), /variant 1: the ranking is not JSON/);
  assert.throws(() => createBody({ name: "x", goal: "ctr", mode: "fixed", variants: [{ name: "a", traffic: "", modelVersion: "v3x", ranking: "" }] }), /variant 1: the model version/);
});

test("model metrics flatten to dotted names", () => {
  assert.deepEqual(flatten({ a: 1, b: { c: 2, d: { e: "x" } }, f: [1] }), { a: 1, "b.c": 2, "b.d.e": "x", f: [1] });
});

test("models' validation quality comes first among their metrics", async () => {
  const { byInterest } = await import("../../app/js/pages/models.js");
  const names = ["summary.events", "validation.active.ndcg@10", "trainSeconds", "validation.candidate.ndcg@10"];
  assert.deepEqual(names.sort(byInterest), ["validation.candidate.ndcg@10", "validation.active.ndcg@10", "summary.events", "trainSeconds"]);
});

test("a weight-tuning step shows the sources whose weight it changed", async () => {
  const { weightChanges } = await import("../../app/js/pages/experiments.js");
  assert.equal(weightChanges({ trending: 1, als: 2 }, { trending: 1.2, als: 2, ease: 0.5 }), "ease: – → 0.5, trending: 1 → 1.2");
});
