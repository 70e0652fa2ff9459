"""`manage.py register_functions` against the fake Compute service, with the real SDK."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings as SettingsWrapper

import compute_functions.inference
from tests.compute import fake_compute
from tests.compute.fake_compute import FakeComputeService
from tests.fake_backend import FakeBackend


@pytest.fixture
def service_account(settings: SettingsWrapper, function_env: None) -> SettingsWrapper:
    settings.SERVICE_ACCOUNT_ID = fake_compute.CLIENT_ID
    settings.SERVICE_ACCOUNT_SECRET = fake_compute.CLIENT_SECRET
    return settings


def test_registers_every_function_and_prints_where_the_uuids_go(
    service: FakeComputeService, service_account: SettingsWrapper, backend: FakeBackend
) -> None:
    out = io.StringIO()

    call_command("register_functions", stdout=out)

    lines = out.getvalue().splitlines()
    printed = {line.split()[0]: line.split()[1] for line in lines if not line.startswith(" ")}
    printed.pop("Endpoints", None)
    assert set(printed) == {"inference", "pbs-status", "slurm-status", "batch"}
    assert set(printed.values()) == set(service.functions)
    assert '-> fixtures/endpoints.json: "config": {"function_uuid": ...}' in out.getvalue()
    # What was registered is the module's source: it runs where this project is not installed.
    inference = service.serializer.deserialize(service.functions[printed["inference"]])
    assert inference.__name__ == "inference_function"
    assert inference.__globals__ is not vars(compute_functions.inference)
    parameters = {
        "model_params": {
            "model": "fake-model",
            "messages": [{"role": "user", "content": "registered"}],
            "openai_endpoint": "chat/completions",
            "api_port": backend.port,
        }
    }
    answer = json.loads(inference(parameters))
    assert answer["choices"][0]["message"]["content"] == "Echo: registered"
    pbs = service.serializer.deserialize(service.functions[printed["pbs-status"]])
    assert pbs.__name__ == "pbs_status"


def test_registers_one_function(
    service: FakeComputeService, service_account: SettingsWrapper
) -> None:
    out = io.StringIO()

    call_command("register_functions", "--function", "slurm-status", stdout=out)

    (function_uuid,) = service.functions
    assert out.getvalue().split()[:2] == ["slurm-status", function_uuid]


def test_needs_the_service_account(settings: SettingsWrapper) -> None:
    settings.SERVICE_ACCOUNT_ID = ""

    with pytest.raises(CommandError) as caught:
        call_command("register_functions")

    assert str(caught.value) == (
        "Set SERVICE_ACCOUNT_ID and SERVICE_ACCOUNT_SECRET (the identity that will submit the "
        "tasks) before registering functions."
    )


def test_refused_credentials(service: FakeComputeService, service_account: SettingsWrapper) -> None:
    service_account.SERVICE_ACCOUNT_SECRET = "wrong"

    with pytest.raises(CommandError) as caught:
        call_command("register_functions")

    assert str(caught.value) == (
        f"Globus Auth refused the client credentials {fake_compute.CLIENT_ID} (HTTP 401)"
    )
    assert service.functions == {}
