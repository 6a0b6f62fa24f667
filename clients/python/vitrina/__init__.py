"""Vitrina's Python client: `Client` (blocking) and `AsyncClient` (asyncio) with one method per
operation of the API, the models as `TypedDict`s (`vitrina.models`), retries with backoff, and
batched tracking (`Tracker`, `AsyncTracker`)."""

__version__ = "0.1.0"

from ._http import NO_RETRY, Retry, VitrinaError  # noqa: E402
from ._operations import OPERATIONS  # noqa: E402
from .client import AsyncClient, Client  # noqa: E402
from .tracking import MAX_BATCH, AsyncTracker, Tracker  # noqa: E402

__all__ = [
    "MAX_BATCH",
    "NO_RETRY",
    "OPERATIONS",
    "AsyncClient",
    "AsyncTracker",
    "Client",
    "Retry",
    "Tracker",
    "VitrinaError",
]
