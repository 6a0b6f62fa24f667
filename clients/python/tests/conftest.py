"""A live `vitrina serve` for the tests (over a fresh data directory with the demo data), an
admin key, and the record of which operations the tests drove; the coverage test checks it
against `/openapi.json`."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import vitrina

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("VITRINA_BIN", ROOT / "target" / "debug" / "vitrina"))

#: Operation id -> statuses the server answered, over the whole session.
EXERCISED: dict[str, set[int]] = {}


def record(operation: str, status: int, _attempt: int) -> None:
    if status:
        EXERCISED.setdefault(operation, set()).add(status)


@pytest.fixture(scope="session")
def server():
    """The base URL of a server started for this session; stopped at the end."""
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `cargo build --bin vitrina` first")
    with tempfile.TemporaryDirectory() as work:
        log = open(Path(work) / "server.log", "w")
        proc = subprocess.Popen(
            [str(BINARY), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(Path(work) / "data")],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            base = None
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.match(r"vitrina listening on (\S+)", line)
                if m:
                    base = m.group(1)
                    break
            if base is None:
                pytest.fail("the server exited before listening: " + (Path(work) / "server.log").read_text())
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            errors = [l for l in (Path(work) / "server.log").read_text().splitlines() if '"level":"ERROR"' in l]
            assert not errors, "the server logged errors:\n" + "\n".join(errors[:20])


@pytest.fixture(scope="session")
def admin_key(server) -> str:
    """The first key closes the open server: from then on every request needs one."""
    with vitrina.Client(server, on_request=record) as open_client:
        created = open_client.keys_create({"scope": "admin", "name": "python-tests"})
    assert created["key"] and created["apiKey"]["scope"] == "admin"
    return created["key"]


@pytest.fixture
def client(server, admin_key):
    with vitrina.Client(server, api_key=admin_key, on_request=record) as c:
        yield c


def eventually(check, timeout: float = 30.0):
    """Polls `check` until it returns a true value (the server applies some changes after it
    answers, e.g. a training job); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout} s: {check}")
        time.sleep(0.05)


def pytest_collection_modifyitems(items):
    """The coverage test runs last, after every other test has driven its operations."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: runs after every other test")
