"""The HTTP core shared by the sync and the async client: the key header, one operation
turned into a request, retries with backoff, and the error shape turned into an exception."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from ._operations import OPERATIONS, Operation

#: Statuses that mean "not done, try again later": rate limited, or the store unavailable.
RETRY_STATUSES = frozenset({429, 503})
#: Methods a repeat cannot double.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
#: Operations that are safe to repeat because every event carries an `eventId` the server
#: stores at most once (the client gives one to each event that has none).
TRACKING = frozenset({"activity_track", "activity_track_batch"})


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
    """When and how long to wait before trying again.

    A request is repeated, up to `attempts` tries in all, when the server answers 429 or 503,
    or when the connection fails. A connection that failed after the request was sent is
    repeated only where a repeat cannot double anything: GET, PUT and DELETE, and tracking
    (every event carries an `eventId`). The wait doubles from `backoff` seconds, with jitter,
    up to `max_wait`; a `Retry-After` header, when present, says how long instead."""

    attempts: int = 4
    backoff: float = 0.2
    max_wait: float = 10.0
    statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_wait, retry_after)
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

    def may_repeat_after_sending(self) -> bool:
        return self.method in IDEMPOTENT_METHODS or self.operation.id in TRACKING


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
    return Request(op, op.method, url, params, sent, body)


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
    if isinstance(body, dict) and isinstance(body.get("events"), list):
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
    if last or not (connection_failed_before_sending(error) or request.may_repeat_after_sending()):
        raise error
    return retry.delay(attempt, None)


def wait_after_answer(retry: Retry, request: Request, response: httpx.Response, attempt: int) -> float | None:
    """How long to wait before the next try after an answer, or `None` when the answer is
    final (`decode` it)."""
    if response.status_code not in retry.statuses or attempt + 1 >= retry.attempts:
        return None
    return retry.delay(attempt, VitrinaError.from_response(request.operation.id, response).retry_after)
