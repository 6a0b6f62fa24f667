"""The client against the live server's `/openapi.json`: its generated layer is up to date,
every operation is a method, and the tests above drove every one of them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

import vitrina
from conftest import EXERCISED, ROOT


def spec_operations(server) -> set[str]:
    with urllib.request.urlopen(f"{server}/openapi.json") as r:
        spec = json.load(r)
    return {op["operationId"] for item in spec["paths"].values() for op in item.values() if "operationId" in op}


def test_the_generated_code_matches_the_servers_spec(server):
    check = subprocess.run(
        [sys.executable, str(ROOT / "clients" / "generate.py"), "--check", "--spec", f"{server}/openapi.json"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_every_operation_is_a_method_of_both_clients(server):
    operations = spec_operations(server)
    assert len(operations) > 50
    assert set(vitrina.OPERATIONS) == operations
    for name in operations:
        assert callable(getattr(vitrina.Client, name)), name
        assert callable(getattr(vitrina.AsyncClient, name)), name


@pytest.mark.last
def test_the_tests_drove_every_operation(server):
    missing = spec_operations(server) - set(EXERCISED)
    assert not missing, f"operations no test called: {sorted(missing)}"
