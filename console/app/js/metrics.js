// The Prometheus text format that /metrics serves, read into samples, and the figures the
// overview shows computed from them. Pure functions: no DOM, no fetch.

/** `[{name, labels: {..}, value}]` from Prometheus text exposition. */
export function parseMetrics(text) {
  const out = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

const sum = (samples, name, pred = () => true) =>
  samples.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);

/** The overview's totals, straight from the counters and gauges. */
export function totals(samples) {
  const events = {};
  for (const s of samples) {
    if (s.name !== "vitrina_activity_events_ingested_total") continue;
    const type = s.labels.type ?? s.labels.activity_type ?? "other";
    events[type] = (events[type] || 0) + s.value;
  }
  const served = (cache) => sum(samples, "vitrina_recommendations_served_total", (l) => l.cache === cache);
  const hits = served("hit");
  const misses = served("miss");
  const requests = sum(samples, "vitrina_http_requests_total");
  const errors = sum(samples, "vitrina_http_requests_total", (l) => Number(l.status) >= 500);
  const rejected = sum(samples, "vitrina_http_requests_total", (l) => Number(l.status) >= 400 && Number(l.status) < 500);
  return {
    events,
    eventsTotal: Object.values(events).reduce((a, b) => a + b, 0),
    lists: hits + misses,
    hits,
    misses,
    hitRate: hits + misses > 0 ? hits / (hits + misses) : null,
    requests,
    errors,
    rejected,
    activeModel: sum(samples, "vitrina_active_model_version"),
    onlineVisitors: sum(samples, "vitrina_online_visitors"),
    latency: latency(samples),
    durations: durationBuckets(samples),
  };
}

/** The duration histogram's cumulative `[upperBound, count]` pairs summed over every route. */
function durationBuckets(samples, name = "vitrina_http_request_duration_seconds") {
  const buckets = new Map();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]);
}

/**
 * p50 and p99 of request durations over every route, from the duration histogram's
 * cumulative buckets (`_bucket{le}`), or from a summary's quantiles when the exporter writes
 * one (then the slowest route's quantile).
 */
export function latency(samples, name = "vitrina_http_request_duration_seconds") {
  const buckets = durationBuckets(samples, name);
  if (buckets.length > 0) return fromBuckets(buckets);
  const q = (quantile) => {
    const vs = samples.filter((s) => s.name === name && Number(s.labels.quantile) === quantile && isFinite(s.value)).map((s) => s.value);
    return vs.length ? Math.max(...vs) : null;
  };
  return { p50: q(0.5), p99: q(0.99) };
}

/** Quantiles from cumulative `[upperBound, count]` pairs, interpolated inside a bucket. */
export function fromBuckets(cumulative) {
  const total = cumulative.length ? cumulative[cumulative.length - 1][1] : 0;
  if (total === 0) return { p50: null, p99: null };
  const at = (q) => {
    const rank = q * total;
    let prevBound = 0;
    let prevCount = 0;
    for (const [bound, count] of cumulative) {
      if (count >= rank) {
        if (!isFinite(bound)) return prevBound;
        const inBucket = count - prevCount;
        return inBucket > 0 ? prevBound + ((bound - prevBound) * (rank - prevCount)) / inBucket : bound;
      }
      prevBound = bound;
      prevCount = count;
    }
    return prevBound;
  };
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * Per-second rates between two totals taken `seconds` apart (counters never go back), and
 * the p50 and p99 of the requests that ended between them (from the histogram's growth;
 * `null`s when none did; the summary's own quantiles when the exporter writes no buckets).
 */
export function rates(before, after, seconds) {
  if (!before || seconds <= 0) return null;
  const r = (a, b) => Math.max(0, (a - b) / seconds);
  const events = {};
  for (const t of new Set([...Object.keys(after.events), ...Object.keys(before.events)]))
    events[t] = r(after.events[t] || 0, before.events[t] || 0);
  const lists = r(after.lists, before.lists);
  const hits = r(after.hits, before.hits);
  return {
    events,
    lists,
    hitRate: lists > 0 ? hits / lists : null,
    errors: r(after.errors, before.errors),
    // Without buckets (an exporter writing summaries), its own quantiles.
    latency: after.durations.length ? fromBuckets(grown(before.durations, after.durations)) : after.latency,
  };
}

/**
 * What each cumulative bucket gained from `before` to `after` (a bucket new in `after`
 * gained all of it); after a restart of the server (a count went down) all of `after`.
 */
function grown(before = [], after = []) {
  const was = new Map(before);
  if (after.some(([bound, count]) => count < (was.get(bound) || 0))) return after;
  return after.map(([bound, count]) => [bound, count - (was.get(bound) || 0)]);
}
