"""Training, the model registry and experiments through `Client` against the live server."""

from __future__ import annotations

import pytest

import vitrina
from conftest import eventually


def test_a_training_job_registers_a_model_that_can_be_activated_and_rolled_back(client):
    before = client.training_status()["activeModelVersion"]
    queued = client.training_train({"config": {"algorithms": ["popularity", "transitions"], "timeDecay": 0.9}})
    job = queued["job"]["jobId"]
    assert queued["job"]["status"] == "queued"

    def finished():
        last = client.training_status()["lastFinished"]
        return last if last and last["jobId"] == job else None

    done = eventually(finished, timeout=120)
    assert done["status"] in ("succeeded", "rejected"), done
    version = done["modelVersion"]
    models = client.training_models()
    assert version in [m["version"] for m in models["models"]]
    assert client.training_model(version)["model"]["parameters"]["timeDecay"] == 0.9

    # A promoted model is active already; activating it again keeps what it rolls back to.
    activated = client.training_activate(version, force=True)
    assert activated["model"]["status"] == "active"
    assert client.training_status()["activeModelVersion"] == version
    client.training_rollback()
    assert client.training_models()["activeVersion"] == before

    with pytest.raises(vitrina.VitrinaError) as none:
        client.training_cancel("job-that-never-was")
    assert (none.value.status, none.value.error) == (404, "not_found")


def test_an_experiment_runs_serves_its_variants_and_stops(client):
    created = client.experiments_create(
        {"name": "py-trending", "variants": [{"name": "A"}, {"name": "B", "ranking": {"weights": {"trending": 2.0}}}]}
    )["experiment"]
    exp = created["id"]
    assert created["status"] == "draft" and client.experiments_get(exp)["experiment"]["name"] == "py-trending"
    assert exp in [e["id"] for e in client.experiments_list()["experiments"]]

    assert client.experiments_start(exp)["experiment"]["status"] == "running"
    served = client.recommendations("user-3", limit=5)
    assert served["variant"] in (f"{exp}/A", f"{exp}/B")
    results = client.experiments_results(exp)["results"]
    assert [v["name"] for v in results["variants"]] == ["A", "B"] and results["control"] == "A"
    stepped = client.experiments_step(exp)["experiment"]
    assert stepped["traffic"] == [0.5, 0.5], "no list is old enough to judge, so the step changes nothing"

    assert client.experiments_stop(exp)["experiment"]["status"] == "stopped"
    reverted = client.experiments_revert(exp)["experiment"]
    assert reverted["allocationLog"][-1]["reason"].startswith("reverted")
    assert client.recommendations("user-3", limit=5)["variant"] == "default"
