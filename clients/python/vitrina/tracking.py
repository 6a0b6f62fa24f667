"""Batching for tracking: events are queued and sent together through
`POST /api/v1/activity/track/batch`, one durable transaction per batch.

Each queued event gets an `eventId` when it has none, so a batch repeated after a lost answer
is recognised as duplicates by the server and nothing is stored twice. A batch is all or
nothing: when the server refuses events (a 400 naming each by index), they are set aside in
`rejected` with the server's reasons and the rest of the batch is sent again."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING, Any, Mapping

from ._http import VitrinaError

if TYPE_CHECKING:
    from .client import AsyncClient, Client

#: The server takes at most this many events in one batch by default (`[limits] batch_events`).
MAX_BATCH = 10_000
#: A field of the batch's body that names an event: `events[3].userId`.
FIELD_INDEX = re.compile(r"^events\[(\d+)\]")


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
        #: Events the server refused, each `{"event": …, "errors": [{"field", "message"}…]}`.
        self.rejected: list[dict[str, Any]] = []

    def add(self, event: Mapping[str, Any]) -> str:
        prepared = _prepared(event)
        self.pending.append(prepared)
        return prepared["eventId"]

    def next_batch(self) -> list[dict[str, Any]]:
        return self.pending[: self.batch_size]

    def sent(self, count: int, answer: dict[str, Any]) -> None:
        del self.pending[:count]
        self.results.append(answer)

    def refused(self, error: VitrinaError, count: int) -> None:
        """Sets aside the events of the batch (its first `count`) that a 400 names — by
        `index`, or by a field `events[i]…` when the body did not parse — and raises `error`
        when it names none (nothing to set aside: the caller must look)."""
        reasons: dict[int, list[dict[str, Any]]] = {}
        details = error.details if isinstance(error.details, dict) else {}
        listed = details.get("errors") if error.status == 400 else None
        for e in listed if isinstance(listed, list) else []:
            if not isinstance(e, dict):
                continue
            index = e.get("index")
            if type(index) is not int:
                named = FIELD_INDEX.match(str(e.get("field", "")))
                index = int(named.group(1)) if named else None
            if index is not None and 0 <= index < count:
                reasons.setdefault(index, []).append({"field": e.get("field"), "message": e.get("message")})
        if not reasons:
            raise error
        taken = {i: self.pending[i] for i in reasons}
        for index in sorted(reasons, reverse=True):
            del self.pending[index]
        self.rejected.extend({"event": taken[i], "errors": reasons[i]} for i in sorted(reasons))


class _Views:
    """What both trackers show of their queue."""

    _queue: _Queue

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self._queue.pending

    @property
    def results(self) -> list[dict[str, Any]]:
        return self._queue.results

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return self._queue.rejected


class Tracker(_Views):
    """Queues events and sends them in batches of `batch_size`; `flush()` (or leaving the
    `with` block) sends what is left. `track()` returns the event's id.

    >>> with Tracker(client, batch_size=500) as tracker:
    ...     tracker.track({"userId": "u1", "productId": "p1", "activityType": "view"})

    Events the server refuses (a 400 names each) move to `rejected` with the server's
    reasons, and the rest of their batch is sent again; look at `rejected` after `flush()`.
    Any other error (a `VitrinaError`, or the connection's own) propagates and leaves the
    batch in `pending`, to be sent by the next `flush()`. Leaving the `with` block by an
    exception sends nothing."""

    def __init__(self, client: "Client", batch_size: int = 1000) -> None:
        self._client = client
        self._queue = _Queue(batch_size)

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
        try:
            answer = self._client.activity_track_batch({"events": batch})
        except VitrinaError as error:
            self._queue.refused(error, len(batch))
            return
        self._queue.sent(len(batch), answer)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.flush()


class AsyncTracker(_Views):
    """`Tracker` for `AsyncClient`: `await tracker.track(…)`, `await tracker.flush()`, or
    `async with AsyncTracker(client) as tracker`."""

    def __init__(self, client: "AsyncClient", batch_size: int = 1000) -> None:
        self._client = client
        self._queue = _Queue(batch_size)
        # One batch in flight at a time: tasks that track concurrently wait their turn.
        self._sending = asyncio.Lock()

    async def track(self, event: Mapping[str, Any]) -> str:
        event_id = self._queue.add(event)
        if len(self._queue.pending) >= self._queue.batch_size:
            async with self._sending:
                # Another task may have sent this batch while this one waited.
                if len(self._queue.pending) >= self._queue.batch_size:
                    await self._send()
        return event_id

    async def flush(self) -> None:
        async with self._sending:
            while self._queue.pending:
                await self._send()

    async def _send(self) -> None:
        batch = self._queue.next_batch()
        try:
            answer = await self._client.activity_track_batch({"events": batch})
        except VitrinaError as error:
            self._queue.refused(error, len(batch))
            return
        self._queue.sent(len(batch), answer)

    async def __aenter__(self) -> "AsyncTracker":
        return self

    async def __aexit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            await self.flush()
