"""The HTTP core shared by the sync and the async client: the key header, one operation
turned into a request, retries with backoff, and the error shape turned into an exception."""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from ._operations import OPERATIONS, Operation

#: Methods a repeat cannot double (but see `repeatable` for the operations that write anyway).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
#: Operations that are safe to repeat because every event carries an `eventId` the server
#: stores at most once (the client gives one to each event that has none).
TRACKING = frozenset({"activity_track", "activity_track_batch"})
#: Gorse feedback writes: their event ids come from the rows, so a repeat is stored once
#: when every row carries a real time (an undated row, or one at Gorse's zero time, is dated
#: on receipt, and so is its repeat).
GORSE_FEEDBACK = frozenset({"gorse_feedback_insert", "gorse_feedback_upsert"})
#: A time the server keeps as given: a year from 1990 on (earlier ones are refused or, as
#: Gorse's zero time and the epoch, read as "no time").
DATED = re.compile(r"\s*(\d{4})-")
#: Gorse lists that, with `write-back-type`, also store the items returned as feedback.
GORSE_WRITE_BACK = frozenset({"gorse_lists_recommend", "gorse_lists_recommend_in"})


def dated(row: Any) -> bool:
    """Whether a Gorse feedback row carries a real time (see `DATED`)."""
    t = row.get("Timestamp") if isinstance(row, dict) else None
    m = DATED.match(t) if isinstance(t, str) else None
    return m is not None and int(m.group(1)) >= 1990


def repeatable(operation_id: str, method: str, query: Mapping[str, Any], body: Any) -> bool:
    """Whether sending this request twice has the effect of sending it once."""
    if operation_id in TRACKING:
        return True
    if operation_id in GORSE_FEEDBACK:
        return isinstance(body, list) and all(dated(f) for f in body)
    if operation_id in GORSE_WRITE_BACK and query.get("write-back-type"):
        return False
    return method in IDEMPOTENT_METHODS


def answers_with_503(operation_id: str) -> bool:
    """Health checks answer 503 with their report when unhealthy: that is the answer."""
    return operation_id.startswith("health") or operation_id in ("gorse_lists_live", "gorse_lists_ready")


class VitrinaError(Exception):
    """An answer outside 2xx. `error`, `message` and `details` come from Vitrina's error shape
    (`{"success": false, "error": …, "message": …, "code": …, "details": {…}}`); an answer in
    another shape keeps its text in `message`."""

    def __init__(
        self,
        operation: str,
        status: int,
        error: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{operation}: {status} {error}: {message}")
        self.operation = operation
        self.status = status
        self.error = error
        self.message = message
        self.details = details if details is not None else {}
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, operation: str, response: httpx.Response) -> "VitrinaError":
        try:
            body = response.json()
        except ValueError:
            body = None
        retry_after = _seconds(response.headers.get("retry-after"))
        if isinstance(body, dict) and "error" in body:
            return cls(
                operation,
                response.status_code,
                str(body.get("error")),
                str(body.get("message", "")),
                body.get("details"),
                retry_after,
            )
        return cls(operation, response.status_code, "http_error", response.text, None, retry_after)


@dataclass(frozen=True)
class Retry:
    """When and how long to wait before trying again, up to `attempts` tries in all.

    Repeated: a 429 (the rate limiter refused the request before anything was done) and a
    connection that never opened. Repeated only where a second try cannot double anything —
    reads, PUT and DELETE, tracking (every event carries an `eventId`), Gorse feedback whose
    rows all carry a `Timestamp` — a 503 (the store failed, perhaps after writing) and a
    connection lost after the request was sent. The wait doubles from `backoff` seconds,
    with jitter, up to `max_wait`; a `Retry-After` header, when present, says how long
    instead."""

    attempts: int = 4
    backoff: float = 0.2
    max_wait: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_wait, max(0.0, retry_after))
        base = min(self.max_wait, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)


NO_RETRY = Retry(attempts=1)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class Request:
    """One operation as an HTTP request."""

    operation: Operation
    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    json: Any

    #: Whether sending it twice has the effect of sending it once (`repeatable`).
    repeatable: bool


def build(
    operation_id: str,
    path: Mapping[str, Any],
    query: Mapping[str, Any],
    headers: Mapping[str, Any],
    body: Any,
) -> Request:
    op = OPERATIONS[operation_id]
    url = op.path
    for name in op.path_params:
        url = url.replace("{" + name + "}", quote(str(path[name]), safe=""))
    params = {k: _text(v) for k, v in query.items() if v is not None}
    sent = {k: _text(v) for k, v in headers.items() if v is not None}
    if operation_id in TRACKING and body is not None:
        body = with_event_ids(operation_id, body)
    return Request(op, op.method, url, params, sent, body, repeatable(operation_id, op.method, query, body))


def _text(value: Any) -> str:
    """A parameter as the server reads it: booleans in lower case, lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def with_event_ids(operation_id: str, body: Any) -> Any:
    """The body with an `eventId` on every event that has none, so that a repeat after a
    lost answer is recognised as a duplicate instead of stored twice. The caller's dicts are
    not changed."""

    def one(event: Any) -> Any:
        if isinstance(event, dict) and not event.get("eventId"):
            return {**event, "eventId": str(uuid.uuid4())}
        return event

    if operation_id == "activity_track":
        return one(body)
    if isinstance(body, dict) and isinstance(body.get("events"), (list, tuple)):
        return {**body, "events": [one(e) for e in body["events"]]}
    return body


def auth_headers(api_key: str | None, user_agent: str) -> dict[str, str]:
    headers = {"user-agent": user_agent, "accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def decode(request: Request, response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise VitrinaError.from_response(request.operation.id, response)
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def connection_failed_before_sending(error: httpx.TransportError) -> bool:
    return isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def wait_after_failure(retry: Retry, request: Request, error: httpx.TransportError, attempt: int) -> float:
    """How long to wait before the next try after a failed connection; re-raises `error`
    when the request must not be repeated (the last try, or a lost answer to a request a
    repeat could double)."""
    last = attempt + 1 >= retry.attempts
    if last or not (connection_failed_before_sending(error) or request.repeatable):
        raise error
    return retry.delay(attempt, None)


def wait_after_answer(retry: Retry, request: Request, response: httpx.Response, attempt: int) -> float | None:
    """How long to wait before the next try after an answer, or `None` when the answer is
    final (`decode` it)."""
    if attempt + 1 >= retry.attempts:
        return None
    status, op = response.status_code, request.operation.id
    if not (status == 429 or (status == 503 and request.repeatable and not answers_with_503(op))):
        return None
    return retry.delay(attempt, VitrinaError.from_response(request.operation.id, response).retry_after)
