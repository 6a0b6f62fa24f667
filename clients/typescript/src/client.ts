// The hand-written core of the client: the key header, one operation turned into a fetch,
// retries with backoff, and Vitrina's error shape turned into an exception. Every operation
// is a method of `Operations`, generated from the OpenAPI document (operations.ts).

import { type Operation, Operations, type Send } from "./operations.js";

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE"]);
/** Safe to repeat: every event carries an `eventId` the server stores at most once. */
const TRACKING = new Set(["activity_track", "activity_track_batch"]);
/**
 * Gorse feedback: ids come from the rows, so a repeat is stored once when every row carries a
 * real time (a year from 1990 on; an undated row, or one at Gorse's zero time, is dated on
 * receipt, and so is its repeat).
 */
const GORSE_FEEDBACK = new Set(["gorse_feedback_insert", "gorse_feedback_upsert"]);
/** Gorse lists that, with `write-back-type`, also store the items returned as feedback. */
const GORSE_WRITE_BACK = new Set(["gorse_lists_recommend", "gorse_lists_recommend_in"]);

/** Whether sending this request twice has the effect of sending it once. */
export function repeatable(op: Operation, options: Record<string, unknown>, body: unknown): boolean {
  if (TRACKING.has(op.id)) return true;
  if (GORSE_FEEDBACK.has(op.id)) {
    return Array.isArray(body) && body.every(dated);
  }
  if (GORSE_WRITE_BACK.has(op.id) && options["write-back-type"]) return false;
  return IDEMPOTENT.has(op.method);
}

function dated(row: unknown): boolean {
  const t = row && typeof row === "object" ? (row as { Timestamp?: unknown }).Timestamp : undefined;
  const year = typeof t === "string" ? /^\s*(\d{4})-/.exec(t) : null;
  return !!year && Number(year[1]) >= 1990;
}

/** Health checks answer 503 with their report when unhealthy: that is the answer. */
function answersWith503(operation: string): boolean {
  return operation.startsWith("health") || operation === "gorse_lists_live" || operation === "gorse_lists_ready";
}

/** An answer outside 2xx, with the fields of Vitrina's error shape. */
export class VitrinaError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number,
    readonly error: string,
    /** The server's own message (`message` is the whole line: operation, status, error, it). */
    readonly serverMessage: string,
    readonly details: unknown = {},
    readonly retryAfter?: number,
  ) {
    super(`${operation}: ${status} ${error}: ${serverMessage}`);
    this.name = "VitrinaError";
  }

  /** The error an answer outside 2xx stands for; `text` is its body. */
  static from(operation: string, response: Response, text: string): VitrinaError {
    const retryAfter = seconds(response.headers.get("retry-after"));
    try {
      const body = JSON.parse(text) as { error?: unknown; message?: unknown; details?: unknown };
      if (body && typeof body === "object" && "error" in body) {
        return new VitrinaError(operation, response.status, String(body.error), String(body.message ?? ""), body.details ?? {}, retryAfter);
      }
    } catch {
      // not JSON: keep the text
    }
    return new VitrinaError(operation, response.status, "http_error", text, {}, retryAfter);
  }
}

function seconds(value: string | null): number | undefined {
  if (value === null) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * When and how long to wait before trying again, up to `attempts` tries in all. A 429 (the
 * rate limiter refused the request before anything was done) is always repeated; a 503 (the
 * store failed, perhaps after writing) and a failed `fetch` (which cannot tell a request that
 * never left from an answer that was lost) only where a second try cannot double anything:
 * reads, PUT and DELETE, tracking (every event carries an `eventId`), Gorse feedback whose rows
 * all carry a `Timestamp`. The wait doubles from `backoffMs`, with jitter, up to `maxWaitMs`;
 * a `Retry-After` header says how long instead.
 */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, backoffMs: 200, maxWaitMs: 10_000 };

