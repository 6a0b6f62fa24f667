// Batching for tracking: events are queued and sent together through
// `POST /api/v1/activity/track/batch`, one durable transaction per batch. Each queued event
// gets an `eventId` when it has none, so a batch repeated after a lost answer is recognised
// as duplicates and nothing is stored twice. A batch is all or nothing: events the server
// refuses (a 400 naming each by index) are set aside in `rejected` with its reasons, and the
// rest of the batch is sent again.

import { newEventId, type VitrinaClient, VitrinaError } from "./client.js";
import type { BatchResponse, TrackRequest } from "./models.js";

/** The server takes at most this many events in one batch. */
export const MAX_BATCH = 10_000;

/**
 * Queues events and sends them in batches of `batchSize`; `flush()` sends what is left.
 * Events the server refuses (a 400 names each by index) move to `rejected` with the server's
 * reasons, and the rest of their batch is sent again; any other error rejects with
 * `VitrinaError` and leaves the batch in `pending`, for the next `flush()`. Await each
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

  /** Moves the events a 400 names by index to `rejected`; rethrows when it names none. */
  private setAside(error: unknown, count: number): void {
    const reasons = new Map<number, { field?: string; message?: string }[]>();
    if (error instanceof VitrinaError && error.status === 400) {
      const listed = (error.details as { errors?: { index?: unknown; field?: string; message?: string }[] })?.errors ?? [];
      for (const e of listed) {
        if (typeof e.index === "number" && e.index >= 0 && e.index < count) {
          reasons.set(e.index, [...(reasons.get(e.index) ?? []), { field: e.field, message: e.message }]);
        }
      }
    }
    if (reasons.size === 0) throw error;
    for (const index of [...reasons.keys()].sort((a, b) => b - a)) {
      this.rejected.unshift({ event: this.pending.splice(index, 1)[0], errors: reasons.get(index)! });
    }
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
