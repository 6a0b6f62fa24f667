"""Batching for tracking: events are queued and sent together through
`POST /api/v1/activity/track/batch`, one durable transaction per batch.

Each queued event gets an `eventId` when it has none, so a batch repeated after a lost answer
is recognised as duplicates by the server and nothing is stored twice."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .client import AsyncClient, Client

#: The server takes at most this many events in one batch.
MAX_BATCH = 10_000


def _prepared(event: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(event)
    if not out.get("eventId"):
        out["eventId"] = str(uuid.uuid4())
    return out


class _Queue:
    def __init__(self, batch_size: int) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH}, got {batch_size}")
        self.batch_size = batch_size
        self.pending: list[dict[str, Any]] = []
        #: Every answer of the batches sent so far, in order.
        self.results: list[dict[str, Any]] = []

    def add(self, event: Mapping[str, Any]) -> str:
        prepared = _prepared(event)
        self.pending.append(prepared)
        return prepared["eventId"]

    def next_batch(self) -> list[dict[str, Any]]:
        return self.pending[: self.batch_size]

    def sent(self, count: int, answer: dict[str, Any]) -> None:
        del self.pending[:count]
        self.results.append(answer)


class Tracker:
    """Queues events and sends them in batches of `batch_size`; `flush()` (or leaving the
    `with` block) sends what is left. `track()` returns the event's id.

    >>> with Tracker(client, batch_size=500) as tracker:
    ...     tracker.track({"userId": "u1", "productId": "p1", "activityType": "view"})

    A batch the server refuses (a 400 lists every bad event by index) raises `VitrinaError`,
    and its events stay queued for the caller to inspect in `pending`."""

    def __init__(self, client: "Client", batch_size: int = 1000) -> None:
        self._client = client
        self._queue = _Queue(batch_size)

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self._queue.pending

    @property
    def results(self) -> list[dict[str, Any]]:
        return self._queue.results

    def track(self, event: Mapping[str, Any]) -> str:
        event_id = self._queue.add(event)
        if len(self._queue.pending) >= self._queue.batch_size:
            self._send()
        return event_id

    def flush(self) -> None:
        while self._queue.pending:
            self._send()

    def _send(self) -> None:
        batch = self._queue.next_batch()
        self._queue.sent(len(batch), self._client.activity_track_batch({"events": batch}))

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.flush()


class AsyncTracker:
    """`Tracker` for `AsyncClient`: `await tracker.track(…)`, `await tracker.flush()`, or
    `async with AsyncTracker(client) as tracker`."""

    def __init__(self, client: "AsyncClient", batch_size: int = 1000) -> None:
        self._client = client
        self._queue = _Queue(batch_size)

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self._queue.pending

    @property
    def results(self) -> list[dict[str, Any]]:
        return self._queue.results

    async def track(self, event: Mapping[str, Any]) -> str:
        event_id = self._queue.add(event)
        if len(self._queue.pending) >= self._queue.batch_size:
            await self._send()
        return event_id

    async def flush(self) -> None:
        while self._queue.pending:
            await self._send()

    async def _send(self) -> None:
        batch = self._queue.next_batch()
        self._queue.sent(len(batch), await self._client.activity_track_batch({"events": batch}))

    async def __aenter__(self) -> "AsyncTracker":
        return self

    async def __aexit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            await self.flush()