export function retryDelay(policy: RetryPolicy, attempt: number, retryAfter?: number): number {
  if (retryAfter !== undefined) return Math.min(policy.maxWaitMs, Math.max(0, retryAfter * 1000));
  const base = Math.min(policy.maxWaitMs, policy.backoffMs * 2 ** attempt);
  return base * (0.5 + Math.random() / 2);
}

export interface ClientOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Per try, in milliseconds (default 10 s). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Another fetch (tests, proxies); the global one by default. */
  fetch?: typeof fetch;
  /** Called after each try with the operation id, the status (0: no answer) and the attempt. */
  onRequest?: (operation: string, status: number, attempt: number) => void;
}

/** A client of one Vitrina server: every operation of its API is a method. */
export class VitrinaClient extends Operations {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  private readonly options: ClientOptions;

  constructor(baseUrl = "http://127.0.0.1:8080", options: ClientOptions = {}) {
    super();
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    const r = options.retry ?? {};
    this.retry = {
      attempts: r.attempts ?? DEFAULT_RETRY.attempts,
      backoffMs: r.backoffMs ?? DEFAULT_RETRY.backoffMs,
      maxWaitMs: r.maxWaitMs ?? DEFAULT_RETRY.maxWaitMs,
    };
    this.options = options;
  }

  protected send: Send = async (op, path, options, body) => {
    const url = this.url(op, path, options);
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    for (const name of op.headers) {
      const v = options[name];
      if (v !== undefined && v !== null) headers[name] = String(v);
    }
    let payload: string | undefined;
    const sent = TRACKING.has(op.id) ? withEventIds(op.id, body) : body;
    if (sent !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(sent);
    }
    const again = repeatable(op, options, sent);
    const doFetch = this.options.fetch ?? fetch;
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.retry.attempts;
      let response: Response;
      let text: string;
      try {
        response = await doFetch(url, {
          method: op.method,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        });
        // The body inside the try: a connection lost while it arrives is a failed try too.
        text = await response.text();
      } catch (error) {
        this.options.onRequest?.(op.id, 0, attempt);
        // fetch does not tell whether the request left: repeat only what cannot double.
        if (last || !again) throw error;
        await sleep(retryDelay(this.retry, attempt));
        continue;
      }
      this.options.onRequest?.(op.id, response.status, attempt);
      const retry = response.status === 429 || (response.status === 503 && again && !answersWith503(op.id));
      if (retry && !last) {
        const error = VitrinaError.from(op.id, response, text);
        await sleep(retryDelay(this.retry, attempt, error.retryAfter));
        continue;
      }
      if (!response.ok) throw VitrinaError.from(op.id, response, text);
      if (!text) return undefined;
      return (response.headers.get("content-type") ?? "").includes("json") ? JSON.parse(text) : text;
    }
  };

  private url(op: Operation, path: Record<string, string | number>, options: Record<string, unknown>): string {
    let p = op.path;
    for (const name of op.pathParams) p = p.replace(`{${name}}`, encodeURIComponent(String(path[name])));
    const query = new URLSearchParams();
    for (const name of op.query) {
      const v = options[name];
      // Lists are comma-separated (`style: form, explode: false`).
      if (v !== undefined && v !== null) query.set(name, Array.isArray(v) ? v.join(",") : String(v));
    }
    const q = query.toString();
    return `${this.baseUrl}${p}${q ? `?${q}` : ""}`;
  }
}

/** The body with an `eventId` on every event that has none, so a repeat is a duplicate. */
export function withEventIds(operation: string, body: unknown): unknown {
  const one = (e: unknown) =>
    e && typeof e === "object" && !(e as { eventId?: unknown }).eventId ? { ...e, eventId: newEventId() } : e;
  if (operation === "activity_track") return one(body);
  const events = (body as { events?: unknown } | null)?.events;
  return Array.isArray(events) ? { ...(body as object), events: events.map(one) } : body;
}

/**
 * A random (version 4) UUID. `crypto.randomUUID` exists only in secure contexts in browsers
 * (https, localhost); `getRandomValues` everywhere.
 */
export function newEventId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
