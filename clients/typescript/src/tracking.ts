// Batching for tracking: events are queued and sent together through
// `POST /api/v1/activity/track/batch`, one durable transaction per batch. Each queued event
// gets an `eventId` when it has none, so a batch repeated after a lost answer is recognised
// as duplicates and nothing is stored twice.

import { newEventId, type VitrinaClient } from "./client.js";
import type { BatchResponse, TrackRequest } from "./models.js";

/** The server takes at most this many events in one batch. */
export const MAX_BATCH = 10_000;

/**
 * Queues events and sends them in batches of `batchSize`; `flush()` sends what is left.
 * A batch the server refuses (a 400 lists every bad event by index) rejects with
 * `VitrinaError`, and its events stay in `pending`.
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

  // One batch at a time, in order, even when callers do not await each track().
  private send(): Promise<void> {
    // A failed batch stays queued; the next send tries it again.
    this.sending = this.sending.catch(() => undefined).then(async () => {
      const batch = this.pending.slice(0, this.batchSize);
      if (batch.length === 0) return;
      const answer = await this.client.activityTrackBatch({ events: batch });
      this.pending.splice(0, batch.length);
      this.results.push(answer);
    });
    return this.sending;
  }
}
