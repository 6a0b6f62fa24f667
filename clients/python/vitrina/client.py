"""`Client` and `AsyncClient`: every operation of Vitrina's API as a method (generated from the
OpenAPI document into `_operations.py`), over one `httpx` connection pool."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping

import httpx

from . import __version__
from ._http import NO_RETRY, Request, Retry, VitrinaError, auth_headers, build, decode
from ._http import wait_after_answer, wait_after_failure
from ._operations import AsyncOperations, SyncOperations

USER_AGENT = f"vitrina-python/{__version__}"

#: Called after each request with the operation id, the HTTP status (0 when no answer came)
#: and the attempt number; for logging and metrics.
Hook = Callable[[str, int, int], None]


class _Common:
    """What both clients keep: the retry policy, the hook, the headers of every request."""

    def _configure(self, api_key: str | None, retry: Retry | None, on_request: Hook | None) -> None:
        self.retry = retry or Retry()
        self._hook = on_request
        # Sent with every request, also over an `http` client passed in.
        self._headers = auth_headers(api_key, USER_AGENT)

    def _report(self, request: Request, status: int, attempt: int) -> None:
        if self._hook:
            self._hook(request.operation.id, status, attempt)


class Client(_Common, SyncOperations):
    """A blocking client.

    >>> with Client("http://127.0.0.1:8080", api_key="vk_…") as vitrina:
    ...     vitrina.activity_track({"userId": "u1", "productId": "p1", "activityType": "view"})
    ...     vitrina.recommendations("u1", limit=5)["recommendations"]
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retry: Retry | None = None,
        on_request: Hook | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._configure(api_key, retry, on_request)
        self._http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        operation_id: str,
        path: Mapping[str, Any] = {},
        query: Mapping[str, Any] = {},
        headers: Mapping[str, Any] = {},
        body: Any = None,
    ) -> Any:
        request = build(operation_id, path, query, headers, body)
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    request.method,
                    request.url,
                    params=request.params,
                    headers={**self._headers, **request.headers},
                    json=request.json,
                )
            except httpx.TransportError as e:
                self._report(request, 0, attempt)
                wait = wait_after_failure(self.retry, request, e, attempt)
            else:
                self._report(request, response.status_code, attempt)
                wait = wait_after_answer(self.retry, request, response, attempt)
                if wait is None:
                    return decode(request, response)
            attempt += 1
            time.sleep(wait)


class AsyncClient(_Common, AsyncOperations):
    """The same operations for asyncio: every method is a coroutine.

    >>> async with AsyncClient("http://127.0.0.1:8080") as vitrina:
    ...     await vitrina.recommendations_popular(limit=10)
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retry: Retry | None = None,
        on_request: Hook | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._configure(api_key, retry, on_request)
        self._http = http or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        operation_id: str,
        path: Mapping[str, Any] = {},
        query: Mapping[str, Any] = {},
        headers: Mapping[str, Any] = {},
        body: Any = None,
    ) -> Any:
        request = build(operation_id, path, query, headers, body)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method,
                    request.url,
                    params=request.params,
                    headers={**self._headers, **request.headers},
                    json=request.json,
                )
            except httpx.TransportError as e:
                self._report(request, 0, attempt)
                wait = wait_after_failure(self.retry, request, e, attempt)
            else:
                self._report(request, response.status_code, attempt)
                wait = wait_after_answer(self.retry, request, response, attempt)
                if wait is None:
                    return decode(request, response)
            attempt += 1
            await asyncio.sleep(wait)


__all__ = ["AsyncClient", "Client", "Hook", "NO_RETRY", "Retry", "VitrinaError"]
