// The hand-written core of the client: the key header, one operation turned into a fetch,
// retries with backoff, and Vitrina's error shape turned into an exception. Every operation
// is a method of `Operations`, generated from the OpenAPI document (operations.ts).

import { type Operation, Operations, type Send } from "./operations.js";

/** Statuses that mean "not done, try again later": rate limited, or the store unavailable. */
export const RETRY_STATUSES: readonly number[] = [429, 503];
const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE"]);
/** Safe to repeat: every event carries an `eventId` the server stores at most once. */
const TRACKING = new Set(["activity_track", "activity_track_batch"]);

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
 * When and how long to wait before trying again. A request is repeated, up to `attempts`
 * tries in all, on 429 and 503 and when the connection fails; a failed connection is repeated
 * only where a repeat cannot double anything (GET, PUT, DELETE, and tracking, whose events all
 * carry an `eventId`). The wait doubles from `backoffMs`, with jitter, up to `maxWaitMs`; a
 * `Retry-After` header says how long instead.
 */
export interface RetryPolicy {
  attempts: number;
  backoffMs: number;
  maxWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, backoffMs: 200, maxWaitMs: 10_000 };

export function retryDelay(policy: RetryPolicy, attempt: number, retryAfter?: number): number {
  if (retryAfter !== undefined) return Math.min(policy.maxWaitMs, retryAfter * 1000);
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
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(TRACKING.has(op.id) ? withEventIds(op.id, body) : body);
    }
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
        if (last || !(IDEMPOTENT.has(op.method) || TRACKING.has(op.id))) throw error;
        await sleep(retryDelay(this.retry, attempt));
        continue;
      }
      this.options.onRequest?.(op.id, response.status, attempt);
      if (RETRY_STATUSES.includes(response.status) && !last) {
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
