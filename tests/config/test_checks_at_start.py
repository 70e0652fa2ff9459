"""Each kind of check config.py makes at start: the process stops, naming the variable."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.config.test_settings import STRONG_KEY, run_settings


def refused(tmp_path: Path, **env: str) -> str:
    """Settings import fails; the message it printed (the traceback's last lines)."""
    result = run_settings({"SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path), **env})
    assert result.returncode != 0, result.stdout
    assert "Invalid settings" in result.stderr
    return result.stderr


def read(tmp_path: Path, code: str, **env: str) -> list[str]:
    result = run_settings(
        {"SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path), **env}, code
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_value_of_the_wrong_type_names_variable_and_value(tmp_path: Path) -> None:
    err = refused(tmp_path, MAX_REQUEST_BODY_BYTES="20MB", RECORDS_ENABLED="maybe")
    assert "MAX_REQUEST_BODY_BYTES='20MB': Input should be a valid integer" in err
    assert "RECORDS_ENABLED='maybe': Input should be a valid boolean" in err  # all at once


@pytest.mark.parametrize(
    ("name", "value"),
    [("MAX_JSON_DEPTH", "0"), ("UPSTREAM_MAX_CONNECTIONS", "-5"), ("READY_TIMEOUT_SECONDS", "0")],
)
def test_bounds_must_be_positive(tmp_path: Path, name: str, value: str) -> None:
    assert f"{name}='{value}': Input should be greater than 0" in refused(tmp_path, **{name: value})


def test_zero_stays_allowed_where_it_means_off(tmp_path: Path) -> None:
    code = "print(s.LIMITS_DEFAULT_RPM_USER, s.RECORD_RETENTION_DAYS, s.FAIR_SHARE_GRACE_SECONDS)"
    env = {"LIMITS_DEFAULT_RPM_USER": "0", "RECORD_RETENTION_DAYS": "0"}
    assert read(tmp_path, code, FAIR_SHARE_GRACE_SECONDS="0", **env) == ["0 0 0.0"]
    assert "greater than or equal to 0" in refused(tmp_path, RECORD_RETENTION_DAYS="-1")


def test_port_range(tmp_path: Path) -> None:
    err = refused(tmp_path, STREAMING_SERVER_PORT="70000")
    assert "STREAMING_SERVER_PORT='70000': Input should be less than or equal to 65535" in err


def test_choices(tmp_path: Path) -> None:
    err = refused(tmp_path, COMPUTE_EXECUTOR="lokal", LIMITS_REDIS_FAILURE="half")
    assert "COMPUTE_EXECUTOR='lokal': Input should be 'globus' or 'local'" in err
    assert "LIMITS_REDIS_FAILURE='half': Input should be 'open' or 'closed'" in err
    # Case does not matter to operators, as before.
    code = "print(s.LIMITS_REDIS_FAILURE, s.LOG_LEVEL)"
    assert read(tmp_path, code, LIMITS_REDIS_FAILURE="Closed", LOG_LEVEL="debug") == [
        "closed DEBUG"
    ]


def test_urls_are_checked_and_never_echoed(tmp_path: Path) -> None:
    err = refused(
        tmp_path,
        DATABASE_URL="postgress://u:hunter2@db/gw",
        REDIS_URL="http://:hunter3@cache:6379/0",
    )
    assert "DATABASE_URL: must be a URL starting with one of postgres," in err
    assert "REDIS_URL: must be a URL starting with one of redis, rediss, unix" in err
    assert "hunter2" not in err and "hunter3" not in err


def test_list_syntax_of_the_contract(tmp_path: Path) -> None:
    code = "print(s.AUTHORIZED_IDP_DOMAINS)"
    expected = ["['anl.gov', 'uchicago.edu', 'x.org']"]
    for raw in (
        "anl.gov uchicago.edu;x.org",
        "anl.gov,uchicago.edu, x.org",
        '["anl.gov", "uchicago.edu", "x.org"]',
    ):
        assert read(tmp_path, code, AUTHORIZED_IDP_DOMAINS=raw) == expected
    assert "not a JSON list" in refused(tmp_path, AUTHORIZED_IDP_DOMAINS='["anl.gov"')


def test_a_client_id_needs_its_secret(tmp_path: Path) -> None:
    err = refused(tmp_path, GLOBUS_APPLICATION_ID="0f0e0d0c-aaaa-bbbb-cccc-000000000000")
    assert "GLOBUS_APPLICATION_SECRET is not set, but GLOBUS_APPLICATION_ID is" in err


def test_streaming_secret_required_and_strong_outside_dev_mode(tmp_path: Path) -> None:
    err = refused(tmp_path, COMPUTE_EXECUTOR="local")
    assert (
        "INTERNAL_STREAMING_SECRET is not set while Globus Compute streaming is configured" in err
    )
    err = refused(tmp_path, INTERNAL_STREAMING_SECRET="ab" * 20)
    assert "INTERNAL_STREAMING_SECRET is too weak: it carries about" in err
    assert "abab" not in err
    strong = secrets.token_urlsafe(40)
    code = "print(len(s.INTERNAL_STREAMING_SECRET))"
    assert read(tmp_path, code, COMPUTE_EXECUTOR="local", INTERNAL_STREAMING_SECRET=strong) == [
        str(len(strong))
    ]
    # Development mode keeps its insecure default.
    assert read(tmp_path, "print(bool(s.INTERNAL_STREAMING_SECRET))", GATEWAY_DEV_MODE="1") == [
        "True"
    ]


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({"GATEWAY_WORKERS": "6"}, ["uvicorn", "--workers", "2"], (6, "GATEWAY_WORKERS")),
        ({"WEB_CONCURRENCY": "3"}, ["uvicorn"], (3, "WEB_CONCURRENCY")),
        ({}, ["uvicorn", "app", "--workers", "4"], (4, "the server's --workers option")),
        ({}, ["uvicorn", "app", "--workers=5"], (5, "the server's --workers option")),
        ({}, ["gunicorn", "-w", "2", "app"], (2, "the server's -w option")),
        ({}, ["gunicorn", "-w3", "app"], (3, "the server's -w3 option")),
        ({}, ["uvicorn", "app"], (1, "")),
    ],
)
def test_the_worker_count_is_read_from_setting_env_or_argv(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], expected: object
) -> None:
    from inference_gateway import config

    monkeypatch.delenv("GATEWAY_WORKERS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GATEWAY_DEV_MODE", "1")
    assert config.worker_count(config.GatewaySettings(), os.environ, argv) == expected


def test_several_workers_without_redis_are_refused_when_compute_streams(tmp_path: Path) -> None:
    secret = {"INTERNAL_STREAMING_SECRET": secrets.token_urlsafe(40)}
    result = run_settings(
        {
            "SECRET_KEY": STRONG_KEY,
            "GATEWAY_DATA_DIR": str(tmp_path),
            **secret,
            "COMPUTE_EXECUTOR": "local",
            "WEB_CONCURRENCY": "4",
        }
    )
    assert result.returncode != 0
    assert (
        "4 workers (WEB_CONCURRENCY) without REDIS_URL while Globus Compute streaming is "
        "configured (COMPUTE_EXECUTOR=local)" in result.stderr
    )
    # With Redis, with one worker, or without compute streaming, the same start is fine.
    base = {"SECRET_KEY": STRONG_KEY, "GATEWAY_DATA_DIR": str(tmp_path), "WEB_CONCURRENCY": "4"}
    assert (
        run_settings(
            {**base, **secret, "COMPUTE_EXECUTOR": "local", "REDIS_URL": "redis://127.0.0.1:6379/7"}
        ).returncode
        == 0
    )
    assert (
        run_settings(
            {**base, **secret, "COMPUTE_EXECUTOR": "local", "GATEWAY_WORKERS": "1"}
        ).returncode
        == 0
    )
    assert run_settings(base).returncode == 0


@pytest.mark.django_db(transaction=True)
async def test_a_compute_endpoint_in_the_catalog_refuses_several_workers_without_redis(
    settings: Any,
) -> None:
    from inference_gateway.env import ConfigurationError
    from resource_server_async.runtime import Runtime, installed
    from tests.auth.test_api_keys import orm
    from tests.compute.catalog import create_hpc_rows

    settings.COMPUTE_EXECUTOR = "globus"
    settings.REDIS_URL = ""
    settings.GATEWAY_WORKERS, settings.GATEWAY_WORKERS_SOURCE = 2, "GATEWAY_WORKERS"
    endpoint = str(uuid.uuid4())
    await orm(lambda: create_hpc_rows(9, endpoint, str(uuid.uuid4()), endpoint, ["completions"]))
    async with installed(Runtime.from_settings()) as started:
        await started.start_catalog(60)
        with pytest.raises(ConfigurationError, match=r"2 workers \(GATEWAY_WORKERS\) without"):
            started.start_compute()
        assert started._executor is None
        settings.GATEWAY_WORKERS = 1  # one worker keeps its streams to itself
        started.start_compute()
        assert started._executor is not None
