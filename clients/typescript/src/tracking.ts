// Batching for tracking: events are queued and sent together through
// `POST /api/v1/activity/track/batch`, one durable transaction per batch. Each queued event
// gets an `eventId` when it has none, so a batch repeated after a lost answer is recognised
// as duplicates and nothing is stored twice. A batch is all or nothing: events the server
// refuses (a 400 naming each by index) are set aside in `rejected` with its reasons, and the
// rest of the batch is sent again.

import { newEventId, type VitrinaClient, VitrinaError } from "./client.js";
import type { BatchResponse, TrackRequest } from "./models.js";

/** The server takes at most this many events in one batch by default (`[limits] batch_events`). */
export const MAX_BATCH = 10_000;

/**
 * Queues events and sends them in batches of `batchSize`; `flush()` sends what is left.
 * Events the server refuses (a 400 names each by index) move to `rejected` with the server's
 * reasons, and the rest of their batch is sent again; any other error (a `VitrinaError`, or
 * fetch's own) rejects and leaves the batch in `pending`, for the next `flush()`. Await each
 * `track()`: one that fills a batch sends it.
 *
 *     const tracker = new Tracker(client, { batchSize: 500 });
 *     await tracker.track({ userId: "u1", productId: "p1", activityType: "view" });
 *     await tracker.flush();
 */
export class Tracker {
  readonly batchSize: number;
  readonly pending: TrackRequest[] = [];
  /** Every answer of the batches sent so far, in order. */
  readonly results: BatchResponse[] = [];
  /** Events the server refused, with its reasons. */
  readonly rejected: { event: TrackRequest; errors: { field?: string; message?: string }[] }[] = [];
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: VitrinaClient,
    options: { batchSize?: number } = {},
  ) {
    this.batchSize = options.batchSize ?? 1000;
    if (!(Number.isInteger(this.batchSize) && this.batchSize >= 1 && this.batchSize <= MAX_BATCH)) {
      throw new RangeError(`batchSize must be from 1 to ${MAX_BATCH}, got ${this.batchSize}`);
    }
  }

  /** Queues one event (sending a batch when one is full) and returns its `eventId`. */
  async track(event: TrackRequest): Promise<string> {
    const withId = event.eventId ? event : ({ ...event, eventId: newEventId() } as TrackRequest);
    this.pending.push(withId);
    if (this.pending.length >= this.batchSize) await this.send();
    return withId.eventId as string;
  }

  /** Sends everything queued. */
  async flush(): Promise<void> {
    while (this.pending.length > 0) await this.send();
  }

  /**
   * Moves the events of the batch (its first `count`) that a 400 names — by `index`, or by a
   * field `events[i]…` when the body did not parse — to `rejected`; rethrows when it names none.
   */
  private setAside(error: unknown, count: number): void {
    const reasons = new Map<number, { field?: string; message?: string }[]>();
    const listed = error instanceof VitrinaError && error.status === 400 ? (error.details as { errors?: unknown })?.errors : undefined;
    for (const e of Array.isArray(listed) ? listed : []) {
      if (!e || typeof e !== "object") continue;
      const { index, field, message } = e as { index?: unknown; field?: unknown; message?: unknown };
      const named = /^events\[(\d+)\]/.exec(String(field ?? ""));
      const i = Number.isInteger(index) ? (index as number) : named ? Number(named[1]) : -1;
      if (i >= 0 && i < count) {
        const reason = { field: field === undefined ? undefined : String(field), message: message === undefined ? undefined : String(message) };
        reasons.set(i, [...(reasons.get(i) ?? []), reason]);
      }
    }
    if (reasons.size === 0) throw error;
    const indexes = [...reasons.keys()].sort((a, b) => a - b);
    const taken = indexes.map((i) => ({ event: this.pending[i], errors: reasons.get(i)! }));
    for (const i of [...indexes].reverse()) this.pending.splice(i, 1);
    this.rejected.push(...taken);
  }

  // One batch at a time, in order, even when callers do not await each track().
  private send(): Promise<void> {
    // A failed batch stays queued; the next send tries it again.
    this.sending = this.sending.catch(() => undefined).then(async () => {
      const batch = this.pending.slice(0, this.batchSize);
      if (batch.length === 0) return;
      let answer: BatchResponse;
      try {
        answer = await this.client.activityTrackBatch({ events: batch });
      } catch (error) {
        this.setAside(error, batch.length);
        return;
      }
      this.pending.splice(0, batch.length);
      this.results.push(answer);
    });
    return this.sending;
  }
}
